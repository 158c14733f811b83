//! Writes the protobuf descriptors gRPC server reflection serves for the
//! Rate Limit Service: `envoy/service/ratelimit/v3/rls.proto` and every
//! file it imports, taken from the descriptor set the envoy-types crate
//! ships (`src/generated/types.bin`, all of Envoy's API).
//!
//! ```text
//! cargo run --example rls_descriptors -- \
//!     ~/.cargo/registry/src/*/envoy-types-0.7.7/src/generated/types.bin \
//!     > src/rls/descriptors.bin
//! ```

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

const ROOT: &str = "envoy/service/ratelimit/v3/rls.proto";

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: rls_descriptors PATH/TO/envoy-types/src/generated/types.bin");
    let bytes = std::fs::read(&path).expect("the envoy-types descriptor set");
    let all = FileDescriptorSet::decode(bytes.as_slice()).expect("a FileDescriptorSet");
    let by_name: HashMap<&str, &FileDescriptorProto> =
        all.file.iter().map(|f| (f.name(), f)).collect();
    // Every file ROOT needs, dependencies first (the order protoc writes).
    let mut order: Vec<&FileDescriptorProto> = Vec::new();
    let mut seen = BTreeSet::new();
    visit(ROOT, &by_name, &mut seen, &mut order);
    let set = FileDescriptorSet {
        // Without the comments: clients need the types, not their docs.
        file: order
            .into_iter()
            .map(|f| FileDescriptorProto {
                source_code_info: None,
                ..f.clone()
            })
            .collect(),
    };
    std::io::stdout()
        .write_all(&set.encode_to_vec())
        .expect("stdout");
}

fn visit<'a>(
    name: &str,
    by_name: &HashMap<&str, &'a FileDescriptorProto>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<&'a FileDescriptorProto>,
) {
    if !seen.insert(name.to_string()) {
        return;
    }
    let file = by_name
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in the set"));
    for dep in &file.dependency {
        visit(dep, by_name, seen, order);
    }
    order.push(file);
}
