use grpc_pool::grpc_pool;

#[grpc_pool(name = "users", keepalive = 30)]
pub mod users {}

fn main() {}
