//! Expand: add `POOL` and the hidden settings item to the module, items otherwise unchanged.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::ItemMod;

use crate::validate::{Preset, Settings};

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
    let some = quote!(::core::option::Option::Some);
    let mut fields = Vec::new();
    for (field, value) in [
        ("size", s.size),
        ("min_size", s.min_size),
        ("max_size", s.max_size),
    ] {
        if let Some(value) = value {
            let field = syn::Ident::new(field, proc_macro2::Span::call_site());
            fields.push(quote!(#field: #some(#value)));
        }
    }
    match s.max_connection_age {
        Some(Some(age)) => {
            let age = duration(age);
            fields.push(quote!(max_connection_age: #some(#some(#age))));
        }
        Some(None) => {
            fields.push(quote!(max_connection_age: #some(::core::option::Option::None)));
        }
        None => {}
    }
    for (field, value) in [
        ("checkout_timeout", s.checkout_timeout),
        ("connect_timeout", s.connect_timeout),
        ("keepalive", s.keepalive),
    ] {
        if let Some(value) = value {
            let field = syn::Ident::new(field, proc_macro2::Span::call_site());
            let value = duration(value);
            fields.push(quote!(#field: #some(#value)));
        }
    }
    match s.ping_interval {
        Some(Some(every)) => {
            let every = duration(every);
            fields.push(quote!(ping_interval: #some(#some(#every))));
        }
        Some(None) => fields.push(quote!(ping_interval: #some(::core::option::Option::None))),
        None => {}
    }
    if let Some(on) = s.health_check {
        fields.push(quote!(health_check: #some(#on)));
    }
    if let Some(max) = s.max_in_flight_per_channel {
        fields.push(quote!(max_in_flight_per_channel: #some(#max)));
    }
    if let Some(preset) = s.preset {
        let variant = match preset {
            Preset::Production => quote!(Production),
            Preset::Local => quote!(Local),
            Preset::Test => quote!(Test),
        };
        fields.push(quote!(preset: #some(::grpc_pool::__private::Preset::#variant)));
    }
    if !s.endpoints.is_empty() {
        let endpoints = &s.endpoints;
        fields.push(quote!(endpoints: &[#(#endpoints),*]));
    }
    if let Some(env) = &s.env {
        fields.push(quote!(env: #some(#env)));
    }

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
            ::grpc_pool::__private::PoolDefaults {
                #(#fields,)*
                ..::grpc_pool::__private::PoolDefaults::EMPTY
            },
        );
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        pub(crate) static __GRPC_POOL_SETTINGS: ::grpc_pool::__private::Settings =
            ::core::option::Option::Some(&POOL);
    }
}

/// `Duration::new(secs, nanos)`: const, exact.
fn duration(d: Duration) -> TokenStream {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    quote!(::core::time::Duration::new(#secs, #nanos))
}

/// ` (size 4, checkout_timeout 2s)` for the doc of `POOL`.
fn summary(s: &Settings) -> String {
    let mut parts = Vec::new();
    if let Some(size) = s.size {
        parts.push(format!("size {size}"));
    }
    if let Some(max) = s.max_size {
        parts.push(format!("size {}..={max}", s.min_size.unwrap_or(1)));
    }
    for (key, value) in [
        ("checkout_timeout", s.checkout_timeout),
        ("connect_timeout", s.connect_timeout),
        ("keepalive", s.keepalive),
    ] {
        if let Some(value) = value {
            parts.push(format!("{key} {}", humantime::format_duration(value)));
        }
    }
    if let Some(preset) = s.preset {
        parts.push(format!("preset {preset:?}").to_lowercase());
    }
    for endpoint in &s.endpoints {
        parts.push(format!("endpoint {endpoint}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}
