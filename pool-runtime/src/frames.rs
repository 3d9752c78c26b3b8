//! What a plaintext connection's server says, read from its HTTP/2 frames as they pass
//! ([`FrameScanner`]), and what the pool does with it ([`Wire`]): the connection's stream
//! limit from `SETTINGS_MAX_CONCURRENT_STREAMS`, and GOAWAY (replace the connection; on
//! `too_many_pings`, slow the pool's keepalive down).

use std::sync::Arc;
use std::time::Duration;

use crate::conn::{Lost, StreamLimit};
use crate::metrics::PoolMetrics;
use crate::signals::Signals;

/// Where the frame scanner reports what the server said: the connection's stream limit, and
/// the pool's keepalive state for `too_many_pings`.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) streams: Arc<StreamLimit>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) metrics: Arc<PoolMetrics>,
    /// The keepalive interval this connection pings at.
    pub(crate) keepalive: Duration,
    /// The pool's settings (its name, for logs).
    pub(crate) settings: Arc<crate::settings::Settings>,
}

impl Wire {
    /// Acts on a frame the server sent.
    pub(crate) fn heard(&self, heard: Heard, lost: &Lost) {
        match heard {
            Heard::MaxStreams(n) => self.streams.advertise(n),
            Heard::GoAwayHeader => {
                tracing::debug!("server sent GOAWAY; replacing the connection");
                lost.cancel();
            }
            Heard::GoAway { code, debug } => {
                if code == ENHANCE_YOUR_CALM && debug == b"too_many_pings" {
                    self.too_many_pings();
                } else if code != 0 {
                    let data = String::from_utf8_lossy(&debug);
                    tracing::debug!(code, debug_data = %data, "GOAWAY with an error code");
                }
            }
        }
    }

    fn too_many_pings(&self) {
        self.metrics.too_many_pings();
        let (interval, first) = self.signals.keepalive.too_many_pings_on(self.keepalive);
        let interval = humantime::format_duration(interval);
        if first {
            tracing::warn!(
                pool = %self.settings.name,
                keepalive = %humantime::format_duration(self.keepalive),
                "the server closed a connection for pinging too often (GOAWAY too_many_pings); \
                 new connections ping every {interval}. Set connection.keepalive to at least the \
                 server's minimum ping interval (gRPC servers allow 5 min by default) or leave \
                 connection.keepalive_while_idle off"
            );
        } else {
            tracing::debug!(pool = %self.settings.name, "GOAWAY too_many_pings; new connections ping every {interval}");
        }
    }
}

/// HTTP/2's `ENHANCE_YOUR_CALM` error code.
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// What the scanner heard from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    MaxStreams(u32),
    /// A GOAWAY frame's header: the connection takes no new calls.
    GoAwayHeader,
    /// The rest of that GOAWAY: its error code and (the start of) its debug data.
    GoAway { code: u32, debug: Vec<u8> },
}

/// Follows the HTTP/2 frames a server sends: 9-byte headers, and the payloads of SETTINGS
/// and GOAWAY frames (a few bytes each); every other payload is skipped, so it costs a few
/// comparisons per frame, nothing per payload byte.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to come.
    skip: usize,
    /// The frame type whose payload is being kept (SETTINGS or GOAWAY).
    keeping: Option<u8>,
    /// The kept payload (at most `KEEP` bytes of it).
    kept: Vec<u8>,
}

impl FrameScanner {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const ACK: u8 = 0x1;
    const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// Kept of a payload: a SETTINGS frame's first 21 entries, or a GOAWAY's ids, code and
    /// debug data up to 118 bytes (`too_many_pings` needs 14).
    const KEEP: usize = 126;

    /// Feeds the next bytes from the server, telling `heard` what they say.
    pub(crate) fn feed(&mut self, mut data: &[u8], mut heard: impl FnMut(Heard)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                if self.keeping.is_some() {
                    let room = Self::KEEP.saturating_sub(self.kept.len()).min(n);
                    self.kept.extend_from_slice(&data[..room]);
                }
                self.skip -= n;
                data = &data[n..];
                if self.skip == 0 {
                    self.payload_done(&mut heard);
                }
                continue;
            }
            let n = (9 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 9 {
                self.have = 0;
                let h = self.header;
                self.skip = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                let (kind, flags) = (h[3], h[4]);
                if kind == Self::GOAWAY {
                    heard(Heard::GoAwayHeader);
                }
                let keep =
                    kind == Self::GOAWAY || (kind == Self::SETTINGS && flags & Self::ACK == 0);
                self.keeping = keep.then_some(kind);
                self.kept.clear();
                if self.skip == 0 {
                    self.payload_done(&mut heard);
                }
            }
        }
    }

    fn payload_done(&mut self, heard: &mut impl FnMut(Heard)) {
        match self.keeping.take() {
            Some(Self::SETTINGS) => {
                for entry in self.kept.chunks_exact(6) {
                    let id = u16::from_be_bytes([entry[0], entry[1]]);
                    if id == Self::MAX_CONCURRENT_STREAMS {
                        let n = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                        heard(Heard::MaxStreams(n));
                    }
                }
            }
            Some(Self::GOAWAY) if self.kept.len() >= 8 => {
                let k = &self.kept;
                heard(Heard::GoAway {
                    code: u32::from_be_bytes([k[4], k[5], k[6], k[7]]),
                    debug: k[8..].to_vec(),
                });
            }
            _ => {}
        }
        // Freed rather than kept: SETTINGS and GOAWAY come once or twice in a connection's
        // life, and an idle connection should not hold a buffer for them.
        self.kept = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::{FrameScanner, Heard};

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
        out.extend_from_slice(payload);
        out
    }

    fn heard_in_chunks(stream: &[u8], chunk: usize) -> Vec<Heard> {
        let mut scanner = FrameScanner::default();
        let mut heard = Vec::new();
        for c in stream.chunks(chunk) {
            scanner.feed(c, |h| heard.push(h));
        }
        heard
    }

    #[test]
    fn reads_settings_and_goaway_in_any_split() {
        // SETTINGS: HEADER_TABLE_SIZE 4096, MAX_CONCURRENT_STREAMS 4, then its ACK.
        let settings = frame(0x4, 0, &[0, 1, 0, 0, 16, 0, 0, 3, 0, 0, 0, 4]);
        let ack = frame(0x4, 0x1, &[]);
        let data = frame(0x0, 0, &[7; 300]);
        let mut goaway = vec![0, 0, 0, 1, 0, 0, 0, 0xb];
        goaway.extend_from_slice(b"too_many_pings");
        let goaway = frame(0x7, 0, &goaway);
        let stream: Vec<u8> = [settings, ack, data.clone(), goaway, data].concat();
        for chunk in [1, 2, 5, 9, 10, 64, stream.len()] {
            assert_eq!(
                heard_in_chunks(&stream, chunk),
                [
                    Heard::MaxStreams(4),
                    Heard::GoAwayHeader,
                    Heard::GoAway {
                        code: 0xb,
                        debug: b"too_many_pings".to_vec()
                    },
                ],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn type_bytes_inside_payloads_are_not_frames() {
        let data = frame(0x0, 0, &[0x7; 100]);
        let ping = frame(0x6, 0, &[0x4; 8]);
        assert!(heard_in_chunks(&[data, ping].concat(), 7).is_empty());
    }

    #[test]
    fn long_payloads_are_kept_only_in_part() {
        let mut goaway = vec![0, 0, 0, 9, 0, 0, 0, 0];
        goaway.extend_from_slice(&[b'x'; 5000]);
        let stream = [frame(0x7, 0, &goaway), frame(0x4, 0, &[0, 3, 0, 0, 0, 100])].concat();
        let heard = heard_in_chunks(&stream, 1000);
        assert_eq!(heard.len(), 3, "{heard:?}");
        assert!(matches!(&heard[1], Heard::GoAway { code: 0, debug } if debug.len() == 118));
        assert_eq!(heard[2], Heard::MaxStreams(100));
    }
}
