//! `#[server(remote)]`: the server's messages over NATS (the `nats` feature
//! of the runtime). A serde struct per message for its arguments, and
//! `impl RemoteServer`: forwarding a request from a remote handle, and
//! answering one that arrived on a subject by calling the local handle.
//!
//! Input:  `fn deposit(&mut self, amount: u64) -> u64`
//! Output: `struct __AccountDepositWire<A0> { amount: A0 }` and the arms
//! `AccountRequest::Deposit { amount, reply } => link.call("deposit", ..)`,
//! `"deposit" => { let wire = incoming.decode()?; incoming.finish(handle.deposit(..)) }`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::{Names, replace_self};
use crate::ast::{Message, Server};

pub fn generate(server: &Server<'_>, names: &Names, remote: Span) -> TokenStream {
    let Names {
        private,
        request,
        handle,
        ..
    } = names;
    let self_ty = &server.original.self_ty;
    let serde_path = format!("{private}::nats::serde");
    let wires = server.messages.iter().map(|message| {
        let wire = wire_name(server, message);
        let cfgs = &message.attrs.cfgs;
        let params: Vec<_> = (0..message.args.len())
            .map(|at| format_ident!("A{at}"))
            .collect();
        let fields = message.args.iter().zip(&params).map(|(arg, param)| {
            let name = arg.ident;
            quote!(#name: #param)
        });
        let generics = (!params.is_empty()).then(|| quote!(<#(#params),*>));
        quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #[derive(#private::nats::serde::Serialize, #private::nats::serde::Deserialize)]
            #[serde(crate = #serde_path)]
            struct #wire #generics { #(#fields),* }
        }
    });
    // Every type that crosses the wire, checked where the user wrote it:
    // a type that cannot gives its error there, and none inside (the wire
    // functions are picked by `WireTag`, which never fails to compile).
    let checks = server.messages.iter().flat_map(|message| {
        let cfgs = &message.attrs.cfgs;
        let answer = message.answer();
        message
            .args
            .iter()
            .map(|arg| arg.ty)
            .chain(answer)
            .map(|ty| {
                let replaced = replace_self(ty, self_ty);
                let check = quote_spanned!(ty.span()=> #private::nats::assert_wire::<#replaced>);
                quote!(#(#cfgs)* const _: fn() = #check;)
            })
            .collect::<Vec<_>>()
    });
    let tag = |ty: TokenStream| quote!((&#private::nats::WireTag::<#ty>::new()));
    let names_pushed = server.messages.iter().map(|message| {
        let cfgs = &message.attrs.cfgs;
        let name = message.ident.to_string();
        quote!(#(#cfgs)* messages.push(#name);)
    });
    let forward_arms = server.messages.iter().map(|message| {
        let cfgs = &message.attrs.cfgs;
        let name = message.ident.to_string();
        let variant = &message.variant;
        let wire = wire_name(server, message);
        let fields: Vec<_> = message.args.iter().map(|arg| arg.ident).collect();
        let encode = tag(wire_type(message, &wire, self_ty));
        let payload = quote!(#encode.encoder()(&#wire { #(#fields),* }));
        if message.is_cast() {
            quote! {
                #(#cfgs)*
                #request::#variant { #(#fields),* } => link.cast(#name, #payload),
            }
        } else {
            let decode = tag(answer_type(message, self_ty));
            quote! {
                #(#cfgs)*
                #request::#variant { #(#fields,)* reply } =>
                    link.call(#name, #payload, reply, #decode.decoder()),
            }
        }
    });
    let answer_arms = server.messages.iter().map(|message| {
        let cfgs = &message.attrs.cfgs;
        let name = message.ident.to_string();
        let method = message.ident;
        let wire = wire_name(server, message);
        let fields: Vec<_> = message.args.iter().map(|arg| arg.ident).collect();
        let decode = tag(wire_type(message, &wire, self_ty));
        let encode = tag(if message.is_cast() {
            quote!(())
        } else {
            answer_type(message, self_ty)
        });
        quote! {
            #(#cfgs)*
            #name => #private::nats::Box::pin(async move {
                let #wire { #(#fields),* } = match incoming.decode(#decode.decoder()) {
                    ::core::result::Result::Ok(wire) => wire,
                    ::core::result::Result::Err(refused) => return refused,
                };
                incoming.finish(handle.#method(#(#fields),*), #encode.encoder()).await
            }),
        }
    });
    // The protocols the server lists cross with it (each declared
    // `#[protocol(remote)]`).
    let protocols = &server.args.protocols;
    let protocol_names = protocols.iter().map(
        |path| quote!(<dyn #path as #private::nats::RemoteProtocol>::messages(&mut messages);),
    );
    let protocol_forward_arms = protocols.iter().map(|path| {
        let variant = super::protocol_variant(path);
        quote! {
            #request::#variant(request) =>
                <dyn #path as #private::nats::RemoteProtocol>::forward(request, link),
        }
    });
    let protocol_answers = protocols.iter().map(|path| {
        quote! {
            let incoming = match <dyn #path as #private::nats::RemoteProtocol>::answer(
                ::core::convert::AsRef::as_ref(&handle),
                message,
                incoming,
            ) {
                ::core::result::Result::Ok(answering) => return answering,
                ::core::result::Result::Err(incoming) => incoming,
            };
        }
    });
    let code = quote! {
        #(#wires)*
        #(#checks)*

        #[automatically_derived]
        impl #private::nats::RemoteServer for #self_ty {
            fn messages() -> #private::Vec<&'static str> {
                let mut messages = #private::Vec::new();
                #(#names_pushed)*
                #(#protocol_names)*
                messages
            }

            fn forward(
                request: Self::Request,
                link: #private::nats::Link,
            ) -> #private::nats::Forwarded {
                use #private::nats::{NotWire as _, ViaSerde as _};
                match request {
                    #(#forward_arms)*
                    #(#protocol_forward_arms)*
                }
            }

            fn answer(
                handle: &#private::Handle<Self>,
                message: &str,
                incoming: #private::nats::Incoming,
            ) -> #private::nats::Answering {
                use #private::nats::{NotWire as _, ViaSerde as _};
                let handle: #handle = ::core::convert::From::from(
                    ::core::clone::Clone::clone(handle),
                );
                match message {
                    #(#answer_arms)*
                    _ => {
                        #(#protocol_answers)*
                        incoming.unknown(message)
                    }
                }
            }
        }
    };
    // Kept with the runtime's `nats` feature; without it, one error on
    // the word `remote` saying which feature to turn on.
    quote_spanned!(remote=> #private::remote! { #code })
}

/// `__AccountDepositWire<u64>`: the type of one message's arguments.
fn wire_type(message: &Message<'_>, wire: &syn::Ident, self_ty: &syn::Type) -> TokenStream {
    if message.args.is_empty() {
        return quote!(#wire);
    }
    let tys = message.args.iter().map(|arg| replace_self(arg.ty, self_ty));
    quote!(#wire<#(#tys),*>)
}

/// The type the caller receives.
fn answer_type(message: &Message<'_>, self_ty: &syn::Type) -> TokenStream {
    message
        .answer()
        .map_or_else(|| quote!(()), |ty| replace_self(ty, self_ty))
}

/// `__AccountDepositWire`: the arguments of one message, as sent.
fn wire_name(server: &Server<'_>, message: &Message<'_>) -> syn::Ident {
    format_ident!("__{}{}Wire", server.name, message.variant)
}
