#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub use patchboard_macros::server;
pub use patchboard_runtime::{
    Attached, BoundedMap, Builder, Call, CallError, CallFuture, Context, DEFAULT_CAPACITY,
    Delivery, Down, Exit, Exited, Flatten, Handle, LookupError, MAX_CAPACITY, MAX_POOL_SIZE,
    MAX_PRIORITY, Merge, OwnedCall, PRIORITY_BURST, PanicMessage, PanicPolicy, RegisterError,
    Registry, Reply, Restart, Scheduled, Server, ServerId, StopReason, Subscriber, Subscription,
    WeakHandle, attach, attach_with_end, bounded_map, first_ok, merge, subscription,
};

#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use patchboard_runtime::nats;

#[doc(hidden)]
pub use patchboard_runtime::__private;
