//! Parse: `#[grpc_pool(key = literal, ...)]` into a list of [`Arg`]s, keys checked, values not.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Lit, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(size);
    syn::custom_keyword!(checkout_timeout);
    syn::custom_keyword!(connect_timeout);
    syn::custom_keyword!(keepalive);
    syn::custom_keyword!(ping_interval);
    syn::custom_keyword!(health_check);
    syn::custom_keyword!(max_in_flight_per_channel);
    syn::custom_keyword!(preset);
    syn::custom_keyword!(endpoint);
    syn::custom_keyword!(env);
    syn::custom_keyword!(min_size);
    syn::custom_keyword!(max_size);
    syn::custom_keyword!(max_connection_age);
}

/// The attribute's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Name,
    Size,
    CheckoutTimeout,
    ConnectTimeout,
    Keepalive,
    PingInterval,
    HealthCheck,
    MaxInFlightPerChannel,
    Preset,
    Endpoint,
    Env,
    MinSize,
    MaxSize,
    MaxConnectionAge,
}

impl Key {
    pub(crate) const ALL: [Key; 14] = [
        Key::Name,
        Key::Size,
        Key::CheckoutTimeout,
        Key::ConnectTimeout,
        Key::Keepalive,
        Key::PingInterval,
        Key::HealthCheck,
        Key::MaxInFlightPerChannel,
        Key::Preset,
        Key::Endpoint,
        Key::Env,
        Key::MinSize,
        Key::MaxSize,
        Key::MaxConnectionAge,
    ];

    /// What the value should look like, for "expected ..." messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Key::Name => "a string literal for `name`, e.g. `name = \"users\"`",
            Key::Size => "an integer literal for `size`, e.g. `size = 4`",
            Key::MaxInFlightPerChannel => {
                "an integer literal for `max_in_flight_per_channel`, e.g. `max_in_flight_per_channel = 100`"
            }
            Key::CheckoutTimeout => "a duration string for `checkout_timeout`, e.g. `checkout_timeout = \"2s\"`",
            Key::ConnectTimeout => "a duration string for `connect_timeout`, e.g. `connect_timeout = \"5s\"`",
            Key::Keepalive => "a duration string for `keepalive`, e.g. `keepalive = \"30s\"`",
            Key::PingInterval => {
                "a duration string or \"off\" for `ping_interval`, e.g. `ping_interval = \"25s\"`"
            }
            Key::HealthCheck => "`true` or `false` for `health_check`",
            Key::Preset => "a string literal for `preset`: \"production\", \"local\" or \"test\"",
            Key::Endpoint => "a URI string for `endpoint`, e.g. `endpoint = \"http://127.0.0.1:50051\"`",
            Key::Env => "a string literal for `env`, e.g. `env = \"USERS\"`",
            Key::MinSize => "an integer literal for `min_size`, e.g. `min_size = 2`",
            Key::MaxSize => "an integer literal for `max_size`, e.g. `max_size = 16`",
            Key::MaxConnectionAge => {
                "a duration string or \"off\" for `max_connection_age`, e.g. `max_connection_age = \"30m\"`"
            }
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Size => "size",
            Key::CheckoutTimeout => "checkout_timeout",
            Key::ConnectTimeout => "connect_timeout",
            Key::Keepalive => "keepalive",
            Key::PingInterval => "ping_interval",
            Key::HealthCheck => "health_check",
            Key::MaxInFlightPerChannel => "max_in_flight_per_channel",
            Key::Preset => "preset",
            Key::Endpoint => "endpoint",
            Key::Env => "env",
            Key::MinSize => "min_size",
            Key::MaxSize => "max_size",
            Key::MaxConnectionAge => "max_connection_age",
        }
    }
}

/// One `key = literal` pair.
#[derive(Debug)]
pub(crate) struct Arg {
    pub(crate) key: Key,
    pub(crate) key_span: Span,
    pub(crate) value: Lit,
}

/// All pairs, in source order (duplicates are kept for `validate` to report).
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) args: Vec<Arg>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Vec::new();
        while !input.is_empty() {
            args.push(input.parse()?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Args { args })
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        macro_rules! keys {
            ($($kw:ident => $key:ident),* $(,)?) => {
                $(
                    if lookahead.peek(kw::$kw) {
                        let token = input.parse::<kw::$kw>()?;
                        (Key::$key, token.span)
                    } else
                )* {
                    return Err(unknown_key(input, lookahead.error()));
                }
            };
        }
        let (key, key_span) = keys! {
            name => Name,
            size => Size,
            checkout_timeout => CheckoutTimeout,
            connect_timeout => ConnectTimeout,
            keepalive => Keepalive,
            ping_interval => PingInterval,
            health_check => HealthCheck,
            max_in_flight_per_channel => MaxInFlightPerChannel,
            preset => Preset,
            endpoint => Endpoint,
            env => Env,
            min_size => MinSize,
            max_size => MaxSize,
            max_connection_age => MaxConnectionAge,
        };
        input.parse::<Token![=]>()?;
        let value = input
            .parse::<Lit>()
            .map_err(|err| syn::Error::new(err.span(), format!("expected {}", key.expected())))?;
        Ok(Arg {
            key,
            key_span,
            value,
        })
    }
}

/// "unknown key `sise`; expected one of: ..." when the key is an identifier, syn's lookahead
/// error ("expected one of: ...") otherwise.
fn unknown_key(input: ParseStream<'_>, lookahead_error: syn::Error) -> syn::Error {
    match input.fork().call(syn::Ident::parse_any) {
        Ok(ident) => {
            let valid: Vec<String> = Key::ALL
                .iter()
                .map(|k| format!("`{}`", k.as_str()))
                .collect();
            syn::Error::new(
                ident.span(),
                format!(
                    "unknown key `{ident}`; expected one of: {}",
                    valid.join(", ")
                ),
            )
        }
        Err(_) => lookahead_error,
    }
}
