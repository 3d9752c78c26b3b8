//! `PooledXClient::connect` in a module with `#[grpc_pool]`: the attribute's pool (name, size)
//! serves both services of the package, and every RPC kind works through it.

use codegen_tests::server::{item, TestServer};
use codegen_tests::shop::v1::{
    self, GetItemRequest, Item, ListItemsRequest, Order, OrderReceipt, PooledCatalogClient,
    PooledOrdersClient,
};
use tokio_stream::StreamExt;

#[tokio::test]
async fn connect_uses_the_attribute_pool_for_every_rpc_kind_of_both_services() {
    let server = TestServer::start().await;
    let catalog = PooledCatalogClient::connect(&server.uri())
        .await
        .expect("connect");
    assert_eq!(
        catalog.pool().name(),
        "shop",
        "the attribute's name, not the service's"
    );
    assert_eq!(catalog.pool().status().size, 3, "the attribute's size");

    // Unary.
    let reply = catalog
        .get_item(GetItemRequest { id: 7 })
        .await
        .expect("get_item");
    assert_eq!(reply.into_inner(), item(7));
    let missing = catalog
        .get_item(GetItemRequest { id: 0 })
        .await
        .expect_err("not found");
    assert_eq!(
        missing.code(),
        tonic::Code::NotFound,
        "server status comes back unchanged"
    );
    // Unary with google.protobuf.Empty on both sides.
    catalog.ping(()).await.expect("ping");

    // Server streaming.
    let listed: Vec<Item> = catalog
        .list_items(ListItemsRequest {
            prefix: "p".into(),
            count: 4,
        })
        .await
        .expect("list_items")
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .expect("stream");
    assert_eq!(
        listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["p1", "p2", "p3", "p4"]
    );

    // Client streaming.
    let added = catalog
        .add_items(tokio_stream::iter((1..=5).map(item)))
        .await
        .expect("add_items");
    assert_eq!(added.into_inner().added, 5);

    // Bidirectional streaming.
    let repriced: Vec<u64> = catalog
        .reprice(tokio_stream::iter([item(1), item(2)]))
        .await
        .expect("reprice")
        .into_inner()
        .map(|item| item.expect("item").price_cents)
        .collect()
        .await;
    assert_eq!(repriced, [200, 400]);

    // The package's second service: connect reuses the running pool (same name, same endpoint).
    let orders = PooledOrdersClient::connect(&server.uri())
        .await
        .expect("connect reuses");
    let receipt = orders
        .place(Order {
            item_ids: vec![1, 2, 3],
        })
        .await
        .expect("place");
    assert_eq!(receipt.get_ref().order_id, 6);
    let states: Vec<String> = orders
        .track(OrderReceipt { order_id: 6 })
        .await
        .expect("track")
        .into_inner()
        .map(|status| status.expect("status").state)
        .collect()
        .await;
    assert_eq!(states, ["placed", "packed", "shipped"]);

    // POOL is the same running pool.
    let running = v1::POOL.get().expect("POOL runs after connect");
    assert_eq!(running.name(), "shop");
    assert!(running.status().channels.len() == 3);

    catalog.pool().shutdown().await;
    assert!(v1::POOL.get().is_none(), "after shutdown the name is free");
    server.shutdown().await;
}
