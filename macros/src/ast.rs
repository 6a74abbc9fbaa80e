//! The intermediate representation: what the user's impl block means, with
//! every part still pointing at the user's own tokens for errors.

use syn::{
    FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, PatType, PathArguments,
    ReceiverKind, ReturnType, Type,
};

use crate::args::Args;
use crate::attr::MethodAttrs;
use crate::ctxt::Ctxt;
use crate::symbol::{CONTEXT_TYPE, REPLY_TYPE};

pub struct Server<'a> {
    pub original: &'a ItemImpl,
    pub args: Args,
    /// The server type's own name (`Account` in `impl Account`).
    pub name: Ident,
    pub messages: Vec<Message<'a>>,
    pub hooks: Vec<Hook<'a>>,
    /// Methods marked `#[helper]`: plain methods, left as they are.
    pub helpers: Vec<Helper<'a>>,
    /// Associated functions without a receiver that carry our attributes.
    pub misplaced: Vec<MethodAttrs<'a>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// `&self`
    Ref,
    /// `&mut self`
    Mut,
    /// `self`: a terminal message.
    Value,
}

/// A method that becomes a request variant and a handle method.
pub struct Message<'a> {
    pub original: &'a ImplItemFn,
    pub ident: &'a Ident,
    pub variant: Ident,
    pub receiver: Receiver,
    pub args: Vec<Arg<'a>>,
    pub reply: Reply<'a>,
    /// The position of a `&Context<Self>` argument among all non-receiver
    /// arguments, if the method asks for one.
    pub context: Option<usize>,
    pub attrs: MethodAttrs<'a>,
}

/// A message argument (the deferred `Reply<T>` and the `&Context<Self>`
/// arguments are not ones).
pub struct Arg<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
}

/// How the answer of a message reaches its caller.
pub enum Reply<'a> {
    /// The method returns it; `None` for `()`.
    Returned(Option<&'a Type>),
    /// The method takes a `Reply<T>` argument and answers when it likes.
    Deferred {
        original: &'a PatType,
        /// The argument's position among all non-receiver arguments.
        position: usize,
        /// `T` in `Reply<T>`.
        ty: &'a Type,
    },
}

pub enum HookKind {
    Start,
    Stop,
    /// `#[on_down]`: takes the `Down` of a watched server.
    Down,
    Every(syn::Expr),
}

/// A lifecycle or timer method: `#[on_start]`, `#[on_stop]`, `#[on_down]`,
/// `#[every]`.
pub struct Hook<'a> {
    pub original: &'a ImplItemFn,
    pub kind: HookKind,
    pub receiver: Option<Receiver>,
    pub attrs: MethodAttrs<'a>,
}

/// A `#[helper]` method: kept in the impl as a plain method, no message;
/// only its attributes are checked.
pub struct Helper<'a> {
    pub sig: &'a syn::Signature,
    pub attrs: MethodAttrs<'a>,
}

impl<'a> Server<'a> {
    pub fn from_syn(original: &'a ItemImpl, args: Args, cx: &mut Ctxt) -> Option<Self> {
        let name = match &*original.self_ty {
            Type::Path(path) if path.qself.is_none() => path.path.segments.last()?.ident.clone(),
            other => {
                cx.error(
                    other,
                    "`#[server]` needs a named type: write `impl MyServer { .. }`",
                );
                return None;
            }
        };
        let mut server = Server {
            original,
            args,
            name,
            messages: Vec::new(),
            hooks: Vec::new(),
            helpers: Vec::new(),
            misplaced: Vec::new(),
        };
        for item in &original.items {
            let ImplItem::Fn(method) = item else { continue };
            let attrs = MethodAttrs::from_syn(&method.attrs, cx);
            // A helper is the user's own method: any receiver, any
            // signature.
            if attrs.helper.is_some() && method.sig.receiver().is_some() {
                server.helpers.push(Helper {
                    sig: &method.sig,
                    attrs,
                });
                continue;
            }
            let receiver = method.sig.receiver().and_then(|r| receiver(r, cx));
            let has_receiver = method.sig.receiver().is_some();
            let hook_kind = if attrs.on_start.is_some() {
                Some(HookKind::Start)
            } else if attrs.on_stop.is_some() {
                Some(HookKind::Stop)
            } else if attrs.on_down.is_some() {
                Some(HookKind::Down)
            } else {
                attrs
                    .every
                    .as_ref()
                    .map(|(_, expr)| HookKind::Every(expr.clone()))
            };
            if let Some(kind) = hook_kind {
                server.hooks.push(Hook {
                    original: method,
                    kind,
                    receiver,
                    attrs,
                });
            } else if !has_receiver {
                server.misplaced.push(attrs);
            } else if let Some(receiver) = receiver
                && let Some(message) = Message::from_syn(method, receiver, attrs, cx)
            {
                server.messages.push(message);
            }
        }
        Some(server)
    }
}

pub fn receiver(receiver: &syn::Receiver, cx: &mut Ctxt) -> Option<Receiver> {
    match &receiver.kind {
        ReceiverKind::Value => Some(Receiver::Value),
        ReceiverKind::Reference(_, Some(lifetime), _) => {
            cx.error(
                lifetime,
                "a message receiver cannot name a lifetime: write `&self` or `&mut self`",
            );
            None
        }
        ReceiverKind::Reference(_, None, mutability) => Some(if mutability.is_some() {
            Receiver::Mut
        } else {
            Receiver::Ref
        }),
        _ => {
            cx.error(
                receiver,
                "this receiver cannot be a message: write `&self`, `&mut self` or `self` \
                 (the server owns its state, so `Box<Self>`, `Rc<Self>` or `Pin<..>` are not needed)",
            );
            None
        }
    }
}

impl<'a> Message<'a> {
    pub fn from_syn(
        original: &'a ImplItemFn,
        receiver: Receiver,
        attrs: MethodAttrs<'a>,
        cx: &mut Ctxt,
    ) -> Option<Self> {
        let sig = &original.sig;
        let mut args = Vec::new();
        let mut deferred = None;
        let mut context = None;
        let mut ok = true;
        for (position, input) in sig.inputs.iter().skip(1).enumerate() {
            let FnArg::Typed(pat_type) = input else {
                continue;
            };
            if is_context(&pat_type.ty) {
                if context.is_some() {
                    cx.error(
                        pat_type,
                        "a method gets one context: remove the second `&Context<..>` argument",
                    );
                    ok = false;
                }
                context = Some(position);
                continue;
            }
            if let Some(ty) = reply_type(&pat_type.ty) {
                if deferred.is_some() {
                    cx.error(
                        pat_type,
                        "a message has one reply: remove the second `Reply<..>` argument",
                    );
                    ok = false;
                }
                deferred = Some(Reply::Deferred {
                    original: pat_type,
                    position,
                    ty,
                });
                continue;
            }
            match &*pat_type.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => args.push(Arg {
                    ident: &pat.ident,
                    ty: &pat_type.ty,
                }),
                pat => {
                    cx.error(
                        pat,
                        "a message argument needs a plain name: write `point: Point` \
                         and destructure inside the method",
                    );
                    ok = false;
                }
            }
        }
        let reply = match deferred {
            Some(reply) => reply,
            None => Reply::Returned(returned(&sig.output)),
        };
        ok.then(|| Message {
            original,
            ident: &sig.ident,
            variant: variant_name(&sig.ident),
            receiver,
            args,
            reply,
            context,
            attrs,
        })
    }

    pub fn is_async(&self) -> bool {
        self.original.sig.asyncness.is_some()
    }

    pub fn is_cast(&self) -> bool {
        self.attrs.cast.is_some()
    }

    /// A plain `fn` answering with its return value (or a plain `#[cast]`
    /// `fn`): served by its caller when the server is idle (the runtime's
    /// `inline.rs`).
    pub fn runs_inline(&self) -> bool {
        !self.is_async()
            && self.receiver != Receiver::Value
            && matches!(self.reply, Reply::Returned(_))
    }

    /// The type the caller receives (`()` for casts and unit methods).
    pub fn answer(&self) -> Option<&'a Type> {
        match &self.reply {
            Reply::Returned(ty) => *ty,
            Reply::Deferred { ty, .. } => Some(ty),
        }
    }
}

/// `T` if `ty` is `Reply<T>` (under any path, e.g. `patchboard::Reply<T>`).
fn reply_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != REPLY_TYPE {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(GenericArgument::Type(inner)) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

/// `&Context<..>` (under any path, e.g. `&patchboard::Context<Self>`).
pub fn is_context(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    let Type::Path(path) = &*reference.elem else {
        return false;
    };
    reference.mutability.is_none()
        && path.qself.is_none()
        && path.path.segments.last().is_some_and(|last| {
            last.ident == CONTEXT_TYPE && matches!(last.arguments, PathArguments::AngleBracketed(_))
        })
}

/// The return type, `None` for `()`.
pub fn returned(output: &ReturnType) -> Option<&Type> {
    match output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => None,
            ty => Some(ty),
        },
    }
}

/// `sync_now` → `SyncNow`, `r#type` → `Type`.
fn variant_name(method: &Ident) -> Ident {
    let name = method.to_string();
    let name = name.trim_start_matches("r#");
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("Underscore");
    }
    Ident::new(&out, method.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(method: &str) -> String {
        variant_name(&syn::parse_str::<Ident>(method).unwrap()).to_string()
    }

    #[test]
    fn variant_names_are_pascal_case_of_the_method() {
        assert_eq!(variant("deposit"), "Deposit");
        assert_eq!(variant("sync_now"), "SyncNow");
        assert_eq!(variant("r#type"), "Type");
        assert_eq!(variant("add__one"), "AddOne");
        assert_eq!(variant("_private"), "Private");
        assert_eq!(variant("__"), "Underscore");
    }
}
