//! Names the macro recognises, kept in one place.

/// Helper attributes on methods inside `#[server]`.
pub const ON_START: &str = "on_start";
pub const ON_STOP: &str = "on_stop";
pub const ON_DOWN: &str = "on_down";
pub const EVERY: &str = "every";
pub const PRIORITY: &str = "priority";
/// The highest `#[priority(N)]`: `patchboard::MAX_PRIORITY`.
pub const MAX_PRIORITY: u8 = 7;
pub const CAST: &str = "cast";
pub const TIMEOUT: &str = "timeout";
pub const CANCELLABLE: &str = "cancellable";
/// A method with a receiver that stays a plain method, not a message.
pub const HELPER: &str = "helper";

pub const HELPERS: &[&str] = &[
    ON_START,
    ON_STOP,
    ON_DOWN,
    EVERY,
    PRIORITY,
    CAST,
    TIMEOUT,
    CANCELLABLE,
    HELPER,
];

/// Keys of `#[server(..)]`.
pub const HANDLE: &str = "handle";
pub const REQUEST: &str = "request";
pub const CAPACITY: &str = "capacity";
pub const ON_PANIC: &str = "on_panic";
pub const LOCAL: &str = "local";
pub const REMOTE: &str = "remote";
pub const CRATE: &str = "crate";
pub const PROTOCOLS: &str = "protocols";

pub const SERVER_KEYS: &str = "`handle`, `request`, `capacity`, `timeout`, `on_panic`, `local`, `remote`, `protocols`, `crate`";

/// Methods every generated handle already has (forwarded to
/// `patchboard::Handle`, or from a trait it implements); a message with
/// one of these names would hide them.
pub const RESERVED: &[&str] = &[
    "stop",
    "drain",
    "is_closed",
    "closed",
    "id",
    "name",
    "queued",
    "downgrade",
    "monitor",
    "drain_after",
    "stop_with",
    "clone",
    "as_ref",
    "fmt",
    "from",
];

/// The field of a request variant that carries the reply.
pub const REPLY_FIELD: &str = "reply";
/// The runtime type a deferred-reply argument has.
pub const REPLY_TYPE: &str = "Reply";
/// The runtime type an `#[on_down]` hook's argument has.
pub const DOWN_TYPE: &str = "Down";
/// The runtime type a context argument (`ctx: &Context<Self>`) has.
pub const CONTEXT_TYPE: &str = "Context";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use quote::quote;

    use super::RESERVED;

    fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        names.into_iter().map(str::to_owned).collect()
    }

    /// The methods of the handle `#[server]` generates for a server with
    /// one message `ping`, besides `ping`: inherent, and from the traits it
    /// implements.
    fn generated_handle_methods() -> (BTreeSet<String>, BTreeSet<String>) {
        let output = crate::expand::server(quote!(), quote!(impl Probe { fn ping(&self) {} }));
        let file = syn::parse2::<syn::File>(output).expect("the expansion parses");
        let (mut inherent, mut traits) = (BTreeSet::new(), BTreeSet::new());
        for item in file.items {
            let syn::Item::Impl(item) = item else {
                continue;
            };
            let syn::Type::Path(ty) = &*item.self_ty else {
                continue;
            };
            if !ty.path.is_ident("ProbeHandle") {
                continue;
            }
            let names = if item.trait_.is_some() {
                &mut traits
            } else {
                &mut inherent
            };
            for item in item.items {
                if let syn::ImplItem::Fn(method) = item
                    && method.sig.ident != "ping"
                {
                    names.insert(method.sig.ident.to_string());
                }
            }
        }
        (inherent, traits)
    }

    /// The `pub` methods of `patchboard_runtime::Handle<S>`, read from the
    /// runtime's sources.
    fn runtime_handle_methods() -> BTreeSet<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/src");
        let mut names = BTreeSet::new();
        let mut dirs = vec![std::path::PathBuf::from(dir)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|ext| ext != "rs") {
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                let file = syn::parse_file(&source).expect("the runtime parses");
                for item in file.items {
                    let syn::Item::Impl(item) = item else {
                        continue;
                    };
                    let syn::Type::Path(ty) = &*item.self_ty else {
                        continue;
                    };
                    let is_handle = ty.path.segments.last().is_some_and(|s| s.ident == "Handle");
                    if item.trait_.is_some() || !is_handle {
                        continue;
                    }
                    for item in item.items {
                        if let syn::ImplItem::Fn(method) = item
                            && matches!(method.vis, syn::Visibility::Public(_))
                        {
                            names.insert(method.sig.ident.to_string());
                        }
                    }
                }
            }
        }
        names
    }

    /// Issue 25: one list of reserved names, kept in step with what it
    /// describes. A method added to the runtime's `Handle` must be
    /// forwarded by the generated handle and reserved; a reserved name must
    /// be a method the handle really has; the `#[server]` rustdoc lists
    /// them all.
    #[test]
    fn the_reserved_names_are_the_handle_methods_and_the_docs_list_them() {
        let (inherent, traits) = generated_handle_methods();
        assert_eq!(
            runtime_handle_methods(),
            inherent,
            "the generated handle forwards every public method of the runtime's `Handle`"
        );
        let generated: BTreeSet<String> = inherent.union(&traits).cloned().collect();
        assert_eq!(set(RESERVED.iter().copied()), generated, "symbol::RESERVED");

        let docs = include_str!("lib.rs");
        let start = "methods named like the handle's own methods (";
        let listed = &docs[docs.find(start).expect("the rustdoc lists them") + start.len()..];
        let listed = &listed[..listed.find(')').unwrap()];
        // Every name in backticks between the parentheses.
        let listed: BTreeSet<String> = listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        assert_eq!(
            set(RESERVED.iter().copied()),
            listed,
            "the `#[server]` rustdoc's list"
        );
    }
}
