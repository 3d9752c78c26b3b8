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
//! - a request stream (client streaming, bidi): one `checkout_for_stream`, kept until the call
//!   ends, since a stream's messages cannot be sent twice.

use proc_macro2::{Ident, TokenStream};
use prost_build::{Method, Service};
use quote::{format_ident, quote};

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
    let rpc = Rpc {
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
    } = rpc;
    let p = runtime();
    let shape_doc = format!(" Unary `{path}` on the least-loaded ready channel.");
    quote! {
        #docs
        #[doc = #shape_doc]
        #deprecated
        pub async fn #ident(
            &self,
            request: impl #p::tonic::IntoRequest<#request>,
        ) -> ::core::result::Result<#p::tonic::Response<#response>, #p::tonic::Status> {
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
    } = rpc;
    let p = runtime();
    let shape_doc = format!(
        " Server-streaming `{path}`: the stream keeps its channel until it ends; a request the \
         server provably never saw is sent again on another connection, {}, as for unary calls.",
        retry_bound()
    );
    quote! {
        #docs
        #[doc = #shape_doc]
        #deprecated
        pub async fn #ident(
            &self,
            request: impl #p::tonic::IntoRequest<#request>,
        ) -> ::core::result::Result<
            #p::tonic::Response<#p::tonic::codec::Streaming<#response>>,
            #p::tonic::Status,
        > {
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
    }
}

/// A stream of requests, one response: one channel for the whole call, never retried.
fn client_streaming(rpc: &Rpc) -> TokenStream {
    let Rpc {
        docs,
        deprecated,
        ident,
        path,
        request,
        response,
    } = rpc;
    let p = runtime();
    let shape_doc = format!(" Client-streaming `{path}`: the call keeps its channel until it ends.");
    quote! {
        #docs
        #[doc = #shape_doc]
        #deprecated
        pub async fn #ident(
            &self,
            request: impl #p::tonic::IntoStreamingRequest<Message = #request>,
        ) -> ::core::result::Result<#p::tonic::Response<#response>, #p::tonic::Status> {
            let channel = #p::checkout_for_stream(&self.pool).await?;
            self.tonic_client(channel).#ident(request).await
        }
    }
}

/// Streams both ways: one channel for the whole call, never retried.
fn bidi_streaming(rpc: &Rpc) -> TokenStream {
    let Rpc {
        docs,
        deprecated,
        ident,
        path,
        request,
        response,
    } = rpc;
    let p = runtime();
    let shape_doc = format!(" Bidirectional `{path}`: the call keeps its channel until it ends.");
    quote! {
        #docs
        #[doc = #shape_doc]
        #deprecated
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
    }
}

/// Parses a message type as prost resolved it, relative to the package module
/// (`HelloRequest`, `super::common::Id`, `::prost_types::Timestamp`, `()`).
fn rust_type(path: &str, service: &str, rpc: &str) -> Result<syn::Type, String> {
    syn::parse_str::<syn::Type>(path).map_err(|err| {
        format!("rpc `{service}.{rpc}`: message type `{path}` is not a Rust type ({err})")
    })
}
