//! The config parser on arbitrary text: a config or an error line, never a
//! panic; every policy it accepts is a valid rule set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(config) => {
            for p in &config.policies {
                assert!(!p.rules.is_empty());
                assert!(p.rules.iter().all(|r| r.fill_in_range() && r.limit >= 1));
            }
        }
        Err(e) => assert!(!e.is_empty() && !e.contains('\n') || e.lines().count() < 20),
    }
});
