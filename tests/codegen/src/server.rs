//! In-process implementations of the crate's services, served on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::shop::v1::admin::admin_server::{Admin, AdminServer};
use crate::shop::v1::admin::{StatsReply, TypeReply, TypeRequest};
use crate::shop::v1::catalog_server::{Catalog, CatalogServer};
use crate::shop::v1::orders_server::{Orders, OrdersServer};
use crate::shop::v1::{
    AddItemsReply, GetItemRequest, Item, ListItemsRequest, Order, OrderReceipt, OrderStatus,
};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The item every lookup returns, with `id` filled in (`price_cents` = 100 × id).
pub fn item(id: u64) -> Item {
    Item {
        id,
        name: format!("item-{id}"),
        price_cents: 100 * id,
        added_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    }
}

/// Implements all three services; counts calls (read back by `Admin/Stats`).
#[derive(Debug, Default, Clone)]
pub struct Shop {
    calls: Arc<AtomicU64>,
}

impl Shop {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl Catalog for Shop {
    async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
        self.count();
        let id = request.into_inner().id;
        if id == 0 {
            return Err(Status::not_found("item 0 does not exist"));
        }
        Ok(Response::new(item(id)))
    }

    type ListItemsStream = BoxStream<Item>;

    async fn list_items(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<Self::ListItemsStream>, Status> {
        self.count();
        let ListItemsRequest { prefix, count } = request.into_inner();
        let items = (1..=u64::from(count)).map(move |id| {
            Ok(Item {
                name: format!("{prefix}{id}"),
                ..item(id)
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn add_items(
        &self,
        request: Request<Streaming<Item>>,
    ) -> Result<Response<AddItemsReply>, Status> {
        self.count();
        let mut stream = request.into_inner();
        let mut added = 0;
        while let Some(item) = stream.next().await {
            item?;
            added += 1;
        }
        Ok(Response::new(AddItemsReply { added }))
    }

    type RepriceStream = BoxStream<Item>;

    async fn reprice(
        &self,
        request: Request<Streaming<Item>>,
    ) -> Result<Response<Self::RepriceStream>, Status> {
        self.count();
        let stream = request.into_inner().map(|item| {
            item.map(|item| Item {
                price_cents: item.price_cents * 2,
                ..item
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ping(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        self.count();
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl Orders for Shop {
    async fn place(&self, request: Request<Order>) -> Result<Response<OrderReceipt>, Status> {
        self.count();
        let order = request.into_inner();
        Ok(Response::new(OrderReceipt {
            order_id: order.item_ids.iter().sum(),
        }))
    }

    type TrackStream = BoxStream<OrderStatus>;

    async fn track(
        &self,
        request: Request<OrderReceipt>,
    ) -> Result<Response<Self::TrackStream>, Status> {
        self.count();
        let order_id = request.into_inner().order_id;
        let states = ["placed", "packed", "shipped"].map(|state| {
            Ok(OrderStatus {
                order_id,
                state: state.to_owned(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(states))))
    }
}

#[tonic::async_trait]
impl Admin for Shop {
    async fn inspect(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
        self.count();
        Ok(Response::new(item(request.into_inner().id)))
    }

    async fn r#type(&self, request: Request<TypeRequest>) -> Result<Response<TypeReply>, Status> {
        self.count();
        let text = request.into_inner().text;
        let kind = if text.parse::<f64>().is_ok() {
            "number"
        } else {
            "text"
        };
        Ok(Response::new(TypeReply {
            kind: kind.to_owned(),
        }))
    }

    async fn stats(&self, _request: Request<()>) -> Result<Response<StatsReply>, Status> {
        self.count();
        Ok(Response::new(StatsReply {
            calls: self.calls.load(Ordering::Relaxed),
        }))
    }
}

/// A running server; [`TestServer::shutdown`] stops it.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    /// Serves Catalog, Orders and Admin on a fresh `127.0.0.1` port.
    ///
    /// # Panics
    ///
    /// If no local port can be bound (tests only).
    pub async fn start() -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let shop = Shop::default();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(CatalogServer::new(shop.clone()))
                .add_service(OrdersServer::new(shop.clone()))
                .add_service(AdminServer::new(shop))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops accepting, lets in-flight calls finish, and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
