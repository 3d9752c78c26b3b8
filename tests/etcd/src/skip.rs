//! What a test does when the server it needs is not installed: skip loudly, or fail under CI.

use std::io::Write;

/// Reports that `test` cannot run because `missing` is absent.
///
/// With `CI=true` this panics with the reason (CI installs every server; a missing one is a
/// broken setup, not a skip). Otherwise it prints a banner and the caller returns early.
///
/// The banner goes straight to the process's stderr, past libtest's output capture, so a plain
/// `cargo test` shows it too.
pub fn unavailable(test: &str, missing: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {missing} (CI=true: the interop servers must be installed; run scripts/install-deps.sh)");
    }
    let line = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n{line}\n!! SKIPPED {test}: {missing}\n!! install with scripts/install-deps.sh (with CI=true this fails)\n{line}"
    );
}

/// Reports that the tests of `file` cannot run because etcd's protos were missing when this
/// crate was built (no `cfg(etcd_protos)`, so none of the generated clients exist): skips
/// loudly, or panics with `CI=true`, as [`unavailable`].
pub fn protos_missing(file: &str) {
    unavailable(
        &format!("every test in {file}"),
        "etcd's v3 API protos (rpc.proto, kv.proto, auth.proto of Debian's golang-etcd-server-dev) \
         were not found when etcd-tests was built\n!! (looked in $GRPC_POOL_ETCD_PROTO_ROOT, \
         /usr/share/gocode/src/go.etcd.io/etcd and <repo>/.deps/golang-etcd-server-dev/...)",
    );
}
