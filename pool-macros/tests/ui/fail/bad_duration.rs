use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", checkout_timeout = "2 parsecs")]
pub mod users {}

fn main() {}
