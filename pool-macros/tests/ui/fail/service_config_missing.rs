use grpc_pool::grpc_pool;

// The service config is read when the attribute expands: a missing file is a compile error.
#[grpc_pool(name = "users", service_config = "no/such/service_config.json")]
pub mod users {}

fn main() {}
