//! Parse: `#[grpc_pool(key = literal, ...)]` into a list of [`Arg`]s, keys checked, values not.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Lit, Token};

use crate::keys::Key;

/// One `key = literal` pair.
#[derive(Debug)]
pub(crate) struct Arg {
    pub(crate) key: &'static Key,
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
        // Any identifier, keywords included, so a misspelt key is named in the error.
        let Ok(ident) = input.fork().call(syn::Ident::parse_any) else {
            return Err(syn::Error::new(
                input.span(),
                format!("expected one of: {}", Key::list()),
            ));
        };
        let Some(key) = Key::find(&ident.to_string()) else {
            return Err(syn::Error::new(
                ident.span(),
                format!("unknown key `{ident}`; expected one of: {}", Key::list()),
            ));
        };
        input.call(syn::Ident::parse_any)?;
        input.parse::<Token![=]>()?;
        let value = input
            .parse::<Lit>()
            .map_err(|err| syn::Error::new(err.span(), format!("expected {}", key.expected())))?;
        Ok(Arg {
            key,
            key_span: ident.span(),
            value,
        })
    }
}
