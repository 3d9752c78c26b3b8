//! The bad-config table: every field's invalid values, from code (the builder), the environment
//! and TOML. Each case asserts the exact `ConfigError` variant, and that the message names the
//! field (or environment variable) and the offending value.
use std::time::Duration;

use grpc_pool::{ConfigError, Pool, PoolConfig, PoolError, RetryConfig, TlsConfig};

/// The `ConfigError` variant a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invalid,
    Missing,
    Conflict,
    Toml,
    Io,
    Pem,
}

fn kind(err: &ConfigError) -> Option<Kind> {
    Some(match err {
        ConfigError::Invalid { .. } => Kind::Invalid,
        ConfigError::Missing { .. } => Kind::Missing,
        ConfigError::Conflict { .. } => Kind::Conflict,
        ConfigError::Toml { .. } => Kind::Toml,
        ConfigError::Io { .. } => Kind::Io,
        ConfigError::Pem { .. } => Kind::Pem,
        _ => return None,
    })
}

/// Checks one failed case: the variant, the field the error reports (`field()`, when the variant
/// has one), and that the message contains the field and every `shown` text (the value).
fn check(
    case: &str,
    result: Result<PoolConfig, ConfigError>,
    want: Kind,
    field: &str,
    shown: &[&str],
) {
    let err = match result {
        Ok(config) => panic!("{case}: accepted, expected {want:?} for {field}: {config:?}"),
        Err(err) => err,
    };
    let msg = err.to_string();
    assert_eq!(kind(&err), Some(want), "{case}: wrong variant: {err:?}");
    if want != Kind::Toml {
        assert_eq!(err.field(), Some(field), "{case}: wrong field: {msg}");
    }
    assert!(
        msg.contains(field),
        "{case}: the message must name {field}: {msg}"
    );
    for s in shown {
        assert!(
            msg.contains(s),
            "{case}: the message must show {s:?}: {msg}"
        );
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

/// (case, result of the builder, expected variant, field, texts the message must show)
type CodeCase = (
    &'static str,
    Result<PoolConfig, ConfigError>,
    Kind,
    &'static str,
    Vec<String>,
);
/// (variables without the prefix, expected variant, variable suffix or field, texts shown)
type EnvCase<'a> = (
    Vec<(&'static str, &'a str)>,
    Kind,
    &'static str,
    Vec<&'a str>,
);

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let certs = grpc_pool_testkit::TestCerts::generate().unwrap();
        for (name, from) in [
            ("ca.pem", &certs.ca.cert),
            ("client.pem", &certs.client.cert),
            ("client.key", &certs.client.key),
        ] {
            std::fs::copy(from, dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("garbage.pem"), "not pem at all").unwrap();
        std::fs::write(
            dir.path().join("broken.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        )
        .unwrap();
        Files { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn builder_rejects_every_invalid_value() {
    let files = Files::new();
    let b = || PoolConfig::builder().endpoint("http://127.0.0.1:50051");
    let tls = || PoolConfig::builder().endpoint("https://127.0.0.1:50051");
    use Kind::*;
    #[rustfmt::skip]
    let cases: Vec<CodeCase> = vec![
        ("size 0", b().size(0).build(), Invalid, "pool.size", vec!["0".into()]),
        ("size huge", b().size(5000).build(), Invalid, "pool.size", vec!["5000".into()]),
        ("min size 0", b().min_size(0).max_size(4).build(), Invalid, "pool.min_size", vec!["0".into()]),
        ("min size huge", b().min_size(2000).max_size(4).build(), Invalid, "pool.min_size", vec!["2000".into()]),
        ("max size 0", b().max_size(0).build(), Invalid, "pool.max_size", vec!["0".into()]),
        ("max size huge", b().max_size(5000).build(), Invalid, "pool.max_size", vec!["5000".into()]),
        ("min without max", b().min_size(2).build(), Missing, "pool.max_size", vec!["pool.min_size".into()]),
        ("min above max", b().min_size(9).max_size(4).build(), Invalid, "pool.min_size", vec!["9".into(), "pool.max_size (4)".into()]),
        ("size above max", b().size(9).max_size(4).build(), Invalid, "pool.size", vec!["9".into(), "pool.min_size (1)".into(), "pool.max_size (4)".into()]),
        ("size below min", b().size(1).min_size(2).max_size(4).build(), Invalid, "pool.size", vec!["1".into(), "pool.min_size (2)".into(), "pool.max_size (4)".into()]),
        ("resize interval 0", b().resize_interval(Duration::ZERO).build(), Invalid, "pool.resize_interval", vec!["0s".into()]),
        ("resize interval 2h", b().resize_interval(Duration::from_secs(7200)).build(), Invalid, "pool.resize_interval", vec!["2h".into(), "1h".into()]),
        ("resize step 0", b().resize_step(0).build(), Invalid, "pool.resize_step", vec!["0".into()]),
        ("resize step huge", b().resize_step(2000).build(), Invalid, "pool.resize_step", vec!["2000".into()]),
        ("max age 50ms", b().max_connection_age(Some(MS(50))).build(), Invalid, "connection.max_connection_age", vec!["50ms".into(), "must be at least 100ms".into()]),
        ("max age 0", b().max_connection_age(Some(Duration::ZERO)).build(), Invalid, "connection.max_connection_age", vec!["0s".into(), "must be at least 100ms".into()]),
        ("max age 2d", b().max_connection_age(Some(Duration::from_secs(2 * 86400))).build(), Invalid, "connection.max_connection_age", vec!["48h".into(), "24h".into()]),
        ("resolve 0", b().resolve_interval(Some(Duration::ZERO)).build(), Invalid, "connection.resolve_interval", vec!["0s".into()]),
        ("resolve 2d", b().resolve_interval(Some(Duration::from_secs(2 * 86400))).build(), Invalid, "connection.resolve_interval", vec!["48h".into()]),
        ("empty name", b().name("").build(), Invalid, "pool.name", vec!["\"\"".into()]),
        ("blank name", b().name(" ").build(), Invalid, "pool.name", vec!["\" \"".into()]),
        ("control name", b().name("a\u{7}b").build(), Invalid, "pool.name", vec!["a\\u{7}b".into()]),
        ("checkout 0", b().checkout_timeout(Duration::ZERO).build(), Invalid, "pool.checkout_timeout", vec!["0s".into()]),
        ("checkout 2h", b().checkout_timeout(Duration::from_secs(7200)).build(), Invalid, "pool.checkout_timeout", vec!["2h".into()]),
        ("drain 0", b().drain_timeout(Duration::ZERO).build(), Invalid, "pool.drain_timeout", vec!["0s".into()]),
        ("in-flight 0", b().max_in_flight_per_channel(0).build(), Invalid, "pool.max_in_flight_per_channel", vec!["0".into()]),
        ("connect 0", b().connect_timeout(Duration::ZERO).build(), Invalid, "connection.connect_timeout", vec!["0s".into()]),
        ("request 0", b().request_timeout(Duration::ZERO).build(), Invalid, "connection.request_timeout", vec!["0s".into()]),
        ("request 2d", b().request_timeout(Duration::from_secs(2 * 86400)).build(), Invalid, "connection.request_timeout", vec!["48h".into()]),
        ("keepalive 0", b().keepalive(Duration::ZERO).build(), Invalid, "connection.keepalive", vec!["0s".into()]),
        ("keepalive timeout 0", b().keepalive_timeout(Duration::ZERO).build(), Invalid, "connection.keepalive_timeout", vec!["0s".into()]),
        ("ping 0", b().ping_interval(Some(Duration::ZERO)).build(), Invalid, "connection.ping_interval", vec!["0s".into()]),
        ("health service", b().health_service("my service").build(), Invalid, "connection.health_service", vec!["my service".into()]),
        ("attempts 0", b().retry(RetryConfig::new(0, MS(10), MS(20))).build(), Invalid, "endpoint.retry.max_attempts", vec!["0".into()]),
        ("attempts huge", b().retry(RetryConfig::new(5000, MS(10), MS(20))).build(), Invalid, "endpoint.retry.max_attempts", vec!["5000".into()]),
        ("base delay 0", b().retry(RetryConfig::new(3, Duration::ZERO, MS(20))) .build(), Invalid, "endpoint.retry.base_delay", vec!["0s".into()]),
        ("max < base", b().retry(RetryConfig::new(3, MS(500), MS(100))).build(), Invalid, "endpoint.retry.max_delay", vec!["100ms".into(), "500ms".into()]),
        ("ftp uri", PoolConfig::builder().endpoint("ftp://h:1").build(), Invalid, "endpoint.uri", vec!["ftp://h:1".into()]),
        ("no scheme", PoolConfig::builder().endpoint("h:1").build(), Invalid, "endpoint.uri", vec!["h:1".into()]),
        ("not a uri", PoolConfig::builder().endpoint("http://a b").build(), Invalid, "endpoint.uri", vec!["http://a b".into()]),
        ("uri port 0", PoolConfig::builder().endpoint("http://h:0").build(), Invalid, "endpoint.uri", vec!["http://h:0".into()]),
        ("uri path", PoolConfig::builder().endpoint("http://h:1/x").build(), Invalid, "endpoint.uri", vec!["http://h:1/x".into()]),
        ("second endpoint", b().endpoint("bogus").build(), Invalid, "endpoints", vec!["bogus".into()]),
        ("empty host", PoolConfig::local("", 80).build(), Invalid, "endpoint.host", vec!["\"\"".into()]),
        ("host with scheme", PoolConfig::local("http://h", 80).build(), Invalid, "endpoint.host", vec!["http://h".into()]),
        ("host with port", PoolConfig::local("h:81", 80).build(), Invalid, "endpoint.host", vec!["h:81".into()]),
        ("port 0", PoolConfig::local("h", 0).build(), Invalid, "endpoint.port", vec!["0".into()]),
        ("ca missing", tls() .tls(TlsConfig::new().ca_cert(files.path("nope.pem"))) .build(), Io, "endpoint.tls.ca_cert", vec![files.path("nope.pem")]),
        ("ca garbage", tls() .tls(TlsConfig::new().ca_cert(files.path("garbage.pem"))) .build(), Pem, "endpoint.tls.ca_cert", vec![files.path("garbage.pem")]),
        ("ca broken", tls() .tls(TlsConfig::new().ca_cert(files.path("broken.pem"))) .build(), Pem, "endpoint.tls.ca_cert", vec![files.path("broken.pem")]),
        ("ca is a key", tls() .tls(TlsConfig::new().ca_cert(files.path("client.key"))) .build(), Pem, "endpoint.tls.ca_cert", vec![files.path("client.key")]),
        ("cert without key", tls() .tls(TlsConfig::new().client_cert(files.path("client.pem"))) .build(), Missing, "endpoint.tls.client_key", vec!["endpoint.tls.client_cert".into()]),
        ("key without cert", tls() .tls(TlsConfig::new().client_key(files.path("client.key"))) .build(), Missing, "endpoint.tls.client_cert", vec!["endpoint.tls.client_key".into()]),
        ("key is a cert", tls() .tls(TlsConfig::new() .client_cert(files.path("client.pem")) .client_key(files.path("client.pem"))) .build(), Pem, "endpoint.tls.client_key", vec![files.path("client.pem")]),
        ("key missing", tls() .tls(TlsConfig::new() .client_cert(files.path("client.pem")) .client_key(files.path("no.key"))) .build(), Io, "endpoint.tls.client_key", vec![files.path("no.key")]),
        ("domain", tls().tls(TlsConfig::new().domain("a b")).build(), Invalid, "endpoint.tls.domain", vec!["a b".into()]),
        ("tls on http", b().tls(TlsConfig::new()).build(), Conflict, "endpoint.tls", vec!["endpoint.uri".into(), "http://127.0.0.1:50051".into()]),
    ];
    let n = cases.len();
    for (case, result, want, field, shown) in cases {
        let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
        check(case, result, want, field, &shown);
    }
    println!("builder: {n} invalid values rejected");

    // No endpoint: build() allows it (a named pool may add one), validate() does not.
    let config = PoolConfig::builder().size(2).build().unwrap();
    check(
        "no endpoint",
        config.validate().map(|()| config.clone()),
        Kind::Missing,
        "endpoint.host",
        &[],
    );
}

#[tokio::test]
async fn pool_start_reports_config_errors_without_connecting() {
    let config = PoolConfig::builder().size(2).build().unwrap();
    let started = tokio::time::timeout(Duration::from_secs(5), Pool::start(config))
        .await
        .expect("start hung");
    match started {
        Err(PoolError::Config(ConfigError::Missing { field, .. })) => {
            assert_eq!(field, "endpoint.host")
        }
        other => panic!(
            "expected PoolError::Config(Missing), got {:?}",
            other.map(|p| p.name().to_owned())
        ),
    }
}

#[test]
fn environment_rejects_every_invalid_value() {
    // Environment variables are process-global: every case runs in this one test, with its own
    // prefix, and removes what it set.
    let files = Files::new();
    use Kind::*;
    let ca_missing = files.path("nope.pem");
    #[rustfmt::skip]
    let cases: Vec<EnvCase<'_>> = vec![
        (vec![("ENDPOINT_TYPE", "prod")], Invalid, "ENDPOINT_TYPE", vec!["prod"]),
        (vec![("HOST", "http://h")], Invalid, "HOST", vec!["http://h"]),
        (vec![("HOST", "h"), ("PORT", "http")], Invalid, "PORT", vec!["http"]),
        (vec![("HOST", "h"), ("PORT", "70000")], Invalid, "PORT", vec!["70000"]),
        (vec![("HOST", "h"), ("PORT", "-1")], Invalid, "PORT", vec!["-1"]),
        (vec![("HOST", "h"), ("PORT", "0")], Invalid, "PORT", vec!["0"]),
        (vec![("PORT", "80")], Missing, "HOST", vec!["PORT"]),
        (vec![("URI", "ftp://h:1")], Invalid, "URI", vec!["ftp://h:1"]),
        (vec![("URI", "http://h:1"), ("HOST", "h")], Conflict, "URI", vec!["HOST"]),
        (vec![("ENDPOINTS", "http://a:1, nope")], Invalid, "ENDPOINTS", vec!["nope"]),
        (vec![("URI", "https://h:1"), ("TLS_CA_CERT", &ca_missing)], Io, "TLS_CA_CERT", vec![&ca_missing]),
        (vec![("URI", "https://h:1"), ("TLS_CLIENT_CERT", "c.pem")], Missing, "TLS_CLIENT_KEY", vec!["TLS_CLIENT_CERT"]),
        (vec![("URI", "https://h:1"), ("TLS_DOMAIN", "a b")], Invalid, "TLS_DOMAIN", vec!["a b"]),
        (vec![("URI", "http://h:1"), ("TLS_DOMAIN", "h")], Conflict, "TLS_DOMAIN", vec!["URI", "http://h:1"]),
        (vec![("RETRY_MAX_ATTEMPTS", "0")], Invalid, "RETRY_MAX_ATTEMPTS", vec!["0"]),
        (vec![("RETRY_MAX_ATTEMPTS", "three")], Invalid, "RETRY_MAX_ATTEMPTS", vec!["three"]),
        (vec![("RETRY_MAX_ATTEMPTS", "5000")], Invalid, "RETRY_MAX_ATTEMPTS", vec!["5000"]),
        (vec![("RETRY_BASE_DELAY", "soon")], Invalid, "RETRY_BASE_DELAY", vec!["soon"]),
        (vec![("RETRY_MAX_DELAY", "0s")], Invalid, "RETRY_MAX_DELAY", vec!["0s"]),
        (vec![("RETRY_BASE_DELAY", "2s"), ("RETRY_MAX_DELAY", "1s")], Invalid, "RETRY_MAX_DELAY", vec!["1s", "2s"]),
        (vec![("POOL_NAME", "bad\u{1}name")], Invalid, "POOL_NAME", vec!["bad\\u{1}name"]),
        (vec![("POOL_SIZE", "0")], Invalid, "POOL_SIZE", vec!["0"]),
        (vec![("POOL_SIZE", "many")], Invalid, "POOL_SIZE", vec!["many"]),
        (vec![("POOL_SIZE", "-3")], Invalid, "POOL_SIZE", vec!["-3"]),
        (vec![("POOL_SIZE", "2000")], Invalid, "POOL_SIZE", vec!["2000"]),
        (vec![("POOL_SIZE", "1.5")], Invalid, "POOL_SIZE", vec!["1.5"]),
        (vec![("POOL_MIN_SIZE", "0"), ("POOL_MAX_SIZE", "4")], Invalid, "POOL_MIN_SIZE", vec!["0"]),
        (vec![("POOL_MIN_SIZE", "few"), ("POOL_MAX_SIZE", "4")], Invalid, "POOL_MIN_SIZE", vec!["few"]),
        (vec![("POOL_MIN_SIZE", "-2"), ("POOL_MAX_SIZE", "4")], Invalid, "POOL_MIN_SIZE", vec!["-2"]),
        (vec![("POOL_MAX_SIZE", "0")], Invalid, "POOL_MAX_SIZE", vec!["0"]),
        (vec![("POOL_MAX_SIZE", "2000")], Invalid, "POOL_MAX_SIZE", vec!["2000"]),
        (vec![("POOL_MAX_SIZE", "lots")], Invalid, "POOL_MAX_SIZE", vec!["lots"]),
        (vec![("POOL_MIN_SIZE", "2")], Missing, "POOL_MAX_SIZE", vec!["POOL_MIN_SIZE"]),
        (vec![("POOL_MIN_SIZE", "9"), ("POOL_MAX_SIZE", "4")], Invalid, "POOL_MIN_SIZE", vec!["9", "POOL_MAX_SIZE (4)"]),
        (vec![("POOL_SIZE", "9"), ("POOL_MAX_SIZE", "4")], Invalid, "POOL_SIZE", vec!["9", "POOL_MAX_SIZE (4)"]),
        (vec![("POOL_SIZE", "1"), ("POOL_MIN_SIZE", "2"), ("POOL_MAX_SIZE", "4")], Invalid, "POOL_SIZE", vec!["1", "POOL_MIN_SIZE (2)"]),
        (vec![("POOL_RESIZE_INTERVAL", "0s")], Invalid, "POOL_RESIZE_INTERVAL", vec!["0s"]),
        (vec![("POOL_RESIZE_INTERVAL", "2h")], Invalid, "POOL_RESIZE_INTERVAL", vec!["2h"]),
        (vec![("POOL_RESIZE_INTERVAL", "off")], Invalid, "POOL_RESIZE_INTERVAL", vec!["off"]),
        (vec![("POOL_RESIZE_STEP", "0")], Invalid, "POOL_RESIZE_STEP", vec!["0"]),
        (vec![("POOL_RESIZE_STEP", "2000")], Invalid, "POOL_RESIZE_STEP", vec!["2000"]),
        (vec![("POOL_RESIZE_STEP", "two")], Invalid, "POOL_RESIZE_STEP", vec!["two"]),
        (vec![("CHECKOUT_TIMEOUT", "soon")], Invalid, "CHECKOUT_TIMEOUT", vec!["soon"]),
        (vec![("CHECKOUT_TIMEOUT", "0s")], Invalid, "CHECKOUT_TIMEOUT", vec!["0s"]),
        (vec![("CHECKOUT_TIMEOUT", "5h")], Invalid, "CHECKOUT_TIMEOUT", vec!["5h"]),
        (vec![("CHECKOUT_TIMEOUT", "15")], Invalid, "CHECKOUT_TIMEOUT", vec!["15"]),
        (vec![("MAX_IN_FLIGHT_PER_CHANNEL", "0")], Invalid, "MAX_IN_FLIGHT_PER_CHANNEL", vec!["0"]),
        (vec![("MAX_IN_FLIGHT_PER_CHANNEL", "lots")], Invalid, "MAX_IN_FLIGHT_PER_CHANNEL", vec!["lots"]),
        (vec![("DRAIN_TIMEOUT", "-1s")], Invalid, "DRAIN_TIMEOUT", vec!["-1s"]),
        (vec![("CONNECT_TIMEOUT", "0s")], Invalid, "CONNECT_TIMEOUT", vec!["0s"]),
        (vec![("REQUEST_TIMEOUT", "fast")], Invalid, "REQUEST_TIMEOUT", vec!["fast"]),
        (vec![("KEEPALIVE", "0s")], Invalid, "KEEPALIVE", vec!["0s"]),
        (vec![("KEEPALIVE_TIMEOUT", "1 fortnight")], Invalid, "KEEPALIVE_TIMEOUT", vec!["1 fortnight"]),
        (vec![("PING_INTERVAL", "never")], Invalid, "PING_INTERVAL", vec!["never"]),
        (vec![("PING_INTERVAL", "0s")], Invalid, "PING_INTERVAL", vec!["0s"]),
        (vec![("MAX_CONNECTION_AGE", "50ms")], Invalid, "MAX_CONNECTION_AGE", vec!["50ms", "must be at least 100ms"]),
        (vec![("MAX_CONNECTION_AGE", "0s")], Invalid, "MAX_CONNECTION_AGE", vec!["0s", "must be at least 100ms"]),
        (vec![("MAX_CONNECTION_AGE", "25h")], Invalid, "MAX_CONNECTION_AGE", vec!["25h"]),
        (vec![("MAX_CONNECTION_AGE", "sometimes")], Invalid, "MAX_CONNECTION_AGE", vec!["sometimes"]),
        (vec![("RESOLVE_INTERVAL", "0s")], Invalid, "RESOLVE_INTERVAL", vec!["0s"]),
        (vec![("RESOLVE_INTERVAL", "25h")], Invalid, "RESOLVE_INTERVAL", vec!["25h"]),
        (vec![("RESOLVE_INTERVAL", "never")], Invalid, "RESOLVE_INTERVAL", vec!["never"]),
        (vec![("HEALTH_CHECK", "maybe")], Invalid, "HEALTH_CHECK", vec!["maybe"]),
        (vec![("HEALTH_SERVICE", "a b")], Invalid, "HEALTH_SERVICE", vec!["a b"]),
    ];
    let n = cases.len();
    for (i, (vars, want, suffix, shown)) in cases.into_iter().enumerate() {
        let prefix = format!("GRPCPOOL_CFGERR_{i}");
        let set: Vec<String> = vars.iter().map(|(k, _)| format!("{prefix}_{k}")).collect();
        for (name, (_, value)) in set.iter().zip(&vars) {
            std::env::set_var(name, value);
        }
        let result = PoolConfig::from_env(&prefix);
        for name in &set {
            std::env::remove_var(name);
        }
        // Errors name the variable (`PREFIX_POOL_SIZE`), a conflict with TLS the first TLS
        // variable set; a suffix with a dot is a field name as it is.
        let field = if suffix.contains('.') {
            suffix.to_owned()
        } else {
            format!("{prefix}_{suffix}")
        };
        let case = format!("{vars:?}");
        check(&case, result, want, &field, &shown);
    }
    println!("environment: {n} invalid values rejected");

    for bad in ["", "A-B", "SPACE D"] {
        let err = PoolConfig::from_env(bad).expect_err("an invalid prefix must be rejected");
        assert_eq!(kind(&err), Some(Kind::Invalid), "{err:?}");
        assert!(err.to_string().contains("prefix"), "{err}");
    }
}

#[test]
fn toml_rejects_every_invalid_value() {
    let files = Files::new();
    use Kind::*;
    let ca = files.path("nope.pem");
    let garbage = files.path("garbage.pem");
    let ca_missing =
        format!("[endpoint]\nuri = \"https://h:1\"\n[endpoint.tls]\nca_cert = \"{ca}\"\n");
    let ca_garbage =
        format!("[endpoint]\nuri = \"https://h:1\"\n[endpoint.tls]\nca_cert = \"{garbage}\"\n");
    #[rustfmt::skip]
    let cases: Vec<(&str, Kind, &str, Vec<&str>)> = vec![
        ("[endpoint]\ntype = \"prod\"", Invalid, "endpoint.type", vec!["prod"]),
        ("[endpoint]\nhost = \"h:80\"\nport = 80", Invalid, "endpoint.host", vec!["h:80"]),
        ("[endpoint]\nhost = \"\"\nport = 80", Invalid, "endpoint.host", vec!["\"\""]),
        ("[endpoint]\nhost = \"h\"\nport = 70000", Invalid, "endpoint.port", vec!["70000"]),
        ("[endpoint]\nhost = \"h\"\nport = 0", Invalid, "endpoint.port", vec!["0"]),
        ("[endpoint]\nhost = \"h\"\nport = -80", Invalid, "endpoint.port", vec!["-80"]),
        ("[endpoint]\nhost = \"h\"\nport = \"80\"", Toml, "port", vec!["\"80\""]),
        ("[endpoint]\nport = 80", Missing, "endpoint.host", vec!["endpoint.port"]),
        ("[endpoint]\nuri = \"ftp://h:1\"", Invalid, "endpoint.uri", vec!["ftp://h:1"]),
        ("[endpoint]\nuri = \"http://h:1/v1\"", Invalid, "endpoint.uri", vec!["http://h:1/v1"]),
        ("[endpoint]\nuri = \"http://a:1\"\nhost = \"b\"", Conflict, "endpoint.uri", vec!["endpoint.host"]),
        ("endpoints = [\"http://a:1\", \"nope\"]", Invalid, "endpoints", vec!["nope"]),
        ("endpoints = \"http://a:1\"", Toml, "endpoints", vec!["http://a:1"]),
        (&ca_missing, Io, "endpoint.tls.ca_cert", vec![&ca]),
        (&ca_garbage, Pem, "endpoint.tls.ca_cert", vec![&garbage]),
        ("[endpoint]\nuri = \"https://h:1\"\n[endpoint.tls]\nclient_cert = \"c.pem\"", Missing, "endpoint.tls.client_key", vec!["endpoint.tls.client_cert"]),
        ("[endpoint]\nuri = \"https://h:1\"\n[endpoint.tls]\nclient_key = \"c.key\"", Missing, "endpoint.tls.client_cert", vec!["endpoint.tls.client_key"]),
        ("[endpoint]\nuri = \"https://h:1\"\n[endpoint.tls]\ndomain = \"a/b\"", Invalid, "endpoint.tls.domain", vec!["a/b"]),
        ("[endpoint]\nuri = \"http://h:1\"\n[endpoint.tls]\ndomain = \"h\"", Conflict, "endpoint.tls", vec!["endpoint.uri", "http://h:1"]),
        ("[endpoint.tls]\nverify = false", Toml, "verify", vec![]),
        ("[endpoint.retry]\nmax_attempts = 0", Invalid, "endpoint.retry.max_attempts", vec!["0"]),
        ("[endpoint.retry]\nmax_attempts = -2", Invalid, "endpoint.retry.max_attempts", vec!["-2"]),
        ("[endpoint.retry]\nbase_delay = \"soon\"", Invalid, "endpoint.retry.base_delay", vec!["soon"]),
        ("[endpoint.retry]\nbase_delay = 1", Toml, "base_delay", vec!["1"]),
        ("[endpoint.retry]\nmax_delay = \"0s\"", Invalid, "endpoint.retry.max_delay", vec!["0s"]),
        ("[endpoint.retry]\nbase_delay = \"3s\"\nmax_delay = \"1s\"", Invalid, "endpoint.retry.max_delay", vec!["1s", "3s"]),
        ("[pool]\nname = \"\"", Invalid, "pool.name", vec!["\"\""]),
        ("[pool]\nsize = 0", Invalid, "pool.size", vec!["0"]),
        ("[pool]\nsize = -1", Invalid, "pool.size", vec!["-1"]),
        ("[pool]\nsize = 100000", Invalid, "pool.size", vec!["100000"]),
        ("[pool]\nsize = \"five\"", Toml, "size", vec!["five"]),
        ("[pool]\nsize = 2.5", Toml, "size", vec!["2.5"]),
        ("[pool]\nsizee = 3", Toml, "sizee", vec![]),
        ("[pool]\ncheckout_timeout = \"soon\"", Invalid, "pool.checkout_timeout", vec!["soon"]),
        ("[pool]\ncheckout_timeout = \"0ms\"", Invalid, "pool.checkout_timeout", vec!["0s"]),
        ("[pool]\nmax_in_flight_per_channel = 0", Invalid, "pool.max_in_flight_per_channel", vec!["0"]),
        ("[pool]\nmin_size = 0\nmax_size = 4", Invalid, "pool.min_size", vec!["0"]),
        ("[pool]\nmin_size = -1\nmax_size = 4", Invalid, "pool.min_size", vec!["-1"]),
        ("[pool]\nmin_size = \"two\"\nmax_size = 4", Toml, "min_size", vec!["two"]),
        ("[pool]\nmax_size = 0", Invalid, "pool.max_size", vec!["0"]),
        ("[pool]\nmax_size = 4096", Invalid, "pool.max_size", vec!["4096"]),
        ("[pool]\nmax_size = 2.5", Toml, "max_size", vec!["2.5"]),
        ("[pool]\nmin_size = 2", Missing, "pool.max_size", vec!["pool.min_size"]),
        ("[pool]\nmin_size = 9\nmax_size = 4", Invalid, "pool.min_size", vec!["9", "pool.max_size (4)"]),
        ("[pool]\nsize = 9\nmax_size = 4", Invalid, "pool.size", vec!["9", "pool.max_size (4)"]),
        ("[pool]\nsize = 1\nmin_size = 2\nmax_size = 4", Invalid, "pool.size", vec!["1", "pool.min_size (2)"]),
        ("[pool]\nresize_interval = \"0s\"", Invalid, "pool.resize_interval", vec!["0s"]),
        ("[pool]\nresize_interval = \"90m\"", Invalid, "pool.resize_interval", vec!["90m"]),
        ("[pool]\nresize_interval = \"off\"", Invalid, "pool.resize_interval", vec!["off"]),
        ("[pool]\nresize_interval = 5", Toml, "resize_interval", vec!["5"]),
        ("[pool]\nresize_step = 0", Invalid, "pool.resize_step", vec!["0"]),
        ("[pool]\nresize_step = 5000", Invalid, "pool.resize_step", vec!["5000"]),
        ("[pool]\nresize_step = \"2\"", Toml, "resize_step", vec!["\"2\""]),
        ("[pool]\ndrain_timeout = \"2 hours\"", Invalid, "pool.drain_timeout", vec!["2h"]),
        ("[connection]\nconnect_timeout = \"five\"", Invalid, "connection.connect_timeout", vec!["five"]),
        ("[connection]\nrequest_timeout = \"0s\"", Invalid, "connection.request_timeout", vec!["0s"]),
        ("[connection]\nkeepalive = \"0s\"", Invalid, "connection.keepalive", vec!["0s"]),
        ("[connection]\nkeepalive_timeout = \"1 fortnight\"", Invalid, "connection.keepalive_timeout", vec!["1 fortnight"]),
        ("[connection]\nping_interval = \"never\"", Invalid, "connection.ping_interval", vec!["never"]),
        ("[connection]\nping_interval = false", Toml, "ping_interval", vec!["false"]),
        ("[connection]\nmax_connection_age = \"50ms\"", Invalid, "connection.max_connection_age", vec!["50ms", "must be at least 100ms"]),
        ("[connection]\nmax_connection_age = \"0s\"", Invalid, "connection.max_connection_age", vec!["0s", "must be at least 100ms"]),
        ("[connection]\nmax_connection_age = \"2 days\"", Invalid, "connection.max_connection_age", vec!["48h"]),
        ("[connection]\nmax_connection_age = \"soon\"", Invalid, "connection.max_connection_age", vec!["soon"]),
        ("[connection]\nmax_connection_age = false", Toml, "max_connection_age", vec!["false"]),
        ("[connection]\nresolve_interval = \"0s\"", Invalid, "connection.resolve_interval", vec!["0s"]),
        ("[connection]\nresolve_interval = \"25h\"", Invalid, "connection.resolve_interval", vec!["25h"]),
        ("[connection]\nresolve_interval = \"never\"", Invalid, "connection.resolve_interval", vec!["never"]),
        ("[connection]\nresolve_interval = 30", Toml, "resolve_interval", vec!["30"]),
        ("[connection]\nresolver = \"dns\"", Toml, "resolver", vec![]),
        ("[connection]\nhealth_check = \"maybe\"", Toml, "health_check", vec!["maybe"]),
        ("[connection]\nhealth_service = \"a b\"", Invalid, "connection.health_service", vec!["a b"]),
        ("[pools]\nsize = 3", Toml, "pools", vec![]),
        ("[pool\nsize = 3", Toml, "[pool", vec![]),
    ];
    let n = cases.len();
    for (text, want, field, shown) in cases {
        check(
            &format!("{text:?}"),
            PoolConfig::from_toml_str(text),
            want,
            field,
            &shown,
        );
    }
    println!("toml: {n} invalid values rejected");

    // Files: a missing file, an unsupported extension, and an error inside a file names the file.
    let missing = files.dir.path().join("absent.toml");
    check(
        "missing file",
        PoolConfig::from_file(&missing),
        Io,
        "config file",
        &[&missing.display().to_string()],
    );
    let yaml = files.dir.path().join("pool.yaml");
    std::fs::write(&yaml, "pool: {size: 1}").unwrap();
    check(
        "yaml file",
        PoolConfig::from_file(&yaml),
        Invalid,
        "config file",
        &[&yaml.display().to_string(), ".yaml"],
    );
    let bad = files.dir.path().join("bad.toml");
    std::fs::write(&bad, "[pool]\nsize = \"x\"\n").unwrap();
    check(
        "bad file",
        PoolConfig::from_file(&bad),
        Toml,
        "size",
        &[&bad.display().to_string()],
    );
}

#[test]
fn valid_values_from_every_source_agree() {
    // The negative table above only means something if the same fields accept good values.
    let toml = r#"
        [endpoint]
        type = "local"
        host = "127.0.0.1"
        port = 50051
        [endpoint.retry]
        max_attempts = 4
        base_delay = "20ms"
        max_delay = "200ms"
        [pool]
        name = "cfg-ok"
        size = 3
        min_size = 2
        max_size = 6
        resize_interval = "2s"
        resize_step = 1
        checkout_timeout = "2s"
        max_in_flight_per_channel = 50
        [connection]
        connect_timeout = "1s"
        keepalive = "20s"
        keepalive_timeout = "5s"
        ping_interval = "off"
        max_connection_age = "30m"
        resolve_interval = "off"
        health_check = false
    "#;
    let from_toml = PoolConfig::from_toml_str(toml).unwrap();
    let from_code = PoolConfig::local("127.0.0.1", 50051)
        .name("cfg-ok")
        .size(3)
        .min_size(2)
        .max_size(6)
        .resize_interval(Duration::from_secs(2))
        .resize_step(1)
        .max_connection_age(Some(Duration::from_secs(30 * 60)))
        .resolve_interval(None)
        .checkout_timeout(Duration::from_secs(2))
        .max_in_flight_per_channel(50)
        .connect_timeout(Duration::from_secs(1))
        .keepalive(Duration::from_secs(20))
        .keepalive_timeout(Duration::from_secs(5))
        .ping_interval(None)
        .health_check(false)
        .retry(RetryConfig::new(4, MS(20), MS(200)))
        .build()
        .unwrap();
    assert_eq!(from_toml, from_code);
    from_toml.validate().unwrap();
    assert!(from_toml.is_elastic());
    assert_eq!(
        (from_toml.size(), from_toml.min_size(), from_toml.max_size()),
        (3, 2, 6)
    );
    assert_eq!(
        from_toml.max_connection_age(),
        Some(Duration::from_secs(1800))
    );
    assert_eq!(from_toml.resolve_interval(), None);

    // The same values from the environment.
    let vars = [
        ("HOST", "127.0.0.1"),
        ("PORT", "50051"),
        ("POOL_SIZE", "3"),
        ("POOL_MIN_SIZE", "2"),
        ("POOL_MAX_SIZE", "6"),
        ("POOL_RESIZE_INTERVAL", "2s"),
        ("POOL_RESIZE_STEP", "1"),
        ("MAX_CONNECTION_AGE", "30m"),
        ("RESOLVE_INTERVAL", "off"),
    ];
    let prefix = "GRPCPOOL_CFGOK";
    for (k, v) in vars {
        std::env::set_var(format!("{prefix}_{k}"), v);
    }
    let from_env = PoolConfig::from_env(prefix);
    for (k, _) in vars {
        std::env::remove_var(format!("{prefix}_{k}"));
    }
    let from_env = from_env.unwrap();
    let summary = |c: &PoolConfig| {
        (
            c.endpoints(),
            (c.size(), c.min_size(), c.max_size(), c.is_elastic()),
            (c.resize_interval(), c.resize_step()),
            (c.max_connection_age(), c.resolve_interval()),
        )
    };
    assert_eq!(summary(&from_env), summary(&from_toml));
}
