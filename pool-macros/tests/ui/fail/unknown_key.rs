use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", sise = 4)]
pub mod users {}

fn main() {}
