//! Validate: turn parsed [`Args`] into [`Settings`], collecting every error (spanned).

use std::time::Duration;

use proc_macro2::Span;
use syn::{Lit, LitStr};

use crate::parse::{Arg, Args, Key};

/// Compile-time-checked defaults of one named pool.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) name: LitStr,
    pub(crate) size: Option<usize>,
    pub(crate) checkout_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) keepalive: Option<Duration>,
    /// `Some(None)` is `"off"`.
    pub(crate) ping_interval: Option<Option<Duration>>,
    pub(crate) health_check: Option<bool>,
    pub(crate) max_in_flight_per_channel: Option<usize>,
    pub(crate) preset: Option<Preset>,
    pub(crate) endpoints: Vec<String>,
    pub(crate) env: Option<String>,
    pub(crate) min_size: Option<usize>,
    pub(crate) max_size: Option<usize>,
    /// `Some(None)` is `"off"`.
    pub(crate) max_connection_age: Option<Option<Duration>>,
}

impl Settings {
    /// Settings with only a name: what the module gets when the attribute has errors, so the
    /// user sees those errors and not "cannot find `POOL`" ones as well.
    pub(crate) fn fallback(name: LitStr) -> Self {
        Settings {
            name,
            size: None,
            checkout_timeout: None,
            connect_timeout: None,
            keepalive: None,
            ping_interval: None,
            health_check: None,
            max_in_flight_per_channel: None,
            preset: None,
            endpoints: Vec::new(),
            env: None,
            min_size: None,
            max_size: None,
            max_connection_age: None,
        }
    }
}

/// `preset = "..."`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Preset {
    Production,
    Local,
    Test,
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
    let mut seen: Vec<Key> = Vec::new();
    let mut settings = Settings::fallback(LitStr::new("", Span::call_site()));
    let mut name = None;

    for arg in &args.args {
        if arg.key != Key::Endpoint && seen.contains(&arg.key) {
            errors.push(syn::Error::new(
                arg.key_span,
                format!("`{}` set more than once", arg.key.as_str()),
            ));
            continue;
        }
        seen.push(arg.key);
        if let Err(err) = apply(arg, &mut settings, &mut name) {
            errors.push(err);
        }
    }

    if let Err(err) = check_sizes(&args, &settings) {
        errors.push(err);
    }

    match (&name, errors.0) {
        (Some(name), None) => {
            settings.name = name.clone();
            Ok(settings)
        }
        (None, None) if !seen.contains(&Key::Name) => Err((
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

fn apply(arg: &Arg, settings: &mut Settings, name: &mut Option<LitStr>) -> syn::Result<()> {
    match arg.key {
        Key::Name => {
            let lit = string(arg)?;
            if lit.value().trim().is_empty() {
                return Err(syn::Error::new(lit.span(), "`name` must not be empty"));
            }
            *name = Some(lit);
        }
        Key::Size => settings.size = Some(positive_int(arg)?),
        Key::MinSize => settings.min_size = Some(positive_int(arg)?),
        Key::MaxSize => settings.max_size = Some(positive_int(arg)?),
        Key::MaxConnectionAge => {
            let lit = string(arg)?;
            settings.max_connection_age = Some(if lit.value() == "off" {
                None
            } else {
                let age = duration(arg)?;
                if age < Duration::from_millis(100) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "`max_connection_age` must be at least 100ms (got {:?})",
                            lit.value()
                        ),
                    ));
                }
                Some(age)
            });
        }
        Key::MaxInFlightPerChannel => settings.max_in_flight_per_channel = Some(positive_int(arg)?),
        Key::CheckoutTimeout => settings.checkout_timeout = Some(duration(arg)?),
        Key::ConnectTimeout => settings.connect_timeout = Some(duration(arg)?),
        Key::Keepalive => settings.keepalive = Some(duration(arg)?),
        Key::PingInterval => {
            let lit = string(arg)?;
            settings.ping_interval = Some(if lit.value() == "off" {
                None
            } else {
                Some(duration(arg)?)
            });
        }
        Key::HealthCheck => match &arg.value {
            Lit::Bool(b) => settings.health_check = Some(b.value),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("expected {}", arg.key.expected()),
                ))
            }
        },
        Key::Preset => {
            let lit = string(arg)?;
            settings.preset = Some(match lit.value().as_str() {
                "production" => Preset::Production,
                "local" => Preset::Local,
                "test" => Preset::Test,
                other => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                        "unknown preset `{other}`: expected \"production\", \"local\" or \"test\""
                    ),
                    ))
                }
            });
        }
        Key::Endpoint => {
            let lit = string(arg)?;
            check_endpoint(&lit)?;
            settings.endpoints.push(lit.value());
        }
        Key::Env => {
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
                         (letters, digits, `_`; got {:?})",
                        prefix
                    ),
                ));
            }
            settings.env = Some(prefix);
        }
    }
    Ok(())
}

/// `min_size` needs `max_size`, `min_size <= max_size`, and `size` within them.
fn check_sizes(args: &Args, s: &Settings) -> syn::Result<()> {
    let span = |key: Key| {
        args.args
            .iter()
            .find(|a| a.key == key)
            .map_or_else(Span::call_site, |a| a.value.span())
    };
    match (s.min_size, s.max_size) {
        (Some(_), None) => {
            return Err(syn::Error::new(
                span(Key::MinSize),
                "`min_size` needs `max_size`: an elastic pool has both bounds, e.g. `min_size = 2, max_size = 16`",
            ))
        }
        (Some(min), Some(max)) if min > max => {
            return Err(syn::Error::new(
                span(Key::MinSize),
                format!("`min_size` ({min}) must be at most `max_size` ({max})"),
            ))
        }
        _ => {}
    }
    if let (Some(size), Some(max)) = (s.size, s.max_size) {
        let min = s.min_size.unwrap_or(1);
        if size < min || size > max {
            return Err(syn::Error::new(
                span(Key::Size),
                format!("`size` ({size}) must be between `min_size` ({min}) and `max_size` ({max}) in an elastic pool"),
            ));
        }
    }
    Ok(())
}

fn string(arg: &Arg) -> syn::Result<LitStr> {
    match &arg.value {
        Lit::Str(s) => Ok(s.clone()),
        other => Err(syn::Error::new(
            other.span(),
            format!("expected {}", arg.key.expected()),
        )),
    }
}

fn positive_int(arg: &Arg) -> syn::Result<usize> {
    let key = arg.key.as_str();
    let Lit::Int(int) = &arg.value else {
        return Err(syn::Error::new(
            arg.value.span(),
            format!("expected {}", arg.key.expected()),
        ));
    };
    let value = int.base10_parse::<usize>().map_err(|_| {
        syn::Error::new(
            int.span(),
            format!(
                "`{key}` must be a positive integer (got {})",
                int.base10_digits()
            ),
        )
    })?;
    if value == 0 {
        return Err(syn::Error::new(
            int.span(),
            format!("`{key}` must be at least 1 (got 0)"),
        ));
    }
    Ok(value)
}

fn duration(arg: &Arg) -> syn::Result<Duration> {
    let key = arg.key.as_str();
    let Lit::Str(lit) = &arg.value else {
        return Err(syn::Error::new(
            arg.value.span(),
            format!("expected {}", arg.key.expected()),
        ));
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
    Ok(value)
}

fn check_endpoint(lit: &LitStr) -> syn::Result<()> {
    let text = lit.value();
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
