//! `PooledXClient::new(pool)` with a pool started by hand, `PooledClient::from_pool`, the
//! `with_*` options, and calls from many tasks at once.

use std::time::Duration;

use codegen_tests::server::{item, TestServer};
use codegen_tests::shop::v1::admin::{PooledAdminClient, TypeRequest};
use codegen_tests::shop::v1::{
    GetItemRequest, ListItemsRequest, Order, OrderReceipt, PooledCatalogClient, PooledOrdersClient,
};
use grpc_pool::{Pool, PoolConfig, PooledClient};
use tokio_stream::StreamExt;

async fn start_pool(server: &TestServer, name: &str, size: usize) -> Pool {
    let config = PoolConfig::test("127.0.0.1", server.port())
        .name(name)
        .size(size)
        .build()
        .expect("config");
    Pool::start(config).await.expect("pool starts")
}

#[tokio::test]
async fn new_with_a_started_pool_calls_every_method_of_every_service() {
    let server = TestServer::start().await;
    let pool = start_pool(&server, "codegen-new", 2).await;

    let catalog = PooledCatalogClient::new(pool.clone());
    assert_eq!(
        catalog
            .get_item(GetItemRequest { id: 1 })
            .await
            .expect("get")
            .into_inner(),
        item(1)
    );
    catalog.ping(()).await.expect("ping");
    let listed = catalog
        .list_items(ListItemsRequest {
            prefix: "x".into(),
            count: 3,
        })
        .await
        .expect("list")
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(listed.len(), 3);
    let added = catalog
        .add_items(tokio_stream::iter([item(1)]))
        .await
        .expect("add");
    assert_eq!(added.into_inner().added, 1);
    let repriced = catalog
        .reprice(tokio_stream::iter([item(3)]))
        .await
        .expect("reprice")
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(repriced.len(), 1);

    // Any PooledXClient over the same pool: generic construction through the trait.
    let orders = PooledOrdersClient::from_pool(pool.clone());
    assert_eq!(
        orders
            .place(Order { item_ids: vec![4] })
            .await
            .expect("place")
            .get_ref()
            .order_id,
        4
    );
    let tracked = orders
        .track(OrderReceipt { order_id: 4 })
        .await
        .expect("track")
        .into_inner();
    assert_eq!(tracked.collect::<Vec<_>>().await.len(), 3);

    let admin: PooledAdminClient = PooledClient::from_pool(pool.clone());
    assert_eq!(
        admin
            .inspect(GetItemRequest { id: 9 })
            .await
            .expect("inspect")
            .into_inner(),
        item(9)
    );
    assert_eq!(
        admin
            .r#type(TypeRequest { text: "abc".into() })
            .await
            .expect("type")
            .into_inner()
            .kind,
        "text"
    );
    admin.stats(()).await.expect("stats");

    assert_eq!(catalog.pool().name(), "codegen-new");
    pool.shutdown().await;
    let closed = catalog
        .get_item(GetItemRequest { id: 1 })
        .await
        .expect_err("pool is closed");
    assert_eq!(closed.code(), tonic::Code::Unavailable, "{closed}");
    server.shutdown().await;
}

#[tokio::test]
async fn calls_from_many_tasks_spread_over_the_channels() {
    let server = TestServer::start().await;
    let pool = start_pool(&server, "codegen-many", 4).await;
    let catalog = PooledCatalogClient::new(pool.clone());

    let mut tasks = tokio::task::JoinSet::new();
    for id in 1..=64u64 {
        let catalog = catalog.clone();
        tasks.spawn(async move {
            catalog
                .get_item(GetItemRequest { id })
                .await
                .map(|r| r.into_inner().id)
        });
    }
    let mut ids = Vec::new();
    while let Some(result) = tasks.join_next().await {
        ids.push(result.expect("task").expect("call"));
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=64).collect::<Vec<_>>());
    assert_eq!(
        pool.status().in_flight,
        0,
        "finished calls give their slot back"
    );

    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn with_options_reach_the_tonic_client_of_each_call() {
    let server = TestServer::start().await;
    let pool = start_pool(&server, "codegen-options", 1).await;

    // A 4-byte decode limit: the reply (an Item of ~20 bytes) is refused by the client.
    let tiny = PooledCatalogClient::new(pool.clone()).with_max_decoding_message_size(4);
    let err = tiny
        .get_item(GetItemRequest { id: 5 })
        .await
        .expect_err("reply too large");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    // A 1-byte encode limit: the request body fails in tonic's encoder. Depending on which
    // side of the HTTP/2 stream notices first, tonic itself reports that as OutOfRange (the
    // encoder's error) or Internal (the stream reset the failed body causes); the pooled
    // client must fail exactly like tonic's own client with the same option.
    let tiny = PooledCatalogClient::new(pool.clone()).with_max_encoding_message_size(1);
    let err = tiny
        .get_item(GetItemRequest { id: 500 })
        .await
        .expect_err("request too large");
    let raw = codegen_tests::shop::v1::catalog_client::CatalogClient::new(
        pool.checkout().await.expect("checkout"),
    )
    .max_encoding_message_size(1)
    .get_item(GetItemRequest { id: 500 })
    .await
    .expect_err("tonic's own client refuses it too");
    for e in [&err, &raw] {
        assert!(
            matches!(e.code(), tonic::Code::OutOfRange | tonic::Code::Internal),
            "{e}"
        );
    }
    // The options belong to the client, not the pool.
    let normal = PooledCatalogClient::new(pool.clone());
    normal
        .get_item(GetItemRequest { id: 5 })
        .await
        .expect("default limits");

    tokio::time::timeout(Duration::from_secs(10), pool.shutdown())
        .await
        .expect("shutdown");
    server.shutdown().await;
}
