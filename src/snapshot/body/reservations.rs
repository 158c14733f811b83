//! A key's open reservations in a snapshot (slot kind 2): a count, then
//! each as id, rule (0 and its numbers, or 1 and a policy's name), when
//! taken, units, deadline.

use super::{Read, Reader, put_bytes, put_params, put_u32, put_u64};
use crate::limiter::MAX_COUNT;
use crate::store::{OpenMap, Reservation, Under};

pub(super) fn put(out: &mut Vec<u8>, open: &OpenMap) {
    put_u32(out, open.len() as u32);
    for r in open.values() {
        put_u64(out, r.id);
        match &r.under {
            Under::Inline(params) => {
                out.push(0);
                put_params(out, params);
            }
            Under::Policy(name) => {
                out.push(1);
                put_bytes(out, name.as_bytes());
            }
        }
        put_u64(out, r.taken_at);
        put_u64(out, r.units);
        put_u64(out, r.deadline);
    }
}

impl<R: std::io::Read> Reader<R> {
    /// One open reservation.
    pub(super) fn reservation(&mut self) -> Read<Reservation> {
        let id = self.u64()?;
        let under = match self.u8()? {
            0 => Under::Inline(self.params()?),
            1 => {
                let name = std::str::from_utf8(self.bytes()?)
                    .map_err(|_| "a policy name is not UTF-8".to_string())?;
                Under::Policy(name.into())
            }
            tag => return Err(format!("unknown reservation rule tag {tag}")),
        };
        let (taken_at, units, deadline) = (self.u64()?, self.u64()?, self.u64()?);
        if units > MAX_COUNT {
            return Err(format!("reservation of {units} units is out of range"));
        }
        Ok(Reservation {
            id,
            under,
            taken_at,
            units,
            deadline,
        })
    }
}
