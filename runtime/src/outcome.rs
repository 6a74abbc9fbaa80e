//! `Outcome`: how one request ended, as traces and metrics tell it.

/// How a request ended: its span's `outcome` field, its metrics'
/// `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler returned (its own `Err` aside).
    Ok,
    /// The handler returned an `Err` of its own.
    Error,
    /// The handler panicked.
    Panic,
    /// Its caller gave up: not started, or dropped mid-way.
    Cancelled,
    /// Refused: the server was stopping.
    Closed,
}

impl Outcome {
    /// Every outcome, in the order of [`index`](Self::index).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Panic,
        Outcome::Cancelled,
        Outcome::Closed,
    ];

    /// Its place in [`ALL`](Self::ALL).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Its name in traces and metrics.
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Cancelled => "cancelled",
            Outcome::Closed => "closed",
        }
    }
}
