//! The gRPC service config (gRFC A2, A6), in its standard JSON form, the file grpc-go and
//! grpc-java clients take: per-method `timeout`, `waitForReady` and `retryPolicy`, and the
//! pool's `retryThrottling`.
//!
//! Parsed by walking the JSON, so every error names its JSON path and value
//! (`methodConfig[0].retryPolicy.maxAttempts must be at least 2 (got 1)`), and so fields this
//! version does not know are reported (as warnings, by path: a shared file may carry newer
//! ones, and grpc-go ignores them too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::outlier::{FailurePercentageEjection, OutlierDetection, SuccessRateEjection};

/// The name of gRFC A50's policy in `loadBalancingConfig`.
const OUTLIER_DETECTION: &str = "outlier_detection_experimental";

use crate::status_codes::CODE_NAMES;
pub(crate) use crate::status_codes::MAX_ATTEMPTS;

/// A parsed service config.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ServiceConfig {
    /// By service, then by method (`""`: the whole service).
    services: HashMap<String, HashMap<String, Arc<MethodConfig>>>,
    /// For every method no other entry names (`"name": [{}]`).
    default: Option<Arc<MethodConfig>>,
    pub(crate) retry_throttling: Option<RetryThrottling>,
    /// `loadBalancingConfig`'s `outlier_detection_experimental` (gRFC A50).
    pub(crate) outlier_detection: Option<OutlierDetection>,
    /// Fields this version does not know, by JSON path.
    pub(crate) unknown: Vec<String>,
}

/// What the service config says of one method.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct MethodConfig {
    /// The longest the call may take: its deadline is the sooner of this and its own.
    pub(crate) timeout: Option<Duration>,
    /// `true`: wait for a READY channel within the deadline; `false`: fail fast.
    pub(crate) wait_for_ready: Option<bool>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) hedging: Option<HedgingPolicy>,
}

/// `hedgingPolicy` (gRFC A6): send the call again every `delay` without an answer, up to
/// `max_attempts` in flight in all; the first answer wins.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HedgingPolicy {
    /// Attempts in all, the first included (2 to [`MAX_ATTEMPTS`]).
    pub(crate) max_attempts: u32,
    pub(crate) delay: Duration,
    /// Failures that do not end the call: the next hedge goes at once instead.
    pub(crate) non_fatal: Codes,
}

/// `retryPolicy` (gRFC A6).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Attempts in all, the first included (2 to [`MAX_ATTEMPTS`]).
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) backoff_multiplier: f64,
    pub(crate) retryable: Codes,
}

impl RetryPolicy {
    /// The pause before retry `n` (1 for the first): random in `[0, min(initial *
    /// multiplier^(n-1), max)]`, as gRFC A6 specifies.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let nominal = self.initial_backoff.as_secs_f64() * self.backoff_multiplier.powi(exponent);
        let cap = nominal.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(cap * fastrand::f64())
    }
}

/// `retryThrottling` (gRFC A6): retries stop while the pool's tokens are at or below half of
/// `max_tokens`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RetryThrottling {
    pub(crate) max_tokens: f64,
    pub(crate) token_ratio: f64,
}

/// A set of gRPC status codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Codes(u32);

impl Codes {
    pub(crate) fn contains(self, code: tonic::Code) -> bool {
        self.0 & (1 << (code as u32)) != 0
    }
}

impl ServiceConfig {
    /// The config of a call to `path` (`/package.Service/Method`): the entry naming that
    /// method, else the one naming its service, else the default.
    pub(crate) fn method(&self, path: &str) -> Option<&Arc<MethodConfig>> {
        let (service, method) = path.trim_start_matches('/').split_once('/')?;
        let methods = self.services.get(service);
        methods
            .and_then(|m| m.get(method).or_else(|| m.get("")))
            .or(self.default.as_ref())
    }
}

/// Parses `text`; errors name `field` (where the config came from: `connection.service_config`,
/// `service_config_json`) followed by the JSON path.
pub(crate) fn parse(field: &str, text: &str) -> Result<ServiceConfig, ConfigError> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        ConfigError::invalid(
            field,
            format!("line {} column {}", e.line(), e.column()),
            format!("is not valid JSON ({e})"),
        )
    })?;
    let mut p = Parser {
        field,
        unknown: Vec::new(),
    };
    let root = p.object("", &root)?;
    let mut config = ServiceConfig::default();
    for (key, value) in root {
        match key.as_str() {
            "methodConfig" => {
                for (i, entry) in p.array(key, value)?.iter().enumerate() {
                    p.method_config(&mut config, &format!("methodConfig[{i}]"), entry)?;
                }
            }
            "retryThrottling" => {
                config.retry_throttling = Some(p.retry_throttling(key, value)?);
            }
            "loadBalancingConfig" => {
                for (i, policy) in p.array(key, value)?.iter().enumerate() {
                    let at = format!("loadBalancingConfig[{i}]");
                    let policy = p.object(&at, policy)?;
                    // The first policy this client knows is the one in effect (gRFC A24).
                    if let Some(od) = policy.get(OUTLIER_DETECTION) {
                        let at = format!("{at}.{OUTLIER_DETECTION}");
                        config.outlier_detection = Some(p.outlier_detection(&at, od)?);
                        break;
                    }
                }
            }
            // Recognised, not acted on: the pool balances by its own rule (least loaded).
            "loadBalancingPolicy" | "healthCheckConfig" => {}
            _ => p.unknown.push(key.clone()),
        }
    }
    config.unknown = p.unknown;
    Ok(config)
}

/// Parses one `retryPolicy` object (a default `grpc-pool-build` compiled into a generated
/// method); errors name `field`.
pub(crate) fn parse_retry_policy(field: &str, text: &str) -> Result<RetryPolicy, ConfigError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::invalid(field, text, format!("is not valid JSON ({e})")))?;
    let mut p = Parser {
        field,
        unknown: Vec::new(),
    };
    p.retry_policy("retryPolicy", &value)
}

struct Parser<'a> {
    field: &'a str,
    unknown: Vec<String>,
}

impl Parser<'_> {
    fn error(&self, path: &str, value: &Value, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(format!("{} {path}", self.field), value.to_string(), reason)
    }

    fn object<'v>(
        &self,
        path: &str,
        value: &'v Value,
    ) -> Result<&'v Map<String, Value>, ConfigError> {
        value.as_object().ok_or_else(|| {
            self.error(
                if path.is_empty() {
                    "(the document)"
                } else {
                    path
                },
                value,
                "must be a JSON object",
            )
        })
    }

    fn array<'v>(&self, path: &str, value: &'v Value) -> Result<&'v Vec<Value>, ConfigError> {
        value
            .as_array()
            .ok_or_else(|| self.error(path, value, "must be a JSON array"))
    }

    fn string<'v>(&self, path: &str, value: &'v Value) -> Result<&'v str, ConfigError> {
        value
            .as_str()
            .ok_or_else(|| self.error(path, value, "must be a string"))
    }

    /// A protobuf JSON duration: seconds with up to 9 decimals and an `s` (`"0.25s"`).
    fn duration(&self, path: &str, value: &Value) -> Result<Duration, ConfigError> {
        let text = self.string(path, value)?;
        let bad = || {
            self.error(
                path,
                value,
                "must be a duration in seconds like \"0.25s\" or \"2s\"",
            )
        };
        let number = text.strip_suffix('s').ok_or_else(bad)?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let secs: u64 = whole.parse().map_err(|_| bad())?;
        let nanos: u32 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
        Ok(Duration::new(secs, nanos))
    }

    fn positive_duration(&self, path: &str, value: &Value) -> Result<Duration, ConfigError> {
        let d = self.duration(path, value)?;
        if d.is_zero() {
            return Err(self.error(path, value, "must be more than 0s"));
        }
        Ok(d)
    }

    fn number(&self, path: &str, value: &Value) -> Result<f64, ConfigError> {
        value
            .as_f64()
            .ok_or_else(|| self.error(path, value, "must be a number"))
    }

    fn codes(&self, path: &str, value: &Value) -> Result<Codes, ConfigError> {
        let mut codes = Codes::default();
        for (i, code) in self.array(path, value)?.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let n = match code {
                Value::String(name) => CODE_NAMES
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        self.error(
                            &at,
                            code,
                            "is not a gRPC status code name (UNAVAILABLE, ABORTED, ...)",
                        )
                    })?,
                Value::Number(n) => n
                    .as_u64()
                    .filter(|n| *n < 17)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.error(&at, code, "is not a gRPC status code (0 to 16)"))?,
                _ => return Err(self.error(&at, code, "must be a status code name or number")),
            };
            if n == 0 {
                return Err(self.error(&at, code, "OK is not a failure"));
            }
            codes.0 |= 1 << n;
        }
        Ok(codes)
    }

    fn method_config(
        &mut self,
        config: &mut ServiceConfig,
        path: &str,
        value: &Value,
    ) -> Result<(), ConfigError> {
        let entry = self.object(path, value)?;
        let mut method = MethodConfig::default();
        let mut names = Vec::new();
        for (key, v) in entry {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "name" => {
                    for (i, name) in self.array(&at, v)?.iter().enumerate() {
                        names.push(self.name(&format!("{at}[{i}]"), name)?);
                    }
                }
                "timeout" => method.timeout = Some(self.positive_duration(&at, v)?),
                "waitForReady" => {
                    method.wait_for_ready = Some(
                        v.as_bool()
                            .ok_or_else(|| self.error(&at, v, "must be true or false"))?,
                    );
                }
                "retryPolicy" => method.retry = Some(self.retry_policy(&at, v)?),
                "hedgingPolicy" => method.hedging = Some(self.hedging_policy(&at, v)?),
                "maxRequestMessageBytes" | "maxResponseMessageBytes" => {}
                _ => self.unknown.push(at),
            }
        }
        if method.retry.is_some() && method.hedging.is_some() {
            return Err(self.error(
                &format!("{path}.hedgingPolicy"),
                &Value::Null,
                "cannot be given with retryPolicy (gRFC A6: one or the other)",
            ));
        }
        if names.is_empty() {
            return Err(self.error(
                &format!("{path}.name"),
                &Value::Null,
                "must list at least one name ([{}] for every method)",
            ));
        }
        let method = Arc::new(method);
        for (i, (service, name)) in names.into_iter().enumerate() {
            let at = format!("{path}.name[{i}]");
            let slot = if service.is_empty() {
                &mut config.default
            } else {
                config
                    .services
                    .entry(service.clone())
                    .or_default()
                    .entry(name.clone())
                    .or_insert_with(|| method.clone());
                continue;
            };
            if slot.is_some() {
                return Err(self.error(
                    &at,
                    &Value::Object(Map::new()),
                    "names the default a second time",
                ));
            }
            *slot = Some(method.clone());
        }
        Ok(())
    }

    /// `{"service": "pkg.Svc", "method": "Get"}`; both empty (or absent): the default.
    fn name(&mut self, path: &str, value: &Value) -> Result<(String, String), ConfigError> {
        let name = self.object(path, value)?;
        let (mut service, mut method) = (String::new(), String::new());
        for (key, v) in name {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "service" => service = self.string(&at, v)?.to_owned(),
                "method" => method = self.string(&at, v)?.to_owned(),
                _ => self.unknown.push(at),
            }
        }
        if service.is_empty() && !method.is_empty() {
            return Err(self.error(path, value, "names a method without its service"));
        }
        Ok((service, method))
    }

    fn retry_policy(&mut self, path: &str, value: &Value) -> Result<RetryPolicy, ConfigError> {
        let fields = self.object(path, value)?;
        let (mut attempts, mut initial, mut max, mut multiplier, mut codes) =
            (None, None, None, None, None);
        for (key, v) in fields {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "maxAttempts" => attempts = Some(self.attempts(&at, v)?),
                "initialBackoff" => initial = Some(self.positive_duration(&at, v)?),
                "maxBackoff" => max = Some(self.positive_duration(&at, v)?),
                "backoffMultiplier" => {
                    let m = self.number(&at, v)?;
                    if m <= 0.0 {
                        return Err(self.error(&at, v, "must be more than 0"));
                    }
                    multiplier = Some(m);
                }
                "retryableStatusCodes" => {
                    let c = self.codes(&at, v)?;
                    if c == Codes::default() {
                        return Err(self.error(&at, v, "must list at least one status code"));
                    }
                    codes = Some(c);
                }
                "perAttemptRecvTimeout" => {}
                _ => self.unknown.push(at),
            }
        }
        let missing = |key: &str| self.error(&format!("{path}.{key}"), &Value::Null, "is required");
        Ok(RetryPolicy {
            max_attempts: attempts.ok_or_else(|| missing("maxAttempts"))?,
            initial_backoff: initial.ok_or_else(|| missing("initialBackoff"))?,
            max_backoff: max.ok_or_else(|| missing("maxBackoff"))?,
            backoff_multiplier: multiplier.ok_or_else(|| missing("backoffMultiplier"))?,
            retryable: codes.ok_or_else(|| missing("retryableStatusCodes"))?,
        })
    }

    fn hedging_policy(&mut self, path: &str, value: &Value) -> Result<HedgingPolicy, ConfigError> {
        let fields = self.object(path, value)?;
        let mut policy = HedgingPolicy {
            max_attempts: 0,
            delay: Duration::ZERO,
            non_fatal: Codes::default(),
        };
        for (key, v) in fields {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "maxAttempts" => policy.max_attempts = self.attempts(&at, v)?,
                "hedgingDelay" => policy.delay = self.duration(&at, v)?,
                "nonFatalStatusCodes" => policy.non_fatal = self.codes(&at, v)?,
                _ => self.unknown.push(at),
            }
        }
        if policy.max_attempts == 0 {
            let at = format!("{path}.maxAttempts");
            return Err(self.error(&at, &Value::Null, "is required"));
        }
        Ok(policy)
    }

    fn outlier_detection(
        &mut self,
        path: &str,
        value: &Value,
    ) -> Result<OutlierDetection, ConfigError> {
        let mut od = OutlierDetection::default();
        for (key, v) in self.object(path, value)? {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "interval" => od.interval = self.positive_duration(&at, v)?,
                "baseEjectionTime" => od.base_ejection_time = self.positive_duration(&at, v)?,
                "maxEjectionTime" => od.max_ejection_time = self.positive_duration(&at, v)?,
                "maxEjectionPercent" => od.max_ejection_percent = self.percent(&at, v)?,
                "successRateEjection" => {
                    let mut rule = SuccessRateEjection::default();
                    for (k, v) in self.object(&at, v)? {
                        let at = format!("{at}.{k}");
                        match k.as_str() {
                            "stdevFactor" => rule.stdev_factor = self.whole(&at, v)?,
                            "enforcementPercentage" => {
                                rule.enforcement_percentage = self.percent(&at, v)?
                            }
                            "minimumHosts" => rule.minimum_hosts = self.whole(&at, v)?,
                            "requestVolume" => rule.request_volume = self.whole(&at, v)?,
                            _ => self.unknown.push(at),
                        }
                    }
                    od.success_rate = Some(rule);
                }
                "failurePercentageEjection" => {
                    let mut rule = FailurePercentageEjection::default();
                    for (k, v) in self.object(&at, v)? {
                        let at = format!("{at}.{k}");
                        match k.as_str() {
                            "threshold" => rule.threshold = self.percent(&at, v)?,
                            "enforcementPercentage" => {
                                rule.enforcement_percentage = self.percent(&at, v)?
                            }
                            "minimumHosts" => rule.minimum_hosts = self.whole(&at, v)?,
                            "requestVolume" => rule.request_volume = self.whole(&at, v)?,
                            _ => self.unknown.push(at),
                        }
                    }
                    od.failure_percentage = Some(rule);
                }
                // The policy it wraps: the pool's own balancing either way.
                "childPolicy" => {}
                _ => self.unknown.push(at),
            }
        }
        Ok(od)
    }

    fn whole(&self, path: &str, v: &Value) -> Result<u32, ConfigError> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.error(path, v, "must be a whole number"))
    }

    fn percent(&self, path: &str, v: &Value) -> Result<u32, ConfigError> {
        let n = self.whole(path, v)?;
        if n > 100 {
            return Err(self.error(path, v, "must be a percentage from 0 to 100"));
        }
        Ok(n)
    }

    /// `maxAttempts`: at least 2, lowered to [`MAX_ATTEMPTS`].
    fn attempts(&self, path: &str, v: &Value) -> Result<u32, ConfigError> {
        let n = v
            .as_u64()
            .ok_or_else(|| self.error(path, v, "must be a whole number"))?;
        if n < 2 {
            return Err(self.error(path, v, "must be at least 2 (the first attempt counts)"));
        }
        Ok(u32::try_from(n).unwrap_or(u32::MAX).min(MAX_ATTEMPTS))
    }

    fn retry_throttling(
        &mut self,
        path: &str,
        value: &Value,
    ) -> Result<RetryThrottling, ConfigError> {
        let fields = self.object(path, value)?;
        let (mut max_tokens, mut ratio) = (None, None);
        for (key, v) in fields {
            let at = format!("{path}.{key}");
            match key.as_str() {
                "maxTokens" => {
                    let n = v.as_u64().filter(|n| (1..=1000).contains(n));
                    max_tokens = Some(n.ok_or_else(|| {
                        self.error(&at, v, "must be a whole number from 1 to 1000")
                    })? as f64);
                }
                "tokenRatio" => {
                    let r = self.number(&at, v)?;
                    if r <= 0.0 {
                        return Err(self.error(&at, v, "must be more than 0"));
                    }
                    ratio = Some(r);
                }
                _ => self.unknown.push(at),
            }
        }
        let missing = |key: &str| self.error(&format!("{path}.{key}"), &Value::Null, "is required");
        Ok(RetryThrottling {
            max_tokens: max_tokens.ok_or_else(|| missing("maxTokens"))?,
            token_ratio: ratio.ok_or_else(|| missing("tokenRatio"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
      "methodConfig": [
        {
          "name": [{"service": "echo.Echo", "method": "Unary"}],
          "timeout": "0.250s",
          "waitForReady": true,
          "retryPolicy": {
            "maxAttempts": 9,
            "initialBackoff": "0.01s",
            "maxBackoff": "0.1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE", "aborted", 8]
          },
          "someNewField": 1
        },
        {"name": [{"service": "echo.Echo"}], "timeout": "2s"},
        {"name": [{}], "waitForReady": false}
      ],
      "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
      "loadBalancingConfig": [{"round_robin": {}}]
    }"#;

    #[test]
    fn the_standard_json_by_method_service_and_default() {
        let config = parse("service_config_json", CONFIG).unwrap();
        let unary = config.method("/echo.Echo/Unary").unwrap();
        assert_eq!(unary.timeout, Some(Duration::from_millis(250)));
        assert_eq!(unary.wait_for_ready, Some(true));
        let retry = unary.retry.as_ref().unwrap();
        assert_eq!(retry.max_attempts, MAX_ATTEMPTS, "capped at 5");
        assert_eq!(retry.initial_backoff, Duration::from_millis(10));
        assert!(retry.retryable.contains(tonic::Code::Unavailable));
        assert!(retry.retryable.contains(tonic::Code::Aborted));
        assert!(retry.retryable.contains(tonic::Code::ResourceExhausted));
        assert!(!retry.retryable.contains(tonic::Code::Internal));
        let other = config.method("/echo.Echo/Bidi").unwrap();
        assert_eq!(other.timeout, Some(Duration::from_secs(2)));
        let default = config.method("/other.Service/Any").unwrap();
        assert_eq!(default.wait_for_ready, Some(false));
        assert_eq!(
            config.retry_throttling,
            Some(RetryThrottling {
                max_tokens: 10.0,
                token_ratio: 0.1
            })
        );
        assert_eq!(config.unknown, ["methodConfig[0].someNewField"]);
    }

    #[test]
    fn outlier_detection_with_a50s_defaults_for_what_is_left_out() {
        let config = parse(
            "f",
            r#"{"loadBalancingConfig": [
                {"outlier_detection_experimental": {
                    "interval": "0.5s",
                    "failurePercentageEjection": {"threshold": 40},
                    "childPolicy": [{"round_robin": {}}]
                }},
                {"round_robin": {}}
            ]}"#,
        )
        .unwrap();
        let od = config.outlier_detection.unwrap();
        assert_eq!(od.interval, Duration::from_millis(500));
        assert_eq!(od.base_ejection_time, Duration::from_secs(30));
        assert_eq!(od.max_ejection_time, Duration::from_secs(300));
        assert_eq!(od.max_ejection_percent, 10);
        assert_eq!(od.success_rate, None, "off unless configured");
        let rule = od.failure_percentage.unwrap();
        assert_eq!(
            (rule.threshold, rule.minimum_hosts, rule.request_volume),
            (40, 5, 50)
        );
        let err = parse(
            "f",
            r#"{"loadBalancingConfig": [{"outlier_detection_experimental": {"maxEjectionPercent": 101}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "loadBalancingConfig[0].outlier_detection_experimental.maxEjectionPercent"
            ),
            "{err}"
        );
    }

    #[test]
    fn backoff_is_random_below_the_exponential_cap() {
        let config = parse("f", CONFIG).unwrap();
        let retry = config
            .method("/echo.Echo/Unary")
            .unwrap()
            .retry
            .clone()
            .unwrap();
        for n in 1..=6 {
            let cap = (0.01 * 2f64.powi(n as i32 - 1)).min(0.1);
            for _ in 0..50 {
                assert!(retry.backoff(n).as_secs_f64() <= cap + 1e-9);
            }
        }
    }

    fn error(text: &str) -> (String, String, String) {
        match parse("connection.service_config", text) {
            Err(ConfigError::Invalid {
                field,
                value,
                reason,
            }) => (field, value, reason),
            other => panic!("expected Invalid for {text}, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_value_names_its_json_path_and_value() {
        let policy = |p: &str| {
            format!(r#"{{"methodConfig":[{{"name":[{{"service":"s"}}],"retryPolicy":{{{p}}}}}]}}"#)
        };
        let full = r#""maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]"#;
        for (text, path, value, reason) in [
            ("{", "connection.service_config", "line 1", "not valid JSON"),
            ("[]", "(the document)", "[]", "JSON object"),
            (
                &policy(&full.replace("\"maxAttempts\":3", "\"maxAttempts\":1")),
                "methodConfig[0].retryPolicy.maxAttempts",
                "1",
                "at least 2",
            ),
            (
                &policy(&full.replace("\"0.1s\"", "\"100ms\"")),
                "methodConfig[0].retryPolicy.initialBackoff",
                "\"100ms\"",
                "duration in seconds",
            ),
            (
                &policy(&full.replace("\"UNAVAILABLE\"", "\"UNAVAILABLE_ISH\"")),
                "methodConfig[0].retryPolicy.retryableStatusCodes[0]",
                "\"UNAVAILABLE_ISH\"",
                "status code name",
            ),
            (
                &policy(&full.replace("\"backoffMultiplier\":2", "\"backoffMultiplier\":\"2\"")),
                "methodConfig[0].retryPolicy.backoffMultiplier",
                "\"2\"",
                "number",
            ),
            (
                &policy(&full.replace(",\"maxBackoff\":\"1s\"", "")),
                "methodConfig[0].retryPolicy.maxBackoff",
                "null",
                "required",
            ),
            (
                r#"{"methodConfig":[{"name":[{"method":"Get"}]}]}"#,
                "methodConfig[0].name[0]",
                "Get",
                "without its service",
            ),
            (
                r#"{"methodConfig":[{"name":[{"service":"s"}],"timeout":5}]}"#,
                "methodConfig[0].timeout",
                "5",
                "must be a string",
            ),
            (
                &policy(&format!(r#"{full}}},"hedgingPolicy":{{"maxAttempts":2"#)),
                "methodConfig[0].hedgingPolicy",
                "null",
                "one or the other",
            ),
            (
                r#"{"methodConfig":[{"name":[{"service":"s"}],"hedgingPolicy":{"hedgingDelay":"0.1s"}}]}"#,
                "methodConfig[0].hedgingPolicy.maxAttempts",
                "null",
                "required",
            ),
            (
                r#"{"retryThrottling":{"maxTokens":0,"tokenRatio":0.1}}"#,
                "retryThrottling.maxTokens",
                "0",
                "1 to 1000",
            ),
        ] {
            let (field, v, r) = error(text);
            assert!(field.ends_with(path), "{text}: {field}");
            assert!(field.starts_with("connection.service_config"), "{field}");
            assert!(v.contains(value), "{text}: value {v}");
            assert!(r.contains(reason), "{text}: reason {r}");
        }
    }
}
