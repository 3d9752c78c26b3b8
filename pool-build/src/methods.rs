//! The generated method of one RPC, one function per call shape as in tonic-build:
//! [`unary`], [`server_streaming`], [`client_streaming`] and [`bidi_streaming`].
//!
//! Every method builds tonic's client over a pooled channel with `self.tonic_client(channel)`
//! (the client's `with_*` options applied, see [`crate::pooled_client`]) and calls tonic's
//! method of the same name. The shapes differ in how they get that channel:
//!
//! - one request message (unary, server streaming): through the runtime's `unary`, which
//!   checks out a channel and sends the request again on another connection when the server
//!   provably never saw it, since a clone of the message can be sent again;
//! - a request stream (client streaming, bidi): through the runtime's `streaming`, which
//!   checks out a channel kept until the call ends; only a method with a retry policy is sent
//!   again, from the messages the runtime kept (up to its retry buffer).

use proc_macro2::{Ident, TokenStream};
use prost_build::{Method, Service};
use quote::{format_ident, quote};

use crate::policy::Policies;
use crate::pooled_client::{doc_lines, pooled_client_name, runtime};
use crate::rules::MAX_TRANSPARENT_RETRIES;

/// Methods every `PooledXClient` defines itself; an RPC whose Rust name is one of these
/// cannot be generated next to them.
pub(crate) const RESERVED_METHOD_NAMES: &[&str] = &[
    "new",
    "connect",
    "pool",
    "with_send_compressed",
    "with_accept_compressed",
    "with_max_decoding_message_size",
    "with_max_encoding_message_size",
    "with_wait_for_ready",
    "tonic_client",
];

/// How often the runtime sends a never-sent call again, as docs say it: "up to 3 times".
pub(crate) fn retry_bound() -> String {
    match MAX_TRANSPARENT_RETRIES {
        1 => "once".to_owned(),
        n => format!("up to {n} times"),
    }
}

/// What every shape needs from one RPC, checked and converted to tokens.
struct Rpc {
    /// The proto comment as `#[doc]` lines, then a blank line before the generated sentence
    /// (nothing when the RPC has no comment).
    docs: TokenStream,
    /// `#[deprecated]` for an RPC marked `deprecated`, with `#[allow(deprecated)]` so that
    /// calling tonic's (equally deprecated) method does not warn.
    deprecated: TokenStream,
    /// The method's name, tonic's name for the same RPC (`say_hello`, `r#type`).
    ident: Ident,
    /// `{package}.{Service}/{Rpc}`, as the generated docs name the RPC.
    path: String,
    /// The request message type, relative to the package module.
    request: syn::Type,
    /// The response message type, relative to the package module.
    response: syn::Type,
    /// The policy in effect, as `#[doc]` lines after the call shape's.
    policy_docs: TokenStream,
    /// The `static` holding the method's default retry policy (nothing without one).
    default_static: TokenStream,
    /// The runtime's `default` argument: `Some(&DEFAULT_POLICY)` or `None`.
    default_arg: TokenStream,
}

/// Generates the method for `method`, a member of `service` (whose protobuf name is
/// `full_name`).
///
/// Errors (as a message) when the RPC's Rust name is one of the client's own methods or a
/// message type is not a Rust type.
pub(crate) fn generate(
    service: &Service,
    method: &Method,
    full_name: &str,
    policies: &Policies,
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
    let docs = doc_lines(&method.comments.leading);
    let policy = policies.of(
        full_name,
        &method.proto_name,
        method.options.idempotency_level(),
    );
    let p = runtime();
    let (default_static, default_arg) = match &policy.default_json {
        Some(json) => (
            quote! {
                static DEFAULT_POLICY: #p::DefaultPolicy = #p::DefaultPolicy::new(#json);
            },
            quote!(::core::option::Option::Some(&DEFAULT_POLICY)),
        ),
        None => (TokenStream::new(), quote!(::core::option::Option::None)),
    };
    let policy_docs = policy.docs.iter().map(|line| quote!(#[doc = #line]));
    let rpc = Rpc {
        // A paragraph of its own, after the call shape's.
        policy_docs: quote!(#[doc = ""] #(#policy_docs)*),
        default_static,
        default_arg,
        docs: if method.comments.leading.is_empty() {
            docs
        } else {
            quote!(#docs #[doc = ""])
        },
        deprecated: if method.options.deprecated() {
            quote!(#[deprecated] #[allow(deprecated)])
        } else {
            TokenStream::new()
        },
        ident: format_ident!("{}", method.name),
        path: format!("{full_name}/{}", method.proto_name),
        request: rust_type(&method.input_type, full_name, &method.proto_name)?,
        response: rust_type(&method.output_type, full_name, &method.proto_name)?,
    };
    Ok(match (method.client_streaming, method.server_streaming) {
        (false, false) => unary(&rpc),
        (false, true) => server_streaming(&rpc),
        (true, false) => client_streaming(&rpc),
        (true, true) => bidi_streaming(&rpc),
    })
}

/// One request, one response: the runtime's `unary` makes the call and retries it when it
/// was never sent.
fn unary(rpc: &Rpc) -> TokenStream {
    let Rpc {
        docs,
        deprecated,
        ident,
        path,
        request,
        response,
        policy_docs,
        default_static,
        default_arg,
    } = rpc;
    let p = runtime();
    let method_path = format!("/{path}");
    let shape_doc = format!(" Unary `{path}` on the least-loaded ready channel.");
    quote! {
        #docs
        #[doc = #shape_doc]
        #policy_docs
        #deprecated
        pub async fn #ident(
            &self,
            request: impl #p::tonic::IntoRequest<#request>,
        ) -> ::core::result::Result<#p::tonic::Response<#response>, #p::tonic::Status> {
            #default_static
            #p::unary(
                &self.pool,
                &self.options,
                #method_path,
                #default_arg,
                #p::tonic::IntoRequest::into_request(request),
                |channel, request| {
                    let mut client = self.tonic_client(channel);
                    async move { client.#ident(request).await }
                },
            )
            .await
        }
    }
}

/// One request, a stream of responses: made like a unary call (the runtime's `unary` retries
/// its start when the request was never sent); the response is tonic's `Streaming`, which
/// keeps the channel until it ends.
fn server_streaming(rpc: &Rpc) -> TokenStream {
    let Rpc {
        docs,
        deprecated,
        ident,
        path,
        request,
        response,
        policy_docs,
        default_static,
        default_arg,
    } = rpc;
    let p = runtime();
    let method_path = format!("/{path}");
    let shape_doc = format!(
        " Server-streaming `{path}`: the stream keeps its channel until it ends; a request the \
         server provably never saw is sent again on another connection, {}, as for unary calls.",
        retry_bound()
    );
    quote! {
        #docs
        #[doc = #shape_doc]
        #policy_docs
        #deprecated
        pub async fn #ident(
            &self,
            request: impl #p::tonic::IntoRequest<#request>,
        ) -> ::core::result::Result<
            #p::tonic::Response<#p::tonic::codec::Streaming<#response>>,
            #p::tonic::Status,
        > {
            #default_static
            #p::unary(
                &self.pool,
                &self.options,
                #method_path,
                #default_arg,
                #p::tonic::IntoRequest::into_request(request),
                |channel, request| {
                    let mut client = self.tonic_client(channel);
                    async move { client.#ident(request).await }
                },
            )
            .await
        }
    }
}

/// A stream of requests, one response: one channel for the whole call, retried only under a
/// retry policy.
fn client_streaming(rpc: &Rpc) -> TokenStream {
    let Rpc {
        docs,
        deprecated,
        ident,
        path,
        request,
        response,
        policy_docs,
        default_static,
        default_arg,
    } = rpc;
    let p = runtime();
    let method_path = format!("/{path}");
    let shape_doc = format!(
        " Client-streaming `{path}`: the call keeps its channel until it ends; under a \
                 retry policy, a failure before the response is retried while the messages \
                 sent fit the 256 KiB retry buffer."
    );
    quote! {
        #docs
        #[doc = #shape_doc]
        #policy_docs
        #deprecated
        pub async fn #ident(
            &self,
            request: impl #p::tonic::IntoStreamingRequest<Message = #request>,
        ) -> ::core::result::Result<#p::tonic::Response<#response>, #p::tonic::Status> {
            #default_static
            #p::streaming(
                &self.pool,
                &self.options,
                #method_path,
                #default_arg,
                #p::tonic::IntoStreamingRequest::into_streaming_request(request),
                |channel, request| {
                    let mut client = self.tonic_client(channel);
                    async move { client.#ident(request).await }
                },
            )
            .await
        }
    }
}

/// Streams both ways: one channel for the whole call, retried only under a retry policy.
fn bidi_streaming(rpc: &Rpc) -> TokenStream {
    let Rpc {
        docs,
        deprecated,
        ident,
        path,
        request,
        response,
        policy_docs,
        default_static,
        default_arg,
    } = rpc;
    let p = runtime();
    let method_path = format!("/{path}");
    let shape_doc = format!(
        " Bidirectional `{path}`: the call keeps its channel until it ends; under a retry \
         policy, a failure before the response headers is retried while the messages sent fit \
         the 256 KiB retry buffer."
    );
    quote! {
        #docs
        #[doc = #shape_doc]
        #policy_docs
        #deprecated
        pub async fn #ident(
            &self,
            request: impl #p::tonic::IntoStreamingRequest<Message = #request>,
        ) -> ::core::result::Result<
            #p::tonic::Response<#p::tonic::codec::Streaming<#response>>,
            #p::tonic::Status,
        > {
            #default_static
            #p::streaming(
                &self.pool,
                &self.options,
                #method_path,
                #default_arg,
                #p::tonic::IntoStreamingRequest::into_streaming_request(request),
                |channel, request| {
                    let mut client = self.tonic_client(channel);
                    async move { client.#ident(request).await }
                },
            )
            .await
        }
    }
}

/// Parses a message type as prost resolved it, relative to the package module
/// (`HelloRequest`, `super::common::Id`, `::prost_types::Timestamp`, `()`).
fn rust_type(path: &str, service: &str, rpc: &str) -> Result<syn::Type, String> {
    syn::parse_str::<syn::Type>(path).map_err(|err| {
        format!("rpc `{service}.{rpc}`: message type `{path}` is not a Rust type ({err})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::NO_POLICY;
    use crate::testing::{
        assert_tokens, attributes, client, client_with, doc_text, inherent_impl, method, method_fn,
        service, signature,
    };

    /// The body of a method with one request message (unary, server streaming) that calls
    /// tonic's `rpc`.
    fn retried_call(rpc: TokenStream, path: &str) -> TokenStream {
        quote!({
            ::grpc_pool::__private::unary(
                &self.pool,
                &self.options,
                #path,
                ::core::option::Option::None,
                ::grpc_pool::__private::tonic::IntoRequest::into_request(request),
                |channel, request| {
                    let mut client = self.tonic_client(channel);
                    async move { client.#rpc(request).await }
                },
            )
            .await
        })
    }

    /// The body of a method with a request stream (client streaming, bidi) that calls tonic's
    /// `rpc`.
    fn stream_call(rpc: TokenStream, path: &str) -> TokenStream {
        quote!({
            ::grpc_pool::__private::streaming(
                &self.pool,
                &self.options,
                #path,
                ::core::option::Option::None,
                ::grpc_pool::__private::tonic::IntoStreamingRequest::into_streaming_request(request),
                |channel, request| {
                    let mut client = self.tonic_client(channel);
                    async move { client.#rpc(request).await }
                },
            )
            .await
        })
    }

    #[test]
    fn unary_rpc_goes_through_runtime_unary_with_tonics_client() {
        let file = client_with(method("say_hello", "SayHello", false, false));
        let f = method_fn(&file, "say_hello");
        assert_tokens(
            &signature(f),
            quote! {
                pub async fn say_hello(
                    &self,
                    request: impl ::grpc_pool::__private::tonic::IntoRequest<HelloRequest>,
                ) -> ::core::result::Result<
                    ::grpc_pool::__private::tonic::Response<super::common::HelloReply>,
                    ::grpc_pool::__private::tonic::Status,
                >
            },
        );
        assert_tokens(
            &f.block,
            retried_call(quote!(say_hello), "/pkg.v1.HelloWorld/SayHello"),
        );
    }

    #[test]
    fn server_streaming_rpc_is_retried_like_unary_and_returns_streaming() {
        let file = client_with(method("watch", "Watch", false, true));
        let f = method_fn(&file, "watch");
        assert_tokens(
            &signature(f),
            quote! {
                pub async fn watch(
                    &self,
                    request: impl ::grpc_pool::__private::tonic::IntoRequest<HelloRequest>,
                ) -> ::core::result::Result<
                    ::grpc_pool::__private::tonic::Response<
                        ::grpc_pool::__private::tonic::codec::Streaming<super::common::HelloReply>
                    >,
                    ::grpc_pool::__private::tonic::Status,
                >
            },
        );
        // The same body as a unary call: not the request-stream path (`streaming`).
        assert_tokens(
            &f.block,
            retried_call(quote!(watch), "/pkg.v1.HelloWorld/Watch"),
        );
    }

    #[test]
    fn client_and_bidi_streaming_rpcs_take_into_streaming_request() {
        let file = client(&service(vec![
            method("upload", "Upload", true, false),
            method("chat", "Chat", true, true),
        ]));
        let upload = method_fn(&file, "upload");
        assert_tokens(
            &signature(upload),
            quote! {
                pub async fn upload(
                    &self,
                    request: impl ::grpc_pool::__private::tonic::IntoStreamingRequest<Message = HelloRequest>,
                ) -> ::core::result::Result<
                    ::grpc_pool::__private::tonic::Response<super::common::HelloReply>,
                    ::grpc_pool::__private::tonic::Status,
                >
            },
        );
        assert_tokens(
            &upload.block,
            stream_call(quote!(upload), "/pkg.v1.HelloWorld/Upload"),
        );
        // Only bidi returns a stream.
        let chat = method_fn(&file, "chat");
        assert_tokens(
            &signature(chat),
            quote! {
                pub async fn chat(
                    &self,
                    request: impl ::grpc_pool::__private::tonic::IntoStreamingRequest<Message = HelloRequest>,
                ) -> ::core::result::Result<
                    ::grpc_pool::__private::tonic::Response<
                        ::grpc_pool::__private::tonic::codec::Streaming<super::common::HelloReply>
                    >,
                    ::grpc_pool::__private::tonic::Status,
                >
            },
        );
        assert_tokens(
            &chat.block,
            stream_call(quote!(chat), "/pkg.v1.HelloWorld/Chat"),
        );
    }

    #[test]
    fn keyword_rpc_becomes_a_raw_identifier() {
        let file = client_with(method("r#type", "Type", false, false));
        let f = method_fn(&file, "r#type");
        assert_tokens(&f.sig.ident, quote!(r#type));
        assert_tokens(
            &f.block,
            retried_call(quote!(r#type), "/pkg.v1.HelloWorld/Type"),
        );
    }

    #[test]
    fn deprecated_rpc_is_deprecated_and_calls_tonic_without_warning() {
        let mut m = method("old", "Old", false, false);
        m.options.deprecated = Some(true);
        let file = client_with(m);
        assert_tokens(
            &attributes(&method_fn(&file, "old").attrs),
            quote! {
                #[doc = " Unary `pkg.v1.HelloWorld/Old` on the least-loaded ready channel."]
                #[doc = ""]
                #[doc = #NO_POLICY]
                #[deprecated]
                #[allow(deprecated)]
            },
        );
    }

    #[test]
    fn server_streaming_docs_state_the_runtime_retry_bound() {
        let file = client_with(method("watch", "Watch", false, true));
        let docs = doc_text(&method_fn(&file, "watch").attrs);
        assert_eq!(
            docs,
            format!(
                " Server-streaming `pkg.v1.HelloWorld/Watch`: the stream keeps its channel until \
                 it ends; a request the server provably never saw is sent again on another \
                 connection, {}, as for unary calls.\n\n{NO_POLICY}",
                retry_bound()
            )
        );
    }

    #[test]
    fn retry_bound_is_the_runtime_constant() {
        let bound = retry_bound();
        if MAX_TRANSPARENT_RETRIES == 1 {
            assert_eq!(bound, "once");
        } else {
            assert_eq!(bound, format!("up to {MAX_TRANSPARENT_RETRIES} times"));
        }
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
            let err = crate::pooled_client::generate(
                &service(vec![method(name, "X", false, false)]),
                &Policies::default(),
            )
            .expect_err(name);
            assert!(
                err.contains(&format!("would become method `{name}`")),
                "{err}"
            );
            assert!(err.contains("PooledHelloWorldClient"), "{err}");
        }
    }

    #[test]
    fn reserved_names_are_exactly_the_clients_own_methods() {
        let file = client(&service(vec![]));
        let mut own: Vec<String> = inherent_impl(&file)
            .items
            .iter()
            .filter_map(|item| match item {
                syn::ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
                _ => None,
            })
            .collect();
        own.sort();
        let mut reserved = RESERVED_METHOD_NAMES.to_vec();
        reserved.sort_unstable();
        assert_eq!(own, reserved);
    }
}
