//! Configuration from code, environment and TOML: every bad value is an error naming the
//! field (or variable) and the value; presets; round trips; redacted Debug.

use std::time::Duration;

use grpc_pool::{ConfigError, PoolConfig, PoolConfigBuilder, Preset, RetryConfig, TlsConfig};
use grpc_pool_testkit::TestCerts;

fn assert_names(result: Result<PoolConfig, ConfigError>, field: &str, value: &str) {
    let err = match result {
        Ok(c) => panic!("{field} = {value}: accepted: {c:?}"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains(field),
        "{field}: message does not name it: {text}"
    );
    assert!(
        text.contains(value),
        "{field}: message does not show {value:?}: {text}"
    );
}

fn local() -> PoolConfigBuilder {
    PoolConfig::local("127.0.0.1", 50051)
}

fn pem_files() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no pem here").unwrap();
    let (g, e) = (garbage.display().to_string(), empty.display().to_string());
    (dir, g, e)
}

#[test]
fn invalid_values_from_code_name_the_field_and_value() {
    let s = Duration::from_secs;
    assert_names(local().size(0).build(), "pool.size", "0");
    assert_names(local().size(100_000).build(), "pool.size", "100000");
    assert_names(
        local().checkout_timeout(s(0)).build(),
        "pool.checkout_timeout",
        "0s",
    );
    assert_names(
        local().checkout_timeout(s(864_000)).build(),
        "pool.checkout_timeout",
        "240h",
    );
    assert_names(
        local().connect_timeout(s(0)).build(),
        "connection.connect_timeout",
        "0s",
    );
    assert_names(
        local().request_timeout(s(0)).build(),
        "connection.request_timeout",
        "0s",
    );
    assert_names(
        local().keepalive(s(0)).build(),
        "connection.keepalive",
        "0s",
    );
    assert_names(
        local().keepalive_timeout(s(0)).build(),
        "connection.keepalive_timeout",
        "0s",
    );
    assert_names(
        local().ping_interval(Some(s(0))).build(),
        "connection.ping_interval",
        "0s",
    );
    assert_names(
        local().drain_timeout(s(0)).build(),
        "pool.drain_timeout",
        "0s",
    );
    assert_names(
        local().max_in_flight_per_channel(0).build(),
        "pool.max_in_flight_per_channel",
        "0",
    );
    assert_names(
        local().retry(RetryConfig::new(0, s(1), s(2))).build(),
        "endpoint.retry.max_attempts",
        "0",
    );
    assert_names(
        local().retry(RetryConfig::new(3, s(5), s(1))).build(),
        "endpoint.retry.max_delay",
        "1s",
    );
    assert_names(local().name("").build(), "pool.name", "\"\"");
    assert_names(
        local().health_service("a b").build(),
        "connection.health_service",
        "a b",
    );
    assert_names(
        PoolConfig::local("127.0.0.1", 0).build(),
        "endpoint.port",
        "0",
    );
    assert_names(PoolConfig::local("", 1).build(), "endpoint.host", "\"\"");
    assert_names(
        PoolConfig::local("http://x", 1).build(),
        "endpoint.host",
        "http://x",
    );
    assert_names(
        PoolConfig::local("x:80", 1).build(),
        "endpoint.host",
        "x:80",
    );
    assert_names(
        PoolConfig::builder().endpoint("not a uri").build(),
        "endpoint.uri",
        "not a uri",
    );
    assert_names(
        PoolConfig::builder().endpoint("ftp://x:1").build(),
        "endpoint.uri",
        "ftp://x:1",
    );
    assert_names(
        PoolConfig::builder().endpoint("localhost:1").build(),
        "endpoint.uri",
        "localhost:1",
    );
    assert_names(
        PoolConfig::builder().endpoint("http://x:1/path").build(),
        "endpoint.uri",
        "/path",
    );
    assert_names(
        PoolConfig::builder()
            .endpoint("http://a:1")
            .endpoint("bad")
            .build(),
        "endpoints",
        "bad",
    );
}

#[test]
fn tls_files_are_checked() {
    let (_dir, garbage, empty) = pem_files();
    let certs = TestCerts::generate().unwrap();
    let tls = |t: TlsConfig| PoolConfig::production("api", 443).tls(t).build();
    assert_names(
        tls(TlsConfig::new().ca_cert("/nonexistent/ca.pem")),
        "endpoint.tls.ca_cert",
        "/nonexistent/ca.pem",
    );
    assert_names(
        tls(TlsConfig::new().ca_cert(&garbage)),
        "endpoint.tls.ca_cert",
        &garbage,
    );
    assert_names(
        tls(TlsConfig::new().ca_cert(&empty)),
        "endpoint.tls.ca_cert",
        &empty,
    );
    assert_names(
        tls(TlsConfig::new().client_cert(&certs.client.cert)),
        "endpoint.tls.client_key",
        "endpoint.tls.client_cert",
    );
    assert_names(
        tls(TlsConfig::new()
            .client_cert(&certs.client.cert)
            .client_key(&empty)),
        "endpoint.tls.client_key",
        &empty,
    );
    assert_names(
        PoolConfig::builder()
            .endpoint("http://a:1")
            .tls(TlsConfig::new())
            .build(),
        "endpoint.tls",
        "http://a:1",
    );
    let ok = tls(TlsConfig::new()
        .ca_cert(&certs.ca.cert)
        .client_cert(&certs.client.cert)
        .client_key(&certs.client.key)
        .domain("localhost"))
    .expect("valid TLS files");
    assert!(ok.tls_enabled());
    ok.validate().unwrap();
}

#[test]
fn invalid_values_from_toml_name_the_field_and_value() {
    let t = PoolConfig::from_toml_str;
    let ep = "[endpoint]\nhost = \"a\"\nport = 1\n";
    assert_names(t(&format!("{ep}[pool]\nsize = 0")), "pool.size", "0");
    assert_names(t(&format!("{ep}[pool]\nsize = -3")), "pool.size", "-3");
    assert_names(
        t(&format!("{ep}[pool]\ncheckout_timeout = \"soon\"")),
        "pool.checkout_timeout",
        "soon",
    );
    assert_names(
        t(&format!("{ep}[pool]\ncheckout_timeout = \"0s\"")),
        "pool.checkout_timeout",
        "0s",
    );
    assert_names(
        t(&format!("{ep}[pool]\nmax_in_flight_per_channel = 0")),
        "pool.max_in_flight_per_channel",
        "0",
    );
    assert_names(
        t(&format!("{ep}[connection]\nkeepalive = \"1 fortnight\"")),
        "connection.keepalive",
        "1 fortnight",
    );
    assert_names(
        t(&format!("{ep}[connection]\nping_interval = \"0s\"")),
        "connection.ping_interval",
        "0s",
    );
    assert_names(
        t(&format!("{ep}[connection]\nconnect_timeout = \"1000h\"")),
        "connection.connect_timeout",
        "1000h",
    );
    assert_names(
        t("[endpoint]\nhost = \"a\"\nport = 70000"),
        "endpoint.port",
        "70000",
    );
    assert_names(
        t("[endpoint]\nhost = \"a\"\nport = 0"),
        "endpoint.port",
        "0",
    );
    assert_names(
        t("[endpoint]\ntype = \"prod\"\nhost = \"a\"\nport = 1"),
        "endpoint.type",
        "prod",
    );
    assert_names(
        t("[endpoint]\nuri = \"ftp://a\""),
        "endpoint.uri",
        "ftp://a",
    );
    assert_names(
        t("[endpoint]\nuri = \"http://a:1\"\nhost = \"b\""),
        "endpoint.uri",
        "endpoint.host",
    );
    assert_names(
        t(&format!("{ep}[endpoint.retry]\nmax_attempts = 0")),
        "endpoint.retry.max_attempts",
        "0",
    );
    assert_names(
        t(&format!(
            "{ep}[endpoint.retry]\nbase_delay = \"10s\"\nmax_delay = \"1s\""
        )),
        "endpoint.retry.max_delay",
        "1s",
    );
    assert_names(
        t(&format!(
            "{ep}[endpoint.tls]\nca_cert = \"/nonexistent.pem\""
        )),
        "endpoint.tls.ca_cert",
        "/nonexistent.pem",
    );
    assert_names(t(&format!("{ep}[pool]\nsizee = 3")), "sizee", "size");
    assert_names(t("[pools]\nsize = 3"), "pools", "");
    assert_names(t(&format!("{ep}[pool]\nsize = \"five\"")), "size", "five");
    assert_names(
        t("endpoints = [\"http://a:1\", \"nope\"]"),
        "endpoints",
        "nope",
    );
    assert!(matches!(
        t("[pool\nsize = 1"),
        Err(ConfigError::Toml { .. })
    ));
}

#[test]
fn invalid_values_from_env_name_the_variable_and_value() {
    let cases = [
        ("POOL_SIZE", "0"),
        ("POOL_SIZE", "lots"),
        ("PORT", "65536"),
        ("PORT", "0"),
        ("HOST", "a b"),
        ("URI", "ftp://x"),
        ("ENDPOINTS", "bad"),
        ("ENDPOINT_TYPE", "staging"),
        ("CHECKOUT_TIMEOUT", "forever"),
        ("CONNECT_TIMEOUT", "0s"),
        ("REQUEST_TIMEOUT", "0s"),
        ("KEEPALIVE", "x"),
        ("KEEPALIVE_TIMEOUT", "0s"),
        ("PING_INTERVAL", "0s"),
        ("HEALTH_CHECK", "sometimes"),
        ("HEALTH_SERVICE", "a b"),
        ("MAX_IN_FLIGHT_PER_CHANNEL", "0"),
        ("RETRY_MAX_ATTEMPTS", "-1"),
        ("RETRY_BASE_DELAY", "soon"),
        ("RETRY_MAX_DELAY", "0s"),
        ("TLS_CA_CERT", "/nonexistent/ca.pem"),
        ("POOL_NAME", "\u{7}"),
    ];
    for (i, (suffix, value)) in cases.iter().enumerate() {
        let prefix = format!("GPTEST_BAD{i}");
        let var = format!("{prefix}_{suffix}");
        std::env::set_var(&var, value);
        assert_names(
            PoolConfig::from_env(&prefix),
            &var,
            value.trim_matches('\u{7}'),
        );
        std::env::remove_var(&var);
    }
}

#[test]
fn env_round_trip_reads_every_setting() {
    let vars = [
        ("ENDPOINT_TYPE", "test"),
        ("HOST", "10.0.0.7"),
        ("PORT", "7000"),
        ("POOL_NAME", "env-pool"),
        ("POOL_SIZE", "9"),
        ("CHECKOUT_TIMEOUT", "3s"),
        ("MAX_IN_FLIGHT_PER_CHANNEL", "50"),
        ("CONNECT_TIMEOUT", "750ms"),
        ("REQUEST_TIMEOUT", "20s"),
        ("KEEPALIVE", "12s"),
        ("KEEPALIVE_TIMEOUT", "4s"),
        ("PING_INTERVAL", "off"),
        ("HEALTH_CHECK", "true"),
        ("HEALTH_SERVICE", "users.v1.Users"),
        ("RETRY_MAX_ATTEMPTS", "7"),
        ("RETRY_BASE_DELAY", "100ms"),
        ("RETRY_MAX_DELAY", "2s"),
    ];
    for (k, v) in vars {
        std::env::set_var(format!("GPTEST_RT_{k}"), v);
    }
    let c = PoolConfig::from_env("GPTEST_RT").unwrap();
    assert_eq!(c.preset(), Some(Preset::Test));
    assert_eq!(c.endpoints(), vec!["http://10.0.0.7:7000".to_owned()]);
    assert_eq!(c.name(), Some("env-pool"));
    assert_eq!(c.size(), 9);
    assert_eq!(c.checkout_timeout(), Duration::from_secs(3));
    assert_eq!(c.max_in_flight_per_channel(), Some(50));
    assert_eq!(c.connect_timeout(), Duration::from_millis(750));
    assert_eq!(c.request_timeout(), Some(Duration::from_secs(20)));
    assert_eq!(c.keepalive(), Duration::from_secs(12));
    assert_eq!(c.keepalive_timeout(), Duration::from_secs(4));
    assert_eq!(c.ping_interval(), None);
    assert!(c.health_check());
    assert_eq!(c.health_service(), "users.v1.Users");
    assert_eq!(
        c.retry(),
        RetryConfig::new(7, Duration::from_millis(100), Duration::from_secs(2))
    );
    c.validate().unwrap();
    // And through TOML and back: the same configuration.
    let text = toml::to_string(&c).unwrap();
    assert_eq!(PoolConfig::from_toml_str(&text).unwrap(), c, "{text}");
}

#[test]
fn toml_round_trip_keeps_every_setting() {
    let text = r#"
        endpoints = ["https://b:2"]
        [endpoint]
        type = "production"
        uri = "https://api.example.com:443"
        [endpoint.tls]
        domain = "api.example.com"
        [endpoint.retry]
        max_attempts = 4
        base_delay = "250ms"
        max_delay = "10s"
        [pool]
        name = "users"
        size = 6
        checkout_timeout = "2s"
        max_in_flight_per_channel = 100
        drain_timeout = "5s"
        [connection]
        connect_timeout = "1s"
        request_timeout = "30s"
        keepalive = "20s"
        keepalive_timeout = "5s"
        ping_interval = "15s"
        health_check = false
        health_service = "users.v1.Users"
    "#;
    let c = PoolConfig::from_toml_str(text).unwrap();
    assert_eq!(
        c.endpoints(),
        vec![
            "https://api.example.com:443".to_owned(),
            "https://b:2".to_owned()
        ]
    );
    assert_eq!(c.size(), 6);
    assert_eq!(c.ping_interval(), Some(Duration::from_secs(15)));
    assert!(
        !c.health_check(),
        "explicit false beats the production preset"
    );
    assert_eq!(c.drain_timeout(), Duration::from_secs(5));
    let again = PoolConfig::from_toml_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(again, c);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.toml");
    std::fs::write(&path, text).unwrap();
    assert_eq!(PoolConfig::from_file(&path).unwrap(), c);
    let missing = PoolConfig::from_file(dir.path().join("missing.toml")).unwrap_err();
    assert!(missing.to_string().contains("missing.toml"), "{missing}");
}

#[test]
fn presets_set_transport_and_timings() {
    let d = PoolConfig::builder()
        .endpoint("http://a:1")
        .build()
        .unwrap();
    assert_eq!(d.size(), 5);
    assert_eq!(d.checkout_timeout(), Duration::from_secs(15));
    assert_eq!(d.keepalive(), Duration::from_secs(30));
    assert_eq!(d.keepalive_timeout(), Duration::from_secs(10));
    assert_eq!(d.ping_interval(), Some(Duration::from_secs(25)));
    assert_eq!(d.connect_timeout(), Duration::from_secs(5));
    assert_eq!(
        d.retry(),
        RetryConfig::new(3, Duration::from_secs(1), Duration::from_secs(5))
    );
    assert_eq!(d.max_in_flight_per_channel(), None);
    assert!(!d.tls_enabled() && !d.health_check());

    let p = PoolConfig::production("api.example.com", 443)
        .build()
        .unwrap();
    assert!(p.tls_enabled() && p.health_check());
    assert_eq!(
        p.endpoints(),
        vec!["https://api.example.com:443".to_owned()]
    );

    let l = PoolConfig::local("localhost", 50051).build().unwrap();
    assert!(!l.tls_enabled());
    assert_eq!(l.endpoints(), vec!["http://localhost:50051".to_owned()]);

    let t = PoolConfig::test("127.0.0.1", 1).build().unwrap();
    assert!(!t.tls_enabled() && !t.health_check());
    assert_eq!(t.ping_interval(), None);
    assert!(t.retry().base_delay < Duration::from_secs(1));
    assert_eq!(RetryConfig::default(), d.retry());
}

#[test]
fn debug_output_never_shows_key_material() {
    let certs = TestCerts::generate().unwrap();
    let key_path = certs.client.key.display().to_string();
    let config = PoolConfig::production("api", 443)
        .tls(
            TlsConfig::new()
                .ca_cert(&certs.ca.cert)
                .client_cert(&certs.client.cert)
                .client_key(&certs.client.key),
        )
        .build()
        .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(&key_path), "{debug}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn no_input_panics() {
    let inputs = [
        "",
        "=",
        "[endpoint]\nport = 1e99",
        "[[pool]]",
        "endpoints = 3",
        "\u{0}",
    ];
    for input in inputs {
        let _ = PoolConfig::from_toml_str(input);
    }
    let _ = PoolConfig::from_env("");
    let _ = PoolConfig::from_env("🙂");
}
