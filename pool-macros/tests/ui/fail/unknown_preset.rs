use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", preset = "staging")]
pub mod users {}

fn main() {}
