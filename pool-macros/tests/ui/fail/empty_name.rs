use grpc_pool::grpc_pool;

#[grpc_pool(name = "")]
pub mod users {}

fn main() {}
