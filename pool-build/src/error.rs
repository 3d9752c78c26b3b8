//! Build errors as `std::io::Error`, with `file:line:column: message` for bad protos.

use std::fmt;
use std::io;
use std::path::Path;

use miette::Diagnostic;

/// The payload of every `io::Error` this crate returns.
///
/// Its `Debug` is its `Display`, so `fn main() -> Result<(), Box<dyn Error>>` in a build script
/// (which prints the error with `{:?}`) shows `proto/users.proto:3:9: expected ';'` rather than
/// an escaped string.
struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// An `io::Error` of `kind` carrying `message`.
pub(crate) fn build_error(kind: io::ErrorKind, message: impl Into<String>) -> io::Error {
    io::Error::new(kind, BuildError(message.into()))
}

/// Converts a protox error into an `io::Error` naming the file, line and column (1-based) of the
/// first problem, its message and, when protox has one, its hint.
///
/// protox names files relative to their include directory (`users.proto`); when the file is
/// found under one of `includes` the message shows that path (`proto/users.proto`), which is
/// what an editor or terminal can open.
pub(crate) fn proto_error(err: protox::Error, includes: &[&Path]) -> io::Error {
    let kind = if err.is_file_not_found() {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::InvalidInput
    };
    io::Error::new(kind, BuildError(describe(&err, includes)))
}

fn describe(err: &protox::Error, includes: &[&Path]) -> String {
    let location = location(err).map(|(file, position)| {
        let shown = includes
            .iter()
            .map(|include| include.join(&file))
            .find(|path| path.is_file())
            .map_or(file, |path| path.display().to_string());
        format!("{shown}{position}: ")
    });
    let mut out = format!("{}{err}", location.unwrap_or_default());
    if let Some(help) = err.help() {
        out.push_str(&format!(" (help: {help})"));
    }
    if let Some(related) = err.related() {
        for other in related {
            out.push_str(&format!("\n{}", other));
        }
    }
    out
}

/// The file and `:line:column` of the first labelled span (empty when there is no span).
fn location(err: &protox::Error) -> Option<(String, String)> {
    let file = err.file().map(str::to_owned);
    let span = err.labels().and_then(|mut labels| labels.next());
    let position = match (span, err.source_code()) {
        (Some(label), Some(source)) => source
            .read_span(label.inner(), 0, 0)
            .ok()
            .map(|contents| (contents.line() + 1, contents.column() + 1)),
        _ => None,
    };
    let position = position.map_or(String::new(), |(line, column)| format!(":{line}:{column}"));
    file.map(|file| (file, position))
}
