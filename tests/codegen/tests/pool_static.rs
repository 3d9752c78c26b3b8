//! The attribute's `POOL` static: started by hand, then shared by `new(POOL.get())` and by
//! `connect` (which reuses it, or refuses another endpoint).

use codegen_tests::server::TestServer;
use codegen_tests::shop::v1::{self, GetItemRequest, PooledCatalogClient, PooledOrdersClient};

#[tokio::test]
async fn pool_static_is_shared_by_new_and_connect() {
    let server = TestServer::start().await;
    let pool = v1::POOL.connect(&server.uri()).await.expect("POOL.connect");
    assert_eq!(pool.name(), "shop");
    assert_eq!(pool.status().size, 3, "size from the attribute");

    let catalog = PooledCatalogClient::new(v1::POOL.get().expect("running"));
    catalog
        .get_item(GetItemRequest { id: 2 })
        .await
        .expect("get_item");
    let orders = PooledOrdersClient::connect(&server.uri())
        .await
        .expect("connect reuses POOL");
    orders
        .place(v1::Order { item_ids: vec![1] })
        .await
        .expect("place");

    // Another endpoint under the same name is refused, naming both endpoints.
    let other = TestServer::start().await;
    let err = PooledCatalogClient::connect(&other.uri())
        .await
        .expect_err("different endpoint");
    let message = err.to_string();
    assert!(
        message.contains(&server.uri()) || message.contains(&server.port().to_string()),
        "{message}"
    );
    assert!(message.contains(&other.port().to_string()), "{message}");

    pool.shutdown().await;
    other.shutdown().await;
    server.shutdown().await;
}
