use grpc_pool::grpc_pool;

#[grpc_pool(name = users)]
pub mod users {}

fn main() {}
