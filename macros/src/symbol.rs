//! Names the macro recognises, kept in one place.

/// Helper attributes on methods inside `#[server]`.
pub const ON_START: &str = "on_start";
pub const ON_STOP: &str = "on_stop";
pub const ON_DOWN: &str = "on_down";
pub const EVERY: &str = "every";
pub const PRIORITY: &str = "priority";
/// The highest `#[priority(N)]`: `patchboard::MAX_PRIORITY`.
pub const MAX_PRIORITY: u8 = 7;
pub const CAST: &str = "cast";
pub const TIMEOUT: &str = "timeout";
pub const CANCELLABLE: &str = "cancellable";

pub const HELPERS: &[&str] = &[
    ON_START,
    ON_STOP,
    ON_DOWN,
    EVERY,
    PRIORITY,
    CAST,
    TIMEOUT,
    CANCELLABLE,
];

/// Keys of `#[server(..)]`.
pub const HANDLE: &str = "handle";
pub const REQUEST: &str = "request";
pub const CAPACITY: &str = "capacity";
pub const ON_PANIC: &str = "on_panic";
pub const LOCAL: &str = "local";
pub const REMOTE: &str = "remote";
pub const CRATE: &str = "crate";

pub const SERVER_KEYS: &str =
    "`handle`, `request`, `capacity`, `timeout`, `on_panic`, `local`, `remote`, `crate`";

/// Methods every generated handle already has (forwarded to
/// `patchboard::Handle`, or from a trait it implements); a message with
/// one of these names would hide them.
pub const RESERVED: &[&str] = &[
    "stop",
    "drain",
    "is_closed",
    "closed",
    "id",
    "name",
    "queued",
    "downgrade",
    "monitor",
    "drain_after",
    "stop_with",
    "clone",
    "as_ref",
    "fmt",
    "from",
];

/// The field of a request variant that carries the reply.
pub const REPLY_FIELD: &str = "reply";
/// The runtime type a deferred-reply argument has.
pub const REPLY_TYPE: &str = "Reply";
/// The runtime type an `#[on_down]` hook's argument has.
pub const DOWN_TYPE: &str = "Down";
/// The runtime type a context argument (`ctx: &Context<Self>`) has.
pub const CONTEXT_TYPE: &str = "Context";
