//! Compiles this crate's protos exactly as a user's build script would.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    grpc_pool_build::compile_protos(
        &["shop/v1/catalog.proto", "shop/v1/admin/admin.proto"],
        &["proto"],
    )?;
    Ok(())
}
