//! Finds etcd's v3 API protos at build time and prepares a copy that protox can parse.
//!
//! Shared by the build scripts of `etcd-tests` and of the root package (`examples/etcd.rs`)
//! through `#[path = "…/tests/etcd/etcd_protos.rs"] mod etcd_protos;`.
//!
//! The protos are not in this repository. They come from Debian's `golang-etcd-server-dev`
//! (etcd 3.4.23, the version of the `etcd-server` package the tests run against), looked up in
//! this order:
//!
//! 1. `$GRPC_POOL_ETCD_PROTO_ROOT` (the directory holding `etcdserver/`, `mvcc/` and `auth/`);
//!    set but without the protos, the build fails;
//! 2. `/usr/share/gocode/src/go.etcd.io/etcd` (the package installed);
//! 3. `<workspace>/.deps/golang-etcd-server-dev/usr/share/gocode/src/go.etcd.io/etcd` (the
//!    package unpacked there by `scripts/install-deps.sh`).
//!
//! The three files are copied to `$OUT_DIR/etcd-proto/etcd/…` (etcd's own import paths, such
//! as `etcd/mvcc/mvccpb/kv.proto`, resolve under that include directory) without the
//! `gogoproto` import and options and the `google.api.http` annotations: Go code generation and
//! grpc-gateway settings, no effect on messages or the wire format, and their imports are not
//! shipped with the package.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

/// Env var naming the directory that holds etcd's protos (overrides the lookup).
const ROOT_VAR: &str = "GRPC_POOL_ETCD_PROTO_ROOT";
/// Where the installed `golang-etcd-server-dev` package puts them.
const SYSTEM_ROOT: &str = "/usr/share/gocode/src/go.etcd.io/etcd";
/// Where `scripts/install-deps.sh` unpacks the package, under the workspace root.
const DEPS_ROOT: &str = ".deps/golang-etcd-server-dev/usr/share/gocode/src/go.etcd.io/etcd";
/// Rewritten by dpkg on every package install: watched while the protos are missing, so that
/// installing the package re-runs the build script.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// The three files, relative to the etcd root. `etcd/` + this is the path under the include
/// directory.
const PROTOS: [&str; 3] = [
    "etcdserver/etcdserverpb/rpc.proto",
    "mvcc/mvccpb/kv.proto",
    "auth/authpb/auth.proto",
];

/// The proto to compile, relative to the include directory returned by [`prepare`]; it imports
/// the other two.
pub(crate) const RPC_PROTO: &str = "etcd/etcdserver/etcdserverpb/rpc.proto";

/// A build error whose `Debug` (what cargo shows for an error returned by `main`) is the
/// plain message.
pub(crate) struct ProtoError(String);

impl fmt::Debug for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for ProtoError {}

/// Finds etcd's protos, copies them stripped into `$OUT_DIR/etcd-proto` and returns that
/// include directory; `None` (after a `cargo:warning` on how to get them) when they are not
/// found. `workspace_root` is the directory of the workspace's `Cargo.toml`; `used_by` names
/// what goes without them in the warning.
///
/// Prints the `cargo:rerun-if-*` lines: the env var, the three sources when found, else
/// dpkg's status file (`scripts/install-deps.sh` touches this file after unpacking into
/// `.deps/`, which re-runs the build scripts that include it).
///
/// # Errors
///
/// `GRPC_POOL_ETCD_PROTO_ROOT` set to a directory without the protos, unreadable files,
/// annotations the stripping missed, or I/O errors writing the copy.
pub(crate) fn prepare(workspace_root: &Path, used_by: &str) -> Result<Option<PathBuf>, ProtoError> {
    println!("cargo:rerun-if-env-changed={ROOT_VAR}");
    let Some(root) = find_root(workspace_root)? else {
        if Path::new(DPKG_STATUS).is_file() {
            println!("cargo:rerun-if-changed={DPKG_STATUS}");
        }
        println!(
            "cargo:warning=etcd's v3 API protos (Debian package golang-etcd-server-dev) not found \
             in {SYSTEM_ROOT} or {}; {used_by}. Get them with `bash scripts/install-deps.sh` \
             (or set {ROOT_VAR})",
            workspace_root.join(DEPS_ROOT).display()
        );
        return Ok(None);
    };
    let out_dir = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| ProtoError("OUT_DIR is not set (not run by cargo?)".into()))?;
    let include = out_dir.join("etcd-proto");
    for proto in PROTOS {
        let source = root.join(proto);
        println!("cargo:rerun-if-changed={}", source.display());
        let text = std::fs::read_to_string(&source)
            .map_err(|e| ProtoError(format!("reading {}: {e}", source.display())))?;
        let stripped = strip(&text);
        if stripped.contains("gogoproto") || stripped.contains("google.api") {
            return Err(ProtoError(format!(
                "{}: annotations left after stripping",
                source.display()
            )));
        }
        let copy = format!(
            "// Copied from {} by tests/etcd/etcd_protos.rs.\n\
             // Copyright The etcd Authors, Apache License 2.0.\n\
             // Changed: gogoproto imports/options and google.api.http annotations removed.\n\
             {stripped}",
            source.display()
        );
        let dest = include.join("etcd").join(proto);
        write_if_changed(&dest, &copy)
            .map_err(|e| ProtoError(format!("writing {}: {e}", dest.display())))?;
    }
    Ok(Some(include))
}

/// The first root holding all three protos; an error if `GRPC_POOL_ETCD_PROTO_ROOT` is set
/// and does not hold them.
fn find_root(workspace_root: &Path) -> Result<Option<PathBuf>, ProtoError> {
    let has_protos = |root: &Path| PROTOS.iter().all(|p| root.join(p).is_file());
    if let Some(value) = std::env::var_os(ROOT_VAR).filter(|v| !v.is_empty()) {
        let root = PathBuf::from(&value);
        if has_protos(&root) {
            return Ok(Some(root));
        }
        let missing: Vec<String> = PROTOS
            .iter()
            .map(|p| root.join(p))
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        return Err(ProtoError(format!(
            "{ROOT_VAR}={} does not hold etcd's v3 API protos (missing: {}). Point it at the \
             directory holding etcdserver/, mvcc/ and auth/ (for Debian's golang-etcd-server-dev: \
             {SYSTEM_ROOT}), or unset it to use {SYSTEM_ROOT} or <workspace>/{DEPS_ROOT} \
             (bash scripts/install-deps.sh unpacks the package there)",
            value.to_string_lossy(),
            missing.join(", ")
        )));
    }
    Ok([PathBuf::from(SYSTEM_ROOT), workspace_root.join(DEPS_ROOT)]
        .into_iter()
        .find(|root| has_protos(root)))
}

/// Writes only when the content differs, so the copy keeps its mtime across runs.
fn write_if_changed(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, content)
}

/// etcd's proto minus the gogoproto import and options and the google.api.http annotations;
/// everything else (messages, services, comments, layout) unchanged.
fn strip(text: &str) -> String {
    let text = remove_http_options(text);
    let text = close_empty_bodies(&text);
    let mut out = Vec::new();
    for line in split_lines(&text) {
        let trimmed = line.trim_start_matches(is_space);
        if trimmed.starts_with("import \"gogoproto/gogo.proto\";")
            || trimmed.starts_with("import \"google/api/annotations.proto\";")
            || is_gogoproto_file_option(trimmed)
            || line.trim_matches(is_space) == "// for grpc-gateway"
        {
            continue;
        }
        out.push(remove_gogoproto_field_options(line));
    }
    out.join("\n") + "\n"
}

/// Removes each `option (google.api.http) = { ... };` (nested braces such as
/// `additional_bindings { ... }` included), the blanks before it and the newline after it.
fn remove_http_options(text: &str) -> String {
    const MARKER: &str = "option (google.api.http) = {";
    let mut text = text.to_owned();
    while let Some(at) = text.find(MARKER) {
        let start = text[..at].trim_end_matches([' ', '\t']).len();
        let bytes = text.as_bytes();
        let (mut depth, mut i) = (1usize, at + MARKER.len());
        while depth > 0 && i < bytes.len() {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        // Unbalanced or without `;`: left in place, and the check for leftovers reports it.
        let Some(semicolon) = text[i..].find(';').filter(|_| depth == 0) else {
            break;
        };
        let mut end = i + semicolon + 1;
        if bytes.get(end) == Some(&b'\n') {
            end += 1;
        }
        text.replace_range(start..end, "");
    }
    text
}

/// `{` + blanks holding at least one line break + `}` becomes `{}` (rpc bodies emptied above).
fn close_empty_bodies(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        let after = &rest[at + 1..];
        let body = after.trim_start_matches(is_space);
        let blanks = &after[..after.len() - body.len()];
        if body.starts_with('}') && blanks.contains('\n') {
            out.push_str(&rest[..at]);
            out.push_str("{}");
            rest = &body[1..];
        } else {
            out.push_str(&rest[..=at]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `option (gogoproto.<name>) = true;` or `= false;` at the start of `line`.
fn is_gogoproto_file_option(line: &str) -> bool {
    line.strip_prefix("option (gogoproto.")
        .and_then(|rest| strip_option_name(rest)?.strip_prefix(") = "))
        .is_some_and(|value| value.starts_with("true;") || value.starts_with("false;"))
}

/// Removes every field option `[(gogoproto.<name>) = ...]` and the blanks before it.
fn remove_gogoproto_field_options(line: &str) -> String {
    const MARKER: &str = "[(gogoproto.";
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(MARKER) {
        let end = strip_option_name(&rest[at + MARKER.len()..])
            .and_then(|after| after.strip_prefix(") = "))
            .and_then(|value| value.find(']').map(|close| &value[close + 1..]));
        match end {
            Some(after) => {
                out.push_str(rest[..at].trim_end_matches(is_space));
                rest = after;
            }
            None => {
                out.push_str(&rest[..=at]);
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `rest` after a non-empty run of `[a-z_]`, if it starts with one.
fn strip_option_name(rest: &str) -> Option<&str> {
    let after = rest.trim_start_matches(|c: char| c.is_ascii_lowercase() || c == '_');
    (after.len() < rest.len()).then_some(after)
}

/// Python's `str.isspace` (what `\s` and `strip()` match): Unicode white space plus the
/// information separators U+001C..U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.splitlines()`: lines without their terminators, no empty last line.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let breaks = matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if breaks {
            lines.push(&text[start..i]);
            start = i + c.len_utf8();
            if c == '\r' && chars.peek().is_some_and(|&(_, next)| next == '\n') {
                chars.next();
                start += 1;
            }
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}
