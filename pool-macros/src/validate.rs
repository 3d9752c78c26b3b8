//! Validate: turn parsed [`Args`] into [`Settings`], collecting every error (spanned). Counts
//! and durations are checked against the rule of the runtime field they set (`rules`), so no
//! value the runtime would reject compiles.

use std::time::Duration;

use proc_macro2::Span;
use syn::{Lit, LitStr};

use crate::keys::{Accepts, Key, Target, PRESETS, PRESET_CHOICES};
use crate::parse::{Arg, Args};
use crate::rules;

/// Compile-time-checked defaults of one named pool.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) name: LitStr,
    /// The prefix of `POOL.start_from_env()`.
    pub(crate) env: Option<String>,
    /// The values that become builder calls, in source order.
    pub(crate) values: Vec<Setting>,
}

/// One checked value and where it was written.
#[derive(Debug)]
pub(crate) struct Setting {
    pub(crate) key: &'static Key,
    pub(crate) value: Value,
    pub(crate) span: Span,
}

/// A checked value.
#[derive(Debug)]
pub(crate) enum Value {
    Count(u64),
    Duration(Duration),
    /// `"off"`.
    Off,
    Bool(bool),
    /// The `Preset` variant.
    Preset(&'static str),
    /// An endpoint URI.
    Str(String),
    /// A JSON file's path relative to the crate root, checked to exist and parse.
    JsonFile(String),
}

impl Settings {
    /// Settings with only a name: what the module gets when the attribute has errors, so the
    /// user sees those errors and not "cannot find `POOL`" ones as well.
    pub(crate) fn fallback(name: LitStr) -> Self {
        Settings {
            name,
            env: None,
            values: Vec::new(),
        }
    }

    /// The count given for the key `name`, with the span of its value.
    pub(crate) fn count(&self, name: &str) -> Option<(u64, Span)> {
        self.values.iter().find_map(|s| match s.value {
            Value::Count(n) if s.key.name == name => Some((n, s.span)),
            _ => None,
        })
    }
}

/// Collects errors so the user sees all of them at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(err),
            None => self.0 = Some(err),
        }
    }
}

/// Validates `args`. On error returns the combined errors and, when a usable `name` was given,
/// that name (for [`Settings::fallback`]).
pub(crate) fn validate(args: Args) -> Result<Settings, (syn::Error, Option<LitStr>)> {
    let mut errors = Errors::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut settings = Settings::fallback(LitStr::new("", Span::call_site()));
    let mut name = None;

    for arg in &args.args {
        if !arg.key.repeatable() && seen.contains(&arg.key.name) {
            errors.push(syn::Error::new(
                arg.key_span,
                format!("`{}` set more than once", arg.key.name),
            ));
            continue;
        }
        seen.push(arg.key.name);
        let value = match arg.key.target {
            Target::PoolName => pool_name(arg).map(|lit| name = Some(lit)),
            Target::EnvPrefix => env_prefix(arg).map(|prefix| settings.env = Some(prefix)),
            Target::Builder { .. } => value(arg).map(|value| {
                settings.values.push(Setting {
                    key: arg.key,
                    value,
                    span: arg.value.span(),
                })
            }),
        };
        if let Err(err) = value {
            errors.push(err);
        }
    }

    if let Err(err) = check_sizes(&settings) {
        errors.push(err);
    }

    match (&name, errors.0) {
        (Some(name), None) => {
            settings.name = name.clone();
            Ok(settings)
        }
        (None, None) if !seen.contains(&"name") => Err((
            syn::Error::new(
                Span::call_site(),
                "missing `name`: the pool needs one, e.g. #[grpc_pool(name = \"users\")]",
            ),
            None,
        )),
        (_, Some(err)) => Err((err, name)),
        // `name` was given but invalid: its error is in `errors`, so this is unreachable in
        // practice; keep a message anyway rather than panicking.
        (None, None) => Err((syn::Error::new(Span::call_site(), "invalid `name`"), None)),
    }
}

fn pool_name(arg: &Arg) -> syn::Result<LitStr> {
    let lit = string(arg)?;
    if lit.value().trim().is_empty() {
        return Err(syn::Error::new(lit.span(), "`name` must not be empty"));
    }
    Ok(lit)
}

fn env_prefix(arg: &Arg) -> syn::Result<String> {
    let lit = string(arg)?;
    let prefix = lit.value();
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || prefix.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`env` must be an environment variable prefix like \"USERS\" \
                 (letters, digits, `_`; got {prefix:?})"
            ),
        ));
    }
    Ok(prefix)
}

/// The value of a key that becomes a builder call.
fn value(arg: &Arg) -> syn::Result<Value> {
    match arg.key.accepts {
        Accepts::Count => count(arg).map(Value::Count),
        Accepts::Duration => duration(arg).map(Value::Duration),
        Accepts::DurationOrOff => {
            if string(arg)?.value() == "off" {
                Ok(Value::Off)
            } else {
                duration(arg).map(Value::Duration)
            }
        }
        Accepts::Bool => match &arg.value {
            Lit::Bool(b) => Ok(Value::Bool(b.value)),
            other => Err(expected(other.span(), arg.key)),
        },
        Accepts::Preset => {
            let lit = string(arg)?;
            let text = lit.value();
            match PRESETS.iter().find(|(name, _)| *name == text) {
                Some((_, variant)) => Ok(Value::Preset(variant)),
                None => Err(syn::Error::new(
                    lit.span(),
                    format!("unknown preset `{text}`: expected {PRESET_CHOICES}"),
                )),
            }
        }
        Accepts::Endpoint => {
            let lit = string(arg)?;
            check_endpoint(&lit, arg.key.name == "endpoint")?;
            Ok(Value::Str(lit.value()))
        }
        Accepts::JsonFile => {
            let lit = string(arg)?;
            check_json_file(&lit)?;
            Ok(Value::JsonFile(lit.value()))
        }
        Accepts::Name | Accepts::EnvPrefix => unreachable!("not a builder key: {}", arg.key.name),
    }
}

/// `min_size` needs `max_size`, `min_size <= max_size`, and `size` within them.
fn check_sizes(s: &Settings) -> syn::Result<()> {
    let (min, max) = (s.count("min_size"), s.count("max_size"));
    match (min, max) {
        (Some((_, span)), None) => {
            return Err(syn::Error::new(
                span,
                "`min_size` needs `max_size`: an elastic pool has both bounds, e.g. `min_size = 2, max_size = 16`",
            ))
        }
        (Some((min, span)), Some((max, _))) if min > max => {
            return Err(syn::Error::new(
                span,
                format!("`min_size` ({min}) must be at most `max_size` ({max})"),
            ))
        }
        _ => {}
    }
    if let (Some((size, span)), Some((max, _))) = (s.count("size"), max) {
        let min = min.map_or(1, |(min, _)| min);
        if size < min || size > max {
            return Err(syn::Error::new(
                span,
                format!("`size` ({size}) must be between `min_size` ({min}) and `max_size` ({max}) in an elastic pool"),
            ));
        }
    }
    Ok(())
}

fn expected(span: Span, key: &Key) -> syn::Error {
    syn::Error::new(span, format!("expected {}", key.expected()))
}

fn string(arg: &Arg) -> syn::Result<LitStr> {
    match &arg.value {
        Lit::Str(s) => Ok(s.clone()),
        other => Err(expected(other.span(), arg.key)),
    }
}

/// An integer within the bounds of the key's runtime field.
fn count(arg: &Arg) -> syn::Result<u64> {
    let key = arg.key.name;
    let Lit::Int(int) = &arg.value else {
        return Err(expected(arg.value.span(), arg.key));
    };
    let value = int.base10_parse::<u64>().map_err(|_| {
        syn::Error::new(
            int.span(),
            format!(
                "`{key}` must be a positive integer (got {})",
                int.base10_digits()
            ),
        )
    })?;
    if let Some(kind) = arg.key.rule() {
        rules::check_count(kind, value)
            .map_err(|why| syn::Error::new(int.span(), format!("`{key}` {why} (got {value})")))?;
    }
    Ok(value)
}

/// A duration within the bounds of the key's runtime field.
fn duration(arg: &Arg) -> syn::Result<Duration> {
    let key = arg.key.name;
    let Lit::Str(lit) = &arg.value else {
        return Err(expected(arg.value.span(), arg.key));
    };
    let text = lit.value();
    let value = humantime::parse_duration(&text).map_err(|err| {
        syn::Error::new(
            lit.span(),
            format!("invalid duration {text:?} for `{key}`: {err} (expected e.g. \"250ms\", \"5s\", \"1m\")"),
        )
    })?;
    if value.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` must be longer than zero (got {text:?})"),
        ));
    }
    if let Some(kind) = arg.key.rule() {
        rules::check_duration(kind, value)
            .map_err(|why| syn::Error::new(lit.span(), format!("`{key}` {why} (got {text:?})")))?;
    }
    Ok(value)
}

/// The file exists under the crate root (`CARGO_MANIFEST_DIR`) and holds a JSON object. Its
/// fields are checked when the pool's configuration is built (errors name the JSON path).
fn check_json_file(lit: &LitStr) -> syn::Result<()> {
    let relative = lit.value();
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let path = std::path::Path::new(&root).join(&relative);
    let fail = |why: String| syn::Error::new(lit.span(), why);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        fail(format!(
            "cannot read service config {relative:?} (relative to the crate's Cargo.toml): {e}"
        ))
    })?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(fail(format!(
            "service config {relative}: must be a JSON object"
        ))),
        Err(e) => Err(fail(format!(
            "service config {relative}: invalid JSON: {e}"
        ))),
    }
}

/// An `http(s)://` URI; for `endpoint`, also `etcd:///<prefix>` (servers found in etcd).
fn check_endpoint(lit: &LitStr, etcd: bool) -> syn::Result<()> {
    let text = lit.value();
    if let (true, Some(rest)) = (etcd, text.strip_prefix("etcd://")) {
        return match rest.strip_prefix('/').map(|p| p.trim_matches('/')) {
            Some(prefix) if !prefix.is_empty() && !prefix.contains(['?', '#', ' ']) => Ok(()),
            _ => Err(syn::Error::new(
                lit.span(),
                format!("invalid etcd endpoint {text:?}: expected etcd:///<key prefix>, e.g. \"etcd:///svc/users\""),
            )),
        };
    }
    let invalid = |why: String| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid endpoint URI {text:?}: {why} (expected e.g. \"http://127.0.0.1:50051\")"
            ),
        )
    };
    let uri: http::Uri = text.parse().map_err(|err| invalid(format!("{err}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(invalid(format!(
                "scheme must be http or https, not `{other}`"
            )))
        }
        None => return Err(invalid("missing scheme (http:// or https://)".to_owned())),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("missing host".to_owned()));
    }
    Ok(())
}
