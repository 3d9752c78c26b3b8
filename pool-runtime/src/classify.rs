//! What a transport error says about the request and the connection.
//!
//! A call's error arrives as a `hyper::Error` whose source chain holds the real cause (an
//! `h2::Error`, an `io::Error`), or as our own `ConnectionReplaced`. [`classify`] walks the
//! chain once.

use std::error::Error as StdError;
use std::fmt;

use crate::transport::ConnectionReplaced;

/// The verdict on one failed call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The server provably never processed the request: safe to send it again.
    pub(crate) never_sent: bool,
    /// The connection can take no more requests: the worker must replace it.
    pub(crate) connection_lost: bool,
    /// The server refused the stream (`REFUSED_STREAM`): the connection is intact but was
    /// full.
    pub(crate) refused: bool,
}

impl Verdict {
    /// A request that never left because its connection was gone.
    pub(crate) fn never_sent_lost() -> Self {
        Self {
            never_sent: true,
            connection_lost: true,
            refused: false,
        }
    }
}

/// Classifies a call error. "Never sent" is decided only on proof:
///
/// - the connection was closed when the call came ([`ConnectionReplaced`]): no request was
///   written;
/// - hyper reports the request *canceled*: it was still queued for the connection when the
///   connection closed or stopped accepting requests ("connection closed", "connection was
///   not ready"), so it never reached HTTP/2;
/// - `h2` reports `REFUSED_STREAM` from the server: the server refused the stream before
///   processing it (RFC 9113 §8.7);
/// - `h2` reports a GOAWAY *from the server*, whatever its error code: h2 gives a remote
///   GOAWAY error only to streams above the GOAWAY's last-stream-id and to streams opened
///   after it, i.e. streams the server did not process (RFC 9113 §6.8). Streams at or below
///   the last-stream-id that then lose the connection get an I/O error ("broken pipe"), not
///   the GOAWAY, so they are not retried.
///
/// Everything else — a reset with another code, an I/O error mid-call, a keepalive timeout —
/// may have reached the server and is returned to the caller unchanged.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> Verdict {
    let mut verdict = Verdict::default();
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<ConnectionReplaced>() {
            verdict.never_sent = true;
            verdict.connection_lost = true;
        } else if let Some(e) = err.downcast_ref::<hyper::Error>() {
            if e.is_canceled() {
                verdict.never_sent = true;
                verdict.connection_lost = true;
            }
            if e.is_closed() || e.is_timeout() || e.is_incomplete_message() {
                verdict.connection_lost = true;
            }
        } else if let Some(e) = err.downcast_ref::<h2::Error>() {
            let reason = e.reason();
            if e.is_reset() && e.is_remote() && reason == Some(h2::Reason::REFUSED_STREAM) {
                verdict.never_sent = true;
                verdict.refused = true;
            }
            if e.is_go_away() {
                verdict.connection_lost = true;
                if e.is_remote() {
                    verdict.never_sent = true;
                }
            }
            if e.is_io() {
                verdict.connection_lost = true;
            }
        } else if err.is::<std::io::Error>() {
            verdict.connection_lost = true;
        }
        source = err.source();
    }
    verdict
}

/// Marks an error whose request was never sent. Private: [`crate::retry::unary`] looks for
/// it in a `Status`'s source chain.
pub(crate) struct NotSent {
    inner: Box<dyn StdError + Send + Sync>,
    /// Refused by a full connection (not a lost one).
    refused: bool,
}

impl NotSent {
    pub(crate) fn new(inner: Box<dyn StdError + Send + Sync>, refused: bool) -> Self {
        Self { inner, refused }
    }
}

/// Why a call was never sent (see [`never_sent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotSentBecause {
    /// The server refused the stream: its connection was full and is still usable.
    Refused,
    /// The connection was lost, closing, or could not be opened.
    Lost,
}

impl fmt::Debug for NotSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NotSent").field(&self.inner).finish()
    }
}

impl fmt::Display for NotSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request not sent")
    }
}

impl StdError for NotSent {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.inner)
    }
}

/// Whether `status` carries the [`NotSent`] mark (the server never saw the request), and
/// why.
pub(crate) fn never_sent(status: &tonic::Status) -> Option<NotSentBecause> {
    let mut source = StdError::source(status);
    while let Some(err) = source {
        if let Some(mark) = err.downcast_ref::<NotSent>() {
            return Some(if mark.refused {
                NotSentBecause::Refused
            } else {
                NotSentBecause::Lost
            });
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h2_status(err: h2::Error) -> Verdict {
        classify(&err)
    }

    #[test]
    fn refused_stream_from_the_server_was_never_sent() {
        // h2 builds remote resets only internally; a reason-only error is not remote.
        let v = h2_status(h2::Error::from(h2::Reason::REFUSED_STREAM));
        assert!(
            !v.never_sent,
            "a local reason must not count as the server's refusal"
        );
    }

    #[test]
    fn calls_on_a_closed_connection_were_never_sent() {
        let v = classify(&ConnectionReplaced);
        assert!(v.never_sent && v.connection_lost);
    }

    #[test]
    fn io_errors_lose_the_connection_but_may_have_been_sent() {
        let v = classify(&std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!v.never_sent && v.connection_lost);
    }

    #[test]
    fn a_status_with_the_mark_is_found() {
        let status =
            tonic::Status::from_error(Box::new(NotSent::new(Box::new(ConnectionReplaced), false)));
        assert_eq!(never_sent(&status), Some(NotSentBecause::Lost));
        assert_eq!(never_sent(&tonic::Status::unavailable("x")), None);
        let refused = tonic::Status::from_error(Box::new(NotSent::new(
            Box::new(std::io::Error::other("refused")),
            true,
        )));
        assert_eq!(never_sent(&refused), Some(NotSentBecause::Refused));
    }
}
