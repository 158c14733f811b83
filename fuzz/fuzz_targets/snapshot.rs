//! The snapshot decoder on arbitrary bytes: an error or a contents, never a
//! panic or a huge allocation (the runner caps allocations); whatever it
//! accepts encodes back to a file that decodes to the same entries.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tollgate::snapshot;
use tollgate::store::Store;

fn entries(store: &Store) -> Vec<(Vec<u8>, u64, String)> {
    let mut out = Vec::new();
    store.for_each(|k, fresh_at, slot| out.push((k.to_vec(), fresh_at, format!("{slot:?}"))));
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(contents) = snapshot::decode(data, Path::new("fuzz")) else {
        return;
    };
    let store = Store::new();
    for (k, e) in contents.entries {
        store.insert_raw(k, e);
    }
    let again = snapshot::encode(&store, &[], contents.written_at);
    let decoded = snapshot::decode(&again, Path::new("again")).expect("our own encoding decodes");
    let restored = Store::new();
    for (k, e) in decoded.entries {
        restored.insert_raw(k, e);
    }
    assert_eq!(entries(&store), entries(&restored));
});
