//! `impl Server`: dispatch (request → method call → reply), the terminal
//! `consume`, lifecycle hooks and timers.
//!
//! Input:  `fn deposit(&mut self, amount: u64) -> u64`
//! Output: `AccountRequest::Deposit { amount, reply } => { let _ = reply.send(self.deposit(amount)); }`

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::FnArg;
use syn::spanned::Spanned;

use super::{Names, protocol_variant};
use crate::ast::{Hook, HookKind, Message, Receiver, Reply, Server, is_context};

pub fn generate(server: &Server<'_>, names: &Names) -> TokenStream {
    let Names {
        private,
        request,
        handle,
        generics,
        ..
    } = names;
    let self_ty = &server.original.self_ty;
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    // No `Send` bound: the generated `Spawn` impl proves the tasks `Send`
    // for this type (or runs them locally), with one error if they are not.
    let future = |output: TokenStream| quote!(impl ::core::future::Future<Output = #output>);
    let unit_future = future(quote!(()));
    let dispatch_future = future(quote!(#private::Dispatched<Self::Request>));
    let context = context_ident();

    let has_phantom = generics.type_params().next().is_some();
    let phantom_arm = has_phantom.then(|| quote!(#request::__Phantom(never, _) => match never {},));
    let (terminal, serial): (Vec<&Message<'_>>, Vec<&Message<'_>>) = server
        .messages
        .iter()
        .partition(|m| m.receiver == Receiver::Value);

    let served = quote!(#private::Dispatched::Served);
    let this = quote!(self);
    let serial_arms = serial
        .iter()
        .map(|m| arm(m, request, private, &this, &served))
        .collect::<Vec<_>>();
    // A protocol's request is served by the code `#[protocol]` generated,
    // against this server's implementation of the trait.
    let protocols = &server.args.protocols;
    let protocol_arms = protocols.iter().map(|path| {
        let variant = protocol_variant(path);
        quote! {
            #request::#variant(request) => {
                request.__serve(self, #context).await;
                #served
            }
        }
    });
    let protocol_checks = protocols.iter().map(|path| {
        let span = path.span();
        let check = quote_spanned!(span=> #private::assert_implements::<#self_ty, dyn #path>());
        quote! {
            #[automatically_derived]
            impl #impl_generics #private::Lists<dyn #path> for #self_ty #where_clause {}

            const _: () = {
                #[allow(dead_code)]
                fn __check #impl_generics () #where_clause {
                    #check;
                }
            };
        }
    });
    // A terminal request is handed back to the loop, which stops taking
    // requests and then gives it to `consume` with the state.
    let terminal_arms = terminal.iter().map(|m| {
        let cfgs = &m.attrs.cfgs;
        let variant = &m.variant;
        quote! {
            #(#cfgs)*
            request @ #request::#variant { .. } => #private::Dispatched::Terminal(request),
        }
    });
    let consume = (!terminal.is_empty()).then(|| {
        let context = context_ident();
        let arms = terminal
            .iter()
            .map(|m| arm(m, request, private, &quote!(self), &TokenStream::new()));
        quote! {
            fn consume(self, request: Self::Request, #context: &#private::Context<Self>) -> #unit_future {
                async move {
                    match request {
                        #(#arms)*
                        // `dispatch` hands only terminal requests here.
                        #[allow(unreachable_patterns)]
                        _ => {}
                    }
                }
            }
        }
    });

    let options = options(server, private);
    let hooks = hooks(server, private, &unit_future);
    // On the server's type, where the one error a state that is not
    // `Send` gives belongs.
    let spawn = if server.args.local {
        quote! {
            let _ = slot;
            #private::spawn_local(#private::run_task(task));
            ::core::option::Option::None
        }
    } else {
        let span = syn::spanned::Spanned::span(self_ty);
        let serve = quote::quote_spanned!(span=> __serve);
        quote! {
            let #serve = #private::run_task(task);
            #private::spawn_send(#serve, slot)
        }
    };

    // Callers serve synchronous calls themselves while the server is idle
    // (the runtime's `inline.rs`): the request enum says which.
    let inline = super::request::runs_inline(server).then(|| {
        quote!(
            const INLINE: bool = true;
        )
    });

    quote! {
        #[automatically_derived]
        impl #impl_generics #private::Server for #self_ty #where_clause {
            type Request = #request #ty_generics;
            type Handle = #handle #ty_generics;
            #options

            fn spawn(self) -> Self::Handle {
                #private::Builder::new(self).spawn()
            }

            // A synchronous handler may return a future (a `Scheduled`, a
            // `JoinHandle`): as a value, which the block that observes it
            // yields on purpose.
            #[allow(clippy::async_yields_async)]
            fn dispatch(&mut self, request: Self::Request, #context: &#private::Context<Self>) -> #dispatch_future {
                async move {
                    match request {
                        #(#serial_arms)*
                        #(#protocol_arms)*
                        #(#terminal_arms)*
                        #phantom_arm
                    }
                }
            }

            #consume
            #hooks
        }

        #(#protocol_checks)*

        #[automatically_derived]
        impl #impl_generics #private::Spawn for #self_ty #where_clause {
            #inline

            fn spawn_task(
                task: #private::Task<Self>,
                slot: ::core::option::Option<#private::Arc<#private::Slot<Self>>>,
            ) -> ::core::option::Option<#private::Inline<Self::Request>> {
                #spawn
            }
        }
    }
}

/// One match arm: unpack the variant, call the method, send the answer,
/// then evaluate to `then`.
pub(super) fn arm(
    message: &Message<'_>,
    request: &impl quote::ToTokens,
    private: &TokenStream,
    this: &TokenStream,
    then: &TokenStream,
) -> TokenStream {
    let cfgs = &message.attrs.cfgs;
    let variant = &message.variant;
    let ident = message.ident;
    let fields = message.args.iter().map(|arg| arg.ident);
    // Arguments in the method's own order, the deferred reply and the
    // context among them.
    let mut args = message.args.iter().map(|arg| arg.ident);
    let context = context_ident();
    let call_args: Vec<TokenStream> = message
        .original
        .sig
        .inputs
        .iter()
        .filter(|input| matches!(input, FnArg::Typed(_)))
        .enumerate()
        .map(|(position, _)| match &message.reply {
            _ if message.context == Some(position) => quote!(#context),
            Reply::Deferred { position: at, .. } if *at == position => quote!(reply),
            _ => {
                let arg = args.next().expect("one ident per argument");
                quote!(#arg)
            }
        })
        .collect();
    let dot_await = message.is_async().then(|| quote!(.await));
    // Tells a `Result`'s `Err` apart for the request's span (`tracing`
    // feature; compiled away without it): autoref specialisation on
    // `Tag`, so that any answer type works.
    let note = quote! {
        {
            use #private::{OtherAnswer as _, ResultAnswer as _};
            #private::note_answer((&#private::Tag(&value)).is_err());
        }
    };
    let call = quote!(#this.#ident(#(#call_args),*)#dot_await);
    let (pattern, body) = match &message.reply {
        _ if message.is_cast() => (quote!(#(#fields),*), quote!(#call;)),
        // A handler that can ask whether its caller gave up, or that is
        // dropped when it does, runs observed.
        Reply::Returned(_)
            if message.receiver != Receiver::Value
                && (message.context.is_some() || message.attrs.cancellable.is_some()) =>
        {
            let cancel = message.attrs.cancellable.is_some();
            let handler = if message.is_async() {
                quote!(#this.#ident(#(#call_args),*))
            } else {
                quote!(async { #call })
            };
            (
                quote!(#(#fields,)* mut reply),
                quote! {
                    if let ::core::option::Option::Some(value) =
                        #private::observe(&mut reply, #cancel, #handler).await
                    {
                        #note
                        let _ = reply.send(value);
                    }
                },
            )
        }
        Reply::Deferred { .. } => (quote!(#(#fields,)* reply), quote!(#call;)),
        Reply::Returned(None) => (
            quote!(#(#fields,)* reply),
            quote!(#call; let _ = reply.send(());),
        ),
        Reply::Returned(Some(_)) => (
            quote!(#(#fields,)* reply),
            quote! {
                let value = #call;
                #note
                let _ = reply.send(value);
            },
        ),
    };
    quote! {
        #(#cfgs)*
        #request::#variant { #pattern } => { #body #then }
    }
}

/// `OPTIONS`, when one of them differs from the default.
fn options(server: &Server<'_>, private: &TokenStream) -> Option<TokenStream> {
    let priority_levels = server
        .messages
        .iter()
        .filter_map(|m| m.attrs.priority.map(|(_, level)| level))
        .max()
        .unwrap_or(0);
    let args = &server.args;
    if args.capacity.is_none()
        && !args.on_panic_continue
        && priority_levels == 0
        && args.protocols.is_empty()
    {
        return None;
    }
    // At least as many levels as the protocols' methods use.
    let protocols = &args.protocols;
    let priority_levels = quote! {{
        let mut levels: u8 = #priority_levels;
        #(
            if <dyn #protocols as #private::Protocol>::PRIORITY_LEVELS > levels {
                levels = <dyn #protocols as #private::Protocol>::PRIORITY_LEVELS;
            }
        )*
        levels
    }};
    let capacity = match args.capacity {
        Some(capacity) => quote!(#capacity),
        None => quote!(#private::Options::DEFAULT.capacity),
    };
    let on_panic = if args.on_panic_continue {
        quote!(#private::PanicPolicy::Continue)
    } else {
        quote!(#private::PanicPolicy::Stop)
    };
    Some(quote! {
        const OPTIONS: #private::Options = #private::Options {
            capacity: #capacity,
            on_panic: #on_panic,
            priority_levels: #priority_levels,
        };
    })
}

/// `on_start`, `on_stop`, `periods` and `tick`, for the hooks present.
fn hooks(server: &Server<'_>, private: &TokenStream, unit_future: &TokenStream) -> TokenStream {
    let context = context_ident();
    let down = syn::Ident::new("__down", proc_macro2::Span::mixed_site());
    let call = |hook: &Hook<'_>| {
        let ident = &hook.original.sig.ident;
        let dot_await = hook.original.sig.asyncness.map(|_| quote!(.await));
        // In the method's order: the context, and an `#[on_down]`'s `Down`.
        let arguments = hook
            .original
            .sig
            .inputs
            .iter()
            .skip(1)
            .map(|arg| match arg {
                FnArg::Typed(arg) if is_context(&arg.ty) => context_ident(),
                _ => down.clone(),
            });
        quote!(self.#ident(#(#arguments),*)#dot_await)
    };
    let mut out = TokenStream::new();
    let mut timers = Vec::new();
    for hook in &server.hooks {
        match &hook.kind {
            HookKind::Start => {
                let call = call(hook);
                out.extend(quote! {
                    fn on_start(&mut self, #context: &#private::Context<Self>) -> impl ::core::future::Future<
                        Output = ::core::result::Result<(), #private::Arc<str>>,
                    > {
                        async move { #private::StartOutcome::into_start_result(#call) }
                    }
                });
            }
            HookKind::Stop => {
                let call = call(hook);
                out.extend(quote! {
                    fn on_stop(&mut self, #context: &#private::Context<Self>) -> #unit_future {
                        async move { #call; }
                    }
                });
            }
            HookKind::Down => {
                let call = call(hook);
                out.extend(quote! {
                    fn on_down(
                        &mut self,
                        #down: #private::Down,
                        #context: &#private::Context<Self>,
                    ) -> #unit_future {
                        async move { #call; }
                    }
                });
            }
            HookKind::Every(period) => timers.push((call(hook), period)),
        }
    }
    if !timers.is_empty() {
        let periods = timers.iter().map(|(_, period)| {
            quote_spanned! {period.span()=>
                #private::period(#period)
            }
        });
        let ticks = timers
            .iter()
            .enumerate()
            .map(|(index, (call, _))| quote!(#index => { #call; }));
        out.extend(quote! {
            fn periods(&self) -> #private::Vec<::core::option::Option<#private::Duration>> {
                #private::Vec::from([#(#periods),*])
            }

            fn tick(&mut self, timer: usize, #context: &#private::Context<Self>) -> #unit_future {
                async move {
                    match timer {
                        #(#ticks)*
                        _ => {}
                    }
                }
            }
        });
    }
    out
}

/// The name of the context the runtime passes to `dispatch` and the hooks:
/// hygienic, so that it cannot clash with the user's own names, and with a
/// leading underscore, so that servers that never ask for it get no
/// unused-variable warning.
pub(super) fn context_ident() -> syn::Ident {
    syn::Ident::new("__context", proc_macro2::Span::mixed_site())
}
