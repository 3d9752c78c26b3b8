use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", endpoint = "http://exa mple.com")]
pub mod users {}

fn main() {}
