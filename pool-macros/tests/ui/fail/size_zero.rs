use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", size = 0)]
pub mod users {}

fn main() {}
