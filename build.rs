//! Compiles the protos of the top-level examples through grpc-pool-build, exactly as a user
//! crate's build script would.

// Finds etcd's v3 API protos (Debian's golang-etcd-server-dev; not in this repository), for
// examples/etcd.rs. Shared with tests/etcd/build.rs.
#[path = "tests/etcd/etcd_protos.rs"]
mod etcd_protos;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The service config of examples/policies.rs is checked against the protos: a misspelt
    // service or method name fails the build at its line.
    grpc_pool_build::configure()
        .service_config("examples/policies.json")
        .compile_protos(&["examples/proto/greeter.proto"], &["examples/proto"])?;
    // The test service of the root integration tests (tests/*.rs, reliability helper). Its
    // `Lookup` is marked idempotent in the .proto, so it gets this retry policy by default.
    grpc_pool_build::configure()
        .service_config("tests/data/call_policies.json")
        .retry_idempotent(
            grpc_pool_build::RetryPolicy::new(3)
                .initial_backoff(std::time::Duration::from_millis(10))
                .max_backoff(std::time::Duration::from_millis(50)),
        )
        .compile_protos(&["testkit/proto/echo.proto"], &["testkit/proto"])?;
    // etcd's KV, Watch, Lease, ... clients for examples/etcd.rs, behind `cfg(etcd_protos)`:
    // without the protos the example only says how to get them.
    println!("cargo::rustc-check-cfg=cfg(etcd_protos)");
    let root = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let used_by = "examples/etcd.rs will only print how to get them";
    if let Some(include) = etcd_protos::prepare(std::path::Path::new(&root), used_by)? {
        grpc_pool_build::configure()
            .build_server(false)
            .emit_rerun_if_changed(false) // the copies in OUT_DIR; prepare() watches the sources
            .compile_protos(&[etcd_protos::RPC_PROTO], &[include])?;
        println!("cargo::rustc-cfg=etcd_protos");
    }
    Ok(())
}
