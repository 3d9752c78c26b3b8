//! Call policies known at build time: the default retry policy of idempotent methods
//! ([`RetryPolicy`], given to [`Builder::retry_idempotent`](crate::Builder::retry_idempotent)),
//! and what the generated docs of each method say of the policy in effect for it.

use std::io;
use std::time::Duration;

use prost_types::method_options::IdempotencyLevel;
use serde_json::Value;

use crate::error::build_error;
use crate::status_codes::{CODE_NAMES, MAX_ATTEMPTS};

/// A gRPC retry policy (gRFC A6), the `retryPolicy` of a service config, written in code for
/// [`Builder::retry_idempotent`](crate::Builder::retry_idempotent).
///
/// ```
/// use std::time::Duration;
/// use grpc_pool_build::RetryPolicy;
///
/// let policy = RetryPolicy::new(3)
///     .initial_backoff(Duration::from_millis(50))
///     .max_backoff(Duration::from_secs(1))
///     .retryable_status_codes(&["UNAVAILABLE", "RESOURCE_EXHAUSTED"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    backoff_multiplier: f64,
    retryable_status_codes: Vec<String>,
}

impl RetryPolicy {
    /// `max_attempts` in all, the first included (2 to 5), retrying `UNAVAILABLE` after
    /// 100 ms, doubling up to 1 s (randomized, as A6 specifies).
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            retryable_status_codes: vec!["UNAVAILABLE".to_owned()],
        }
    }

    /// The longest pause before the first retry (default 100 ms).
    #[must_use]
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest pause before any retry (default 1 s).
    #[must_use]
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// How much the longest pause grows per retry (default 2).
    #[must_use]
    pub fn backoff_multiplier(mut self, multiplier: f64) -> Self {
        self.backoff_multiplier = multiplier;
        self
    }

    /// The status codes retried, by name (`"UNAVAILABLE"`; default: that one).
    #[must_use]
    pub fn retryable_status_codes(mut self, codes: &[&str]) -> Self {
        self.retryable_status_codes = codes.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Checks the values; the error names the option, the field and the value.
    pub(crate) fn check(&self) -> io::Result<()> {
        let invalid = |field: &str, value: String, reason: &str| {
            Err(build_error(
                io::ErrorKind::InvalidInput,
                format!("retry_idempotent: {field} {reason} (got {value})"),
            ))
        };
        if !(2..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return invalid(
                "max_attempts",
                self.max_attempts.to_string(),
                "must be from 2 (the first attempt counts) to 5",
            );
        }
        for (field, value) in [
            ("initial_backoff", self.initial_backoff),
            ("max_backoff", self.max_backoff),
        ] {
            if value.is_zero() {
                return invalid(field, format!("{value:?}"), "must be more than zero");
            }
        }
        if !(self.backoff_multiplier > 0.0 && self.backoff_multiplier.is_finite()) {
            return invalid(
                "backoff_multiplier",
                self.backoff_multiplier.to_string(),
                "must be more than 0",
            );
        }
        if self.retryable_status_codes.is_empty() {
            return invalid(
                "retryable_status_codes",
                "[]".to_owned(),
                "must list at least one status code",
            );
        }
        for code in &self.retryable_status_codes {
            if !CODE_NAMES.contains(&code.as_str()) {
                return invalid(
                    "retryable_status_codes",
                    format!("{code:?}"),
                    &format!("must be status code names ({})", CODE_NAMES.join(", ")),
                );
            }
        }
        Ok(())
    }

    /// The policy as a service config's `retryPolicy` object, which the runtime parses.
    pub(crate) fn to_json(&self) -> String {
        serde_json::json!({
            "maxAttempts": self.max_attempts,
            "initialBackoff": seconds(self.initial_backoff),
            "maxBackoff": seconds(self.max_backoff),
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": self.retryable_status_codes,
        })
        .to_string()
    }

    /// The policy in a phrase, for docs.
    fn describe(&self) -> String {
        let growth = if (self.backoff_multiplier - 2.0).abs() < f64::EPSILON {
            "doubling".to_owned()
        } else {
            format!("times {} per retry", self.backoff_multiplier)
        };
        format!(
            "up to {} attempts on {}, backoff {} {growth} up to {}",
            self.max_attempts,
            self.retryable_status_codes.join(", "),
            seconds(self.initial_backoff),
            seconds(self.max_backoff),
        )
    }
}

/// A duration in the service config's form: seconds with up to 9 decimals, `"0.1s"`.
fn seconds(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{}s", d.as_secs());
    }
    let fraction = format!("{nanos:09}");
    format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
}

/// The docs of a method no policy is known for at build time.
pub(crate) const NO_POLICY: &str =
    " Retry policy: none compiled in; the pool's service config may \
     give one (without it, only a request the server provably never saw is sent again).";

/// What the generator knows of call policies.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    /// The default retry policy of idempotent methods, if any.
    pub(crate) idempotent: Option<RetryPolicy>,
    /// The service config checked at build: its file name (as given) and its JSON.
    pub(crate) service_config: Option<(String, Value)>,
}

/// The policy one method gets.
pub(crate) struct MethodPolicy {
    /// The default retry policy's JSON, for methods the .proto marks idempotent.
    pub(crate) default_json: Option<String>,
    /// Doc lines stating the policy in effect.
    pub(crate) docs: Vec<String>,
}

impl Policies {
    /// The policy of `method` of service `service` (`package.Service`), whose .proto says
    /// `level`.
    pub(crate) fn of(&self, service: &str, method: &str, level: IdempotencyLevel) -> MethodPolicy {
        let idempotent = match level {
            IdempotencyLevel::Idempotent => Some("IDEMPOTENT"),
            IdempotencyLevel::NoSideEffects => Some("NO_SIDE_EFFECTS"),
            IdempotencyLevel::IdempotencyUnknown => None,
        };
        let default = self.idempotent.as_ref().filter(|_| idempotent.is_some());
        let entry = self
            .service_config
            .as_ref()
            .and_then(|(file, root)| Some((file, entry_for(root, service, method)?)));
        let mut docs = Vec::new();
        if let Some((file, entry)) = entry {
            docs.push(format!(
                " Call policy from `{file}` (the service config checked at build; the pool's own \
                 service config decides at run time): {}.",
                describe_entry(entry)
            ));
        }
        let overridden = entry.is_some_and(|(_, e)| {
            e.get("retryPolicy").is_some() || e.get("hedgingPolicy").is_some()
        });
        match (default, idempotent) {
            (Some(policy), Some(level)) => docs.push(format!(
                " Marked `idempotency_level = {level}` in its .proto, so retried by default: {}; \
                 a retry or hedging policy of the pool's service config for this method replaces \
                 it{}.",
                policy.describe(),
                if overridden {
                    " (the file above gives one)"
                } else {
                    ""
                }
            )),
            (None, Some(level)) => docs.push(format!(
                " Marked `idempotency_level = {level}` in its .proto (no default retry policy was \
                 configured for such methods)."
            )),
            (_, None) if entry.is_none() => docs.push(NO_POLICY.to_owned()),
            _ => {}
        }
        MethodPolicy {
            default_json: default.map(RetryPolicy::to_json),
            docs,
        }
    }
}

/// The `methodConfig` entry that applies to `service`/`method` (naming the method, else its
/// service, else the default), as the runtime picks it.
fn entry_for<'v>(root: &'v Value, service: &str, method: &str) -> Option<&'v Value> {
    let entries = root.get("methodConfig")?.as_array()?;
    let names = |entry: &'v Value| {
        entry
            .get("name")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n.get("service").and_then(Value::as_str).unwrap_or(""),
                    n.get("method").and_then(Value::as_str).unwrap_or(""),
                )
            })
    };
    let find = |want: (&str, &str)| entries.iter().find(|e| names(e).any(|n| n == want));
    find((service, method))
        .or_else(|| find((service, "")))
        .or_else(|| find(("", "")))
}

/// An entry's policies in a phrase: `timeout 0.2s, retryPolicy up to 4 attempts on UNAVAILABLE`.
fn describe_entry(entry: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(t) = entry.get("timeout").and_then(Value::as_str) {
        parts.push(format!("timeout {t}"));
    }
    if let Some(w) = entry.get("waitForReady").and_then(Value::as_bool) {
        parts.push(format!("waitForReady {w}"));
    }
    let codes = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if let Some(r) = entry.get("retryPolicy") {
        parts.push(format!(
            "retryPolicy up to {} attempts on {}",
            r.get("maxAttempts").unwrap_or(&Value::Null),
            codes(r, "retryableStatusCodes")
        ));
    }
    if let Some(h) = entry.get("hedgingPolicy") {
        parts.push(format!(
            "hedgingPolicy up to {} attempts, one every {}",
            h.get("maxAttempts").unwrap_or(&Value::Null),
            h.get("hedgingDelay")
                .and_then(Value::as_str)
                .unwrap_or("0s")
        ));
    }
    if parts.is_empty() {
        "no policy".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_is_a_service_config_retry_policy() {
        let policy = RetryPolicy::new(3)
            .initial_backoff(Duration::from_millis(50))
            .retryable_status_codes(&["UNAVAILABLE", "ABORTED"]);
        policy.check().unwrap();
        assert_eq!(
            policy.to_json(),
            r#"{"backoffMultiplier":2.0,"initialBackoff":"0.05s","maxAttempts":3,"maxBackoff":"1s","retryableStatusCodes":["UNAVAILABLE","ABORTED"]}"#
        );
        assert_eq!(
            policy.describe(),
            "up to 3 attempts on UNAVAILABLE, ABORTED, backoff 0.05s doubling up to 1s"
        );
    }

    #[test]
    fn bad_values_name_the_field_and_value() {
        let err = |p: RetryPolicy| p.check().unwrap_err().to_string();
        assert_eq!(
            err(RetryPolicy::new(1)),
            "retry_idempotent: max_attempts must be from 2 (the first attempt counts) to 5 (got 1)"
        );
        assert!(
            err(RetryPolicy::new(3).retryable_status_codes(&["UNAVAILBLE"]))
                .starts_with("retry_idempotent: retryable_status_codes must be status code names")
        );
        assert!(err(RetryPolicy::new(3).initial_backoff(Duration::ZERO))
            .contains("initial_backoff must be more than zero"));
        assert!(err(RetryPolicy::new(3).backoff_multiplier(0.0))
            .contains("backoff_multiplier must be more than 0 (got 0)"));
    }

    #[test]
    fn the_entry_naming_the_method_wins_over_its_service_and_the_default() {
        let root: Value = serde_json::from_str(
            r#"{"methodConfig": [
                {"name": [{}], "timeout": "1s"},
                {"name": [{"service": "a.S"}], "waitForReady": true},
                {"name": [{"service": "a.S", "method": "M"}],
                 "retryPolicy": {"maxAttempts": 4, "retryableStatusCodes": ["UNAVAILABLE"]}}
            ]}"#,
        )
        .unwrap();
        let describe = |s, m| describe_entry(entry_for(&root, s, m).unwrap());
        assert_eq!(
            describe("a.S", "M"),
            "retryPolicy up to 4 attempts on UNAVAILABLE"
        );
        assert_eq!(describe("a.S", "N"), "waitForReady true");
        assert_eq!(describe("b.T", "M"), "timeout 1s");
    }

    #[test]
    fn only_idempotent_methods_get_the_default() {
        let policies = Policies {
            idempotent: Some(RetryPolicy::new(3)),
            service_config: None,
        };
        let get = |level| policies.of("a.S", "M", level);
        assert!(get(IdempotencyLevel::Idempotent).default_json.is_some());
        assert!(get(IdempotencyLevel::NoSideEffects).default_json.is_some());
        let unknown = get(IdempotencyLevel::IdempotencyUnknown);
        assert!(unknown.default_json.is_none());
        assert_eq!(unknown.docs, [NO_POLICY]);
    }
}
