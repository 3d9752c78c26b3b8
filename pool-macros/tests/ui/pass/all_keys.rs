use grpc_pool::grpc_pool;

#[grpc_pool(
    name = "users",
    size = 5,
    min_size = 2,
    max_size = 8,
    max_connection_age = "30m",
    wait_for_ready = true,
    checkout_timeout = "2s",
    connect_timeout = "500ms",
    keepalive = "30s",
    keepalive_while_idle = false,
    ping_interval = "25s",
    health_check = true,
    max_in_flight_per_channel = 100,
    preset = "local",
    endpoint = "http://127.0.0.1:50051",
    endpoint = "https://users.example.com:443",
    endpoint = "etcd:///svc/users",
    etcd_endpoint = "http://127.0.0.1:2379",
    etcd_endpoint = "http://127.0.0.1:22379",
    env = "USERS",
)]
pub mod users {
    /// Items of the module are kept as written.
    pub fn existing() -> u8 {
        7
    }
}

fn main() {
    let _pool: &grpc_pool::NamedPool = &users::POOL;
    assert_eq!(users::existing(), 7);
}
