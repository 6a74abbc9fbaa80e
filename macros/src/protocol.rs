//! `#[protocol]`: a trait of message methods that several servers
//! implement. Parsed into the same `Message` IR as a server's methods (so
//! that a protocol method and an inherent message mean, and are checked,
//! the same), plus what only a trait can get wrong.

use quote::quote;
use syn::{ImplItemFn, ItemTrait, TraitItem};

use crate::args::Args;
use crate::ast::{Message, Receiver, receiver};
use crate::attr::MethodAttrs;
use crate::ctxt::Ctxt;

/// A protocol trait and its methods, as messages.
pub struct Protocol<'a> {
    pub original: &'a ItemTrait,
    pub args: Args,
    pub messages: Vec<Message<'a>>,
}

/// The trait's methods as impl methods (signature and attributes, an
/// empty body): what the `Message` IR is built from. Owned here, borrowed
/// by the IR.
pub fn methods(item: &ItemTrait) -> Vec<ImplItemFn> {
    item.items
        .iter()
        .filter_map(|item| match item {
            TraitItem::Fn(method) => {
                let attrs = &method.attrs;
                let sig = &method.sig;
                Some(syn::parse2(quote!(#(#attrs)* #sig {})).expect("a signature and a body"))
            }
            _ => None,
        })
        .collect()
}

impl<'a> Protocol<'a> {
    pub fn from_syn(
        original: &'a ItemTrait,
        methods: &'a [ImplItemFn],
        args: Args,
        cx: &mut Ctxt,
    ) -> Self {
        let mut protocol = Protocol {
            original,
            args,
            messages: Vec::new(),
        };
        for method in methods {
            let attrs = MethodAttrs::from_syn(&method.attrs, cx);
            let hooks = [
                ("on_start", attrs.on_start),
                ("on_stop", attrs.on_stop),
                ("on_down", attrs.on_down),
                ("every", attrs.every.as_ref().map(|(attr, _)| *attr)),
                ("helper", attrs.helper),
            ];
            let mut hooked = false;
            for (name, attr) in hooks {
                if let Some(attr) = attr {
                    hooked = true;
                    cx.error(
                        attr,
                        format!(
                            "a protocol declares messages only: put `#[{name}]` on a method of \
                             the server's inherent `#[server]` impl"
                        ),
                    );
                }
            }
            let Some(syn::FnArg::Receiver(found)) = method.sig.inputs.first() else {
                cx.error(
                    &method.sig.ident,
                    "a protocol method is a message: give it `&self` or `&mut self`",
                );
                continue;
            };
            let Some(kind) = receiver(found, cx) else {
                continue;
            };
            if kind == Receiver::Value {
                cx.error(
                    found,
                    "a protocol method cannot consume the server (a terminal message belongs to \
                     the server's inherent impl): write `&self` or `&mut self`",
                );
                continue;
            }
            if hooked {
                continue;
            }
            // Said for a protocol here (the server's own wording would
            // point at the impl).
            if let Some(param) = method.sig.generics.params.first() {
                cx.error(
                    param,
                    "a protocol method cannot be generic: its client and request enum need \
                     concrete types, so name one (e.g. `key: String`), or declare one method \
                     per type",
                );
                continue;
            }
            if let Some(message) = Message::from_syn(method, kind, attrs, cx) {
                protocol.messages.push(message);
            }
        }
        protocol
    }

    pub fn validate(&self, cx: &mut Ctxt) {
        let item = self.original;
        if !self.args.only_crate_or_remote() {
            cx.error(
                &item.ident,
                "`#[protocol]` takes no options but `remote` and `crate = path`: give the \
                 others on each server's inherent `#[server(..)]` impl",
            );
        }
        if let Some(unsafety) = &item.unsafety {
            cx.error(
                unsafety,
                "a protocol cannot be an `unsafe trait`: remove `unsafe`",
            );
        }
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            cx.error(
                &item.generics,
                "a protocol cannot be generic: its client names one set of message types, so \
                 write a trait for concrete types (e.g. `trait StringStore` for `Store<String>`)",
            );
        }
        if let Some(colon) = &item.colon_token {
            cx.error(
                colon,
                "a protocol cannot have supertraits: declare every message in it, or list \
                 both protocols on the server, `#[server(protocols(A, B))]`",
            );
        }
        for trait_item in &item.items {
            match trait_item {
                TraitItem::Fn(method) => {
                    if let Some(body) = &method.default {
                        cx.error(
                            body,
                            "a protocol method has no default body: end it with `;` and \
                             implement it in each server's `#[server] impl`",
                        );
                    }
                }
                TraitItem::Type(ty) => cx.error(
                    ty,
                    format!(
                        "a protocol declares message methods only: remove the associated type \
                         `{}` and name a concrete type in the methods",
                        ty.ident
                    ),
                ),
                TraitItem::Const(constant) => cx.error(
                    constant,
                    format!(
                        "a protocol declares message methods only: remove the associated const \
                         `{}` (a server can answer it from a method)",
                        constant.ident
                    ),
                ),
                other => cx.error(
                    other,
                    "a protocol declares message methods only: remove this item",
                ),
            }
        }
        let mut variants: Vec<(&syn::Ident, &syn::Ident)> = Vec::new();
        for message in &self.messages {
            message.check(cx);
            if let Some(position) = message.context {
                let argument = message
                    .original
                    .sig
                    .inputs
                    .iter()
                    .filter(|input| matches!(input, syn::FnArg::Typed(_)))
                    .nth(position);
                cx.error(
                    argument,
                    "a protocol method cannot take `&Context<..>` (its servers differ): \
                     remove it, and call an inherent method of the server that takes it",
                );
            }
            match variants.iter().find(|(v, _)| **v == message.variant) {
                Some((_, first)) => cx.error(
                    message.ident,
                    format!(
                        "`{}` and `{}` would both become the request variant `{}`: rename one \
                         of them",
                        message.ident, first, message.variant
                    ),
                ),
                None => variants.push((&message.variant, message.ident)),
            }
        }
    }
}
