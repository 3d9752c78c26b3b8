//! The schema: the sections of a [`PoolConfig`](super::PoolConfig), shaped like the TOML
//! (`[endpoint]`, `[endpoint.retry]`, `[pool]`, `[connection]`), with serde derived on them.
//!
//! Every field is an `Option` (unset fields take the defaults of a named pool, then of the
//! preset), declared once in a [`section!`] that also writes the section's merge, its
//! emptiness test and its walk over counted and timed values (what validation checks against
//! the table in [`crate::rules`]). Counts and durations go through the adaptors below, which
//! report a malformed value as [`invalid`] so the loader can name the field it came from.
//!
//! A new setting is: its field in a section below, its getter (with the default) on
//! `PoolConfig`, its builder setter, and its row in `rules::FIELDS` (TOML path, environment
//! variable, bounds). TOML, the environment, merging and validation follow from those; an
//! attribute key is one more row in `pool-macros/src/keys.rs`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::Serializer;

use super::{EtcdConfig, Preset, TlsConfig};
use crate::rules::show_duration;

/// A counted or timed value, as validation sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    Count(u64),
    Duration(Duration),
    /// `"off"` for a duration that may be turned off.
    Off,
    /// Anything the table has no bounds for.
    Other,
}

/// Turns a field's value into a [`Value`].
pub(crate) trait AsValue {
    fn value(&self) -> Value;
}

macro_rules! counts {
    ($($t:ty),*) => { $( impl AsValue for $t {
        fn value(&self) -> Value { Value::Count(u64::try_from(*self).unwrap_or(u64::MAX)) }
    } )* };
}
counts!(usize, u16, u32);

impl AsValue for Duration {
    fn value(&self) -> Value {
        Value::Duration(*self)
    }
}

impl AsValue for Option<Duration> {
    fn value(&self) -> Value {
        self.map_or(Value::Off, Value::Duration)
    }
}

macro_rules! others {
    ($($t:ty),*) => { $( impl AsValue for $t { fn value(&self) -> Value { Value::Other } } )* };
}
others!(bool, String, PathBuf, Preset, TlsConfig);

/// What every section can do; `skip_serializing_if = "Section::is_empty"` keeps unset
/// sections out of the TOML.
pub(crate) trait Section {
    fn is_empty(&self) -> bool;
}

/// Declares a section: its fields (each becomes an `Option`, skipped when unset), then, after
/// a `;`, the sections nested in it. `key ("toml-name")` gives a field whose Rust name is not
/// its TOML key (add the matching `#[serde(rename)]`).
macro_rules! section {
    (
        $(#[$meta:meta])*
        $name:ident = $prefix:literal {
            $( $(#[$fmeta:meta])* $field:ident $(($key:literal))? : $ty:ty, )*
            $( ; $( $(#[$smeta:meta])* $sub:ident : $subty:ty, )* )?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub(crate) struct $name {
            $(
                $(#[$fmeta])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub(crate) $field: Option<$ty>,
            )*
            $($(
                $(#[$smeta])*
                #[serde(skip_serializing_if = "Section::is_empty")]
                pub(crate) $sub: $subty,
            )*)?
        }

        impl $name {
            /// Fills every unset field from `defaults`.
            pub(crate) fn or(mut self, defaults: &Self) -> Self {
                $( if self.$field.is_none() { self.$field = defaults.$field.clone(); } )*
                $($( self.$sub = self.$sub.or(&defaults.$sub); )*)?
                self
            }

            /// Calls `f` with the TOML path and value of every field that is set.
            pub(crate) fn visit(&self, f: &mut dyn FnMut(&'static str, Value)) {
                $( if let Some(v) = &self.$field {
                    f(concat!($prefix, section!(@key $field $($key)?)), v.value());
                } )*
                $($( self.$sub.visit(f); )*)?
            }
        }

        impl Section for $name {
            fn is_empty(&self) -> bool {
                $( self.$field.is_none() && )* $($( self.$sub.is_empty() && )*)? true
            }
        }
    };
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
}

section! {
    /// `[endpoint.retry]`: connection attempts and backoff.
    RetrySection = "endpoint.retry." {
        #[serde(with = "count")] max_attempts: u32,
        #[serde(with = "duration")] base_delay: Duration,
        #[serde(with = "duration")] max_delay: Duration,
    }
}

section! {
    /// `[endpoint]`: where to connect and how.
    EndpointSection = "endpoint." {
        #[serde(rename = "type")] preset ("type"): Preset,
        host: String,
        #[serde(with = "count")] port: u16,
        uri: String,
        tls: TlsConfig,
        ;
        retry: RetrySection,
    }
}

section! {
    /// `[pool]`: slots, checkout and shutdown.
    PoolSection = "pool." {
        name: String,
        #[serde(with = "count")] size: usize,
        #[serde(with = "count")] min_size: usize,
        #[serde(with = "count")] max_size: usize,
        #[serde(with = "duration")] resize_interval: Duration,
        #[serde(with = "count")] resize_step: usize,
        #[serde(with = "duration")] checkout_timeout: Duration,
        #[serde(with = "count")] max_in_flight_per_channel: usize,
        #[serde(with = "duration")] drain_timeout: Duration,
        wait_for_ready: bool,
    }
}

section! {
    /// `[connection.http2]`: the client's HTTP/2 settings (hyper's defaults when unset).
    Http2Section = "connection.http2." {
        #[serde(with = "count")] initial_stream_window_size: u32,
        #[serde(with = "count")] initial_connection_window_size: u32,
        adaptive_window: bool,
        #[serde(with = "count")] max_frame_size: u32,
        #[serde(with = "count")] max_header_list_size: u32,
    }
}

section! {
    /// `[connection]`: timeouts, keepalive, health checks, refresh and re-resolution.
    ConnectionSection = "connection." {
        #[serde(with = "duration")] connect_timeout: Duration,
        #[serde(with = "duration")] request_timeout: Duration,
        #[serde(with = "duration")] keepalive: Duration,
        #[serde(with = "duration")] keepalive_timeout: Duration,
        keepalive_while_idle: bool,
        #[serde(with = "duration_or_off")] ping_interval: Option<Duration>,
        #[serde(with = "duration")] reconnect_probe_interval: Duration,
        health_check: bool,
        health_service: String,
        #[serde(with = "duration_or_off")] max_connection_age: Option<Duration>,
        #[serde(with = "duration_or_off")] resolve_interval: Option<Duration>,
        service_config: PathBuf,
        ;
        http2: Http2Section,
    }
}

section! {
    /// `[discovery]`: naming services that `endpoints` may point into.
    DiscoverySection = "discovery." {
        ;
        etcd: EtcdConfig,
    }
}

/// The error an adaptor reports for a malformed value: `{reason} (got {value})`, the words
/// of [`ConfigError::Invalid`](crate::ConfigError::Invalid). The loader recognises it by
/// [`split_invalid`] and names the field from the error's path.
pub(crate) fn invalid<E: de::Error>(value: impl fmt::Display, reason: impl fmt::Display) -> E {
    E::custom(format_args!("{reason}{GOT}{value})"))
}

const GOT: &str = " (got ";

/// `(value, reason)` of an [`invalid`] message.
pub(crate) fn split_invalid(message: &str) -> Option<(&str, &str)> {
    let (reason, value) = message.split_once(GOT)?;
    Some((value.strip_suffix(')')?, reason))
}

/// Parses a humantime duration ("250ms", "5s", "1m 30s").
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("must be a duration like \"250ms\" or \"5s\" ({e})"))
}

/// Whether `text` turns a feature off.
pub(crate) fn is_off(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "off" | "none" | "disabled"
    )
}

/// Integers of any width, read as TOML integers; one that does not fit is [`invalid`].
pub(crate) mod count {
    use super::*;

    pub(crate) fn serialize<T, S>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error>
    where
        T: Copy + TryInto<i64>,
        S: Serializer,
    {
        match value.map(TryInto::try_into) {
            Some(Ok(n)) => s.serialize_i64(n),
            Some(Err(_)) => Err(serde::ser::Error::custom("integer too large for TOML")),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: TryFrom<i64>,
        D: Deserializer<'de>,
    {
        let n = i64::deserialize(d)?;
        T::try_from(n)
            .map(Some)
            .map_err(|_| invalid(n, "is out of range"))
    }
}

/// Durations as humantime strings (`"250ms"`, `"5s"`).
pub(crate) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&show_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Some)
            .map_err(|reason| invalid(format_args!("{text:?}"), reason))
    }
}

/// Durations that may be `"off"` (`Some(None)`).
pub(crate) mod duration_or_off {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Option<Duration>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(Some(d)) => s.serialize_str(&show_duration(*d)),
            Some(None) => s.serialize_str("off"),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<Duration>>, D::Error> {
        let text = String::deserialize(d)?;
        if is_off(&text) {
            return Ok(Some(None));
        }
        parse_duration(&text)
            .map(|d| Some(Some(d)))
            .map_err(|reason| invalid(format_args!("{text:?}"), reason))
    }
}

impl serde::Serialize for Preset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Preset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| invalid(format_args!("{text:?}"), super::PRESETS))
    }
}
