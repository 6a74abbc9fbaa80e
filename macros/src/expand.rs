//! Generation: from the validated IR to tokens, one module per part: the
//! request enum (`request`), the handle (`handle`), the `Server` impl
//! (`dispatch`), `#[server(remote)]`'s NATS side (`remote`), a protocol's
//! trait and client (`protocol`) and a server's impl of one (`part`); plus
//! the stand-ins emitted when the impl has a mistake (`fallback`).

mod dispatch;
mod fallback;
mod handle;
mod part;
pub mod protocol;
mod remote;
mod request;

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::{Generics, ImplItem, ItemImpl, Type, parse_quote};

use crate::args::Args;
use crate::ast::Server;
use crate::attr::is_helper;
use crate::ctxt::Ctxt;

/// Entry point of `#[server]`.
pub fn server(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Impl(item)) => item,
        Ok(other) => {
            let first = other.to_token_stream().into_iter().find(|token| {
                !matches!(token, TokenTree::Punct(p) if p.as_char() == '#')
                    && !matches!(token, TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket)
            });
            let error = syn::Error::new(
                first.map_or_else(Span::call_site, |token| token.span()),
                "`#[server]` goes on an `impl` block: write `#[server] impl MyServer { .. }`",
            );
            return with_error(input, error);
        }
        Err(error) => return with_error(input, error),
    };
    if item.trait_.is_some() {
        return part::generate(&item, args);
    }
    let mut cx = Ctxt::default();
    let args = Args::parse(args, &mut cx);
    let server = Server::from_syn(&item, args, &mut cx);
    if let Some(server) = &server {
        server.validate(&mut cx);
    }
    match (cx.finish(), server) {
        (Ok(()), Some(server)) => generate(&server),
        // One mistake, one error: the items other code refers to still
        // appear, as stand-ins, so that uses of the handle add no errors.
        (Err(error), Some(server)) if fallback::applies(&server) => {
            let stand_ins = fallback::generate(&server, &Names::new(&server));
            let code = with_error(strip_helpers(item).into_token_stream(), error);
            quote!(#code #stand_ins)
        }
        (Err(error), _) => with_error(strip_helpers(item).into_token_stream(), error),
        (Ok(()), None) => unreachable!("a server that did not parse reported why"),
    }
}

/// The user's code as written (so IDEs and later errors keep working) plus
/// the errors, instead of a cascade from half-generated code.
fn with_error(code: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote!(#code #error)
}

/// Everything `#[server]` emits for a valid impl block.
fn generate(server: &Server<'_>) -> TokenStream {
    let names = Names::new(server);
    let user_impl = strip_helpers(server.original.clone());
    let request = request::generate(server, &names);
    let handle = handle::generate(server, &names);
    let dispatch = dispatch::generate(server, &names);
    let remote = server
        .args
        .remote
        .map(|span| remote::generate(server, &names, span));
    quote! {
        #user_impl
        #request
        #handle
        #dispatch
        #remote
    }
}

/// The user's impl with our helper attributes removed.
fn strip_helpers(mut item: ItemImpl) -> ItemImpl {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method.attrs.retain(|attr| !is_helper(attr));
        }
    }
    item
}

/// Names and paths shared by the generators.
#[derive(Clone)]
pub struct Names {
    /// `#krate::__private`
    pub private: TokenStream,
    pub request: syn::Ident,
    pub handle: syn::Ident,
    /// The impl's generics plus `T: Send + 'static` for every type
    /// parameter: what the request enum, the handle and every generated
    /// impl require.
    pub generics: Generics,
    /// Generating the stand-ins of `fallback`: bodies that do nothing.
    pub stand_in: bool,
}

impl Names {
    fn new(server: &Server<'_>) -> Self {
        let args = &server.args;
        let krate = args
            .krate
            .clone()
            .unwrap_or_else(|| parse_quote!(::patchboard));
        let generics = with_server_bounds(server.original.generics.clone());
        Names {
            private: quote!(#krate::__private),
            request: args
                .request
                .clone()
                .unwrap_or_else(|| format_ident!("{}Request", server.name)),
            handle: args
                .handle
                .clone()
                .unwrap_or_else(|| format_ident!("{}Handle", server.name)),
            generics,
            stand_in: false,
        }
    }
}

/// `generics` plus `T: Send + 'static` for every type parameter, next to
/// the user's own bounds for it (inline, or in the where clause if that is
/// where they are: a second location would trip
/// `clippy::multiple_bound_locations` on the user's tokens).
fn with_server_bounds(mut generics: Generics) -> Generics {
    // Next to the user's own bounds for the parameter (inline, or in the
    // where clause if that is where they are): a second location would
    // trip `clippy::multiple_bound_locations` on the user's tokens.
    let in_where: Vec<syn::Ident> = generics
        .where_clause
        .iter()
        .flat_map(|clause| &clause.predicates)
        .filter_map(|predicate| match predicate {
            syn::WherePredicate::Type(predicate) => match &predicate.bounded_ty {
                Type::Path(path) => path.path.get_ident().cloned(),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let moved: Vec<syn::Ident> = generics
        .type_params()
        .map(|param| param.ident.clone())
        .filter(|ident| in_where.contains(ident))
        .collect();
    if !moved.is_empty() {
        let clause = generics.make_where_clause();
        for ident in moved {
            clause
                .predicates
                .push(parse_quote!(#ident: ::core::marker::Send + 'static));
        }
    }
    for param in generics.type_params_mut() {
        if in_where.contains(&param.ident) {
            continue;
        }
        let has = |bounds: &syn::punctuated::Punctuated<syn::TypeParamBound, _>, name: &str| {
            bounds.iter().any(|bound| match bound {
                syn::TypeParamBound::Trait(t) => {
                    t.path.segments.last().is_some_and(|s| s.ident == name)
                }
                syn::TypeParamBound::Lifetime(l) => l.ident == name,
                _ => false,
            })
        };
        if !has(&param.bounds, "Send") {
            param.bounds.push(parse_quote!(::core::marker::Send));
        }
        if !has(&param.bounds, "static") {
            param.bounds.push(parse_quote!('static));
        }
    }
    generics
}

/// The request variant of a protocol: its trait's name (`SessionStore`).
pub fn protocol_variant(path: &syn::Path) -> syn::Ident {
    path.segments.last().map_or_else(
        || format_ident!("Protocol"),
        |segment| segment.ident.clone(),
    )
}

/// `ty` with every `Self` replaced by the server type, for use outside the
/// impl block (`Self` in a handle method would mean the handle).
pub fn replace_self(ty: &Type, self_ty: &Type) -> TokenStream {
    fn walk(tokens: TokenStream, self_ty: &Type) -> TokenStream {
        let mut out = TokenStream::new();
        let mut tokens = tokens.into_iter().peekable();
        while let Some(token) = tokens.next() {
            match token {
                TokenTree::Ident(ident) if ident == "Self" => {
                    let qualified =
                        matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                    if qualified {
                        out.extend(quote!(<#self_ty>));
                    } else {
                        out.extend(self_ty.to_token_stream());
                    }
                }
                TokenTree::Group(group) => {
                    let mut inner = Group::new(group.delimiter(), walk(group.stream(), self_ty));
                    inner.set_span(group.span());
                    out.extend([TokenTree::Group(inner)]);
                }
                other => out.extend([other]),
            }
        }
        out
    }
    walk(ty.to_token_stream(), self_ty)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// What `#[server]` emits for the `Counter` of its docs, printed, is
    /// `tests/expansion/counter.rs`; the docs point there, so the test keeps
    /// them honest. `SNAPSHOT=overwrite cargo test -p patchboard-macros`
    /// rewrites it after a deliberate change.
    #[test]
    fn the_expansion_matches_the_snapshot() {
        let input = quote! {
            impl Counter {
                /// Adds `by` and returns the new count.
                pub fn add(&mut self, by: u64) -> u64 {
                    self.count += by;
                    self.count
                }

                pub fn count(&self) -> u64 {
                    self.count
                }
            }
        };
        let output = super::server(quote!(), input);
        let file = syn::parse2::<syn::File>(output).expect("the expansion parses as a file");
        let printed = format!(
            "// What `#[server]` emits for `impl Counter` (see `expand.rs`'s test).\n\n{}",
            prettyplease::unparse(&file)
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/expansion/counter.rs");
        if std::env::var_os("SNAPSHOT").is_some_and(|v| v == "overwrite") {
            std::fs::write(path, &printed).unwrap();
        }
        let snapshot = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            snapshot == printed,
            "the expansion changed; review it with SNAPSHOT=overwrite:\n{printed}"
        );
    }
}
