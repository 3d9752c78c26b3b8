//! [`ClientOptions`]: what a generated `PooledXClient` was configured with, applied to the
//! tonic client of each call and read by the runtime's call paths (`wait_for_ready`).

use tonic::codec::CompressionEncoding;

use crate::pool::Pool;

/// The tonic client options of a generated `PooledXClient` (`with_send_compressed`, ...),
/// stored once and applied to the tonic client built for each call.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    send_compressed: Option<CompressionEncoding>,
    accept_compressed: Vec<CompressionEncoding>,
    max_decoding_message_size: Option<usize>,
    max_encoding_message_size: Option<usize>,
    wait_for_ready: Option<bool>,
}

impl ClientOptions {
    /// No options: tonic's defaults, and the pool's `wait_for_ready`.
    pub const fn new() -> Self {
        Self {
            send_compressed: None,
            accept_compressed: Vec::new(),
            max_decoding_message_size: None,
            max_encoding_message_size: None,
            wait_for_ready: None,
        }
    }

    /// Calls wait for a READY channel while every channel backs off (`true`), or fail at
    /// once (`false`), whatever the pool's `wait_for_ready` says.
    pub fn wait_for_ready(&mut self, on: bool) {
        self.wait_for_ready = Some(on);
    }

    /// This client's `wait_for_ready`, else the method's `waitForReady` from the service
    /// config, else the pool's.
    pub(crate) fn waits_for_ready(
        &self,
        pool: &Pool,
        method: Option<&crate::service_config::MethodConfig>,
    ) -> bool {
        self.wait_for_ready
            .or(method.and_then(|m| m.wait_for_ready))
            .unwrap_or(pool.shared().settings.wait_for_ready)
    }

    /// Compress requests with `encoding`.
    pub fn send_compressed(&mut self, encoding: CompressionEncoding) {
        self.send_compressed = Some(encoding);
    }

    /// Accept responses compressed with `encoding` (may be called for several).
    pub fn accept_compressed(&mut self, encoding: CompressionEncoding) {
        if !self.accept_compressed.contains(&encoding) {
            self.accept_compressed.push(encoding);
        }
    }

    /// Limit decoded (response) messages to `limit` bytes.
    pub fn max_decoding_message_size(&mut self, limit: usize) {
        self.max_decoding_message_size = Some(limit);
    }

    /// Limit encoded (request) messages to `limit` bytes.
    pub fn max_encoding_message_size(&mut self, limit: usize) {
        self.max_encoding_message_size = Some(limit);
    }

    /// Applies the options to a fresh tonic client through its own builder methods (passed in
    /// by the generated code, since tonic's clients share no trait).
    pub fn apply<C>(
        &self,
        mut client: C,
        send_compressed: impl FnOnce(C, CompressionEncoding) -> C,
        accept_compressed: impl Fn(C, CompressionEncoding) -> C,
        max_decoding_message_size: impl FnOnce(C, usize) -> C,
        max_encoding_message_size: impl FnOnce(C, usize) -> C,
    ) -> C {
        if let Some(encoding) = self.send_compressed {
            client = send_compressed(client, encoding);
        }
        for encoding in &self.accept_compressed {
            client = accept_compressed(client, *encoding);
        }
        if let Some(limit) = self.max_decoding_message_size {
            client = max_decoding_message_size(client, limit);
        }
        if let Some(limit) = self.max_encoding_message_size {
            client = max_encoding_message_size(client, limit);
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::ClientOptions;

    #[derive(Debug, Default, PartialEq)]
    struct Recorded {
        decoding: Option<usize>,
        encoding: Option<usize>,
    }

    #[test]
    fn apply_passes_only_the_options_that_were_set() {
        let mut options = ClientOptions::new();
        let untouched = options.apply(
            Recorded::default(),
            |c, _| c,
            |c, _| c,
            |_, _| unreachable!("not set"),
            |_, _| unreachable!("not set"),
        );
        assert_eq!(untouched, Recorded::default());

        options.max_decoding_message_size(1024);
        options.max_encoding_message_size(2048);
        let client = options.apply(
            Recorded::default(),
            |c, _| c,
            |c, _| c,
            |c, n| Recorded {
                decoding: Some(n),
                ..c
            },
            |c, n| Recorded {
                encoding: Some(n),
                ..c
            },
        );
        assert_eq!(
            client,
            Recorded {
                decoding: Some(1024),
                encoding: Some(2048)
            }
        );
    }
}
