//! What a call through a protocol client costs over a call through the
//! concrete handle, counted: at most one allocation (the boxed call).
//! A test binary of its own, for its counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use patchboard::{Server, protocol, server};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Adds numbers.
#[protocol]
pub trait Adding {
    /// Adds `n`; returns the total.
    fn add(&mut self, n: u64) -> u64;
    /// Adds `n`, later.
    async fn add_later(&mut self, n: u64) -> u64;
}

/// A running total.
pub struct Total(u64);

#[server(protocols(Adding))]
impl Total {
    /// Adds `n`; returns the total (inherent).
    pub fn plus(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }

    /// Adds `n`, later (inherent).
    pub async fn plus_later(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }
}

#[server]
impl Adding for Total {
    fn add(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }

    async fn add_later(&mut self, n: u64) -> u64 {
        self.0 += n;
        self.0
    }
}

const CALLS: usize = 1_000;

/// Allocations made by `CALLS` rounds of `call`.
async fn allocations<F: std::future::Future<Output = u64>>(mut call: impl FnMut() -> F) -> usize {
    for _ in 0..100 {
        call().await;
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..CALLS {
        call().await;
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn a_protocol_call_costs_at_most_one_allocation_more() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let total = Total(0).spawn();
        let client = AddingClient::from(total.clone());
        // Synchronous methods (served by the caller while the server is
        // idle), then async ones (through the server's loop).
        let concrete = allocations(|| async { total.plus(1).await.unwrap() }).await;
        let through = allocations(|| async { client.add(1).await.unwrap() }).await;
        let concrete_async = allocations(|| async { total.plus_later(1).await.unwrap() }).await;
        let through_async = allocations(|| async { client.add_later(1).await.unwrap() }).await;
        eprintln!(
            "allocations per {CALLS} calls: sync {concrete} concrete, {through} through the \
             protocol; async {concrete_async} concrete, {through_async} through the protocol"
        );
        assert!(
            through <= concrete + CALLS,
            "{through} > {concrete} + {CALLS}"
        );
        assert!(
            through_async <= concrete_async + CALLS,
            "{through_async} > {concrete_async} + {CALLS}"
        );
    });
}
