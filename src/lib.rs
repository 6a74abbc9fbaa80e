#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use switchboard_macros::server;
pub use switchboard_runtime::{
    BoundedMap, Builder, Call, CallError, CallFuture, Context, DEFAULT_CAPACITY, Delivery, Down,
    Exit, Exited, Flatten, Handle, MAX_CAPACITY, MAX_POOL_SIZE, MAX_PRIORITY, Merge, OwnedCall,
    PRIORITY_BURST, PanicMessage, PanicPolicy, Reply, Restart, Server, StopReason, Subscriber,
    Subscription, WeakHandle, bounded_map, first_ok, merge, subscription,
};

#[cfg(feature = "nats")]
pub use switchboard_runtime::nats;

#[doc(hidden)]
pub use switchboard_runtime::__private;
