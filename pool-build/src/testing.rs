//! What the generator's unit tests share: a sample service (`pkg.v1.HelloWorld`), the
//! generated items they look at, and a token comparison. Each test compares the piece it is
//! about with a `quote!` fragment; the whole generated file is pinned by the golden test.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use prost_build::{Comments, Method, Service};
use quote::{quote, ToTokens};

/// An RPC of `HelloRequest` to `super::common::HelloReply` (a type of another package).
pub(crate) fn method(
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

/// Service `pkg.v1.HelloWorld` with `methods`.
pub(crate) fn service(methods: Vec<Method>) -> Service {
    Service {
        name: "HelloWorld".to_owned(),
        proto_name: "HelloWorld".to_owned(),
        package: "pkg.v1".to_owned(),
        comments: Comments::default(),
        methods,
        options: prost_types::ServiceOptions::default(),
    }
}

/// The generated client for `service`, parsed.
pub(crate) fn client(service: &Service) -> syn::File {
    let tokens = crate::pooled_client::generate(service, &crate::policy::Policies::default())
        .expect("generates");
    syn::parse2(tokens).expect("generated code parses")
}

/// The generated client of a service with just `method`.
pub(crate) fn client_with(method: Method) -> syn::File {
    client(&service(vec![method]))
}

/// The client's `impl PooledXClient { .. }` block (the one that is not a trait impl).
pub(crate) fn inherent_impl(file: &syn::File) -> &syn::ItemImpl {
    file.items
        .iter()
        .find_map(|item| match item {
            syn::Item::Impl(block) if block.trait_.is_none() => Some(block),
            _ => None,
        })
        .expect("an inherent impl")
}

/// The client's own method `name` (`say_hello`, `r#type`, `connect`).
pub(crate) fn method_fn<'a>(file: &'a syn::File, name: &str) -> &'a syn::ImplItemFn {
    inherent_impl(file)
        .items
        .iter()
        .find_map(|item| match item {
            syn::ImplItem::Fn(f) if f.sig.ident == name => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("method `{name}` is generated"))
}

/// `pub async fn name(..) -> ..`: the visibility and signature of `f`.
pub(crate) fn signature(f: &syn::ImplItemFn) -> TokenStream {
    let vis = &f.vis;
    let sig = &f.sig;
    quote!(#vis #sig)
}

/// The attributes of `f` (docs included), in order.
pub(crate) fn attributes(attrs: &[syn::Attribute]) -> TokenStream {
    quote!(#(#attrs)*)
}

/// The attributes that are not docs, in order.
pub(crate) fn non_doc_attributes(attrs: &[syn::Attribute]) -> TokenStream {
    let attrs = attrs.iter().filter(|attr| !attr.path().is_ident("doc"));
    quote!(#(#attrs)*)
}

/// The text of the `#[doc]` attributes, one line each.
pub(crate) fn doc_text(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `actual` is the token sequence `expected`, spacing and trailing commas aside
/// (neither changes the meaning of Rust code; the golden file pins the exact layout).
#[track_caller]
pub(crate) fn assert_tokens(actual: &impl ToTokens, expected: TokenStream) {
    let actual = normalized(actual.to_token_stream());
    let expected = normalized(expected);
    assert!(
        actual == expected,
        "generated:\n{actual}\nexpected:\n{expected}"
    );
}

/// The tokens as text, one space between tokens, without commas before a closing bracket.
fn normalized(tokens: TokenStream) -> String {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Punct(comma) if comma.as_char() == ',' => {
                let closes = match tokens.get(i + 1) {
                    None => true,
                    Some(TokenTree::Punct(next)) => next.as_char() == '>',
                    Some(_) => false,
                };
                if !closes {
                    out.push(",".to_owned());
                }
            }
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push(format!("{open} {} {close}", normalized(group.stream())));
            }
            other => out.push(other.to_string()),
        }
    }
    out.join(" ")
}

/// Token text with whitespace removed, for properties of the whole generated text.
pub(crate) fn compact(tokens: &TokenStream) -> String {
    tokens
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}
