//! `#[protocol]`'s output: the trait (each method callable on servers only,
//! so that `dyn Trait` can name the protocol), its request enum, the code
//! that serves a request against any implementing server, and the client.
//!
//! Input:  `#[protocol] pub trait SessionStore { fn get(&self, key: String) -> Option<String>; }`
//! Output: `pub trait SessionStore { fn get(&self, key: String) -> Option<String> where Self: Sized; }`,
//!         `pub enum SessionStoreRequest { Get { key, reply } }` with `__serve`,
//!         `pub struct SessionStoreClient(Arc<dyn ..>)` with
//!         `fn get(&self, key: String) -> ProtocolCall<'_, Option<String>>`,
//!         `From<H>` for any handle `H` of a server that lists the protocol, and
//!         `impl Protocol for dyn SessionStore`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{ItemTrait, TraitItem};

use super::dispatch::{arm, context_ident};
use super::request::variant;
use crate::args::Args;
use crate::ast::Message;
use crate::attr::is_helper;
use crate::ctxt::Ctxt;
use crate::protocol::{Protocol, methods};

/// Entry point of `#[protocol]`.
pub fn protocol(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Trait(item)) => item,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                other,
                "`#[protocol]` goes on a trait of message methods: write \
                 `#[protocol] trait SessionStore { fn get(&self, key: String) -> Option<String>; }`",
            )
            .into_compile_error();
            return quote!(#input #error);
        }
        Err(error) => {
            let error = error.into_compile_error();
            return quote!(#input #error);
        }
    };
    let mut cx = Ctxt::default();
    let args = Args::parse(args, &mut cx);
    let owned = methods(&item);
    let protocol = Protocol::from_syn(&item, &owned, args, &mut cx);
    protocol.validate(&mut cx);
    match cx.finish() {
        Ok(()) => generate(&protocol, false),
        // One mistake, one error: the trait and the client still appear.
        Err(error) => {
            let error = error.into_compile_error();
            let stand_ins = generate(&protocol, true);
            quote!(#stand_ins #error)
        }
    }
}

fn generate(protocol: &Protocol<'_>, stand_in: bool) -> TokenStream {
    let item = protocol.original;
    let krate = protocol
        .args
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::patchboard));
    let private = quote!(#krate::__private);
    let ident = &item.ident;
    let vis = &item.vis;
    let request = format_ident!("{}Request", ident);
    let client = format_ident!("{}Client", ident);
    let target = format_ident!("__{}Target", ident);
    let the_trait = the_trait(item, &private, stand_in);
    let messages = &protocol.messages;
    // Stand-ins cannot name a protocol whose trait is not a plain one.
    let plain = item.generics.params.is_empty()
        && item
            .items
            .iter()
            .all(|item| matches!(item, TraitItem::Fn(_)));

    let self_ty: syn::Type = syn::parse_quote!(Self);
    // A stand-in's enum is empty: its fields could repeat the mistake.
    let variants = messages
        .iter()
        .filter(|_| !stand_in)
        .map(|m| variant(m, &self_ty, &private));
    let slots = messages.iter().map(|m| {
        let variant = &m.variant;
        let cfgs = &m.attrs.cfgs;
        if m.is_cast() {
            quote!(#(#cfgs)* Self::#variant { .. } => ::core::option::Option::None,)
        } else {
            quote!(#(#cfgs)* Self::#variant { reply, .. } => ::core::option::Option::Some(reply),)
        }
    });
    let names = messages.iter().map(|m| {
        let variant = &m.variant;
        let cfgs = &m.attrs.cfgs;
        let name = m.ident.to_string();
        let name = name.trim_start_matches("r#");
        quote!(#(#cfgs)* Self::#variant { .. } => #name,)
    });
    let inline = messages.iter().filter(|m| m.runs_inline()).map(|m| {
        let variant = &m.variant;
        let cfgs = &m.attrs.cfgs;
        quote!(#(#cfgs)* Self::#variant { .. } => true,)
    });
    let body = |arms: Vec<TokenStream>| {
        if messages.is_empty() {
            quote!(match *self {})
        } else {
            quote!(match self { #(#arms)* })
        }
    };
    let (slots, names) = if stand_in {
        (quote!(match *self {}), quote!(match *self {}))
    } else {
        (body(slots.collect()), body(names.collect()))
    };
    let inline: Vec<TokenStream> = if stand_in {
        Vec::new()
    } else {
        inline.collect()
    };
    let bound = if stand_in {
        quote!(#private::Server)
    } else {
        quote!(#ident + #private::Server)
    };
    let server = quote!(__server);
    let arms = messages
        .iter()
        .map(|m| arm(m, &request, &private, &server, &TokenStream::new()));
    let context = context_ident();
    let serve_body = if stand_in {
        quote!(::core::future::pending())
    } else if messages.is_empty() {
        quote!(async move { match self {} })
    } else {
        quote! {
            async move {
                let _ = #context;
                match self {
                    #(#arms)*
                }
            }
        }
    };

    let target_methods: Vec<TokenStream> = messages
        .iter()
        .map(|m| {
            let ident = m.ident;
            let cfgs = &m.attrs.cfgs;
            let params = m.args.iter().map(|arg| {
                let (name, ty) = (arg.ident, arg.ty);
                quote!(#name: #ty)
            });
            let answer = m.answer().map_or_else(|| quote!(()), |ty| quote!(#ty));
            quote!(#(#cfgs)* fn #ident(&self, #(#params),*) -> #private::ProtocolCall<'_, #answer>;)
        })
        .collect();
    let target_impls = messages.iter().map(|m| {
        let ident = m.ident;
        let variant = &m.variant;
        let cfgs = &m.attrs.cfgs;
        let params = m.args.iter().map(|arg| {
            let (name, ty) = (arg.ident, arg.ty);
            quote!(#name: #ty)
        });
        let fields: Vec<_> = m.args.iter().map(|arg| arg.ident).collect();
        let answer = m.answer().map_or_else(|| quote!(()), |ty| quote!(#ty));
        let kind = kind(m, &private);
        let call = if m.is_cast() {
            quote! {
                #private::cast(self, #kind, ::core::convert::From::from(#request::#variant { #(#fields),* }))
            }
        } else {
            quote! {
                #private::call(self, #kind, |reply| {
                    ::core::convert::From::from(#request::#variant { #(#fields,)* reply })
                })
            }
        };
        quote! {
            #(#cfgs)*
            fn #ident(&self, #(#params),*) -> #private::ProtocolCall<'_, #answer> {
                #private::erase(#call)
            }
        }
    });
    let client_methods = messages.iter().map(|m| {
        let ident = m.ident;
        let cfgs = &m.attrs.cfgs;
        let docs = &m.attrs.docs;
        let params = m.args.iter().map(|arg| {
            let (name, ty) = (arg.ident, arg.ty);
            if stand_in {
                quote!(_: #ty)
            } else {
                quote!(#name: #ty)
            }
        });
        let fields = m.args.iter().map(|arg| arg.ident);
        let answer = m.answer().map_or_else(|| quote!(()), |ty| quote!(#ty));
        let body = if stand_in {
            quote!(::core::unimplemented!())
        } else {
            quote!(self.0.#ident(#(#fields),*))
        };
        quote! {
            #(#docs)*
            #(#cfgs)*
            pub fn #ident(&self, #(#params),*) -> #private::ProtocolCall<'_, #answer> {
                #body
            }
        }
    });
    let request_doc = format!(
        "A request of the protocol [`{ident}`]: one variant per method, generated by \
         `#[protocol]`. A server that lists the protocol carries it in a variant of its own \
         request enum."
    );
    let client_doc = format!(
        "A client of the protocol [`{ident}`], generated by `#[protocol]`: the handle of any \
         server that implements it converts into one (`{client}::from(handle)`). One method \
         per message, each returning a `patchboard::ProtocolCall` with the options of a \
         `Call`. Cheap to clone; it keeps its server alive as a handle does."
    );
    let client_name = client.to_string();
    let levels = messages
        .iter()
        .filter_map(|m| m.attrs.priority.map(|(_, level)| level))
        .max()
        .unwrap_or(0);
    let protocol_impl = (plain && !stand_in).then(|| {
        quote! {
            #[automatically_derived]
            impl #private::Protocol for dyn #ident {
                type Request = #request;
                type Client = #client;
                const PRIORITY_LEVELS: u8 = #levels;

                fn client<S: #private::Server>(handle: #private::Handle<S>) -> #client
                where
                    S::Request: ::core::convert::From<#request>,
                {
                    #client(#private::Arc::new(handle))
                }
            }
        }
    });
    let (target_trait, client_struct, from, lifecycle) = if stand_in {
        (
            TokenStream::new(),
            quote!(#vis struct #client(::core::marker::PhantomData<fn()>);),
            if plain {
                quote! {
                    #[automatically_derived]
                    impl #private::Protocol for dyn #ident {
                        type Request = #request;
                        type Client = #client;
                        const PRIORITY_LEVELS: u8 = 0;

                        fn client<S: #private::Server>(_: #private::Handle<S>) -> #client
                        where
                            S::Request: ::core::convert::From<#request>,
                        {
                            ::core::unimplemented!()
                        }
                    }
                }
            } else {
                TokenStream::new()
            },
            TokenStream::new(),
        )
    } else {
        (
            quote! {
                #[allow(non_camel_case_types)]
                trait #target: #private::Endpoint {
                    #(#target_methods)*
                }

                #[automatically_derived]
                impl<S> #target for #private::Handle<S>
                where
                    S: #private::Server,
                    S::Request: ::core::convert::From<#request>,
                {
                    #(#target_impls)*
                }
            },
            quote! {
                #[derive(Clone)]
                #vis struct #client(#private::Arc<dyn #target>);
            },
            quote! {
                #[automatically_derived]
                impl ::core::fmt::Debug for #client {
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.debug_struct(#client_name)
                            .field("name", &self.0.name())
                            .field("closed", &self.0.is_closed())
                            .finish()
                    }
                }
            },
            quote! {
                /// `true` once the server refuses new requests.
                pub fn is_closed(&self) -> bool {
                    self.0.is_closed()
                }

                /// The name given with `Builder::name`, if any.
                pub fn name(&self) -> ::core::option::Option<&str> {
                    self.0.name()
                }

                /// Stops the server and waits until it has stopped. See
                /// `patchboard::Handle::stop`.
                pub async fn stop(&self) {
                    self.0.stop().await
                }

                /// Waits until the server has stopped, and tells why.
                pub async fn closed(&self) -> #private::StopReason {
                    self.0.closed().await
                }
            },
        )
    };
    let remote = protocol
        .args
        .remote
        .filter(|_| !stand_in && plain)
        .map(|_| remote(protocol, &request, &private));
    quote! {
        #the_trait
        #remote

        #[doc = #request_doc]
        #vis enum #request {
            #(#variants)*
        }

        #[automatically_derived]
        impl #private::Message for #request {
            fn runs_inline(&self) -> bool {
                #[allow(unreachable_patterns)]
                match self {
                    #(#inline)*
                    _ => false,
                }
            }

            fn reply_slot(&mut self) -> ::core::option::Option<&mut dyn #private::ReplySlot> {
                #slots
            }

            fn name(&self) -> &'static str {
                #names
            }
        }

        impl #request {
            /// Serves this request against `server`'s implementation of the
            /// protocol. Generated code only.
            #[doc(hidden)]
            pub fn __serve<'s, S>(
                self,
                #server: &'s mut S,
                #context: &'s #private::Context<S>,
            ) -> impl ::core::future::Future<Output = ()> + 's
            where
                S: #bound,
            {
                #serve_body
            }
        }

        #target_trait

        #[doc = #client_doc]
        #client_struct

        #from

        #[allow(private_interfaces)]
        impl #client {
            #(#client_methods)*
            #lifecycle
        }

        #protocol_impl
    }
}

/// How a message is called, as declared on its method.
fn kind(message: &Message<'_>, private: &TokenStream) -> TokenStream {
    let mut kind = quote!(#private::Kind::CALL);
    if let Some((_, level)) = message.attrs.priority {
        kind = quote!(#kind.priority(#level));
    }
    if matches!(message.reply, crate::ast::Reply::Deferred { .. }) {
        kind = quote!(#kind.deferred());
    }
    if let Some((_, timeout)) = message
        .attrs
        .timeout
        .as_ref()
        .filter(|_| !message.is_cast())
    {
        let duration = timeout.to_expr_in(private);
        kind = quote!(#kind.timeout(#duration));
    }
    kind
}

/// `#[protocol(remote)]`: the protocol's messages over NATS, for servers
/// offered with `#[server(remote, protocols(..))]`. As `#[server(remote)]`
/// does for a server's own messages (`expand/remote.rs`): a serde struct
/// per message, forwarding from a remote handle, and answering through any
/// implementing server's handle.
fn remote(protocol: &Protocol<'_>, request: &syn::Ident, private: &TokenStream) -> TokenStream {
    let ident = &protocol.original.ident;
    let messages = &protocol.messages;
    let serde_path = format!("{private}::nats::serde");
    let wire_name = |m: &Message<'_>| format_ident!("__{}{}Wire", ident, m.variant);
    let wire_type = |m: &Message<'_>| {
        let wire = wire_name(m);
        if m.args.is_empty() {
            quote!(#wire)
        } else {
            let tys = m.args.iter().map(|arg| arg.ty);
            quote!(#wire<#(#tys),*>)
        }
    };
    let answer_type = |m: &Message<'_>| m.answer().map_or_else(|| quote!(()), |ty| quote!(#ty));
    let tag = |ty: TokenStream| quote!((&#private::nats::WireTag::<#ty>::new()));
    let wires = messages.iter().map(|m| {
        let wire = wire_name(m);
        let cfgs = &m.attrs.cfgs;
        let params: Vec<_> = (0..m.args.len()).map(|at| format_ident!("A{at}")).collect();
        let fields = m.args.iter().zip(&params).map(|(arg, param)| {
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
    let checks = messages.iter().flat_map(|m| {
        let cfgs = &m.attrs.cfgs;
        m.args
            .iter()
            .map(|arg| arg.ty)
            .chain(m.answer())
            .map(|ty| {
                let check =
                    quote::quote_spanned!(syn::spanned::Spanned::span(ty)=> #private::nats::assert_wire::<#ty>);
                quote!(#(#cfgs)* const _: fn() = #check;)
            })
            .collect::<Vec<_>>()
    });
    let names = messages.iter().map(|m| {
        let cfgs = &m.attrs.cfgs;
        let name = m.ident.to_string();
        quote!(#(#cfgs)* messages.push(#name);)
    });
    let forward_arms = messages.iter().map(|m| {
        let cfgs = &m.attrs.cfgs;
        let name = m.ident.to_string();
        let variant = &m.variant;
        let wire = wire_name(m);
        let fields: Vec<_> = m.args.iter().map(|arg| arg.ident).collect();
        let encode = tag(wire_type(m));
        let payload = quote!(#encode.encoder()(&#wire { #(#fields),* }));
        if m.is_cast() {
            quote!(#(#cfgs)* #request::#variant { #(#fields),* } => link.cast(#name, #payload),)
        } else {
            let decode = tag(answer_type(m));
            quote! {
                #(#cfgs)*
                #request::#variant { #(#fields,)* reply } =>
                    link.call(#name, #payload, reply, #decode.decoder()),
            }
        }
    });
    let answer_arms = messages.iter().map(|m| {
        let cfgs = &m.attrs.cfgs;
        let name = m.ident.to_string();
        let variant = &m.variant;
        let wire = wire_name(m);
        let fields: Vec<_> = m.args.iter().map(|arg| arg.ident).collect();
        let decode = tag(wire_type(m));
        let kind = kind(m, private);
        let (call, encode) = if m.is_cast() {
            (
                quote! {
                    #private::cast(&handle, #kind, ::core::convert::From::from(#request::#variant { #(#fields),* }))
                },
                tag(quote!(())),
            )
        } else {
            (
                quote! {
                    #private::call(&handle, #kind, |reply| {
                        ::core::convert::From::from(#request::#variant { #(#fields,)* reply })
                    })
                },
                tag(answer_type(m)),
            )
        };
        quote! {
            #(#cfgs)*
            #name => {
                let handle = ::core::clone::Clone::clone(handle);
                ::core::result::Result::Ok(#private::nats::Box::pin(async move {
                    let #wire { #(#fields),* } = match incoming.decode(#decode.decoder()) {
                        ::core::result::Result::Ok(wire) => wire,
                        ::core::result::Result::Err(refused) => return refused,
                    };
                    incoming.finish(#call, #encode.encoder()).await
                }))
            }
        }
    });
    let forward_body = if messages.is_empty() {
        quote!(match request {})
    } else {
        quote!(match request { #(#forward_arms)* })
    };
    let code = quote! {
        #(#wires)*
        #(#checks)*

        #[automatically_derived]
        impl #private::nats::RemoteProtocol for dyn #ident {
            fn messages(messages: &mut #private::Vec<&'static str>) {
                #(#names)*
            }

            fn forward(request: #request, link: #private::nats::Link) -> #private::nats::Forwarded {
                use #private::nats::{NotWire as _, ViaSerde as _};
                #forward_body
            }

            fn answer<S: #private::Server>(
                handle: &#private::Handle<S>,
                message: &str,
                incoming: #private::nats::Incoming,
            ) -> ::core::result::Result<#private::nats::Answering, #private::nats::Incoming>
            where
                S::Request: ::core::convert::From<#request>,
            {
                use #private::nats::{NotWire as _, ViaSerde as _};
                match message {
                    #(#answer_arms)*
                    _ => ::core::result::Result::Err(incoming),
                }
            }
        }
    };
    let span = protocol
        .args
        .remote
        .unwrap_or_else(proc_macro2::Span::call_site);
    quote::quote_spanned!(span=> #private::remote! { #code })
}

/// The trait as written, our attributes removed, every method callable on
/// sized types only (so that `dyn Trait` names the protocol), and an
/// `async fn` declared as returning a `Send` future (so that a server's
/// loop can hold it).
fn the_trait(item: &ItemTrait, private: &TokenStream, stand_in: bool) -> TokenStream {
    let mut item = item.clone();
    for trait_item in &mut item.items {
        let TraitItem::Fn(method) = trait_item else {
            continue;
        };
        method.attrs.retain(|attr| !is_helper(attr));
        let sig = &mut method.sig;
        if sig.asyncness.take().is_some() {
            let output = match &sig.output {
                syn::ReturnType::Default => quote!(()),
                syn::ReturnType::Type(_, ty) => quote!(#ty),
            };
            sig.output = syn::parse_quote! {
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
            };
        }
        let predicates = &mut sig.generics.make_where_clause().predicates;
        predicates.push(syn::parse_quote!(Self: ::core::marker::Sized));
        // A mistaken `&Context<Self>` argument would add an error of its own.
        if stand_in {
            predicates.push(syn::parse_quote!(Self: #private::Server));
        }
    }
    quote!(#item)
}
