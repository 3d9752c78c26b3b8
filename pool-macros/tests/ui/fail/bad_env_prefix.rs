use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", env = "my-app")]
pub mod users {}

fn main() {}
