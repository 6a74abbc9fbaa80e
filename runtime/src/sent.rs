//! `Sent`: what a request carries from the moment its caller made it, for
//! whoever observes it — its trace (`trace`: call id, time, the caller's
//! span and trace) and its metrics (`meter`: the time, for the queue
//! wait). Zero-sized with neither feature.

use crate::{meter, trace};

/// What a request's reply keeps of the moment it was sent. (`pub` only
/// because the hidden `ReplySlot` trait names it.)
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Sent {
    pub(crate) trace: trace::Sent,
    pub(crate) meter: meter::Sent,
}

impl Sent {
    /// Now, from the caller's code.
    #[inline(always)]
    pub(crate) fn now() -> Self {
        Sent {
            trace: trace::Sent::now(),
            meter: meter::Sent::now(),
        }
    }
}
