//! The users a server knows, and the aclfile they are loaded from.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::{Catalog, User};

/// Every user by name, and a generation that moves on every change, so a
/// connection notices a change to its user with one load.
#[derive(Debug)]
pub struct Users {
    by_name: RwLock<BTreeMap<String, Arc<User>>>,
    generation: AtomicU64,
}

impl Users {
    /// Only `default`, standing for `requirepass`.
    pub fn new(requirepass: Option<&str>) -> Users {
        let default = User::default_user(requirepass);
        Users {
            by_name: RwLock::new(BTreeMap::from([("default".into(), Arc::new(default))])),
            generation: AtomicU64::new(0),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.by_name.read().get(name).cloned()
    }

    /// The `default` user (it always exists).
    pub fn default_user(&self) -> Arc<User> {
        self.get("default")
            .unwrap_or_else(|| Arc::new(User::default_user(None)))
    }

    pub fn names(&self) -> Vec<String> {
        self.by_name.read().keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<User>> {
        self.by_name.read().values().cloned().collect()
    }

    /// The user `name` opens with `password`, if any.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let user = self.get(std::str::from_utf8(name).ok()?)?;
        user.accepts(password).then_some(user)
    }

    /// `ACL SETUSER`: creates or changes a user, all rules or none.
    pub fn set(
        &self,
        name: &str,
        rules: &[&str],
        catalog: &Catalog,
    ) -> Result<(), super::RuleError> {
        let mut map = self.by_name.write();
        let mut user = map
            .get(name)
            .map_or_else(|| User::new(name), |u| User::clone(u));
        user.apply_all(rules, catalog)?;
        map.insert(name.to_string(), Arc::new(user));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// `ACL DELUSER`: how many of `names` existed; `default` cannot go.
    pub fn delete(&self, names: &[&str]) -> Result<usize, &'static str> {
        if names.contains(&"default") {
            return Err("ERR The 'default' user cannot be removed");
        }
        let mut map = self.by_name.write();
        let deleted = names.iter().filter(|n| map.remove(**n).is_some()).count();
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(deleted)
    }

    /// Replaces every user with an aclfile's (`ACL LOAD`, start-up): all
    /// or nothing. Without a `default` line, `default` stands for
    /// `requirepass`.
    pub fn load(
        &self,
        path: &Path,
        requirepass: Option<&str>,
        catalog: &Catalog,
    ) -> Result<usize, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read aclfile {}: {e}", path.display()))?;
        let users = parse_file(&text, requirepass, catalog)
            .map_err(|e| format!("aclfile {}: {e}", path.display()))?;
        let count = users.len();
        *self.by_name.write() = users;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(count)
    }
}

/// The users an aclfile's text defines.
pub fn parse_file(
    text: &str,
    requirepass: Option<&str>,
    catalog: &Catalog,
) -> Result<BTreeMap<String, Arc<User>>, String> {
    let mut users = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: String| format!("line {}: {why}", i + 1);
        let mut words = line.split_whitespace();
        if words.next() != Some("user") {
            return Err(at("expected 'user <name> <rule> ...'".into()));
        }
        let Some(name) = words.next() else {
            return Err(at("a user line needs a name".into()));
        };
        if users.contains_key(name) {
            return Err(at(format!("user '{name}' is defined twice")));
        }
        let rules: Vec<&str> = words.collect();
        let mut user = User::new(name);
        user.apply_all(&rules, catalog)
            .map_err(|e| at(e.to_string()))?;
        users.insert(name.to_string(), Arc::new(user));
    }
    users
        .entry("default".to_string())
        .or_insert_with(|| Arc::new(User::default_user(requirepass)));
    Ok(users)
}
