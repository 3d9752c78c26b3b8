use grpc_pool::grpc_pool;

#[grpc_pool(size = 4)]
pub mod users {}

fn main() {}
