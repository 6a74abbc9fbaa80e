//! Names the macro recognises, kept in one place.

/// Helper attributes on methods inside `#[server]`.
pub const ON_START: &str = "on_start";
pub const ON_STOP: &str = "on_stop";
pub const EVERY: &str = "every";
pub const PRIORITY: &str = "priority";
pub const CAST: &str = "cast";
pub const TIMEOUT: &str = "timeout";

pub const HELPERS: &[&str] = &[ON_START, ON_STOP, EVERY, PRIORITY, CAST, TIMEOUT];

/// Keys of `#[server(..)]`.
pub const HANDLE: &str = "handle";
pub const REQUEST: &str = "request";
pub const CAPACITY: &str = "capacity";
pub const ON_PANIC: &str = "on_panic";
pub const CRATE: &str = "crate";

pub const SERVER_KEYS: &str = "`handle`, `request`, `capacity`, `timeout`, `on_panic`, `crate`";

/// Methods every generated handle already has (its own or through `Deref`
/// to `switchboard::Handle`); a message with one of these names would hide
/// them.
pub const RESERVED: &[&str] = &[
    "stop",
    "is_closed",
    "closed",
    "name",
    "queued",
    "downgrade",
    "clone",
    "fmt",
    "from",
];

/// The field of a request variant that carries the reply.
pub const REPLY_FIELD: &str = "reply";
/// The runtime type a deferred-reply argument has.
pub const REPLY_TYPE: &str = "Reply";
/// The runtime type a context argument (`ctx: &Context<Self>`) has.
pub const CONTEXT_TYPE: &str = "Context";
