use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", endpoint = "127.0.0.1:50051")]
pub mod users {}

fn main() {}
