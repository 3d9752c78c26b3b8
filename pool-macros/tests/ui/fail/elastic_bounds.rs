use grpc_pool::grpc_pool;

#[grpc_pool(name = "a", min_size = 2)]
pub mod min_without_max {}

#[grpc_pool(name = "b", min_size = 9, max_size = 4)]
pub mod min_above_max {}

#[grpc_pool(name = "c", size = 20, min_size = 2, max_size = 8)]
pub mod size_outside {}

#[grpc_pool(name = "d", max_connection_age = "10ms")]
pub mod age_too_short {}

fn main() {}
