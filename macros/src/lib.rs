//! The `#[server]` attribute of [patchboard](https://docs.rs/patchboard).
//! Use it through the `patchboard` crate.

mod args;
mod ast;
mod attr;
mod check;
mod ctxt;
mod duration;
mod expand;
mod protocol;
mod symbol;

use proc_macro::TokenStream;

/// Turns an inherent `impl` block into a typed message server.
///
/// ```
/// use patchboard::{server, CallError, Server};
///
/// struct Counter { count: u64 }
///
/// #[server]
/// impl Counter {
///     /// Adds `by` and returns the new count.
///     fn add(&mut self, by: u64) -> u64 { self.count += by; self.count }
///     fn count(&self) -> u64 { self.count }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), CallError> {
/// let counter = Counter { count: 0 }.spawn();   // CounterHandle
/// assert_eq!(counter.add(2).await?, 2);
/// assert_eq!(counter.count().await?, 2);
/// # Ok(())
/// # }
/// ```
///
/// # What it generates
///
/// Every method with a `self` receiver becomes a message. For
/// `impl Counter` the macro emits, next to the impl (unchanged except for the
/// helper attributes below), in outline:
///
/// ```text
/// pub enum CounterRequest {
///     /// Adds `by` and returns the new count.
///     Add { by: u64, reply: Reply<u64> },
///     Count { reply: Reply<u64> },
/// }
///
/// pub struct CounterHandle(patchboard::Handle<Counter>);   // + Clone, Debug, From
///
/// impl CounterHandle {
///     /// Adds `by` and returns the new count.
///     fn add(&self, by: u64) -> Call<'_, CounterRequest, u64> {
///         __private::call(&self.0, Kind::CALL, |reply| CounterRequest::Add { by, reply })
///     }
///     fn count(&self) -> Call<'_, CounterRequest, u64> { .. }
///     // and, forwarding to `patchboard::Handle`:
///     pub async fn stop(&self);
///     pub fn is_closed(&self) -> bool;
///     pub async fn closed(&self) -> StopReason;
///     pub fn name(&self) -> Option<&str>;
///     pub fn queued(&self) -> usize;
///     pub fn downgrade(&self) -> WeakHandle<Counter>;
///     pub async fn drain(&self);
///     pub fn monitor<W: Server>(&self, other: &impl AsRef<Handle<W>>);
///     pub fn drain_after<W: Server>(&self, other: &impl AsRef<Handle<W>>);
///     pub fn stop_with<W: Server>(&self, other: &impl AsRef<Handle<W>>);
/// }
///
/// impl patchboard::Server for Counter {
///     type Request = CounterRequest;
///     type Handle = CounterHandle;
///     fn spawn(self) -> CounterHandle { Builder::new(self).spawn() }
///     fn dispatch(&mut self, request: CounterRequest) -> impl Future<Output = Dispatched<..>> {
///         async move {
///             match request {
///                 CounterRequest::Add { by, reply } => {
///                     let _ = reply.send(self.add(by));
///                     Dispatched::Served
///                 }
///                 // ..
///             }
///         }
///     }
/// }
/// ```
///
/// The exact output, printed, is `macros/tests/expansion/counter.rs` in the
/// repository; a test fails when it drifts from the macro.
///
/// The handle methods take the method's name, arguments, doc comments,
/// `#[cfg]`s and visibility. Generic servers work; the macro adds the
/// `Send + 'static` bounds a server needs to each type parameter.
///
/// # Messages
///
/// - `&self` / `&mut self`: a call; `.await` gives `Result<R, CallError>`.
/// - `self`: terminal; `#[on_stop]` runs, then the method consumes the state,
///   answers, and the server stops.
/// - `async fn`: awaited to completion before the next request.
/// - an argument of type `Reply<T>`: a deferred reply; the handle method
///   returns `T` and the method answers through the `Reply` when it likes.
/// - an argument of type `&Context<Self>` (on messages and every hook): the
///   runtime passes the server's own context (`ctx.handle()`, `ctx.weak()`,
///   and in a message, `ctx.is_cancelled()`, `ctx.cancelled()`); it is not
///   part of the handle method.
/// - associated functions without a receiver are left alone.
/// - `#[helper]` on a method with a receiver keeps it a plain method of the
///   impl, not a message: a helper the handlers call as `self.tidy()`, in
///   any shape a plain method may have. Calling it through the handle is
///   one error that says it is a helper, not a message.
///
/// ```
/// use patchboard::{server, CallError, Server};
///
/// struct Cleaner { dirty: Vec<String> }
///
/// #[server]
/// impl Cleaner {
///     /// Adds a path; returns how many distinct paths wait.
///     fn add(&mut self, path: String) -> usize {
///         self.dirty.push(path);
///         self.tidy();
///         self.dirty.len()
///     }
///
///     #[helper]
///     fn tidy(&mut self) {
///         self.dirty.sort();
///         self.dirty.dedup();
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), CallError> {
/// let cleaner = Cleaner { dirty: Vec::new() }.spawn();
/// cleaner.add("a".into()).await?;
/// assert_eq!(cleaner.add("a".into()).await?, 1);
/// # Ok(())
/// # }
/// ```
///
/// # Options: `#[server(..)]`
///
/// | option | meaning |
/// | --- | --- |
/// | `handle = Name` | name of the handle type (default `{Type}Handle`) |
/// | `request = Name` | name of the request enum (default `{Type}Request`) |
/// | `capacity = N` | mailbox capacity, `N >= 1` (default `patchboard::DEFAULT_CAPACITY`) |
/// | `timeout = "5s"` | default timeout of every call (units `ns`, `us`, `ms`, `s`, `m`, `h`) |
/// | `on_panic = "stop"` or `"continue"` | what a handler panic does to the server (default `"stop"`) |
/// | `local` | the state need not be `Send`: the server runs on the current thread's `tokio::task::LocalSet` (spawn it inside one); its handle is still `Send + Sync` |
/// | `protocols(A, B)` | the `#[protocol]` traits the server implements, each in a `#[server] impl A for Server` (see `#[protocol]`) |
/// | `crate = path` | where patchboard is, for crates that re-export it |
///
/// Without `local`, the state (and what its handlers hold across an
/// `.await`) must be `Send`: a server that is not gets one error, on its
/// type, naming what is not `Send`.
///
/// # Helper attributes on methods
///
/// | attribute | meaning |
/// | --- | --- |
/// | `#[on_start]` | runs before the first request; may be `async` and return `Result<(), E: Display>`: on `Err` the server never serves and callers get `CallError::StartFailed` |
/// | `#[on_stop]` | runs exactly once when the server stops (not after a failed start) |
/// | `#[on_down]` | takes `down: Down`: runs when a server this one watches (`monitor`, `drain_after`, `stop_with`) stops |
/// | `#[every(EXPR)]` | runs every `EXPR` (a `Duration`, or an `Option<Duration>` whose `None` is off; evaluated after start with access to `self`, and again after `ctx.reschedule()`) inside the serial loop |
/// | `#[priority]`, `#[priority(N)]` | priority level 1, or `N` up to `MAX_PRIORITY` (7): higher levels are served first, FIFO within a level, and no waiting level is passed over more than `PRIORITY_BURST` times in a row |
/// | `#[cast]` | one-way: `.await` waits for mailbox space only; the method returns `()` |
/// | `#[timeout("200ms")]` | default timeout of this message (the call site's `.timeout(..)` wins) |
/// | `#[cancellable]` | on an `async fn` message: dropped at its next await once its caller gives up (timeout, dropped call) |
/// | `#[helper]` | not a message: the method stays a plain method of the impl (no variant, no handle method); combined with any other attribute here it is an error |
///
/// # Errors
///
/// Anything the macro can see that would not work is a compile error on
/// your own token that says what to write instead: borrowed or `impl Trait`
/// argument and return types, generic methods, lifetimes on the server type,
/// `Box<Self>`-style receivers, pattern arguments, request variants that
/// would collide, methods named like the handle's own methods (`stop`,
/// `drain`, `is_closed`, `closed`, `id`, `name`, `queued`, `downgrade`, `monitor`,
/// `drain_after`, `stop_with`, and from its traits `clone`, `as_ref`, `fmt`,
/// `from`), unknown options, misused helper attributes, and more (see `ui/tests/ui`). Every
/// option is checked, so several mistakes are reported together; and one
/// mistake is one error: the request enum, the handle with its methods and
/// the `Server` impl still appear (as stand-ins that never run), so uses of
/// the handle elsewhere add no knock-on errors.
#[proc_macro_attribute]
pub fn server(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::server(args.into(), input.into()).into()
}

/// Declares a protocol: a trait of message methods that several servers
/// implement, and a client type that the handle of any of them converts
/// into.
///
/// ```
/// use patchboard::{protocol, server, CallError, Server};
///
/// /// Something that stores sessions.
/// #[protocol]
/// pub trait SessionStore {
///     /// The value of `key`, if any.
///     fn get(&self, key: String) -> Option<String>;
///     /// Sets `key`.
///     fn put(&mut self, key: String, value: String);
/// }
///
/// #[derive(Default)]
/// pub struct MemoryStore { map: std::collections::HashMap<String, String> }
///
/// #[server(protocols(SessionStore))]
/// impl MemoryStore {
///     /// An inherent message beside the protocol's.
///     fn len(&self) -> usize { self.map.len() }
/// }
///
/// #[server]
/// impl SessionStore for MemoryStore {
///     fn get(&self, key: String) -> Option<String> { self.map.get(&key).cloned() }
///     fn put(&mut self, key: String, value: String) { self.map.insert(key, value); }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), CallError> {
/// let store = MemoryStore::default().spawn();
/// let sessions = SessionStoreClient::from(store.clone());
/// sessions.put("id".into(), "ada".into()).await?;
/// assert_eq!(sessions.get("id".into()).await?, Some("ada".into()));
/// assert_eq!(store.len().await?, 1);
/// # Ok(())
/// # }
/// ```
///
/// # What it generates
///
/// For `trait SessionStore`, next to the trait (each method gains
/// `where Self: Sized`, and an `async fn` is declared as returning a `Send`
/// future, which an `async fn` in the impl satisfies):
///
/// - `SessionStoreRequest`: one variant per method, as a server's request
///   enum has.
/// - `SessionStoreClient`: `Clone + Send + Sync`, made with
///   `SessionStoreClient::from(handle)` from the handle of any server that
///   implements the protocol; one method per message, each returning a
///   `patchboard::ProtocolCall` with the options of a `Call` (`.timeout`,
///   `.try_now`, `.priority`, `.no_wait`, `.blocking`, `.owned`), and
///   `is_closed`, `name`, `stop`, `closed`.
///
/// The client holds the server's handle behind an `Arc<dyn ..>`, so that
/// clients of different servers are one type (`Vec<SessionStoreClient>`, a
/// struct field) without a generic parameter; a call through it builds the
/// concrete server's own `Call` and boxes it once.
///
/// # Implementing it
///
/// A server lists the protocols it implements on its inherent impl,
/// `#[server(protocols(SessionStore, Metrics))] impl MemoryStore { .. }`
/// (which may hold its own messages too, or none), and implements each in
/// a `#[server] impl SessionStore for MemoryStore { .. }`. Forgetting one
/// half is one error that says which. A method of a protocol and an
/// inherent method of the same name are an error (`duplicate definitions`)
/// on both, as two protocols with a method of the same name on one server
/// are.
///
/// # Options
///
/// `#[protocol(remote)]`: the protocol crosses NATS with its servers (the
/// `nats` feature): a `#[server(remote, protocols(..))]` server offers its
/// protocol messages beside its own, and its remote handle converts into
/// the client as a local one does. `#[protocol(crate = path)]` as for
/// `#[server]`.
///
/// # What a protocol method can be
///
/// What a message can be (`&self` or `&mut self`, `async fn`, owned
/// arguments, a deferred `Reply<T>`, and `#[cast]`, `#[priority]`,
/// `#[timeout(..)]`, `#[cancellable]`), except that it cannot consume the
/// server or take `&Context<..>`. The trait cannot be generic, have
/// supertraits, associated types or consts, or default bodies; each of
/// these is one compile error on your token.
#[proc_macro_attribute]
pub fn protocol(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::protocol::protocol(args.into(), input.into()).into()
}
