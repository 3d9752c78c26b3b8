//! Token generation of `PooledXClient` for one service.
//!
//! Input is prost-build's [`Service`] (the same value tonic's generator receives), output is a
//! `TokenStream` appended after tonic's `x_client` module in the package's file. Everything the
//! generated code names goes through `::grpc_pool::__private`, except the message types (paths
//! relative to the package module, exactly as prost resolved them) and tonic's client module
//! (a sibling module in the same file).

use proc_macro2::TokenStream;
use prost_build::{Method, Service};
use quote::{format_ident, quote};

/// Methods every `PooledXClient` defines itself; an RPC whose Rust name is one of these
/// cannot be generated next to them.
const RESERVED_METHOD_NAMES: &[&str] = &[
    "new",
    "connect",
    "pool",
    "with_send_compressed",
    "with_accept_compressed",
    "with_max_decoding_message_size",
    "with_max_encoding_message_size",
    "tonic_client",
];

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
pub(crate) fn generate(service: &Service) -> Result<TokenStream, String> {
    let full_name = full_service_name(service);
    let pooled = format_ident!("{}", pooled_client_name(service));
    let tonic_mod = format_ident!("{}_client", naive_snake_case(&service.name));
    let tonic_client = format_ident!("{}Client", service.name);
    let p = quote!(::grpc_pool::__private);

    let service_docs = doc_lines(&service.comments.leading);
    let blank_doc = if service.comments.leading.is_empty() {
        TokenStream::new()
    } else {
        quote!(#[doc = ""])
    };
    let summary = format!(
        " Pooled client for `{full_name}`: every call runs on the least-loaded ready channel of a \
         [`Pool`](::grpc_pool::Pool)."
    );
    let connect_doc = format!(
        " Connects to `endpoint` through the pool of this module's `#[grpc_pool]` attribute, or, \
         without one, a pool named `{full_name}` with the library defaults; reuses that pool if it \
         already runs with the same endpoint."
    );

    let mut methods = Vec::with_capacity(service.methods.len());
    for method in &service.methods {
        methods.push(generate_method(service, method, &full_name)?);
    }
    // A service without RPCs never builds a tonic client; keep the helper anyway (and quiet).
    let helper_allow = if service.methods.is_empty() {
        quote!(#[allow(dead_code)])
    } else {
        TokenStream::new()
    };

    Ok(quote! {
        #service_docs
        #blank_doc
        #[doc = #summary]
        #[doc = ""]
        #[doc = " Cheap to clone: clones share the pool. Unary calls the server provably never saw"]
        #[doc = " are retried once on another channel; streams keep their channel until they end."]
        #[derive(Clone, Debug)]
        pub struct #pooled {
            pool: #p::Pool,
            options: #p::ClientOptions,
        }

        impl #pooled {
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

            #helper_allow
            fn tonic_client(&self, channel: #p::PooledChannel) -> #tonic_mod::#tonic_client<#p::PooledChannel> {
                self.options.apply(
                    #tonic_mod::#tonic_client::new(channel),
                    #tonic_mod::#tonic_client::send_compressed,
                    #tonic_mod::#tonic_client::accept_compressed,
                    #tonic_mod::#tonic_client::max_decoding_message_size,
                    #tonic_mod::#tonic_client::max_encoding_message_size,
                )
            }

            #(#methods)*
        }

        impl #p::PooledClient for #pooled {
            fn from_pool(pool: #p::Pool) -> Self {
                Self::new(pool)
            }
        }
    })
}

fn generate_method(
    service: &Service,
    method: &Method,
    full_name: &str,
) -> Result<TokenStream, String> {
    if RESERVED_METHOD_NAMES.contains(&method.name.as_str()) {
        return Err(format!(
            "rpc `{full_name}.{}` would become method `{}`, which `{}` already defines; rename the \
             rpc or turn the pooled client off with `build_pooled_client(false)`",
            method.proto_name,
            method.name,
            pooled_client_name(service),
        ));
    }
    let p = quote!(::grpc_pool::__private);
    let ident = format_ident!("{}", method.name);
    let request = rust_type(&method.input_type, full_name, &method.proto_name)?;
    let response = rust_type(&method.output_type, full_name, &method.proto_name)?;
    let docs = doc_lines(&method.comments.leading);
    let deprecated = if method.options.deprecated() {
        quote!(#[deprecated] #[allow(deprecated)])
    } else {
        TokenStream::new()
    };
    let kind_doc = match (method.client_streaming, method.server_streaming) {
        (false, false) => format!(
            " Unary `{full_name}/{}` on the least-loaded ready channel.",
            method.proto_name
        ),
        (false, true) => format!(
            " Server-streaming `{full_name}/{}`: the stream keeps its channel until it ends; a request the server provably never saw is sent again on another channel, as for unary calls.",
            method.proto_name
        ),
        (true, false) => format!(
            " Client-streaming `{full_name}/{}`: the call keeps its channel until it ends.",
            method.proto_name
        ),
        (true, true) => format!(
            " Bidirectional `{full_name}/{}`: the call keeps its channel until it ends.",
            method.proto_name
        ),
    };
    let separator = if method.comments.leading.is_empty() {
        TokenStream::new()
    } else {
        quote!(#[doc = ""])
    };
    let attrs = quote! { #docs #separator #[doc = #kind_doc] #deprecated };

    // One request message (unary, server streaming): retried like a unary call if it was
    // never sent. The two differ only in the response type.
    let single_response = if method.server_streaming {
        quote!(#p::tonic::codec::Streaming<#response>)
    } else {
        quote!(#response)
    };
    let tokens = match (method.client_streaming, method.server_streaming) {
        (false, _) => quote! {
            #attrs
            pub async fn #ident(
                &self,
                request: impl #p::tonic::IntoRequest<#request>,
            ) -> ::core::result::Result<#p::tonic::Response<#single_response>, #p::tonic::Status> {
                #p::unary(
                    &self.pool,
                    #p::tonic::IntoRequest::into_request(request),
                    |channel, request| {
                        let mut client = self.tonic_client(channel);
                        async move { client.#ident(request).await }
                    },
                )
                .await
            }
        },
        (true, false) => quote! {
            #attrs
            pub async fn #ident(
                &self,
                request: impl #p::tonic::IntoStreamingRequest<Message = #request>,
            ) -> ::core::result::Result<#p::tonic::Response<#response>, #p::tonic::Status> {
                let channel = #p::checkout_for_stream(&self.pool).await?;
                self.tonic_client(channel).#ident(request).await
            }
        },
        (true, true) => quote! {
            #attrs
            pub async fn #ident(
                &self,
                request: impl #p::tonic::IntoStreamingRequest<Message = #request>,
            ) -> ::core::result::Result<
                #p::tonic::Response<#p::tonic::codec::Streaming<#response>>,
                #p::tonic::Status,
            > {
                let channel = #p::checkout_for_stream(&self.pool).await?;
                self.tonic_client(channel).#ident(request).await
            }
        },
    };
    Ok(tokens)
}

/// Parses a message type as prost resolved it, relative to the package module
/// (`HelloRequest`, `super::common::Id`, `::prost_types::Timestamp`, `()`).
fn rust_type(path: &str, service: &str, rpc: &str) -> Result<syn::Type, String> {
    syn::parse_str::<syn::Type>(path).map_err(|err| {
        format!("rpc `{service}.{rpc}`: message type `{path}` is not a Rust type ({err})")
    })
}

/// `#[doc = " line"]` per comment line, like tonic (a leading space keeps rustdoc's markdown
/// indentation right).
fn doc_lines(lines: &[String]) -> TokenStream {
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
    use prost_build::Comments;

    fn method(
        name: &str,
        proto_name: &str,
        client_streaming: bool,
        server_streaming: bool,
    ) -> Method {
        Method {
            name: name.to_owned(),
            proto_name: proto_name.to_owned(),
            comments: Comments::default(),
            input_type: "HelloRequest".to_owned(),
            output_type: "super::common::HelloReply".to_owned(),
            input_proto_type: ".pkg.v1.HelloRequest".to_owned(),
            output_proto_type: ".pkg.common.HelloReply".to_owned(),
            options: prost_types::MethodOptions::default(),
            client_streaming,
            server_streaming,
        }
    }

    fn service(methods: Vec<Method>) -> Service {
        Service {
            name: "HelloWorld".to_owned(),
            proto_name: "HelloWorld".to_owned(),
            package: "pkg.v1".to_owned(),
            comments: Comments::default(),
            methods,
            options: prost_types::ServiceOptions::default(),
        }
    }

    /// Token text with whitespace removed, so assertions do not depend on spacing.
    fn compact(tokens: &TokenStream) -> String {
        tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    fn generated(methods: Vec<Method>) -> String {
        compact(&generate(&service(methods)).expect("generates"))
    }

    #[test]
    fn unary_rpc_goes_through_runtime_unary_with_tonics_client() {
        let code = generated(vec![method("say_hello", "SayHello", false, false)]);
        assert!(code.contains(
            "pubasyncfnsay_hello(&self,request:impl::grpc_pool::__private::tonic::IntoRequest<HelloRequest>,)"
        ), "{code}");
        assert!(
            code.contains("::grpc_pool::__private::unary(&self.pool,"),
            "{code}"
        );
        assert!(code.contains("letmutclient=self.tonic_client(channel);asyncmove{client.say_hello(request).await}"), "{code}");
        assert!(code.contains(
            "Result<::grpc_pool::__private::tonic::Response<super::common::HelloReply>,::grpc_pool::__private::tonic::Status>"
        ), "{code}");
    }

    #[test]
    fn server_streaming_rpc_is_retried_like_unary_and_returns_streaming() {
        let code = generated(vec![method("watch", "Watch", false, true)]);
        assert!(
            code.contains("::grpc_pool::__private::unary(&self.pool,"),
            "{code}"
        );
        assert!(
            code.contains(
                "letmutclient=self.tonic_client(channel);asyncmove{client.watch(request).await}"
            ),
            "{code}"
        );
        assert!(
            code.contains(
                "::grpc_pool::__private::tonic::codec::Streaming<super::common::HelloReply>"
            ),
            "{code}"
        );
        assert!(
            code.contains("request:impl::grpc_pool::__private::tonic::IntoRequest<HelloRequest>"),
            "{code}"
        );
        assert!(!code.contains("checkout_for_stream"), "{code}");
    }

    #[test]
    fn client_and_bidi_streaming_rpcs_take_into_streaming_request() {
        let code = generated(vec![
            method("upload", "Upload", true, false),
            method("chat", "Chat", true, true),
        ]);
        assert_eq!(
            code.matches("request:impl::grpc_pool::__private::tonic::IntoStreamingRequest<Message=HelloRequest>").count(),
            2,
            "{code}"
        );
        assert!(
            code.contains("self.tonic_client(channel).upload(request).await"),
            "{code}"
        );
        assert!(
            code.contains("self.tonic_client(channel).chat(request).await"),
            "{code}"
        );
        // Only bidi returns a stream.
        assert_eq!(code.matches("codec::Streaming<").count(), 1, "{code}");
    }

    #[test]
    fn keyword_rpc_becomes_a_raw_identifier() {
        let code = generated(vec![method("r#type", "Type", false, false)]);
        assert!(code.contains("pubasyncfnr#type("), "{code}");
        assert!(code.contains("client.r#type(request)"), "{code}");
    }

    #[test]
    fn client_wraps_tonics_sibling_module_named_like_tonic() {
        let code = generated(vec![method("say_hello", "SayHello", false, false)]);
        assert!(
            code.contains("pubstructPooledHelloWorldClient{pool:::grpc_pool::__private::Pool,"),
            "{code}"
        );
        assert!(
            code.contains(
                "->hello_world_client::HelloWorldClient<::grpc_pool::__private::PooledChannel>"
            ),
            "{code}"
        );
        assert!(
            code.contains("hello_world_client::HelloWorldClient::new(channel)"),
            "{code}"
        );
        assert!(code.contains("#[derive(Clone,Debug)]"), "{code}");
    }

    #[test]
    fn connect_reads_the_bare_settings_item_and_defaults_to_the_service_name() {
        let code = generated(vec![]);
        assert!(code.contains(
            "::grpc_pool::__private::connect_pooled(__GRPC_POOL_SETTINGS,\"pkg.v1.HelloWorld\",endpoint).await?"
        ), "{code}");
        assert!(
            code.contains("impl::grpc_pool::__private::PooledClientforPooledHelloWorldClient"),
            "{code}"
        );
        assert!(
            code.contains("pubfnpool(&self)->&::grpc_pool::__private::Pool"),
            "{code}"
        );
    }

    #[test]
    fn every_grpc_pool_path_is_absolute_and_nothing_is_imported() {
        let code = generated(vec![
            method("a", "A", false, false),
            method("b", "B", false, true),
            method("c", "C", true, false),
            method("d", "D", true, true),
        ]);
        let file: syn::File =
            syn::parse_str(&generate(&service(vec![])).expect("generates").to_string())
                .expect("parses");
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
        let code = generated(vec![method("a", "A", false, false)]);
        for option in [
            "send_compressed",
            "accept_compressed",
            "max_decoding_message_size",
            "max_encoding_message_size",
        ] {
            assert!(
                code.contains(&format!("#[must_use]pubfnwith_{option}(mutself,")),
                "{option}: {code}"
            );
            assert!(
                code.contains(&format!("self.options.{option}(")),
                "{option}: {code}"
            );
            assert!(
                code.contains(&format!("hello_world_client::HelloWorldClient::{option},")),
                "{option}: {code}"
            );
        }
    }

    #[test]
    fn proto_comments_become_docs_followed_by_the_generated_summary() {
        let mut m = method("say_hello", "SayHello", false, false);
        m.comments.leading = vec![" Greets.".to_owned(), "No leading space.".to_owned()];
        let mut s = service(vec![m]);
        s.comments.leading = vec![" The service.".to_owned()];
        let code = generate(&s).expect("generates").to_string();
        assert!(code.contains("# [doc = \" The service.\"] # [doc = \"\"] # [doc = \" Pooled client for `pkg.v1.HelloWorld`"), "{code}");
        assert!(code.contains("# [doc = \" Greets.\"] # [doc = \" No leading space.\"] # [doc = \"\"] # [doc = \" Unary `pkg.v1.HelloWorld/SayHello`"), "{code}");
    }

    #[test]
    fn deprecated_rpc_is_deprecated_and_calls_tonic_without_warning() {
        let mut m = method("old", "Old", false, false);
        m.options.deprecated = Some(true);
        let code = generated(vec![m]);
        assert!(
            code.contains("#[deprecated]#[allow(deprecated)]pubasyncfnold("),
            "{code}"
        );
    }

    #[test]
    fn rpc_colliding_with_a_client_method_is_rejected_with_its_names() {
        for name in [
            "new",
            "connect",
            "pool",
            "with_send_compressed",
            "tonic_client",
        ] {
            let err = generate(&service(vec![method(name, "X", false, false)])).expect_err(name);
            assert!(
                err.contains(&format!("would become method `{name}`")),
                "{err}"
            );
            assert!(err.contains("PooledHelloWorldClient"), "{err}");
        }
    }

    #[test]
    fn service_without_rpcs_still_compiles_quietly() {
        let code = generated(vec![]);
        assert!(
            code.contains("#[allow(dead_code)]fntonic_client("),
            "{code}"
        );
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
