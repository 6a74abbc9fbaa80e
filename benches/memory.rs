//! Memory: heap bytes per idle server, and heap allocations per call in
//! steady state, counted by a global allocator. `cargo bench --bench memory`.

mod impls;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use impls::{Account, ChannelActor, MutexAccount, Patchboard, TokioActor};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERVERS: usize = 10_000;
const CALLS: usize = 100_000;

/// Bytes per idle server (after one call each, so lazily allocated parts
/// are counted), and allocations per call in steady state.
fn measure<A: Account>(runtime: &tokio::runtime::Runtime) -> (f64, f64) {
    runtime.block_on(async {
        let before = LIVE_BYTES.load(Ordering::SeqCst);
        let servers: Vec<A> = (0..SERVERS).map(|_| A::spawn()).collect();
        for server in &servers {
            server.deposit(1).await;
        }
        let idle = (LIVE_BYTES.load(Ordering::SeqCst) - before) as f64 / SERVERS as f64;
        drop(servers);
        tokio::task::yield_now().await;

        let account = A::spawn();
        for _ in 0..1_000 {
            account.deposit(1).await;
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..CALLS {
            std::hint::black_box(account.deposit(1).await);
        }
        let per_call = (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / CALLS as f64;
        (idle, per_call)
    })
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--test`: nothing to do.
    if std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:<15} {:>18} {:>16}",
        "implementation", "bytes/idle server", "allocs/call"
    );
    let rows = [
        ("patchboard", measure::<Patchboard>(&runtime)),
        ("tokio_mpsc", measure::<TokioActor>(&runtime)),
        ("async_channel", measure::<ChannelActor>(&runtime)),
        ("mutex", measure::<MutexAccount>(&runtime)),
    ];
    for (name, (idle, per_call)) in rows {
        println!("{name:<15} {idle:>18.0} {per_call:>16.2}");
    }
}
