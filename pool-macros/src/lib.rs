//! The `#[grpc_pool]` attribute. Use it through the `grpc-pool` crate as
//! `#[grpc_pool::grpc_pool(...)]`; its documentation lives there.
//!
//! Split as parse (keys) -> validate (values, spanned errors) -> expand (`POOL` and the hidden
//! settings item read by generated `PooledXClient::connect`). The keys are one table (`keys`);
//! their values are checked against the runtime's own rules (`rules`, the runtime's file).

mod expand;
mod keys;
mod parse;
// A symlink to the runtime's table of settings, so `cargo package` ships a copy.
mod rules;
mod validate;

use proc_macro::TokenStream;

/// Turns an inline module into the home of a named pool: adds
/// `pub static POOL: grpc_pool::NamedPool` with the given defaults, checked at compile time.
///
/// Keys: `name` (required), `size`, `checkout_timeout`, `connect_timeout`, `keepalive`,
/// `keepalive_while_idle`, `reconnect_probe_interval`, `ping_interval` (a duration or
/// `"off"`), `health_check`, `max_in_flight_per_channel`, `preset` (`"production"`,
/// `"local"`, `"test"`), `endpoint` (repeatable), `env`, `min_size` and `max_size` (elastic),
/// `max_connection_age` (a duration or `"off"`), `wait_for_ready`.
///
/// Every value is checked against the bound the runtime applies to the setting it maps to
/// (e.g. `size` at most 1024, `checkout_timeout` at most 1h), so a value the runtime would
/// reject is a compile error at that value.
#[proc_macro_attribute]
pub fn grpc_pool(args: TokenStream, item: TokenStream) -> TokenStream {
    attribute(args.into(), item.into()).into()
}

fn attribute(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let module = match expand::inline_module(item.clone()) {
        Ok(module) => module,
        Err(err) => {
            // Not a module: the error, and the item as written.
            let err = err.to_compile_error();
            return quote::quote!(#err #item);
        }
    };
    let args = match syn::parse2::<parse::Args>(args) {
        Ok(args) => args,
        Err(err) => return with_error(err, module, None),
    };
    match validate::validate(args) {
        Ok(settings) => expand::expand(module, &settings),
        Err((err, name)) => with_error(err, module, name),
    }
}

/// The errors plus the module with a `POOL` of library defaults, so uses of `POOL` elsewhere do
/// not add a second wave of errors.
fn with_error(
    err: syn::Error,
    module: syn::ItemMod,
    name: Option<syn::LitStr>,
) -> proc_macro2::TokenStream {
    let name = name.unwrap_or_else(|| syn::LitStr::new("invalid", proc_macro2::Span::call_site()));
    let module = expand::expand(module, &validate::Settings::fallback(name));
    let err = err.to_compile_error();
    quote::quote!(#err #module)
}

#[cfg(test)]
mod tests {
    use super::attribute;
    use quote::quote;

    fn expand(args: proc_macro2::TokenStream) -> String {
        attribute(
            args,
            quote!(
                pub mod users {
                    pub struct Existing;
                }
            ),
        )
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
    }

    #[test]
    fn expands_to_pool_with_defaults_and_hidden_settings() {
        let out = expand(quote!(
            name = "users",
            size = 5,
            checkout_timeout = "2s",
            ping_interval = "off"
        ));
        assert!(out.starts_with("pubmodusers{pubstructExisting;"), "{out}");
        assert!(out.contains("pubstaticPOOL:::grpc_pool::NamedPool=::grpc_pool::NamedPool::new(\"users\",::grpc_pool::__private::PoolDefaults::new(::core::option::Option::None,|b|b.size(5usize).checkout_timeout(::core::time::Duration::new(2u64,0u32)).ping_interval(::core::option::Option::None)),);"), "{out}");
        assert!(out.contains("pub(crate)static__GRPC_POOL_SETTINGS:::grpc_pool::__private::Settings=::core::option::Option::Some(&POOL);"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn repeated_endpoint_collects_all_backends() {
        let out = expand(quote!(
            name = "u",
            endpoint = "http://a:1",
            endpoint = "https://b:2",
            preset = "local",
            env = "USERS"
        ));
        assert!(
            out.contains(".endpoint(\"http://a:1\").endpoint(\"https://b:2\")"),
            "{out}"
        );
        assert!(
            out.contains(".preset(::grpc_pool::__private::Preset::Local)"),
            "{out}"
        );
        assert!(
            out.contains("PoolDefaults::new(::core::option::Option::Some(\"USERS\"),"),
            "{out}"
        );
    }

    #[test]
    fn several_errors_are_reported_together_and_module_still_gets_pool() {
        let out = expand(quote!(name = "u", size = 0, keepalive = "soon"));
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
        assert!(out.contains("pubstaticPOOL"), "{out}");
    }

    #[test]
    fn doc_of_pool_summarises_in_a_fixed_order() {
        let out = expand(quote!(
            name = "u",
            keepalive = "30s",
            endpoint = "http://a:1",
            max_size = 8,
            min_size = 2
        ));
        assert!(
            out.contains("Thenamedpool`u`(size2..=8,keepalive30s,endpointhttp://a:1):"),
            "{out}"
        );
    }

    #[test]
    fn values_the_runtime_rejects_do_not_compile() {
        for (args, message) in [
            (
                quote!(name = "u", size = 5000),
                "`size`mustbeatmost1024(got5000)",
            ),
            (
                quote!(name = "u", max_size = 2000),
                "`max_size`mustbeatmost1024(got2000)",
            ),
            (
                quote!(name = "u", connect_timeout = "61m"),
                "`connect_timeout`mustbeatmost1h(got\\\"61m\\\")",
            ),
            (
                quote!(name = "u", ping_interval = "25h"),
                "`ping_interval`mustbeatmost24h(got\\\"25h\\\")",
            ),
        ] {
            let out = expand(args);
            assert!(out.contains(message), "{out}");
        }
    }

    #[test]
    fn keepalive_while_idle_is_a_builder_call() {
        let out = expand(quote!(name = "u", keepalive_while_idle = false));
        assert!(out.contains("|b|b.keepalive_while_idle(false)"), "{out}");
        let out = expand(quote!(name = "u", keepalive_while_idle = "no"));
        assert!(out.contains("compile_error"), "{out}");
    }

    #[test]
    fn sub_millisecond_durations_are_exact() {
        let out = expand(quote!(name = "u", connect_timeout = "1s 500us"));
        assert!(out.contains("Duration::new(1u64,500000u32)"), "{out}");
    }
}
