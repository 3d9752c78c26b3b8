use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", size = 4, size = 5)]
pub mod users {}

fn main() {}
