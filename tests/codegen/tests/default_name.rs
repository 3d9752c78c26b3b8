//! `PooledXClient::connect` in a module without `#[grpc_pool]` (nested package
//! `shop.v1.admin`): a pool named after the service, messages of the parent package, a
//! keyword-named RPC and a well-known request type.

use codegen_tests::server::{item, TestServer};
use codegen_tests::shop::v1::admin::{PooledAdminClient, TypeRequest};
use codegen_tests::shop::v1::GetItemRequest;

#[tokio::test]
async fn connect_without_attribute_names_the_pool_after_the_service() {
    let server = TestServer::start().await;
    let admin = PooledAdminClient::connect(&server.uri())
        .await
        .expect("connect");
    assert_eq!(admin.pool().name(), "shop.v1.admin.Admin");
    assert!(
        grpc_pool::registry::get("shop.v1.admin.Admin").is_some(),
        "registered under that name"
    );

    let inspected = admin
        .inspect(GetItemRequest { id: 3 })
        .await
        .expect("inspect");
    assert_eq!(inspected.into_inner(), item(3));
    let kind = admin
        .r#type(TypeRequest { text: "4.5".into() })
        .await
        .expect("type");
    assert_eq!(kind.into_inner().kind, "number");
    let stats = admin.stats(()).await.expect("stats");
    assert_eq!(stats.into_inner().calls, 3);

    // A second connect to the same endpoint reuses the pool.
    let again = PooledAdminClient::connect(&server.uri())
        .await
        .expect("reuse");
    assert_eq!(again.stats(()).await.expect("stats").into_inner().calls, 4);

    admin.pool().shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn connect_to_an_unreachable_endpoint_is_an_error_not_a_hang() {
    // Port 1 on loopback refuses connections.
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        codegen_tests::shop::v1::admin::PooledAdminClient::connect("http://127.0.0.1:1"),
    )
    .await
    .expect("connect returns");
    assert!(result.is_err());
}
