//! Issue 31, side by side in one run: patchboard, the hand-written tokio
//! actor (`tokio_mpsc`) and xtra, on a current-thread runtime and on a
//! 2-worker multi-thread runtime.
//!
//! `cd benches/peers && cargo run --release`
//!
//! Per runtime flavour and implementation:
//! - idle heap bytes per server: live heap bytes of 10 000 servers after
//!   one call each (the caller's `Vec` of handles is allocated before the
//!   count starts and not counted), over 10 000;
//! - allocations per call: 100 000 sequential calls after 1 000 unmeasured;
//! - spawn + first call: spawn 10 000 servers, then one call to each,
//!   awaited one by one (`spawns`/`spawn_and_call` of `benches/actor.rs`);
//!   µs per server, median of 11 rounds after one unmeasured round; each
//!   round's servers are dropped and their tasks ended before the next
//!   round, untimed;
//! - sequential call: ns per call, median of 11 rounds of 100 000 calls
//!   to one server (synchronous handler).
//!
//! Every measurement runs as a task of the runtime (`tokio::spawn`), as
//! callers do and as `benches/actor.rs` measures.

mod accounts;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::Instant;

use accounts::{Account, Patchboard, TokioActor, XtraActor};
use tokio::runtime::Runtime;

// A counting allocator, as benches/memory.rs -----------------------------------

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// While set, the size of every allocation is written into `TRACE`
/// (without allocating): to see what one spawn and one first call
/// allocate.
static TRACING: AtomicBool = AtomicBool::new(false);
const TRACE_SLOTS: usize = 64;
static TRACE: [AtomicUsize; TRACE_SLOTS] = [const { AtomicUsize::new(0) }; TRACE_SLOTS];
static TRACE_LEN: AtomicUsize = AtomicUsize::new(0);

fn record(size: usize) {
    if TRACING.load(Ordering::Relaxed) {
        let i = TRACE_LEN.fetch_add(1, Ordering::Relaxed);
        if i < TRACE_SLOTS {
            TRACE[i].store(size, Ordering::Relaxed);
        }
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// The workloads ------------------------------------------------------------------

const SERVERS: usize = 10_000;
const CALLS: usize = 100_000;
const ROUNDS: usize = 11;

struct Row {
    idle_bytes: f64,
    allocs_per_call: f64,
    spawn_call_us: Rounds,
    seq_ns: Rounds,
}

/// The median of a figure's rounds, and their least and greatest.
struct Rounds {
    median: f64,
    min: f64,
    max: f64,
}

impl Rounds {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(|a, b| a.total_cmp(b));
        Rounds {
            median: samples[samples.len() / 2],
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Until the runtime has no more tasks alive than `alive`: the servers
/// spawned since have ended.
async fn ended(alive: usize) {
    while alive_tasks() > alive {
        tokio::task::yield_now().await;
    }
}

async fn spawn_and_call<A: Account>(servers: &mut Vec<A>) {
    servers.extend((0..SERVERS).map(|_| A::spawn()));
    for server in servers.iter() {
        std::hint::black_box(server.deposit(1).await);
    }
}

/// Heap bytes per idle server, after one call each.
async fn idle_bytes<A: Account>() -> f64 {
    // One round first, unmeasured: the runtime's own queues grow to hold
    // 10 000 tasks once (on one thread, 13 bytes a server), not charged to
    // whichever implementation happens to run first.
    let alive = alive_tasks();
    let mut servers: Vec<A> = Vec::with_capacity(SERVERS);
    spawn_and_call(&mut servers).await;
    drop(servers);
    ended(alive).await;

    let mut servers: Vec<A> = Vec::with_capacity(SERVERS);
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    spawn_and_call(&mut servers).await;
    // Let a worker that is still finishing the last call settle.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let bytes = (LIVE_BYTES.load(Ordering::SeqCst) - before) as f64 / SERVERS as f64;
    drop(servers);
    ended(alive).await;
    bytes
}

/// Allocations per call in steady state.
async fn allocs_per_call<A: Account>() -> f64 {
    let alive = alive_tasks();
    let account = A::spawn();
    for _ in 0..1_000 {
        account.deposit(1).await;
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..CALLS {
        std::hint::black_box(account.deposit(1).await);
    }
    let per_call = (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / CALLS as f64;
    drop(account);
    ended(alive).await;
    per_call
}

/// µs per server to spawn 10 000 and call each once; median of the
/// rounds.
async fn spawn_call_us<A: Account>() -> Rounds {
    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..=ROUNDS {
        let alive = alive_tasks();
        let mut servers: Vec<A> = Vec::with_capacity(SERVERS);
        let start = Instant::now();
        spawn_and_call(&mut servers).await;
        let elapsed = start.elapsed();
        drop(servers);
        ended(alive).await;
        if round > 0 {
            samples.push(elapsed.as_secs_f64() * 1e6 / SERVERS as f64);
        }
    }
    Rounds::of(samples)
}

/// ns per sequential call; median of the rounds.
async fn seq_ns<A: Account>() -> Rounds {
    let alive = alive_tasks();
    let account = A::spawn();
    for _ in 0..10_000 {
        account.deposit(1).await;
    }
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..CALLS {
            std::hint::black_box(account.deposit(1).await);
        }
        samples.push(start.elapsed().as_secs_f64() * 1e9 / CALLS as f64);
    }
    drop(account);
    ended(alive).await;
    Rounds::of(samples)
}

async fn row<A: Account>() -> Row {
    let idle_bytes = idle_bytes::<A>().await;
    let allocs_per_call = allocs_per_call::<A>().await;
    let spawn_call_us = spawn_call_us::<A>().await;
    Row {
        idle_bytes,
        allocs_per_call,
        spawn_call_us,
        seq_ns: seq_ns::<A>().await,
    }
}

/// Runs `work` as a task of `runtime`.
fn run<T: Send + 'static>(runtime: &Runtime, work: impl Future<Output = T> + Send + 'static) -> T {
    runtime.block_on(async { tokio::spawn(work).await.expect("measurement task") })
}

fn table(flavour: &str, runtime: &Runtime) {
    let rows = [
        ("patchboard", run(runtime, row::<Patchboard>())),
        ("tokio_mpsc", run(runtime, row::<TokioActor>())),
        ("xtra", run(runtime, row::<XtraActor>())),
    ];
    println!("\n{flavour}\n");
    println!(
        "| implementation | idle heap bytes / server | allocs / call | spawn + first call (µs / server; median (min–max) of {ROUNDS} rounds) | sequential call (ns; median (min–max)) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, r) in rows {
        println!(
            "| {name} | {:.0} | {:.2} | {} | {} |",
            r.idle_bytes,
            r.allocs_per_call,
            r.spawn_call_us.show(2),
            r.seq_ns.show(0)
        );
    }
}

// Where the bytes go ------------------------------------------------------------

/// While `f` runs (on a current-thread runtime): the sizes of the
/// allocations, and the heap bytes left live.
async fn traced_async<T>(f: impl Future<Output = T>) -> (T, Vec<usize>, isize) {
    TRACE_LEN.store(0, Ordering::SeqCst);
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    TRACING.store(true, Ordering::SeqCst);
    let out = f.await;
    TRACING.store(false, Ordering::SeqCst);
    let live = LIVE_BYTES.load(Ordering::SeqCst) - before;
    let n = TRACE_LEN.load(Ordering::SeqCst).min(TRACE_SLOTS);
    let sizes = TRACE[..n]
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .collect();
    (out, sizes, live)
}

/// On a current-thread runtime: the allocations of one spawn, of its
/// task's first run and of its first call, with the bytes each leaves
/// live.
fn anatomy<A: Account>(name: &str, runtime: &Runtime) {
    let (spawned, started, called) = run(runtime, async {
        // A first server, untraced: what is allocated once (lazily, per
        // runtime or per thread, and the runtime's list of deferred
        // wake-ups that a `yield_now` fills) is not counted as the
        // second one's.
        let first = A::spawn();
        first.deposit(1).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let (account, spawn_sizes, spawn_live) = traced_async(async { A::spawn() }).await;
        // The server's task runs to its wait for a first request, as the
        // table's 10 000 do before their first call.
        let ((), start_sizes, start_live) = traced_async(async {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        // On one thread the server task has run to its next wait when
        // the reply arrives.
        let ((), call_sizes, call_live) = traced_async(async {
            std::hint::black_box(account.deposit(1).await);
        })
        .await;
        drop((first, account));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        (
            (spawn_sizes, spawn_live),
            (start_sizes, start_live),
            (call_sizes, call_live),
        )
    });
    println!(
        "{name:<11} handle {:>2} B | spawn: {:?}, {} B live | task's first run: {:?}, {:+} B | first call: {:?}, {:+} B",
        std::mem::size_of::<A>(),
        spawned.0,
        spawned.1,
        started.0,
        started.1,
        called.0,
        called.1,
    );
}

/// A future of exactly `N` bytes, ready at once.
struct Pad<const N: usize>([u8; N]);

impl<const N: usize> Future for Pad<N> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::hint::black_box(&self.0);
        std::task::Poll::Ready(())
    }
}

/// The size of the one allocation `tokio::spawn` makes for a future of
/// `N` bytes: its task cell.
fn cell_of<const N: usize>(runtime: &Runtime) -> usize {
    run(runtime, async {
        // (In an `Option`: a future returning a `JoinHandle`, not awaiting it.)
        let (task, sizes, _) = traced_async(async { Some(tokio::spawn(Pad([0u8; N]))) }).await;
        task.unwrap().await.unwrap();
        sizes.iter().copied().max().unwrap_or(0)
    })
}

/// tokio's task cell around a future, by probing: the futures of sizes
/// whose cell is the same are a range; the cell's overhead is its size
/// less the largest future it holds.
fn task_cells(runtime: &Runtime) {
    macro_rules! probe {
        ($($n:literal)*) => { [$(($n, cell_of::<$n>(runtime))),*] };
    }
    let cells = probe!(0 8 16 24 32 40 48 56 64 72 80 88 96 104 112 120 128
        136 144 152 160 168 176 184 192 200 208 216 224 232 240 248 256);
    let mut overhead = None;
    for pair in cells.windows(2) {
        if pair[1].1 > pair[0].1 {
            overhead = Some(pair[0].1 - pair[0].0);
            break;
        }
    }
    match overhead {
        Some(overhead) => println!(
            "tokio's task cell: a future of F bytes takes F + {overhead} rounded up to a multiple of \
             128 (probed with futures of 0..=256 bytes); a 256-byte cell holds a future of {}..={} \
             bytes, a 1024-byte one {}..={}",
            128 - overhead + 1,
            256 - overhead,
            1024 - 128 - overhead + 1,
            1024 - overhead,
        ),
        None => println!("tokio's task cell: probed {:?}", &cells[..]),
    }
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn two_workers() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let started = Instant::now();
    println!(
        "patchboard vs tokio_mpsc vs xtra: mailbox capacity {}, {SERVERS} servers, {CALLS} calls, median of {ROUNDS} rounds",
        accounts::CAPACITY
    );
    table("current-thread runtime", &current_thread());
    table("multi-thread runtime, 2 workers", &two_workers());

    println!(
        "\nwhere the bytes go: one server after another has run (current-thread runtime; \
         the size of each allocation, and the bytes left live)\n"
    );
    let runtime = current_thread();
    anatomy::<Patchboard>("patchboard", &runtime);
    anatomy::<TokioActor>("tokio_mpsc", &runtime);
    anatomy::<XtraActor>("xtra", &runtime);
    task_cells(&runtime);
    println!("\n(total {:.1?})", started.elapsed());
}
