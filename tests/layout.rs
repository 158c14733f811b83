//! The README's code layout names every source file, and lib.rs's layout
//! section every module, so neither falls behind the tree.

use std::collections::BTreeMap;
use std::path::Path;

/// Each entry of the README's layout block (`src/x.rs` or `src/dir/`) with
/// its description, continuation lines included.
fn readme_layout() -> BTreeMap<String, String> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Code layout and tests")
        .nth(1)
        .expect("a code layout section");
    let block = section.split("```").nth(1).expect("a layout block");
    let mut entries = BTreeMap::new();
    let mut current = String::new();
    for line in block.lines() {
        if line.starts_with(' ') {
            if let Some(text) = entries.get_mut(&current) {
                *text += line;
            }
        } else if let Some(name) = line.split_whitespace().next() {
            current = name.to_string();
            entries.insert(current.clone(), line.to_string());
        }
    }
    entries
}

fn source_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn the_readme_names_every_source_file() {
    let layout = readme_layout();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = Vec::new();
    source_files(&Path::new(root).join("src"), &mut files);
    let mut missing = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap().trim_start_matches('/');
        let (dir, name) = rel.rsplit_once('/').unwrap();
        let named = layout.contains_key(rel)
            || layout
                .get(&format!("{dir}/"))
                .is_some_and(|text| text.contains(name));
        if !named {
            missing.push(rel.to_string());
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "README's code layout misses {missing:?}"
    );
    // And names nothing that is gone.
    for entry in layout.keys().filter(|e| e.starts_with("src/")) {
        assert!(
            Path::new(root).join(entry).exists(),
            "README names {entry}, which is gone"
        );
    }
}

#[test]
fn lib_rs_lists_every_module() {
    let lib = include_str!("../src/lib.rs");
    let (docs, code) = lib
        .split_once("\npub mod ")
        .expect("modules after the docs");
    let modules: Vec<&str> = std::iter::once(code)
        .chain(lib.split("\npub mod ").skip(2))
        .filter_map(|m| m.split(';').next())
        .collect();
    assert!(modules.len() > 15);
    for module in modules {
        assert!(
            docs.contains(&format!("[`{module}`]")),
            "lib.rs's layout does not list `{module}`"
        );
    }
}
