use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", health_check = "yes")]
pub mod users {}

fn main() {}
