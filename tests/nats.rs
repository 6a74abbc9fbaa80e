//! Remote servers over a real `nats-server` (the `nats` feature): calls,
//! errors across the wire, discovery, pools across processes, faults,
//! permissions, refused subscriptions and subscriptions. Each test starts
//! its own `nats-server` on a free loopback port; without one installed
//! they say so and skip (with `CI=true` they fail).
//!
//! Processes: a test that needs a second process runs this very test
//! binary again, as `role_child` with `SB_ROLE` set.

#[cfg(feature = "nats")]
#[path = "nats/with_nats.rs"]
mod with_nats;

/// Without the feature, this file is only this test, which says so.
#[cfg(not(feature = "nats"))]
#[test]
fn nats_tests_need_the_nats_feature() {
    eprintln!("SKIPPED: the NATS tests (run them with `cargo test --features nats --test nats`)");
}
