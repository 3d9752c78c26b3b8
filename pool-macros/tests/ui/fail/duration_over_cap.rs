use grpc_pool::grpc_pool;

// The runtime caps `pool.checkout_timeout` at 1h and `connection.max_connection_age` at 24h.
#[grpc_pool(name = "users", checkout_timeout = "2h", max_connection_age = "2days")]
pub mod users {}

fn main() {}
