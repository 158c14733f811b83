//! Map keys: a scope tag (inline, or a policy's name) before the client's
//! key, so an inline key and the same key under a policy never share state
//! (and a key's open reservations are kept apart from both).

use std::cell::RefCell;

use super::Scope;

thread_local! {
    static KEY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub(super) const TAG_INLINE: u8 = 0;
pub(super) const TAG_POLICY: u8 = 1;
pub(super) const TAG_RESERVATIONS: u8 = 2;

/// Builds the map key for (`scope`, `key`) and passes it to `f`: on the
/// stack for the usual short inline key, else in a reused buffer.
pub(super) fn with_map_key<R>(scope: Scope<'_>, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const SHORT: usize = 64;
    if scope == Scope::Inline && key.len() < SHORT {
        let mut buf = [0u8; SHORT];
        buf[0] = TAG_INLINE;
        buf[1..=key.len()].copy_from_slice(key);
        return f(&buf[..=key.len()]);
    }
    KEY_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        encode_key(&mut buf, scope, key);
        f(&buf)
    })
}

/// The map key: a tag byte, for policies the name's length and the name,
/// then the client's key.
pub fn encode_key(out: &mut Vec<u8>, scope: Scope<'_>, key: &[u8]) {
    match scope {
        Scope::Inline => out.push(TAG_INLINE),
        Scope::Policy(name) => {
            out.push(TAG_POLICY);
            let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        Scope::Reservations => out.push(TAG_RESERVATIONS),
    }
    out.extend_from_slice(key);
}

/// Splits a map key back into its scope and the client's key.
pub fn decode_key(map_key: &[u8]) -> Option<(Scope<'_>, &[u8])> {
    let (&tag, rest) = map_key.split_first()?;
    match tag {
        TAG_INLINE => Some((Scope::Inline, rest)),
        TAG_POLICY => {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let name = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
            Some((Scope::Policy(name), &rest[4 + len..]))
        }
        TAG_RESERVATIONS => Some((Scope::Reservations, rest)),
        _ => None,
    }
}
