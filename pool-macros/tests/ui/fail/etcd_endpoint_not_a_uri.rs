use grpc_pool::grpc_pool;

// etcd's client endpoints are http(s) URIs; a prefix is not one.
#[grpc_pool(name = "users", endpoint = "etcd:///svc/users", etcd_endpoint = "etcd:///svc")]
pub mod users {}

fn main() {}
