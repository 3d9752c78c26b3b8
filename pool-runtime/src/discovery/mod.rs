//! Servers found through etcd (feature `etcd`): `etcd:///<prefix>` endpoints and
//! [`register`].
//!
//! The format is grpc-go's etcd naming (`go.etcd.io/etcd/client/v3/naming`), so Go and Rust
//! services register and find each other in the same etcd: each server is one key
//! `<prefix>/<anything>` (the Go manager and [`register`] use `<prefix>/<host:port>`), whose
//! value is the JSON
//!
//! ```json
//! {"Op":0,"Addr":"10.0.0.7:50051","Metadata":null}
//! ```
//!
//! (`Op` 0 adds, 1 removes; a bare `{"Addr":"10.0.0.7:50051"}` is accepted too). A value that
//! does not parse is skipped with a warning naming its key. Keys are usually attached to a
//! lease, so a server that dies vanishes when its lease expires.
//!
//! A pool reads the keys at start, then watches the prefix from the next revision and moves
//! its slots when the set changes (opening each new connection before draining the old one).
//! A watch that breaks is resumed from the last revision seen (or re-read when etcd compacted
//! it away); meanwhile the pool serves the addresses it knows, and
//! [`PoolStatus::discovery`](crate::PoolStatus::discovery) says etcd is unreachable. An empty
//! set never closes the pool's connections: the pool keeps them and warns.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use grpc_pool::config::EtcdConfig;
//! use grpc_pool::discovery::{register, Etcd};
//! use grpc_pool::{Pool, PoolConfig};
//!
//! let etcd_config = EtcdConfig::new(["http://127.0.0.1:2379"]);
//!
//! // A server registers itself (the key lives while the handle and the process do).
//! let etcd = Etcd::connect(&etcd_config).await?;
//! let registration = register(&etcd, "svc/echo", "127.0.0.1:50051", Duration::from_secs(10)).await?;
//!
//! // A client follows every server registered under the prefix.
//! let config = PoolConfig::builder()
//!     .endpoint("etcd:///svc/echo")
//!     .etcd(etcd_config)
//!     .build()?;
//! let pool = Pool::start(config).await?;
//! # drop((pool, registration)); Ok(()) }
//! ```

mod client;
mod follow;
mod register;
mod wire;

use std::net::SocketAddr;

pub use client::Etcd;
pub(crate) use follow::start;
pub use register::{register, Registration};

use crate::{ConfigError, PoolError};

/// A failure of [`Etcd::connect`] or [`register`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The etcd configuration is invalid (the error names the field and value).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No etcd endpoint could be reached.
    #[error("could not connect to etcd at {endpoints}")]
    Connect {
        /// etcd's endpoints.
        endpoints: String,
        /// Why.
        #[source]
        source: PoolError,
    },
    /// etcd answered a call with an error.
    #[error("etcd {op} failed: {}", status.message())]
    Rpc {
        /// The call (`Lease/LeaseGrant`).
        op: &'static str,
        /// etcd's answer.
        status: tonic::Status,
    },
}

/// What one key says: a server's address, or its removal (`Op` 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Add(String),
    Remove,
}

/// The value [`register`] writes, as grpc-go's endpoints manager writes it (field order
/// included: Go marshals struct fields in declaration order).
#[derive(serde::Serialize)]
struct Update<'a> {
    #[serde(rename = "Op")]
    op: u8,
    #[serde(rename = "Addr")]
    addr: &'a str,
    #[serde(rename = "Metadata")]
    metadata: Option<()>,
}

pub(crate) fn encode(addr: &str) -> Vec<u8> {
    serde_json::to_vec(&Update {
        op: 0,
        addr,
        metadata: None,
    })
    .unwrap_or_default()
}

/// Parses a key's value; the error says what is wrong with it.
pub(crate) fn decode(value: &[u8]) -> Result<Entry, String> {
    #[derive(serde::Deserialize)]
    struct Value {
        #[serde(rename = "Op", default)]
        op: u8,
        #[serde(rename = "Addr")]
        addr: Option<String>,
    }
    let value: Value =
        serde_json::from_slice(value).map_err(|e| format!("is not an endpoint's JSON ({e})"))?;
    match (value.op, value.addr) {
        (1, _) => Ok(Entry::Remove),
        (0, Some(addr)) if !addr.trim().is_empty() => Ok(Entry::Add(addr.trim().to_owned())),
        (0, _) => Err("has no \"Addr\"".to_owned()),
        (op, _) => Err(format!("has an unknown \"Op\" {op} (0 adds, 1 removes)")),
    }
}

/// The socket address of `addr` (`ip:port`, or `host:port` looked up now: first address).
pub(crate) async fn socket_addr(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !addr.contains(':') {
        return Err(format!("\"Addr\" {addr:?} has no port"));
    }
    match tokio::net::lookup_host(addr).await {
        Ok(mut found) => found
            .next()
            .ok_or_else(|| format!("\"Addr\" {addr:?} resolved to no address")),
        Err(e) => Err(format!("\"Addr\" {addr:?} did not resolve: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_byte_for_byte_the_go_managers() {
        assert_eq!(
            String::from_utf8(encode("127.0.0.1:50051")).unwrap(),
            r#"{"Op":0,"Addr":"127.0.0.1:50051","Metadata":null}"#
        );
    }

    #[test]
    fn values_in_every_form_go_writes_and_bad_ones() {
        let add = |a: &str| Ok(Entry::Add(a.to_owned()));
        assert_eq!(
            decode(br#"{"Op":0,"Addr":"10.0.0.7:1","Metadata":{"weight":3}}"#),
            add("10.0.0.7:1")
        );
        assert_eq!(decode(br#"{"Addr":"h:2"}"#), add("h:2"));
        assert_eq!(decode(br#"{"Op":1,"Addr":"h:2"}"#), Ok(Entry::Remove));
        assert!(decode(b"10.0.0.7:1").unwrap_err().contains("JSON"));
        assert!(decode(br#"{"Op":0}"#).unwrap_err().contains("Addr"));
        assert!(decode(br#"{"Op":7,"Addr":"h:2"}"#)
            .unwrap_err()
            .contains("Op"));
    }
}
