//! Durations written as strings: `"5s"`, `"200ms"`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

/// A duration parsed at compile time.
#[derive(Clone, Copy)]
pub struct Duration {
    nanos: u128,
}

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

impl Duration {
    /// `"<integer><unit>"` with unit one of `ns`, `us`, `ms`, `s`, `m`, `h`.
    pub fn parse(lit: &LitStr) -> syn::Result<Self> {
        let text = lit.value();
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let error = || {
            syn::Error::new(
                lit.span(),
                format!(
                    "invalid duration `{text}`: write a whole number and a unit, \
                     e.g. \"5s\", \"200ms\" (units: ns, us, ms, s, m, h)"
                ),
            )
        };
        let number: u128 = number.parse().map_err(|_| error())?;
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit.trim())
            .map(|(_, scale)| *scale)
            .ok_or_else(error)?;
        let nanos = number.checked_mul(scale).ok_or_else(error)?;
        if nanos == 0 {
            return Err(syn::Error::new(
                lit.span(),
                "a timeout of zero would fail every call: write a positive duration",
            ));
        }
        if nanos / 1_000_000_000 > u128::from(u64::MAX) {
            return Err(error());
        }
        Ok(Duration { nanos })
    }

    /// An expression of type `core::time::Duration`, through the runtime's
    /// private module.
    pub fn to_expr_in(self, private: &TokenStream) -> TokenStream {
        let secs = (self.nanos / 1_000_000_000) as u64;
        let nanos = (self.nanos % 1_000_000_000) as u32;
        quote!(#private::Duration::new(#secs, #nanos))
    }
}
