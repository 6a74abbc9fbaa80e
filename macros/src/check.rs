//! Validation: everything the macro can see that would not work, each
//! reported on the user's own tokens with what to write instead.

use std::collections::HashMap;

use syn::visit::{self, Visit};
use syn::{GenericParam, ImplItemFn, Lifetime, Type, TypeImplTrait, TypeReference};

use crate::ast::{Hook, HookKind, Message, Receiver, Reply, Server};
use crate::ctxt::Ctxt;
use crate::symbol::{DOWN_TYPE, EVERY, HELPER, ON_DOWN, ON_START, ON_STOP, REPLY_FIELD, RESERVED};

impl Server<'_> {
    pub fn validate(&self, cx: &mut Ctxt) {
        self.check_impl(cx);
        if self.original.trait_.is_some() {
            // Its methods are the trait's, not messages: checking them
            // would only add noise.
            return;
        }
        let mut variants: HashMap<String, &syn::Ident> = HashMap::new();
        for message in &self.messages {
            message.check(cx);
            let variant = message.variant.to_string();
            match variants.get(&variant) {
                Some(first) => cx.error(
                    message.ident,
                    format!(
                        "`{}` and `{first}` would both become the request variant `{variant}`: \
                         rename one of them",
                        message.ident
                    ),
                ),
                None => {
                    variants.insert(variant, message.ident);
                }
            }
        }
        let mut seen_start = false;
        let mut seen_stop = false;
        let mut seen_down = false;
        for hook in &self.hooks {
            hook.check(cx);
            let (seen, name) = match hook.kind {
                HookKind::Start => (&mut seen_start, ON_START),
                HookKind::Stop => (&mut seen_stop, ON_STOP),
                HookKind::Down => (&mut seen_down, ON_DOWN),
                HookKind::Every(_) => continue,
            };
            if *seen {
                cx.error(
                    &hook.original.sig.ident,
                    format!("a server has one `#[{name}]` method: merge the two into one"),
                );
            }
            *seen = true;
        }
        for helper in &self.helpers {
            for (other, attr) in helper.attrs.helpers() {
                if other != HELPER {
                    cx.error(
                        attr,
                        format!(
                            "a `#[helper]` method is not a message, so `#[{other}]` does not \
                             apply: remove `#[{other}]`, or remove `#[helper]` to make it a message"
                        ),
                    );
                }
            }
        }
        for attrs in &self.misplaced {
            for (name, attr) in attrs.helpers() {
                if name == HELPER {
                    cx.error(
                        attr,
                        "an associated function without a receiver is never a message: \
                         remove `#[helper]`",
                    );
                    continue;
                }
                cx.error(
                    attr,
                    format!(
                        "`#[{name}]` needs a method with a `self` receiver: \
                         add `&self` or `&mut self`, or move the attribute"
                    ),
                );
            }
        }
    }

    fn check_impl(&self, cx: &mut Ctxt) {
        let item = self.original;
        if let Some((path, _)) = &item.trait_ {
            cx.error(
                path,
                "`#[server]` goes on an inherent impl: write `impl MyServer { .. }` \
                 without a trait, and keep trait impls in their own block",
            );
        }
        if let Some(unsafety) = &item.unsafety {
            cx.error(
                unsafety,
                "`#[server]` cannot go on an `unsafe impl`: remove `unsafe`",
            );
        }
        const BORROWING_SERVER: &str = "a server cannot borrow: its state moves into its own \
            task, so remove the lifetime and own the data (e.g. `String`, `Vec<T>` or `Arc<T>`)";
        for param in &item.generics.params {
            if let GenericParam::Lifetime(lifetime) = param {
                cx.error(lifetime, BORROWING_SERVER);
            }
        }
        let mut lifetimes = Borrows::default();
        lifetimes.visit_type(&item.self_ty);
        for lifetime in lifetimes.lifetimes {
            cx.error(lifetime, BORROWING_SERVER);
        }
        if self.args.remote.is_some()
            && let Some(param) = item.generics.type_params().next()
        {
            cx.error(
                param,
                "a `remote` server cannot be generic: its subjects name one server type, \
                 so write a concrete type (e.g. `impl Store<String>` as `impl StringStore`)",
            );
        }
    }
}

impl Message<'_> {
    pub fn check(&self, cx: &mut Ctxt) {
        check_signature(self.original, cx);
        self.check_name(cx);
        self.check_args(cx);
        self.check_answer(cx);
        self.check_attrs(cx);
    }

    fn check_name(&self, cx: &mut Ctxt) {
        let name = self.ident.to_string();
        if RESERVED.contains(&name.trim_start_matches("r#")) {
            cx.error(
                self.ident,
                format!(
                    "every handle already has a method `{name}`, so this message would hide it: \
                     rename the method (e.g. `{name}_now`)"
                ),
            );
        }
    }

    fn check_args(&self, cx: &mut Ctxt) {
        for arg in &self.args {
            if arg.ident == REPLY_FIELD {
                cx.error(
                    arg.ident,
                    "`reply` is the name of the generated reply field: rename this argument",
                );
            }
            Borrows::report(
                arg.ty,
                cx,
                "`impl Trait` cannot be a message argument: use a concrete type, a type \
                 parameter on the impl, or `Box<dyn Trait + Send>`",
                "a message argument cannot borrow: it is moved to the server task, so take \
                 an owned type (`String` instead of `&str`, `Vec<T>` instead of `&[T]`, \
                 `T` or `Arc<T>` instead of `&T`)",
                "a message argument cannot borrow: remove the lifetime and take an owned type",
            );
        }
    }

    fn check_answer(&self, cx: &mut Ctxt) {
        if let Some(ty) = self.answer() {
            Borrows::report(
                ty,
                cx,
                "`impl Trait` cannot be sent back to the caller: name the type, or return \
                 `Box<dyn Trait + Send>`",
                "a reply cannot borrow from the server: return an owned value \
                 (a clone, `String`, `Vec<T>` or `Arc<T>`)",
                "a reply cannot borrow from the server: remove the lifetime and return an \
                 owned value",
            );
        }
        if let Reply::Deferred { .. } = &self.reply
            && let Some(ty) = super::ast::returned(&self.original.sig.output)
        {
            cx.error(
                ty,
                "a method with a `Reply<T>` argument answers through it: remove the return type",
            );
        }
    }

    fn check_attrs(&self, cx: &mut Ctxt) {
        if self.attrs.cast.is_some() {
            if let Reply::Deferred { original, .. } = &self.reply {
                cx.error(
                    original,
                    "a `#[cast]` message has no caller waiting for an answer: remove the \
                     `Reply<..>` argument or `#[cast]`",
                );
            } else if let Some(ty) = self.answer() {
                cx.error(
                    ty,
                    "a `#[cast]` message returns nothing to its caller: remove the return type, \
                     or remove `#[cast]` to get the value back",
                );
            }
            if let Some((attr, _)) = &self.attrs.timeout {
                cx.error(
                    attr,
                    "a `#[cast]` message does not wait for a reply: remove `#[timeout]`",
                );
            }
        }
        if let Some(attr) = self.attrs.cancellable {
            self.check_cancellable(attr, cx);
        }
        if self.receiver == Receiver::Value
            && let Some((attr, _)) = self.attrs.priority
        {
            cx.error(
                attr,
                "a terminal message (taking `self`) cannot be `#[priority]`: remove it",
            );
        }
    }
}

impl Message<'_> {
    /// `#[cancellable]` needs an `async` handler answering a waiting caller.
    fn check_cancellable(&self, attr: &syn::Attribute, cx: &mut Ctxt) {
        let why = if self.is_cast() {
            "a `#[cast]` message has no caller who could give up: remove `#[cancellable]`"
        } else if let Reply::Deferred { .. } = self.reply {
            "a method with a `Reply<T>` argument answers when it likes: remove `#[cancellable]` \
             and stop once `reply.is_closed()` (or `select!` on `reply.closed()`)"
        } else if self.receiver == Receiver::Value {
            "a terminal message (taking `self`) always runs to the end: remove `#[cancellable]`"
        } else if !self.is_async() {
            "only an `async fn` can be cancelled, at one of its awaits: make the method `async`, \
             or remove `#[cancellable]`"
        } else {
            return;
        };
        cx.error(attr, why);
    }
}

impl Hook<'_> {
    fn check(&self, cx: &mut Ctxt) {
        let name = match self.kind {
            HookKind::Start => ON_START,
            HookKind::Stop => ON_STOP,
            HookKind::Down => ON_DOWN,
            HookKind::Every(_) => EVERY,
        };
        let sig = &self.original.sig;
        check_signature(self.original, cx);
        // One role per method.
        for (other, attr) in self.attrs.helpers() {
            if other != name {
                cx.error(
                    attr,
                    format!("`#[{other}]` cannot be combined with `#[{name}]`: remove one"),
                );
            }
        }
        match (self.receiver, sig.receiver()) {
            (_, None) => cx.error(
                &sig.ident,
                format!("a `#[{name}]` method needs `&mut self` or `&self`: add a receiver"),
            ),
            (Some(Receiver::Value), Some(receiver)) => cx.error(
                receiver,
                format!("a `#[{name}]` method cannot consume the server: write `&mut self`"),
            ),
            _ => {}
        }
        let mut args = sig.inputs.iter().skip(1).filter(
            |arg| !matches!(arg, syn::FnArg::Typed(arg) if super::ast::is_context(&arg.ty)),
        );
        if let HookKind::Down = self.kind {
            match args.next() {
                None => cx.error(
                    &sig.ident,
                    "an `#[on_down]` method takes the stopped server's `Down`: \
                     add `down: patchboard::Down`",
                ),
                Some(syn::FnArg::Typed(arg)) if !is_down(&arg.ty) => cx.error(
                    &arg.ty,
                    "an `#[on_down]` method takes the stopped server's `Down`: \
                     write `down: patchboard::Down` (its `name()` and `reason()` say \
                     which server stopped and why)",
                ),
                _ => {}
            }
            if let Some(arg) = args.next() {
                cx.error(
                    arg,
                    "an `#[on_down]` method takes `down: Down` and an optional \
                     `ctx: &Context<Self>`: remove the other arguments",
                );
            }
        } else if let Some(arg) = args.next() {
            cx.error(
                arg,
                format!(
                    "a `#[{name}]` method takes no arguments besides `self` and an optional \
                     `ctx: &Context<Self>`: remove them"
                ),
            );
        }
        if let Some(cfg) = self.attrs.cfgs.first() {
            cx.error(
                cfg,
                format!(
                    "`#[cfg]` is not supported on a `#[{name}]` method: put the `#[cfg]` on a \
                     statement inside it"
                ),
            );
        }
        let output = super::ast::returned(&sig.output);
        match (&self.kind, output) {
            (HookKind::Start, Some(ty)) if !is_result(ty) => cx.error(
                ty,
                "`#[on_start]` returns `()` or `Result<(), E>` (with `E: Display`): \
                 change the return type",
            ),
            (HookKind::Stop | HookKind::Down | HookKind::Every(_), Some(ty)) => cx.error(
                ty,
                format!("a `#[{name}]` method returns nothing: remove the return type"),
            ),
            _ => {}
        }
    }
}

/// What every server method must satisfy, message or hook.
fn check_signature(method: &ImplItemFn, cx: &mut Ctxt) {
    let sig = &method.sig;
    if let Some(constness) = &sig.constness {
        cx.error(
            constness,
            "a server method cannot be `const`: remove `const`",
        );
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        cx.error(
            unsafety,
            "a server method cannot be `unsafe`: make it safe and use an `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error(abi, "a server method cannot have an ABI: remove `extern`");
    }
    for param in &sig.generics.params {
        let message = match param {
            GenericParam::Lifetime(_) => {
                "a server method cannot have lifetime parameters: arguments and results cross \
                 tasks, so make them owned and remove the lifetime"
            }
            _ => {
                "a server method cannot be generic: the request enum needs concrete types, so \
                 move the parameter to the impl (`impl<T> MyServer<T>`) or use a concrete type"
            }
        };
        cx.error(param, message);
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error(
            where_clause,
            "a server method cannot have its own `where` clause: move it to the impl",
        );
    }
}

/// `Down` under any path (`patchboard::Down`).
fn is_down(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == DOWN_TYPE && s.arguments.is_none()))
}

fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// Borrowed and opaque parts of a type.
#[derive(Default)]
struct Borrows<'a> {
    references: Vec<&'a TypeReference>,
    impl_traits: Vec<&'a TypeImplTrait>,
    /// Named or elided lifetimes other than `'static` outside references.
    lifetimes: Vec<&'a Lifetime>,
}

impl Borrows<'_> {
    /// Reports each `impl Trait`, reference and lifetime in `ty` with its
    /// message.
    fn report(ty: &Type, cx: &mut Ctxt, impl_trait: &str, reference: &str, lifetime: &str) {
        let mut found = Borrows::default();
        found.visit_type(ty);
        for ty in found.impl_traits {
            cx.error(ty, impl_trait);
        }
        for ty in found.references {
            cx.error(ty, reference);
        }
        for found in found.lifetimes {
            cx.error(found, lifetime);
        }
    }
}

impl<'a> Visit<'a> for Borrows<'a> {
    fn visit_type_reference(&mut self, ty: &'a TypeReference) {
        match &ty.lifetime {
            Some(lifetime) if lifetime.ident == "static" => visit::visit_type_reference(self, ty),
            _ => self.references.push(ty),
        }
    }

    fn visit_type_impl_trait(&mut self, ty: &'a TypeImplTrait) {
        self.impl_traits.push(ty);
    }

    fn visit_lifetime(&mut self, lifetime: &'a Lifetime) {
        if lifetime.ident != "static" {
            self.lifetimes.push(lifetime);
        }
    }

    // Lifetimes bound inside `dyn for<'a> Fn(&'a T)` or `fn(&T)` are fine.
    fn visit_type_fn_ptr(&mut self, _: &'a syn::TypeFnPtr) {}

    fn visit_trait_bound(&mut self, _: &'a syn::TraitBound) {}
}
