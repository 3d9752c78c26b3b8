//! Expand: add `POOL` and the hidden settings item to the module, items otherwise unchanged.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ItemMod;

use crate::keys::Accepts;
use crate::validate::{Setting, Settings, Value};

/// Checks that the attribute sits on an inline module (`mod m { ... }`).
pub(crate) fn inline_module(item: TokenStream) -> Result<ItemMod, syn::Error> {
    const HELP: &str = "#[grpc_pool] goes on an inline module: `pub mod users { grpc_pool::include_proto!(\"users.v1\"); }`";
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Mod(module)) if module.content.is_some() => Ok(module),
        Ok(syn::Item::Mod(module)) => Err(syn::Error::new_spanned(
            module
                .semi
                .map_or_else(|| module.ident.to_token_stream(), |s| s.to_token_stream()),
            format!(
                "{HELP}; a `mod {};` declaration has no body to add the pool to",
                module.ident
            ),
        )),
        Ok(other) => Err(syn::Error::new_spanned(item_head(&other), HELP)),
        Err(_) => Err(syn::Error::new_spanned(item, HELP)),
    }
}

/// The tokens to point at for a non-module item: its first tokens up to the body.
fn item_head(item: &syn::Item) -> TokenStream {
    match item {
        syn::Item::Fn(f) => f.sig.to_token_stream(),
        syn::Item::Struct(s) => {
            let (vis, token, ident) = (&s.vis, &s.struct_token, &s.ident);
            quote!(#vis #token #ident)
        }
        syn::Item::Enum(e) => {
            let (vis, token, ident) = (&e.vis, &e.enum_token, &e.ident);
            quote!(#vis #token #ident)
        }
        other => other.to_token_stream(),
    }
}

/// Adds `POOL` and `__GRPC_POOL_SETTINGS` at the end of `module`'s items.
pub(crate) fn expand(mut module: ItemMod, settings: &Settings) -> TokenStream {
    let pool = pool_items(settings);
    if let Some((_, items)) = &mut module.content {
        items.push(syn::Item::Verbatim(pool));
    }
    module.into_token_stream()
}

fn pool_items(s: &Settings) -> TokenStream {
    let name = &s.name;
    let calls = s.values.iter().map(|setting| {
        if let Value::JsonFile(path) = &setting.value {
            // Compiled in: the binary does not depend on the file at run time, and cargo
            // rebuilds when it changes.
            return quote!(.service_config_json(::core::include_str!(::core::concat!(
                ::core::env!("CARGO_MANIFEST_DIR"),
                "/",
                #path
            ))));
        }
        let setter = syn::Ident::new(setting.key.name, Span::call_site());
        let value = argument(setting);
        quote!(.#setter(#value))
    });
    let env = match &s.env {
        Some(env) => quote!(::core::option::Option::Some(#env)),
        None => quote!(::core::option::Option::None),
    };

    let doc = format!(
        " The named pool `{}`{}: `POOL.start(config)`, `POOL.connect(endpoint)`{}, or \
         `PooledXClient::connect(endpoint)` start it; `POOL.get()` returns it while it runs.",
        name.value(),
        summary(s),
        if s.env.is_some() {
            ", `POOL.start_from_env()`"
        } else {
            ""
        },
    );
    quote! {
        #[doc = #doc]
        pub static POOL: ::grpc_pool::NamedPool = ::grpc_pool::NamedPool::new(
            #name,
            ::grpc_pool::__private::PoolDefaults::new(#env, |b| b #(#calls)*),
        );
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        pub(crate) static __GRPC_POOL_SETTINGS: ::grpc_pool::__private::Settings =
            ::core::option::Option::Some(&POOL);
    }
}

/// The argument of a setting's builder call.
fn argument(setting: &Setting) -> TokenStream {
    let some = quote!(::core::option::Option::Some);
    let optional = setting.key.accepts == Accepts::DurationOrOff;
    match &setting.value {
        Value::Count(n) => {
            let n = proc_macro2::Literal::usize_suffixed(*n as usize);
            quote!(#n)
        }
        Value::Duration(d) if optional => {
            let d = duration(*d);
            quote!(#some(#d))
        }
        Value::Duration(d) => duration(*d),
        Value::Off => quote!(::core::option::Option::None),
        Value::Bool(on) => quote!(#on),
        Value::Preset(variant) => {
            let variant = syn::Ident::new(variant, Span::call_site());
            quote!(::grpc_pool::__private::Preset::#variant)
        }
        Value::Str(text) | Value::JsonFile(text) => quote!(#text),
    }
}

/// `Duration::new(secs, nanos)`: exact.
fn duration(d: Duration) -> TokenStream {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// The keys the doc of `POOL` mentions, in the order it mentions them.
const SUMMARY: &[&str] = &[
    "size",
    "max_size",
    "checkout_timeout",
    "connect_timeout",
    "keepalive",
    "preset",
    "endpoint",
];

/// ` (size 4, checkout_timeout 2s)` for the doc of `POOL`.
fn summary(s: &Settings) -> String {
    let mut parts: Vec<(usize, String)> = Vec::new();
    for setting in &s.values {
        let key = setting.key.name;
        let Some(rank) = SUMMARY.iter().position(|k| *k == key) else {
            continue;
        };
        let part = match &setting.value {
            Value::Count(max) if key == "max_size" => {
                let min = s.count("min_size").map_or(1, |(min, _)| min);
                format!("size {min}..={max}")
            }
            Value::Count(n) => format!("{key} {n}"),
            Value::Duration(d) => format!("{key} {}", humantime::format_duration(*d)),
            Value::Preset(variant) => format!("{key} {}", variant.to_lowercase()),
            Value::Str(text) | Value::JsonFile(text) => format!("{key} {text}"),
            Value::Off | Value::Bool(_) => continue,
        };
        parts.push((rank, part));
    }
    // Stable: repeated endpoints keep their order.
    parts.sort_by_key(|(rank, _)| *rank);
    if parts.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = parts.into_iter().map(|(_, part)| part).collect();
        format!(" ({})", parts.join(", "))
    }
}
