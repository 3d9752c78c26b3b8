//! grpc-pool-build end to end on small protos: the golden file, options, and error reports.

use std::path::{Path, PathBuf};

fn protos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/protos")
}

/// Runs the builder into a fresh directory and returns the contents of `<package>.rs`.
fn generate(builder: grpc_pool_build::Builder, proto: &str, package: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    builder
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[protos().join(proto)], &[protos()])
        .expect("generation succeeds");
    std::fs::read_to_string(dir.path().join(format!("{package}.rs"))).expect("package file")
}

fn generate_err(proto: &str) -> std::io::Error {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = grpc_pool_build::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[protos().join(proto)], &[protos()])
        .expect_err("generation fails");
    eprintln!("{proto}: {err:?}");
    err
}

/// The default retry policy of the golden file's idempotent methods.
fn idempotent_policy() -> grpc_pool_build::RetryPolicy {
    grpc_pool_build::RetryPolicy::new(3).initial_backoff(std::time::Duration::from_millis(50))
}

/// The whole generated file for `greeter.proto` (messages, tonic client and server, pooled
/// client, with a default retry policy for its idempotent `Lookup`) is pinned in
/// `tests/golden/golden.v1.rs`. `UPDATE_GOLDEN=1` rewrites it; review the diff.
#[test]
fn generated_file_matches_golden() {
    let generated = generate(
        grpc_pool_build::configure().retry_idempotent(idempotent_policy()),
        "greeter.proto",
        "golden.v1",
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/golden.v1.rs");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &generated).expect("write golden");
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file (UPDATE_GOLDEN=1 creates it)");
    assert!(
        generated == expected,
        "generated code differs from {}; rerun with UPDATE_GOLDEN=1 and review the diff",
        golden.display()
    );
}

#[test]
fn generated_file_has_one_fallback_import_and_pooled_client() {
    let generated = generate(grpc_pool_build::configure(), "greeter.proto", "golden.v1");
    assert_eq!(
        generated
            .matches("use ::grpc_pool::__private::fallback::*;")
            .count(),
        1
    );
    assert!(generated.contains("pub struct PooledGreeterClient"));
    assert!(generated.contains("pub mod greeter_client"));
    assert!(generated.contains("pub mod greeter_server"));
    assert!(
        generated.contains("pub async fn r#type("),
        "keyword rpc is a raw identifier"
    );
    assert!(
        generated.contains("\"golden.v1.Greeter\""),
        "default pool name is the service name"
    );
}

#[test]
fn doc_comments_carry_over_to_pooled_client() {
    let generated = generate(grpc_pool_build::configure(), "greeter.proto", "golden.v1");
    assert!(
        generated.contains("/// Says hello.\n///\n/// Pooled client for `golden.v1.Greeter`"),
        "{generated}"
    );
    assert!(generated.contains("/// Greets one person.\n    ///\n    /// Unary"));
}

#[test]
fn build_pooled_client_false_leaves_tonic_output_only() {
    let generated = generate(
        grpc_pool_build::configure().build_pooled_client(false),
        "greeter.proto",
        "golden.v1",
    );
    assert!(!generated.contains("PooledGreeterClient"));
    assert!(!generated.contains("grpc_pool"));
    assert!(generated.contains("pub mod greeter_client"));
}

#[test]
fn build_client_false_also_drops_the_pooled_client() {
    let generated = generate(
        grpc_pool_build::configure().build_client(false),
        "greeter.proto",
        "golden.v1",
    );
    assert!(!generated.contains("PooledGreeterClient"));
    assert!(!generated.contains("greeter_client"));
    assert!(generated.contains("pub mod greeter_server"));
}

#[test]
fn build_server_false_keeps_both_clients() {
    let generated = generate(
        grpc_pool_build::configure().build_server(false),
        "greeter.proto",
        "golden.v1",
    );
    assert!(generated.contains("PooledGreeterClient"));
    assert!(generated.contains("pub mod greeter_client"));
    assert!(!generated.contains("greeter_server"));
}

#[test]
fn type_attribute_reaches_messages() {
    let generated = generate(
        grpc_pool_build::configure()
            .type_attribute(".golden.v1.HelloRequest", "#[derive(Eq, Hash)]"),
        "greeter.proto",
        "golden.v1",
    );
    assert!(generated.contains("#[derive(Eq, Hash)]"));
}

#[test]
fn file_descriptor_set_is_written_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fds = dir.path().join("fds.bin");
    grpc_pool_build::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .file_descriptor_set_path(&fds)
        .compile_protos(&["greeter.proto"], &[protos()])
        .expect("generation succeeds");
    assert!(std::fs::metadata(&fds).expect("fds written").len() > 100);
}

#[test]
fn missing_file_is_not_found_error_naming_it() {
    let err = generate_err("nope.proto");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("nope.proto"), "{err}");
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let err = generate_err("syntax_error.proto");
    let text = err.to_string();
    let path = protos().join("syntax_error.proto").display().to_string();
    assert!(text.starts_with(&format!("{path}:6:3: ")), "{text}");
    assert!(text.contains("expected"), "{text}");
    // Build scripts print errors with `{:?}`: it must be as readable.
    assert!(
        format!("{err:?}").contains(&format!("{path}:6:3: ")),
        "{err:?}"
    );
}

#[test]
fn unknown_import_names_file_line_and_import() {
    let text = generate_err("unknown_import.proto").to_string();
    assert!(text.contains("unknown_import.proto:4:1: "), "{text}");
    assert!(text.contains("does/not/exist.proto"), "{text}");
}

#[test]
fn unknown_type_names_file_line_and_type() {
    let text = generate_err("unknown_type.proto").to_string();
    assert!(text.contains("unknown_type.proto:5:3: "), "{text}");
    assert!(text.contains("NoSuchType"), "{text}");
}

#[test]
fn rpc_named_like_a_client_method_is_a_clear_error() {
    let err = generate_err("reserved_name.proto");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(
        text.contains("rpc `bad.v1.S.Pool` would become method `pool`"),
        "{text}"
    );
}

#[test]
fn missing_out_dir_is_an_error_not_a_panic() {
    if std::env::var_os("OUT_DIR").is_some() {
        return; // only meaningful outside a build script
    }
    let err = grpc_pool_build::configure()
        .emit_rerun_if_changed(false)
        .compile_protos(&["greeter.proto"], &[protos()])
        .expect_err("no OUT_DIR");
    assert!(err.to_string().contains("OUT_DIR"), "{err}");
}

/// Only methods the .proto marks idempotent get the default policy, and only when one is
/// configured; every method's docs state the policy in effect.
#[test]
fn idempotent_methods_get_the_default_retry_policy_and_docs_say_so() {
    let with = generate(
        grpc_pool_build::configure().retry_idempotent(idempotent_policy()),
        "greeter.proto",
        "golden.v1",
    );
    assert_eq!(with.matches("static DEFAULT_POLICY").count(), 1, "{with}");
    assert!(with.contains(
        r#"{\"backoffMultiplier\":2.0,\"initialBackoff\":\"0.05s\",\"maxAttempts\":3,\"maxBackoff\":\"1s\",\"retryableStatusCodes\":[\"UNAVAILABLE\"]}"#
    ));
    assert!(with.contains(
        "Marked `idempotency_level = NO_SIDE_EFFECTS` in its .proto, so retried by default: up to \
         3 attempts on UNAVAILABLE, backoff 0.05s doubling up to 1s"
    ));
    let without = generate(grpc_pool_build::configure(), "greeter.proto", "golden.v1");
    assert!(!without.contains("DEFAULT_POLICY"));
    assert!(without.contains("(no default retry policy was configured for such methods)"));
}

/// A service config given to the build is described in the docs of the methods it covers.
#[test]
fn the_build_service_config_is_stated_in_method_docs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("svc.json");
    std::fs::write(
        &path,
        r#"{"methodConfig": [{"name": [{"service": "golden.v1.Greeter", "method": "SayHello"}],
            "timeout": "0.2s",
            "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "0.1s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
    )
    .unwrap();
    let generated = generate(
        grpc_pool_build::configure().service_config(&path),
        "greeter.proto",
        "golden.v1",
    );
    assert!(
        generated.contains("timeout 0.2s, retryPolicy up to 4 attempts on UNAVAILABLE"),
        "{generated}"
    );
}

#[test]
fn a_bad_default_policy_fails_the_build_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = grpc_pool_build::configure()
        .retry_idempotent(grpc_pool_build::RetryPolicy::new(9))
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[protos().join("greeter.proto")], &[protos()])
        .expect_err("9 attempts is over gRPC's 5");
    assert_eq!(
        err.to_string(),
        "retry_idempotent: max_attempts must be from 2 (the first attempt counts) to 5 (got 9)"
    );
}
