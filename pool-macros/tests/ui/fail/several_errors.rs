use grpc_pool::grpc_pool;

// Every error is reported, and uses of `POOL` add none.
#[grpc_pool(name = "users", size = 0, checkout_timeout = "soon")]
pub mod users {}

fn main() {
    let _ = &users::POOL;
}
