//! Compiles `proto/` (Purser's access service and the subset of Envoy's ext_authz API it
//! answers) with protox, a protobuf compiler in Rust: building Purser needs no `protoc`.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "purser/access/v1/access.proto",
    "purser/entitlement/v1/entitlement.proto",
    "envoy/service/auth/v3/external_auth.proto",
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    // A folder is scanned whole for changes.
    println!("cargo:rerun-if-changed={}", root.display());
    let descriptors = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure()
        .build_transport(false)
        .include_file("protos.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
