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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> syn::Result<u128> {
        Duration::parse(&LitStr::new(text, proc_macro2::Span::call_site())).map(|d| d.nanos)
    }

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse("7ns").unwrap(), 7);
        assert_eq!(parse("7us").unwrap(), 7_000);
        assert_eq!(parse("200ms").unwrap(), 200_000_000);
        assert_eq!(parse("5s").unwrap(), 5_000_000_000);
        assert_eq!(parse("2m").unwrap(), 120_000_000_000);
        assert_eq!(parse("1h").unwrap(), 3_600_000_000_000);
        assert_eq!(parse(" 3s ").unwrap(), 3_000_000_000);
    }

    #[test]
    fn bad_durations_are_errors_not_panics() {
        for text in [
            "",
            "s",
            "5",
            "5 seconds",
            "1.5s",
            "-1s",
            "0ms",
            "99999999999999999999999h",
        ] {
            assert!(parse(text).is_err(), "{text:?} should be refused");
        }
    }
}
