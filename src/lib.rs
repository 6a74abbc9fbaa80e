#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub use patchboard_macros::{protocol, server};
pub use patchboard_runtime::{
    Attached, BoundedMap, Builder, Call, CallError, CallFuture, Child, ChildInfo, Context,
    DEFAULT_CAPACITY, Delivery, Down, Exit, Exited, Flatten, Handle, LookupError, MAX_CAPACITY,
    MAX_POOL_SIZE, MAX_PRIORITY, Merge, NoWait, OwnedCall, PRIORITY_BURST, PanicMessage,
    PanicPolicy, ProtocolCall, ProtocolFuture, RegisterError, Registry, Reply, Restart,
    RestartKind, Scheduled, Server, ServerId, StartError, StopReason, Strategy, Subscriber,
    Subscription, Supervisor, SupervisorBuilder, SupervisorEnd, SupervisorEvent, WeakHandle,
    attach, attach_with_end, bounded_map, first_ok, merge, subscription,
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

/// The guide, one topic per chapter: the same text as `guide/*.md` in the
/// repository, here so that every example in it is compiled and run by
/// `cargo test`.
#[doc = include_str!("../guide/index.md")]
pub mod guide {
    #[doc = include_str!("../guide/servers.md")]
    pub mod servers {}

    #[doc = include_str!("../guide/lifecycle.md")]
    pub mod lifecycle {}

    #[doc = include_str!("../guide/calling.md")]
    pub mod calling {}

    #[doc = include_str!("../guide/inside.md")]
    pub mod inside {}

    #[doc = include_str!("../guide/stopping.md")]
    pub mod stopping {}

    #[doc = include_str!("../guide/time.md")]
    pub mod time {}

    #[doc = include_str!("../guide/systems.md")]
    pub mod systems {}

    #[doc = include_str!("../guide/many.md")]
    pub mod many {}

    #[doc = include_str!("../guide/protocols.md")]
    pub mod protocols {}

    #[doc = include_str!("../guide/patterns.md")]
    pub mod patterns {}

    #[doc = include_str!("../guide/tracing.md")]
    pub mod tracing {}

    #[doc = include_str!("../guide/observability.md")]
    pub mod observability {}

    /// (Its example needs the `nats` feature, and a `nats-server` to run.)
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    #[doc = include_str!("../guide/nats.md")]
    pub mod nats {}

    #[doc = include_str!("../guide/performance.md")]
    pub mod performance {}

    #[doc = include_str!("../guide/coming-from.md")]
    pub mod coming_from {}
}
