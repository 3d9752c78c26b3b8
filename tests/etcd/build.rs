//! Compiles etcd's v3 API protos (vendored in `proto/`, see `proto/README.md`) exactly as a
//! user crate would: messages, tonic clients and a `PooledXClient` per service.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    grpc_pool_build::configure()
        .build_server(false)
        .compile_protos(&["etcd/etcdserver/etcdserverpb/rpc.proto"], &["proto"])?;
    Ok(())
}
