//! Compiles etcd's v3 API protos exactly as a user crate would: messages, tonic clients and a
//! `PooledXClient` per service, behind `cfg(etcd_protos)`.
//!
//! The protos come from Debian's `golang-etcd-server-dev` (see `etcd_protos.rs`). Without them
//! the crate builds without the generated code and its tests skip loudly (fail under
//! `CI=true`); `bash scripts/install-deps.sh` gets them.

#[path = "etcd_protos.rs"]
mod etcd_protos;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rustc-check-cfg=cfg(etcd_protos)");
    let manifest_dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?,
    );
    // tests/etcd -> the workspace root
    let workspace_root = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("CARGO_MANIFEST_DIR has no grandparent")?;
    let Some(include) = etcd_protos::prepare(
        workspace_root,
        "the etcd-tests tests will skip (and fail with CI=true)",
    )?
    else {
        return Ok(());
    };
    grpc_pool_build::configure()
        .build_server(false)
        .emit_rerun_if_changed(false) // the copies in OUT_DIR; prepare() watches the sources
        .compile_protos(&[etcd_protos::RPC_PROTO], &[include])?;
    println!("cargo::rustc-cfg=etcd_protos");
    Ok(())
}
