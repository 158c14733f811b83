//! ACL users, Redis's model and words: who may connect (passwords kept only
//! as SHA-256 digests), which commands and categories they may run, which
//! keys they may check. Rules apply in order, as `ACL SETUSER` and the
//! aclfile give them. The command table describes itself to this module as
//! a [`Catalog`], so this module imports no command code.

pub mod users;

use std::collections::{BTreeSet, HashSet};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use users::Users;

/// Every command and subcommand, with its ACL categories (from the table).
#[derive(Debug, Default)]
pub struct Catalog {
    pub entries: Vec<Entry>,
}

/// One command (`limit.check`) or subcommand (`config|get`).
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    /// `@write`, `@fast`, ... with the `@`.
    pub categories: Vec<&'static str>,
}

impl Catalog {
    /// Every category any command has, sorted, without the `@`.
    pub fn categories(&self) -> BTreeSet<&'static str> {
        self.entries
            .iter()
            .flat_map(|e| e.categories.iter().map(|c| c.trim_start_matches('@')))
            .collect()
    }

    fn in_category(&self, category: &str) -> Vec<&'static str> {
        let at = format!("@{category}");
        self.entries
            .iter()
            .filter(|e| category == "all" || e.categories.iter().any(|c| *c == at))
            .map(|e| e.name)
            .collect()
    }

    /// A command and, for a container, its subcommands.
    fn named(&self, name: &str) -> Vec<&'static str> {
        let prefix = format!("{name}|");
        self.entries
            .iter()
            .filter(|e| e.name == name || (!name.contains('|') && e.name.starts_with(&prefix)))
            .map(|e| e.name)
            .collect()
    }
}

/// The commands a user may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commands {
    All,
    Only(HashSet<&'static str>),
}

/// A SHA-256 digest of a password.
pub type Digest32 = [u8; 32];

/// The digest `>password` stores.
pub fn digest(password: &[u8]) -> Digest32 {
    Sha256::digest(password).into()
}

fn hex(d: &Digest32) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Digest32> {
    // As Redis: exactly 64 lower-case hex digits.
    let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if text.len() != 64 || !text.bytes().all(lower_hex) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    pub passwords: BTreeSet<Digest32>,
    pub commands: Commands,
    /// The command rules as given, for `ACL LIST` and `ACL GETUSER`.
    pub command_rules: Vec<String>,
    /// Key patterns; `*` among them: every key.
    pub keys: Vec<String>,
    pub channels: Vec<String>,
}

/// Why a rule was refused, in `ACL SETUSER`'s words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Error in ACL SETUSER modifier '{rule}': {why}")]
pub struct RuleError {
    pub rule: String,
    pub why: &'static str,
}

impl User {
    /// A new user as Redis creates one: off, no password, no commands, no keys.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: BTreeSet::new(),
            commands: Commands::Only(HashSet::new()),
            command_rules: vec!["-@all".into()],
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    /// The `default` user with no aclfile entry: everything, with
    /// `requirepass` as its password (none: `nopass`).
    pub fn default_user(requirepass: Option<&str>) -> User {
        User {
            name: "default".into(),
            enabled: true,
            nopass: requirepass.is_none(),
            passwords: requirepass
                .map(|p| digest(p.as_bytes()))
                .into_iter()
                .collect(),
            commands: Commands::All,
            command_rules: vec!["+@all".into()],
            keys: vec!["*".into()],
            channels: vec!["*".into()],
        }
    }

    /// Whether this user may run anything on any key (the common case,
    /// checked before anything else).
    pub fn unrestricted(&self) -> bool {
        self.commands == Commands::All && self.keys.iter().any(|k| k == "*")
    }

    /// Whether `password` opens this user.
    pub fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let given = digest(password);
        // Every stored digest is compared, in constant time each.
        self.passwords
            .iter()
            .fold(false, |found, d| found | bool::from(d.ct_eq(&given)))
    }

    pub fn may_run(&self, command: &str) -> bool {
        match &self.commands {
            Commands::All => true,
            Commands::Only(set) => set.contains(command),
        }
    }

    /// Whether a key matches one of the user's patterns.
    pub fn may_access(&self, key: &[u8]) -> bool {
        self.keys
            .iter()
            .any(|p| p == "*" || crate::text::glob_match_exact(p.as_bytes(), key))
    }

    /// Applies rules in order; on an error nothing of them is kept.
    pub fn apply_all(&mut self, rules: &[&str], catalog: &Catalog) -> Result<(), RuleError> {
        let mut next = self.clone();
        for rule in rules {
            next.apply(rule, catalog)?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one rule.
    pub fn apply(&mut self, rule: &str, catalog: &Catalog) -> Result<(), RuleError> {
        let refuse = |why| RuleError {
            rule: rule.to_string(),
            why,
        };
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.keys = vec!["*".into()],
            "resetkeys" => self.keys.clear(),
            "allchannels" => self.channels = vec!["*".into()],
            "resetchannels" => self.channels.clear(),
            "allcommands" => return self.apply("+@all", catalog),
            "nocommands" => return self.apply("-@all", catalog),
            "reset" => *self = User::new(&self.name),
            _ => {
                let (head, rest) = rule.split_at(1);
                match head {
                    ">" => {
                        self.passwords.insert(digest(rest.as_bytes()));
                        self.nopass = false;
                    }
                    "<" => {
                        self.passwords.remove(&digest(rest.as_bytes()));
                    }
                    "#" => {
                        let d = from_hex(rest).ok_or_else(|| refuse("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"))?;
                        self.passwords.insert(d);
                        self.nopass = false;
                    }
                    "~" => self.keys.push(rest.to_string()),
                    "&" => self.channels.push(rest.to_string()),
                    "+" | "-" => {
                        self.apply_command_rule(head == "+", &lower[1..], catalog, refuse)?
                    }
                    _ => return Err(refuse("Syntax error")),
                }
            }
        }
        Ok(())
    }

    fn apply_command_rule(
        &mut self,
        allow: bool,
        what: &str,
        catalog: &Catalog,
        refuse: impl Fn(&'static str) -> RuleError,
    ) -> Result<(), RuleError> {
        let names: Vec<&'static str> = match what.strip_prefix('@') {
            Some(category) => {
                if category != "all" && !catalog.categories().contains(category) {
                    return Err(refuse("Unknown category"));
                }
                catalog.in_category(category)
            }
            None => catalog.named(what),
        };
        if names.is_empty() {
            return Err(refuse("Unknown command"));
        }
        let sign = if allow { '+' } else { '-' };
        if what == "@all" {
            self.commands = if allow {
                Commands::All
            } else {
                Commands::Only(HashSet::new())
            };
            self.command_rules = vec![format!("{sign}@all")];
            return Ok(());
        }
        let set = match &mut self.commands {
            Commands::All => {
                let every = catalog.entries.iter().map(|e| e.name).collect();
                self.commands = Commands::Only(every);
                match &mut self.commands {
                    Commands::Only(set) => set,
                    Commands::All => unreachable!("just set"),
                }
            }
            Commands::Only(set) => set,
        };
        for name in names {
            if allow {
                set.insert(name);
            } else {
                set.remove(name);
            }
        }
        if set.len() == catalog.entries.len() {
            self.commands = Commands::All;
        }
        self.command_rules.push(format!("{sign}{what}"));
        Ok(())
    }

    /// The user as one aclfile line (`ACL LIST`).
    pub fn describe(&self) -> String {
        let mut parts = vec![
            "user".to_string(),
            self.name.clone(),
            if self.enabled { "on" } else { "off" }.to_string(),
        ];
        if self.nopass {
            parts.push("nopass".into());
        }
        parts.extend(self.passwords.iter().map(|d| format!("#{}", hex(d))));
        parts.extend(self.keys.iter().map(|k| format!("~{k}")));
        if self.keys.is_empty() {
            parts.push("resetkeys".into());
        }
        parts.extend(self.channels.iter().map(|c| format!("&{c}")));
        if self.channels.is_empty() {
            parts.push("resetchannels".into());
        }
        parts.push(self.command_rules.join(" "));
        parts.join(" ")
    }

    /// The password digests in hex (`ACL GETUSER`).
    pub fn password_hexes(&self) -> Vec<String> {
        self.passwords.iter().map(hex).collect()
    }
}

#[cfg(test)]
mod tests;
