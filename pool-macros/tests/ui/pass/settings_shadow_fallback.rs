//! The mechanism generated `PooledXClient::connect` relies on: each generated package file has
//! `use ::grpc_pool::__private::fallback::*;`, and the attribute's own `__GRPC_POOL_SETTINGS`
//! shadows that glob import.

#[grpc_pool::grpc_pool(name = "annotated", size = 3)]
pub mod annotated {
    #[allow(unused_imports)]
    use ::grpc_pool::__private::fallback::*;

    pub fn settings() -> ::grpc_pool::__private::Settings {
        __GRPC_POOL_SETTINGS
    }
}

pub mod plain {
    #[allow(unused_imports)]
    use ::grpc_pool::__private::fallback::*;

    pub fn settings() -> ::grpc_pool::__private::Settings {
        __GRPC_POOL_SETTINGS
    }
}

fn main() {
    let settings = annotated::settings().expect("the attribute's settings win over the glob");
    assert!(std::ptr::eq(settings, &annotated::POOL));
    assert!(plain::settings().is_none(), "without the attribute the fallback is None");
}
