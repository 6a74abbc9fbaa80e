//! The helper attributes on methods inside `#[server]`: `#[on_start]`,
//! `#[on_stop]`, `#[on_down]`, `#[every(..)]`, `#[priority]`, `#[cast]`, `#[timeout(..)]`, `#[cancellable]`, `#[helper]`.

use syn::{Attribute, Expr, LitInt, LitStr, Meta};

use crate::ctxt::Ctxt;
use crate::duration::Duration;
use crate::symbol::{
    CANCELLABLE, CAST, EVERY, HELPER, HELPERS, MAX_PRIORITY, ON_DOWN, ON_START, ON_STOP, PRIORITY,
    TIMEOUT,
};

/// What the attributes of one method say.
#[derive(Default)]
pub struct MethodAttrs<'a> {
    /// `#[doc]`, forwarded to the variant and the handle method.
    pub docs: Vec<&'a Attribute>,
    /// `#[cfg]`, forwarded to everything generated for the method.
    pub cfgs: Vec<&'a Attribute>,
    pub on_start: Option<&'a Attribute>,
    pub on_stop: Option<&'a Attribute>,
    pub on_down: Option<&'a Attribute>,
    pub every: Option<(&'a Attribute, Expr)>,
    /// `#[priority]` (level 1) or `#[priority(N)]`.
    pub priority: Option<(&'a Attribute, u8)>,
    pub cast: Option<&'a Attribute>,
    pub cancellable: Option<&'a Attribute>,
    pub timeout: Option<(&'a Attribute, Duration)>,
    /// `#[helper]`: a plain method, not a message.
    pub helper: Option<&'a Attribute>,
}

/// Whether `attr` is one of ours (and so is removed from the re-emitted impl).
pub fn is_helper(attr: &Attribute) -> bool {
    attr.path()
        .get_ident()
        .is_some_and(|ident| HELPERS.iter().any(|helper| ident == helper))
}

impl<'a> MethodAttrs<'a> {
    pub fn from_syn(attrs: &'a [Attribute], cx: &mut Ctxt) -> Self {
        let mut out = MethodAttrs::default();
        for attr in attrs {
            let path = attr.path();
            if path.is_ident("doc") {
                out.docs.push(attr);
            } else if path.is_ident("cfg") {
                out.cfgs.push(attr);
            } else if path.is_ident(ON_START) {
                let value = flag(cx, attr, ON_START);
                set(cx, &mut out.on_start, attr, ON_START, value);
            } else if path.is_ident(ON_STOP) {
                let value = flag(cx, attr, ON_STOP);
                set(cx, &mut out.on_stop, attr, ON_STOP, value);
            } else if path.is_ident(ON_DOWN) {
                let value = flag(cx, attr, ON_DOWN);
                set(cx, &mut out.on_down, attr, ON_DOWN, value);
            } else if path.is_ident(PRIORITY) {
                let level = priority(cx, attr).map(|level| (attr, level));
                set(cx, &mut out.priority, attr, PRIORITY, level);
            } else if path.is_ident(CAST) {
                let value = flag(cx, attr, CAST);
                set(cx, &mut out.cast, attr, CAST, value);
            } else if path.is_ident(CANCELLABLE) {
                let value = flag(cx, attr, CANCELLABLE);
                set(cx, &mut out.cancellable, attr, CANCELLABLE, value);
            } else if path.is_ident(EVERY) {
                let period = every(cx, attr).map(|expr| (attr, expr));
                set(cx, &mut out.every, attr, EVERY, period);
            } else if path.is_ident(HELPER) {
                // Still a helper when given arguments (the error says to
                // remove them): the user meant a plain method.
                let _ = flag(cx, attr, HELPER);
                set(cx, &mut out.helper, attr, HELPER, Some(attr));
            } else if path.is_ident(TIMEOUT) {
                let timeout = timeout(cx, attr).map(|duration| (attr, duration));
                set(cx, &mut out.timeout, attr, TIMEOUT, timeout);
            }
        }
        out
    }

    /// The helper attributes present, for "cannot be combined" errors.
    pub fn helpers(&self) -> Vec<(&'static str, &'a Attribute)> {
        let mut found = Vec::new();
        let mut add = |name, attr: Option<&'a Attribute>| {
            if let Some(attr) = attr {
                found.push((name, attr));
            }
        };
        add(ON_START, self.on_start);
        add(ON_STOP, self.on_stop);
        add(ON_DOWN, self.on_down);
        add(EVERY, self.every.as_ref().map(|(attr, _)| *attr));
        add(PRIORITY, self.priority.as_ref().map(|(attr, _)| *attr));
        add(CAST, self.cast);
        add(CANCELLABLE, self.cancellable);
        add(TIMEOUT, self.timeout.as_ref().map(|(attr, _)| *attr));
        add(HELPER, self.helper);
        found
    }
}

/// Stores `value` unless the attribute was already given.
fn set<T>(cx: &mut Ctxt, slot: &mut Option<T>, attr: &Attribute, name: &str, value: Option<T>) {
    if slot.is_some() {
        cx.error(attr, format!("duplicate `#[{name}]`: give it once"));
    } else {
        *slot = value;
    }
}

/// An attribute that takes no arguments, like `#[cast]`.
fn flag<'a>(cx: &mut Ctxt, attr: &'a Attribute, name: &str) -> Option<&'a Attribute> {
    match &attr.meta {
        Meta::Path(_) => Some(attr),
        _ => {
            cx.error(
                attr,
                format!("`#[{name}]` takes no arguments: write `#[{name}]`"),
            );
            None
        }
    }
}

/// `#[every(EXPR)]`.
fn every(cx: &mut Ctxt, attr: &Attribute) -> Option<Expr> {
    let hint = "`#[every]` needs a period: write `#[every(Duration::from_secs(1))]` \
                or `#[every(self.period)]`";
    match &attr.meta {
        Meta::List(list) if !list.tokens.is_empty() => match attr.parse_args::<Expr>() {
            Ok(expr) => Some(expr),
            Err(error) => {
                cx.push(error);
                None
            }
        },
        _ => {
            cx.error(attr, hint);
            None
        }
    }
}

/// `#[timeout("200ms")]`.
fn timeout(cx: &mut Ctxt, attr: &Attribute) -> Option<Duration> {
    let parsed = match &attr.meta {
        Meta::List(list) if !list.tokens.is_empty() => attr
            .parse_args::<LitStr>()
            .and_then(|lit| Duration::parse(&lit)),
        _ => Err(syn::Error::new_spanned(
            attr,
            "`#[timeout]` needs a duration: write `#[timeout(\"200ms\")]`",
        )),
    };
    parsed.map_err(|error| cx.push(error)).ok()
}

/// `#[priority]` (level 1) or `#[priority(N)]`, `N` in `1..=MAX_PRIORITY`.
fn priority(cx: &mut Ctxt, attr: &Attribute) -> Option<u8> {
    let hint = format!(
        "`#[priority]` takes a level from 1 to {MAX_PRIORITY}: write `#[priority]` (level 1) \
         or `#[priority(2)]`; higher levels are served first"
    );
    let list = match &attr.meta {
        Meta::Path(_) => return Some(1),
        Meta::List(list) => list,
        Meta::NameValue(_) => {
            cx.error(attr, hint);
            return None;
        }
    };
    let Ok(lit) = syn::parse2::<LitInt>(list.tokens.clone()) else {
        cx.error(attr, hint);
        return None;
    };
    match lit.base10_parse::<u8>() {
        Ok(0) => {
            cx.error(
                &lit,
                "level 0 is the normal lane, where messages without `#[priority]` go: \
                 remove `#[priority(0)]`",
            );
            None
        }
        Ok(level) if level <= MAX_PRIORITY => Some(level),
        _ => {
            cx.error(&lit, hint);
            None
        }
    }
}
