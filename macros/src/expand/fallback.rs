//! What `#[server]` emits next to the error when the impl has a mistake:
//! stand-ins for every item other code names (the request enum, the handle
//! with one method per message, the `Server` impl), whose bodies never run
//! because the crate does not compile. Without them one mistake would come
//! back as its own error plus one more at every use of the handle or of
//! `.spawn()` (thiserror's `fallback.rs` does the same for its derives).
//!
//! Input:  `#[server(capacty = 8)] impl Counter { fn bump(&mut self) -> u64 {..} }`
//! Output: the impl, the error, `pub enum CounterRequest {}`, `CounterHandle`
//!         with `fn bump(&self) -> Call<'_, CounterRequest, u64> { unimplemented!() }`,
//!         and `impl Server for Counter` with the same kind of bodies.

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit::Visit;

use super::{Names, handle};
use crate::ast::{HookKind, Server};

/// Stand-ins need a server type they can name as written: not a trait
/// impl, and no lifetimes (whose error is the one to see).
pub fn applies(server: &Server<'_>) -> bool {
    #[derive(Default)]
    struct Lifetimes(bool);
    impl Visit<'_> for Lifetimes {
        fn visit_lifetime(&mut self, _: &syn::Lifetime) {
            self.0 = true;
        }
    }
    let mut lifetimes = Lifetimes::default();
    lifetimes.visit_type(&server.original.self_ty);
    lifetimes.visit_generics(&server.original.generics);
    server.original.trait_.is_none() && !lifetimes.0
}

pub fn generate(server: &Server<'_>, names: &Names) -> TokenStream {
    let names = Names {
        stand_in: true,
        ..names.clone()
    };
    let Names {
        private,
        request,
        handle,
        generics,
        ..
    } = &names;
    let self_ty = &server.original.self_ty;
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let params: Vec<_> = generics.type_params().map(|param| &param.ident).collect();
    let phantom = (!params.is_empty())
        .then(|| quote!(__Phantom(::core::marker::PhantomData<fn() -> (#(#params,)*)>)));
    let handle_items = handle::generate(server, &names);
    // The `#[every(..)]` periods, which the stripped impl no longer names:
    // kept in a method that never runs, so that what they use (an import, a
    // constant) is used as in a valid impl, and no unused-import warning
    // joins the error.
    let periods: Vec<_> = server
        .hooks
        .iter()
        .filter_map(|hook| match &hook.kind {
            HookKind::Every(period) => Some(period),
            _ => None,
        })
        .chain(
            server
                .helpers
                .iter()
                .filter_map(|helper| helper.attrs.every.as_ref().map(|(_, period)| period)),
        )
        .collect();
    let periods = (!periods.is_empty()).then(|| {
        quote! {
            #[allow(dead_code, clippy::all)]
            impl #impl_generics #self_ty #where_clause {
                fn __patchboard_periods(&self) {
                    #(let _ = || #periods;)*
                }
            }
        }
    });
    // What the protocols' parts and clients name: the server lists them,
    // and its request converts from theirs.
    let protocols = server.args.protocols.iter().map(|path| {
        quote! {
            impl #impl_generics #private::Lists<dyn #path> for #self_ty #where_clause {}

            impl #impl_generics ::core::convert::From<<dyn #path as #private::Protocol>::Request>
                for #request #ty_generics #where_clause
            {
                fn from(_: <dyn #path as #private::Protocol>::Request) -> Self {
                    ::core::unimplemented!()
                }
            }
        }
    });
    quote! {
        #periods
        #(#protocols)*

        #[allow(missing_docs, private_interfaces)]
        pub enum #request #generics #where_clause { #phantom }

        impl #impl_generics #private::Message for #request #ty_generics #where_clause {
            fn reply_slot(&mut self) -> ::core::option::Option<&mut dyn #private::ReplySlot> {
                ::core::unimplemented!()
            }
        }

        #handle_items

        impl #impl_generics #private::Server for #self_ty #where_clause {
            type Request = #request #ty_generics;
            type Handle = #handle #ty_generics;

            fn spawn(self) -> Self::Handle {
                ::core::unimplemented!()
            }

            fn dispatch(
                &mut self,
                _: Self::Request,
                _: &#private::Context<Self>,
            ) -> impl ::core::future::Future<Output = #private::Dispatched<Self::Request>> {
                ::core::future::pending()
            }
        }

        impl #impl_generics #private::Spawn for #self_ty #where_clause {
            fn spawn_task(
                _: #private::Task<Self>,
                _: ::core::option::Option<#private::Arc<#private::Slot<Self>>>,
            ) -> ::core::option::Option<#private::Inline<Self::Request>> {
                ::core::option::Option::None
            }
        }
    }
}
