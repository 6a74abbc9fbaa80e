//! Names and groups: a [`Registry`] finds running servers by name, as their
//! own typed handles.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::control::{Control, Ends};
use crate::id::ServerId;
use crate::server::{Server, WeakHandle};

/// Running servers by name (OTP's registered names, `register/2` and
/// `whereis/1`) and by group (OTP's `pg`: several servers under one name).
///
/// ```
/// use patchboard::{server, LookupError, Registry, Server};
///
/// #[derive(Default)]
/// struct Cache { hits: u64 }
/// #[server]
/// impl Cache {
///     fn hit(&mut self) -> u64 { self.hits += 1; self.hits }
/// }
///
/// struct Limiter;
/// #[server]
/// impl Limiter {
///     fn allow(&self) -> bool { true }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = Registry::new();
/// let cache = Cache::default().spawn();
/// registry.register("cache", &cache).unwrap();
///
/// // Elsewhere: the typed handle back, by name.
/// let found = registry.lookup::<Cache>("cache").unwrap();
/// assert_eq!(found.hit().await, Ok(1));
/// assert_eq!(found.id(), cache.id());
///
/// // The wrong type is an error, not a panic.
/// assert!(matches!(registry.lookup::<Limiter>("cache"), Err(LookupError::WrongType { .. })));
/// // A taken name is refused.
/// let other = Cache::default().spawn();
/// assert!(registry.register("cache", &other).is_err());
///
/// // The name is freed when the server ends.
/// drop(found);
/// cache.stop().await;
/// assert_eq!(registry.lookup::<Cache>("cache").unwrap_err(), LookupError::NotFound);
/// registry.register("cache", &other).unwrap();
/// # }
/// ```
///
/// # A value, not a global
///
/// A `Registry` is a value the program creates and passes around (it is
/// cheap to clone: clones share one table), not one process-wide table as
/// in OTP, kameo and ractor. Two parts of a program, two tests running at
/// once, or two supervision trees cannot collide on a name, and whoever
/// can look a server up is visible in the code that hands out the
/// registry. A program that wants one global table writes it once:
/// `static REGISTRY: std::sync::LazyLock<Registry> = LazyLock::new(Registry::new);`.
///
/// # What it promises
///
/// - **No stale entry.** The registry holds servers weakly (it does not
///   keep them alive), and an entry is removed when its server ends, by the
///   server's own end (no task, no polling). A lookup never returns a
///   server that has ended, or that refuses calls because it is stopping
///   or draining: it says [`LookupError::NotFound`] then, and the name may
///   be taken again at once.
/// - **No race between an end and a lookup.** One lock orders them: a
///   lookup that begins after the server has ended does not find it. (A
///   server can still end right after a lookup returned it, as it can
///   after any handle was made: its calls then get
///   [`CallError::Closed`](crate::CallError::Closed).)
/// - **Typed.** A lookup names the server type it expects and gets that
///   server's own handle, or [`LookupError::WrongType`].
/// - **A server keeps its name across restarts**: a restart keeps the
///   handle (see [`Restart`](crate::Restart) and
///   [`Supervisor`](crate::Supervisor)). A child a supervisor *starts anew*
///   after a normal end is a new server: register it again.
pub struct Registry {
    inner: Arc<Inner>,
}

/// Why [`Registry::register`] refused a name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// Another running server holds the name; its id is attached.
    Taken(ServerId),
    /// The server has ended, or refuses calls (it is stopping or
    /// draining): it would be found by nobody.
    Closed,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Taken(id) => write!(f, "the name is taken by server {id}"),
            RegisterError::Closed => f.write_str("the server has stopped or is stopping"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// Why [`Registry::lookup`] found no handle.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupError {
    /// No running server has the name (none registered it, or it ended or
    /// is stopping).
    NotFound,
    /// A server of another type has the name.
    WrongType {
        /// The server type the lookup asked for.
        expected: &'static str,
        /// The type of the server registered under the name.
        found: &'static str,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotFound => f.write_str("no running server has this name"),
            LookupError::WrongType { expected, found } => write!(
                f,
                "the server with this name is a `{found}`, not a `{expected}`"
            ),
        }
    }
}

impl std::error::Error for LookupError {}

struct Inner {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    names: HashMap<Arc<str>, Arc<Entry>>,
    groups: HashMap<Arc<str>, Vec<Arc<Entry>>>,
}

/// Where an entry is filed, to remove it from there.
enum Key {
    Name(Arc<str>),
    Group(Arc<str>),
}

/// One server under one name or in one group.
struct Entry {
    key: Key,
    control: Arc<Control>,
    /// The server's `WeakHandle<S>`.
    weak: Box<dyn Any + Send + Sync>,
    /// `open::<S>`: the server's mailbox still takes requests.
    open: fn(&(dyn Any + Send + Sync)) -> bool,
    type_name: &'static str,
    registry: Weak<Inner>,
}

impl Entry {
    /// The server still takes calls (it has not ended, and is neither
    /// stopping nor draining).
    fn is_live(&self) -> bool {
        self.control.reason().is_none()
            && !self.control.refuses_outside()
            && (self.open)(&*self.weak)
    }

    fn handle<S: Server>(&self) -> Result<S::Handle, LookupError> {
        let weak = self
            .weak
            .downcast_ref::<WeakHandle<S>>()
            .ok_or(LookupError::WrongType {
                expected: std::any::type_name::<S>(),
                found: self.type_name,
            })?;
        weak.upgrade().ok_or(LookupError::NotFound)
    }
}

/// `WeakHandle<S>`'s mailbox still takes requests (a stopped server's is
/// closed before it ends). Its senders, not a handle: upgrading them
/// leaves the count of handles alone.
fn open<S: Server>(weak: &(dyn Any + Send + Sync)) -> bool {
    weak.downcast_ref::<WeakHandle<S>>()
        .and_then(|weak| weak.senders.upgrade())
        .is_some_and(|senders| !senders.is_closed())
}

/// Called by the server's end (`Control::finish`): the entry leaves the
/// table, unless it was replaced or removed already.
impl Ends for Entry {
    fn end(&self) {
        let Some(inner) = self.registry.upgrade() else {
            return;
        };
        let mut table = inner.table();
        match &self.key {
            Key::Name(name) => {
                if table
                    .names
                    .get(name)
                    .is_some_and(|entry| std::ptr::eq(&**entry, self))
                {
                    table.names.remove(name);
                }
            }
            Key::Group(group) => table.leave(group, |entry| std::ptr::eq(&**entry, self)),
        }
    }
}

impl Table {
    fn leave(&mut self, group: &str, gone: impl Fn(&Arc<Entry>) -> bool) {
        if let Some(members) = self.groups.get_mut(group) {
            members.retain(|entry| !gone(entry));
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Never held across user code: a poisoned lock is sound.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::default()),
            }),
        }
    }

    /// An entry for `handle`'s server, bound to its end; `Err(Closed)` if
    /// it has ended or refuses calls.
    fn entry<S: Server>(
        &self,
        key: Key,
        handle: &impl AsRef<crate::Handle<S>>,
    ) -> Result<Arc<Entry>, RegisterError>
    where
        WeakHandle<S>: Send + Sync,
    {
        let handle = handle.as_ref();
        let entry = Arc::new(Entry {
            key,
            control: handle.control.clone(),
            weak: Box::new(handle.downgrade()),
            open: open::<S>,
            type_name: std::any::type_name::<S>(),
            registry: Arc::downgrade(&self.inner),
        });
        // Bound first, checked after: a server that ends in between either
        // sees the binding (and removes the entry) or has set its reason,
        // which the check sees (`Control::finish` sets the reason, then
        // takes what is bound).
        let weak: Weak<dyn Ends> = Arc::downgrade(&entry) as Weak<dyn Ends>;
        handle.control.bind(weak);
        match entry.is_live() {
            true => Ok(entry),
            false => Err(RegisterError::Closed),
        }
    }

    /// Registers `handle`'s server under `name` until it ends (or
    /// [`unregister`](Self::unregister)). A name held by a running server
    /// is refused with [`RegisterError::Taken`]; a name whose server is
    /// stopping is taken over. The registry does not keep the server alive.
    pub fn register<S: Server>(
        &self,
        name: &str,
        handle: &impl AsRef<crate::Handle<S>>,
    ) -> Result<(), RegisterError>
    where
        WeakHandle<S>: Send + Sync,
    {
        let name: Arc<str> = Arc::from(name);
        let mut table = self.inner.table();
        if let Some(held) = table.names.get(&name)
            && held.is_live()
        {
            return Err(RegisterError::Taken(held.control.id()));
        }
        // Under the table's lock: the entry's end waits for it, so it
        // cannot run before the entry is filed.
        let entry = self.entry(Key::Name(name.clone()), handle)?;
        table.names.insert(name, entry);
        Ok(())
    }

    /// The running server registered under `name`, as its own handle
    /// (`S::Handle`, e.g. `CacheHandle`).
    pub fn lookup<S: Server>(&self, name: &str) -> Result<S::Handle, LookupError> {
        let table = self.inner.table();
        match table.names.get(name) {
            Some(entry) if entry.is_live() => entry.handle::<S>(),
            _ => Err(LookupError::NotFound),
        }
    }

    /// The id of the running server registered under `name`, whatever its
    /// type.
    pub fn whereis(&self, name: &str) -> Option<ServerId> {
        let table = self.inner.table();
        let entry = table.names.get(name)?;
        entry.is_live().then(|| entry.control.id())
    }

    /// Frees `name`; returns the id of the server that held it, if one
    /// (running) did. The server keeps running.
    pub fn unregister(&self, name: &str) -> Option<ServerId> {
        let entry = self.inner.table().names.remove(name)?;
        entry.is_live().then(|| entry.control.id())
    }

    /// The names of running servers, sorted.
    pub fn names(&self) -> Vec<String> {
        let table = self.inner.table();
        let mut names: Vec<String> = table
            .names
            .iter()
            .filter(|(_, entry)| entry.is_live())
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// Adds `handle`'s server to `group` (OTP's `pg:join`), until it ends
    /// or [`leave`](Self::leave)s. A group holds servers of any types; a
    /// server may be in many groups, and joining twice lists it twice, as
    /// in `pg`.
    pub fn join<S: Server>(
        &self,
        group: &str,
        handle: &impl AsRef<crate::Handle<S>>,
    ) -> Result<(), RegisterError>
    where
        WeakHandle<S>: Send + Sync,
    {
        let group: Arc<str> = Arc::from(group);
        let mut table = self.inner.table();
        let entry = self.entry(Key::Group(group.clone()), handle)?;
        table.groups.entry(group).or_default().push(entry);
        Ok(())
    }

    /// Removes every membership of server `id` in `group`; returns how many
    /// there were.
    pub fn leave(&self, group: &str, id: ServerId) -> usize {
        let mut table = self.inner.table();
        let before = table.groups.get(group).map_or(0, Vec::len);
        table.leave(group, |entry| entry.control.id() == id);
        before - table.groups.get(group).map_or(0, Vec::len)
    }

    /// The running members of `group` whose type is `S`, as their handles,
    /// in the order they joined. (Members of other types are skipped; see
    /// [`member_ids`](Self::member_ids) for all of them.)
    pub fn members<S: Server>(&self, group: &str) -> Vec<S::Handle> {
        let table = self.inner.table();
        let Some(members) = table.groups.get(group) else {
            return Vec::new();
        };
        members
            .iter()
            .filter(|entry| entry.is_live())
            .filter_map(|entry| entry.handle::<S>().ok())
            .collect()
    }

    /// The ids of the running members of `group`, whatever their types, in
    /// the order they joined.
    pub fn member_ids(&self, group: &str) -> Vec<ServerId> {
        let table = self.inner.table();
        table.groups.get(group).map_or_else(Vec::new, |members| {
            members
                .iter()
                .filter(|entry| entry.is_live())
                .map(|entry| entry.control.id())
                .collect()
        })
    }

    /// The groups with running members, sorted.
    pub fn groups(&self) -> Vec<String> {
        let table = self.inner.table();
        let mut groups: Vec<String> = table
            .groups
            .iter()
            .filter(|(_, members)| members.iter().any(|entry| entry.is_live()))
            .map(|(group, _)| group.to_string())
            .collect();
        groups.sort_unstable();
        groups
    }

    /// How many entries the registry holds (names and group memberships),
    /// counting those of servers that are ending and not yet removed: for
    /// metrics, and tests that check nothing is left behind.
    pub fn entries(&self) -> usize {
        let table = self.inner.table();
        table.names.len() + table.groups.values().map(Vec::len).sum::<usize>()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Clone for Registry {
    /// Another way to the same table.
    fn clone(&self) -> Self {
        Registry {
            inner: self.inner.clone(),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .field("groups", &self.groups())
            .finish()
    }
}
