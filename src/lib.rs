#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub use patchboard_macros::server;
pub use patchboard_runtime::{
    BoundedMap, Builder, Call, CallError, CallFuture, Context, DEFAULT_CAPACITY, Delivery, Down,
    Exit, Exited, Flatten, Handle, LookupError, MAX_CAPACITY, MAX_POOL_SIZE, MAX_PRIORITY, Merge,
    OwnedCall, PRIORITY_BURST, PanicMessage, PanicPolicy, RegisterError, Registry, Reply, Restart,
    Server, ServerId, StopReason, Subscriber, Subscription, WeakHandle, bounded_map, first_ok,
    merge, subscription,
};

#[cfg(feature = "inventory")]
#[cfg_attr(docsrs, doc(cfg(feature = "inventory")))]
pub use patchboard_runtime::inventory;

#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use patchboard_runtime::nats;

#[cfg(feature = "observer")]
#[cfg_attr(docsrs, doc(cfg(feature = "observer")))]
pub use patchboard_runtime::observer;

#[doc(hidden)]
pub use patchboard_runtime::__private;
