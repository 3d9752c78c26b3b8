use grpc_pool::grpc_pool;

// The runtime caps `pool.size` at 1024; the attribute rejects what the runtime would.
#[grpc_pool(name = "users", size = 5000)]
pub mod users {}

fn main() {}
