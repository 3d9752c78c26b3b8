use grpc_pool::grpc_pool;

#[grpc_pool(name = "users")]
pub struct Users;

fn main() {}
