//! Token generation of `PooledXClient` for one service: the struct, its constructors, its
//! `with_*` options and the helper that builds tonic's client for a call. The RPC methods,
//! one function per call shape, are in [`crate::methods`].
//!
//! Input is prost-build's [`Service`] (the same value tonic's generator receives), output is a
//! `TokenStream` appended after tonic's `x_client` module in the package's file. The generated
//! code names the library only through `::grpc_pool::__private` (and `::grpc_pool::Pool` in a
//! doc link) and the standard library only through `::core`, so it needs no imports. Three
//! names are relative to the package module: the message types (exactly as prost resolved
//! them), tonic's client module (a sibling module in the same file) and
//! `__GRPC_POOL_SETTINGS` (the `#[grpc_pool]` attribute's item, or the package file's fallback
//! import, see [`crate::generator`]).

use proc_macro2::TokenStream;
use prost_build::Service;
use quote::{format_ident, quote};

use crate::methods::{self, retry_bound};
use crate::policy::Policies;

/// The runtime's support module, the one path through which generated code reaches
/// `grpc_pool`.
pub(crate) fn runtime() -> TokenStream {
    quote!(::grpc_pool::__private)
}

/// The fully-qualified protobuf name of a service (`users.v1.Users`), used as the default
/// pool name and in docs.
pub(crate) fn full_service_name(service: &Service) -> String {
    if service.package.is_empty() {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    }
}

/// Name of the generated struct: `Pooled{Service}Client`.
pub(crate) fn pooled_client_name(service: &Service) -> String {
    format!("Pooled{}Client", service.name)
}

/// Generates `PooledXClient` for `service`.
///
/// Errors (as a message) when an RPC name collides with one of the client's own methods or a
/// message type is not a Rust type path.
pub(crate) fn generate(service: &Service, policies: &Policies) -> Result<TokenStream, String> {
    let full_name = full_service_name(service);
    let pooled = format_ident!("{}", pooled_client_name(service));
    let p = runtime();

    let mut rpcs = Vec::with_capacity(service.methods.len());
    for method in &service.methods {
        rpcs.push(methods::generate(service, method, &full_name, policies)?);
    }
    let docs = struct_docs(service, &full_name);
    let constructors = constructors(&full_name);
    let option_setters = option_setters();
    let tonic_client = tonic_client(service);

    Ok(quote! {
        #docs
        #[derive(Clone, Debug)]
        pub struct #pooled {
            pool: #p::Pool,
            options: #p::ClientOptions,
        }

        impl #pooled {
            #constructors
            #option_setters
            #tonic_client
            #(#rpcs)*
        }

        impl #p::PooledClient for #pooled {
            fn from_pool(pool: #p::Pool) -> Self {
                Self::new(pool)
            }
        }
    })
}

/// The struct's docs: the proto comment, then what the client does with a call.
fn struct_docs(service: &Service, full_name: &str) -> TokenStream {
    let proto_docs = doc_lines(&service.comments.leading);
    let blank = if service.comments.leading.is_empty() {
        TokenStream::new()
    } else {
        quote!(#[doc = ""])
    };
    let summary = format!(
        " Pooled client for `{full_name}`: every call runs on the least-loaded ready channel of a \
         [`Pool`](::grpc_pool::Pool)."
    );
    let retries = format!(
        " provably never saw is retried {}, each time on another connection; streams keep",
        retry_bound()
    );
    quote! {
        #proto_docs
        #blank
        #[doc = #summary]
        #[doc = ""]
        #[doc = " Cheap to clone: clones share the pool. A unary or server-streaming call the server"]
        #[doc = #retries]
        #[doc = " their channel until they end."]
    }
}

/// `new`, `connect` (through the module's pool settings, default pool name `full_name`) and
/// `pool`.
fn constructors(full_name: &str) -> TokenStream {
    let p = runtime();
    let connect_doc = format!(
        " Connects to `endpoint` through the pool of this module's `#[grpc_pool]` attribute, or, \
         without one, a pool named `{full_name}` with the library defaults; reuses that pool if it \
         already runs with the same endpoint."
    );
    quote! {
        /// Creates a client whose calls run on `pool`'s channels.
        pub fn new(pool: #p::Pool) -> Self {
            Self { pool, options: #p::ClientOptions::new() }
        }

        #[doc = #connect_doc]
        ///
        /// # Errors
        ///
        /// The pool could not start (no channel became ready), or a pool of the same name
        /// already runs with another endpoint.
        pub async fn connect(endpoint: &str) -> ::core::result::Result<Self, #p::PoolError> {
            let pool = #p::connect_pooled(__GRPC_POOL_SETTINGS, #full_name, endpoint).await?;
            ::core::result::Result::Ok(Self::new(pool))
        }

        /// The pool this client sends its calls through.
        pub fn pool(&self) -> &#p::Pool {
            &self.pool
        }
    }
}

/// The `with_*` options of tonic's clients, recorded in the client's `ClientOptions`; they
/// reach tonic through [`tonic_client`].
fn option_setters() -> TokenStream {
    let p = runtime();
    quote! {
        /// Compresses requests with `encoding` (the server must support it).
        #[must_use]
        pub fn with_send_compressed(mut self, encoding: #p::tonic::codec::CompressionEncoding) -> Self {
            self.options.send_compressed(encoding);
            self
        }

        /// Accepts responses compressed with `encoding`.
        #[must_use]
        pub fn with_accept_compressed(mut self, encoding: #p::tonic::codec::CompressionEncoding) -> Self {
            self.options.accept_compressed(encoding);
            self
        }

        /// Limits the size of a decoded response message (tonic's default: 4 MiB).
        #[must_use]
        pub fn with_max_decoding_message_size(mut self, limit: usize) -> Self {
            self.options.max_decoding_message_size(limit);
            self
        }

        /// Limits the size of an encoded request message (tonic's default: `usize::MAX`).
        #[must_use]
        pub fn with_max_encoding_message_size(mut self, limit: usize) -> Self {
            self.options.max_encoding_message_size(limit);
            self
        }

        /// Whether calls wait for a READY channel while every channel of the pool backs off
        /// (`true`, within the call's deadline), or fail at once with `UNAVAILABLE`
        /// (`false`); overrides the pool's `wait_for_ready` for this client.
        #[must_use]
        pub fn with_wait_for_ready(mut self, on: bool) -> Self {
            self.options.wait_for_ready(on);
            self
        }
    }
}

/// The private `tonic_client(channel)` every RPC method calls: tonic's client over one pooled
/// channel, with the options applied. tonic's clients share no trait, so the generated code
/// hands tonic's own builder methods to `ClientOptions::apply`, which calls those that were
/// set.
fn tonic_client(service: &Service) -> TokenStream {
    let p = runtime();
    let module = format_ident!("{}_client", naive_snake_case(&service.name));
    let client = format_ident!("{}Client", service.name);
    // A service without RPCs never builds a tonic client; keep the helper anyway (and quiet).
    let allow = if service.methods.is_empty() {
        quote!(#[allow(dead_code)])
    } else {
        TokenStream::new()
    };
    quote! {
        #allow
        fn tonic_client(&self, channel: #p::PooledChannel) -> #module::#client<#p::PooledChannel> {
            self.options.apply(
                #module::#client::new(channel),
                #module::#client::send_compressed,
                #module::#client::accept_compressed,
                #module::#client::max_decoding_message_size,
                #module::#client::max_encoding_message_size,
            )
        }
    }
}

/// `#[doc = " line"]` per comment line, like tonic (a leading space keeps rustdoc's markdown
/// indentation right).
pub(crate) fn doc_lines(lines: &[String]) -> TokenStream {
    let docs = lines.iter().map(|line| {
        let line = if line.starts_with(' ') || line.is_empty() {
            line.clone()
        } else {
            format!(" {line}")
        };
        quote!(#[doc = #line])
    });
    quote!(#(#docs)*)
}

/// tonic-build's module naming (`naive_snake_case`), reproduced exactly so we name the module
/// tonic generated: `HelloWorld` -> `hello_world`.
pub(crate) fn naive_snake_case(name: &str) -> String {
    let mut s = String::new();
    let mut it = name.chars().peekable();
    while let Some(x) = it.next() {
        s.push(x.to_ascii_lowercase());
        if let Some(y) = it.peek() {
            if y.is_uppercase() {
                s.push('_');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::NO_POLICY;
    use crate::testing::{
        assert_tokens, attributes, client, client_with, compact, doc_text, method, method_fn,
        non_doc_attributes, service, signature,
    };

    /// The generated struct.
    fn client_struct(file: &syn::File) -> &syn::ItemStruct {
        file.items
            .iter()
            .find_map(|item| match item {
                syn::Item::Struct(s) => Some(s),
                _ => None,
            })
            .expect("a struct")
    }

    #[test]
    fn client_wraps_tonics_sibling_module_named_like_tonic() {
        let file = client_with(method("say_hello", "SayHello", false, false));
        let mut item = client_struct(&file).clone();
        item.attrs.retain(|attr| !attr.path().is_ident("doc"));
        assert_tokens(
            &item,
            quote! {
                #[derive(Clone, Debug)]
                pub struct PooledHelloWorldClient {
                    pool: ::grpc_pool::__private::Pool,
                    options: ::grpc_pool::__private::ClientOptions,
                }
            },
        );
        let tonic_client = method_fn(&file, "tonic_client");
        assert_tokens(
            &signature(tonic_client),
            quote! {
                fn tonic_client(
                    &self,
                    channel: ::grpc_pool::__private::PooledChannel,
                ) -> hello_world_client::HelloWorldClient<::grpc_pool::__private::PooledChannel>
            },
        );
        let block = &tonic_client.block;
        let body = compact(&quote!(#block));
        assert!(
            body.contains("hello_world_client::HelloWorldClient::new(channel)"),
            "{body}"
        );
    }

    #[test]
    fn connect_reads_the_bare_settings_item_and_defaults_to_the_service_name() {
        let file = client(&service(vec![]));
        let connect = method_fn(&file, "connect");
        assert_tokens(
            &signature(connect),
            quote! {
                pub async fn connect(
                    endpoint: &str,
                ) -> ::core::result::Result<Self, ::grpc_pool::__private::PoolError>
            },
        );
        assert_tokens(
            &connect.block,
            quote!({
                let pool = ::grpc_pool::__private::connect_pooled(
                    __GRPC_POOL_SETTINGS,
                    "pkg.v1.HelloWorld",
                    endpoint,
                )
                .await?;
                ::core::result::Result::Ok(Self::new(pool))
            }),
        );
        let trait_impl = file
            .items
            .iter()
            .find_map(|item| match item {
                syn::Item::Impl(block) if block.trait_.is_some() => Some(block),
                _ => None,
            })
            .expect("a trait impl");
        assert_tokens(
            trait_impl,
            quote! {
                impl ::grpc_pool::__private::PooledClient for PooledHelloWorldClient {
                    fn from_pool(pool: ::grpc_pool::__private::Pool) -> Self {
                        Self::new(pool)
                    }
                }
            },
        );
        assert_tokens(
            &signature(method_fn(&file, "pool")),
            quote!(pub fn pool(&self) -> &::grpc_pool::__private::Pool),
        );
    }

    #[test]
    fn every_grpc_pool_path_is_absolute_and_nothing_is_imported() {
        let s = service(vec![
            method("a", "A", false, false),
            method("b", "B", false, true),
            method("c", "C", true, false),
            method("d", "D", true, true),
        ]);
        let code = compact(&generate(&s, &Policies::default()).expect("generates"));
        let file = client(&s);
        assert!(
            file.items
                .iter()
                .all(|item| !matches!(item, syn::Item::Use(_))),
            "generated client must not import anything"
        );
        let grpc_pool_paths = code.matches("::grpc_pool::__private::").count()
            + code.matches("::grpc_pool::Pool").count()
            + code.matches("`#[grpc_pool]`").count(); // in docs
        assert_eq!(code.matches("grpc_pool").count(), grpc_pool_paths, "{code}");
        assert!(
            !code
                .replace("::grpc_pool::__private::tonic::", "")
                .contains("tonic::"),
            "{code}"
        );
    }

    #[test]
    fn with_options_are_applied_to_each_tonic_client() {
        let file = client_with(method("a", "A", false, false));
        let encoding = quote!(encoding: ::grpc_pool::__private::tonic::codec::CompressionEncoding);
        let limit = quote!(limit: usize);
        for (option, param, arg) in [
            ("send_compressed", &encoding, quote!(encoding)),
            ("accept_compressed", &encoding, quote!(encoding)),
            ("max_decoding_message_size", &limit, quote!(limit)),
            ("max_encoding_message_size", &limit, quote!(limit)),
        ] {
            let setter = format_ident!("with_{option}");
            let option = format_ident!("{option}");
            let f = method_fn(&file, &setter.to_string());
            assert_tokens(&non_doc_attributes(&f.attrs), quote!(#[must_use]));
            assert_tokens(
                &signature(f),
                quote!(pub fn #setter(mut self, #param) -> Self),
            );
            assert_tokens(
                &f.block,
                quote!({
                    self.options.#option(#arg);
                    self
                }),
            );
        }
        assert_tokens(
            &method_fn(&file, "tonic_client").block,
            quote!({
                self.options.apply(
                    hello_world_client::HelloWorldClient::new(channel),
                    hello_world_client::HelloWorldClient::send_compressed,
                    hello_world_client::HelloWorldClient::accept_compressed,
                    hello_world_client::HelloWorldClient::max_decoding_message_size,
                    hello_world_client::HelloWorldClient::max_encoding_message_size,
                )
            }),
        );
    }

    #[test]
    fn proto_comments_become_docs_followed_by_the_generated_summary() {
        let mut m = method("say_hello", "SayHello", false, false);
        m.comments.leading = vec![" Greets.".to_owned(), "No leading space.".to_owned()];
        let mut s = service(vec![m]);
        s.comments.leading = vec![" The service.".to_owned()];
        let file = client(&s);
        let struct_attrs = &client_struct(&file).attrs;
        assert_tokens(
            &attributes(&struct_attrs[..3]),
            quote! {
                #[doc = " The service."]
                #[doc = ""]
                #[doc = " Pooled client for `pkg.v1.HelloWorld`: every call runs on the least-loaded ready channel of a [`Pool`](::grpc_pool::Pool)."]
            },
        );
        assert_tokens(
            &attributes(&method_fn(&file, "say_hello").attrs),
            quote! {
                #[doc = " Greets."]
                #[doc = " No leading space."]
                #[doc = ""]
                #[doc = " Unary `pkg.v1.HelloWorld/SayHello` on the least-loaded ready channel."]
                #[doc = ""]
                #[doc = #NO_POLICY]
            },
        );
    }

    #[test]
    fn client_docs_state_the_runtime_retry_bound() {
        let file = client(&service(vec![]));
        let docs = doc_text(&client_struct(&file).attrs).replace('\n', "");
        assert!(
            docs.contains(&format!(
                " A unary or server-streaming call the server provably never saw is retried {}, \
                 each time on another connection;",
                retry_bound()
            )),
            "{docs}"
        );
    }

    #[test]
    fn service_without_rpcs_still_compiles_quietly() {
        let file = client(&service(vec![]));
        assert_tokens(
            &attributes(&method_fn(&file, "tonic_client").attrs),
            quote!(#[allow(dead_code)]),
        );
        // With an RPC the helper is used: no lint to silence.
        let file = client_with(method("a", "A", false, false));
        assert!(method_fn(&file, "tonic_client").attrs.is_empty());
    }

    #[test]
    fn package_less_service_name_has_no_leading_dot() {
        let mut s = service(vec![]);
        s.package = String::new();
        assert_eq!(full_service_name(&s), "HelloWorld");
    }

    #[test]
    fn naive_snake_case_matches_tonic_build() {
        assert_eq!(naive_snake_case("Greeter"), "greeter");
        assert_eq!(naive_snake_case("HelloWorld"), "hello_world");
        assert_eq!(naive_snake_case("ABService"), "a_b_service");
    }
}
