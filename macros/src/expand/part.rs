//! `#[server]` on a trait impl: one protocol's part of a server. The
//! server itself (its request enum, handle and loop) comes from its
//! inherent `#[server(protocols(..))]` impl; this part proves the two
//! agree, and makes a method of the protocol and an inherent one with the
//! same name collide.
//!
//! Input:  `#[server] impl SessionStore for MemoryStore { fn get(&self, key: String) .. }`
//! Output: the impl unchanged, `impl Implements<dyn SessionStore> for MemoryStore`,
//!         a check that the server lists the protocol, and a hidden
//!         `const get: ()` in an inherent impl of `MemoryStore`, so that an
//!         inherent `fn get` is a duplicate definition on the user's tokens.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItem, ItemImpl};

use crate::args::Args;
use crate::attr::is_helper;
use crate::ctxt::Ctxt;

pub fn generate(item: &ItemImpl, args: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let parsed = Args::parse(args.clone(), &mut cx);
    if !parsed.only_crate() {
        cx.error(
            &args,
            "a protocol's `#[server]` impl takes no options: give them on the server's \
             inherent impl, `#[server(protocols(..), ..)] impl MyServer { .. }`",
        );
    }
    let krate = parsed
        .krate
        .unwrap_or_else(|| syn::parse_quote!(::patchboard));
    let private = quote!(#krate::__private);
    let (path, _) = item.trait_.as_ref().expect("a trait impl");
    // The standard traits are never protocols: say so, instead of what
    // naming `dyn Clone` would say.
    const STANDARD: &[&str] = &[
        "AsMut",
        "AsRef",
        "Borrow",
        "Clone",
        "Copy",
        "Debug",
        "Default",
        "Deref",
        "DerefMut",
        "Display",
        "Drop",
        "Eq",
        "Error",
        "Extend",
        "From",
        "FromIterator",
        "FromStr",
        "Future",
        "Hash",
        "Into",
        "IntoIterator",
        "Iterator",
        "Ord",
        "PartialEq",
        "PartialOrd",
        "Send",
        "Sync",
        "ToString",
        "TryFrom",
        "TryInto",
    ];
    if let Some(last) = path.segments.last()
        && STANDARD.iter().any(|name| last.ident == name)
    {
        let error = syn::Error::new_spanned(
            path,
            format!(
                "`#[server]` goes on an inherent impl, or on the impl of a `#[protocol]` trait; \
                 `{}` is not one: keep this impl without `#[server]`, and write \
                 `#[server] impl MyServer {{ .. }}`",
                last.ident
            ),
        )
        .into_compile_error();
        return quote!(#item #error);
    }
    if let Some(unsafety) = &item.unsafety {
        cx.error(
            unsafety,
            "`#[server]` cannot go on an `unsafe impl`: remove `unsafe`",
        );
    }
    let mut markers = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        for attr in method.attrs.iter().filter(|attr| is_helper(attr)) {
            let name = attr.path().to_token_stream().to_string();
            cx.error(
                attr,
                format!(
                    "`#[{name}]` goes on the protocol's declaration, in its `#[protocol]` trait: \
                     move it there"
                ),
            );
        }
        let ident = &method.sig.ident;
        markers.push(quote_spanned! {ident.span()=>
            #[doc(hidden)]
            const #ident: () = ();
        });
    }
    let mut item = item.clone();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method.attrs.retain(|attr| !is_helper(attr));
        }
    }
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let inherent_where = where_clause;
    // One mention of `dyn Trait`, so that a trait that is not a protocol
    // gives one error; the bound is the check that the server lists it.
    let listed = quote_spanned! {path.span()=>
        #self_ty: #private::Lists<dyn #path>
    };
    let mut where_clause = where_clause
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(where));
    where_clause.predicates.push(syn::parse_quote!(#listed));
    let errors = cx.finish().err().map(syn::Error::into_compile_error);
    quote! {
        #item
        #errors

        #[automatically_derived]
        impl #impl_generics #private::Implements<dyn #path> for #self_ty #where_clause {}

        // A method of the protocol and an inherent one of the same name
        // would be two messages of one name: this makes them collide.
        #[allow(non_upper_case_globals, dead_code)]
        impl #impl_generics #self_ty #inherent_where {
            #(#markers)*
        }
    }
}
