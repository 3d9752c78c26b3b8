use grpc_pool::grpc_pool;

// etcd's own address belongs in `etcd_endpoint`, not in the name.
#[grpc_pool(name = "users", endpoint = "etcd://127.0.0.1:2379/svc/users")]
pub mod users {}

fn main() {}
