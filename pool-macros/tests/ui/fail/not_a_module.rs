use grpc_pool::grpc_pool;

#[grpc_pool(name = "users")]
pub fn users() {}

fn main() {
    users();
}
