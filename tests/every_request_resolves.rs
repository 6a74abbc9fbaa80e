//! Property 1 of RELIABILITY.md: every request resolves exactly once (with
//! its reply, the handler's own error, or a `CallError`), never hangs, and
//! agrees with a sequential model, under random sequences of calls, casts,
//! fire-and-forget calls, bursts of concurrent callers, injected panics,
//! stops and handle clones/drops, for each panic policy.

use std::time::Duration;

use patchboard::{Builder, CallError, PanicPolicy, Restart, server};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

struct Counter {
    total: u64,
}

#[server]
impl Counter {
    fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }

    #[cast]
    fn add_cast(&mut self, n: u64) {
        self.total += n;
    }

    fn boom(&mut self) -> u64 {
        self.total += 1_000_000; // half-updated state, then the panic
        panic!("injected");
    }
}

/// What happens after a panic.
#[derive(Clone, Copy, Debug)]
enum Policy {
    Stop,
    Continue,
    Restart,
}

/// Restarts allowed (all within one window: paused time never advances
/// far enough to reset it).
const MAX_RESTARTS: usize = 3;

#[derive(Clone, Debug)]
struct Model {
    policy: Policy,
    total: u64,
    alive: bool,
    handles: usize,
    restarts: usize,
}

#[derive(Clone, Debug)]
enum Op {
    Call(u64),
    Cast(u64),
    NoWait(u64),
    Burst(u8),
    Panic,
    /// Enqueues the panic without waiting: later requests queue behind it.
    PanicNoWait,
    Stop,
    CloneHandle,
    DropHandle,
}

impl Model {
    /// The model's effect of a panic reaching the server.
    fn panic(&mut self) {
        if !self.alive {
            return;
        }
        match self.policy {
            Policy::Stop => self.alive = false,
            Policy::Continue => self.total += 1_000_000,
            Policy::Restart if self.restarts < MAX_RESTARTS => {
                self.restarts += 1;
                self.total = 0;
            }
            Policy::Restart => self.alive = false,
        }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        prop_oneof![
            Just(Policy::Stop),
            Just(Policy::Continue),
            Just(Policy::Restart)
        ]
        .prop_map(|policy| Model {
            policy,
            total: 0,
            alive: true,
            handles: 1,
            restarts: 0,
        })
        .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Op> {
        prop_oneof![
            4 => (1..100u64).prop_map(Op::Call),
            2 => (1..100u64).prop_map(Op::Cast),
            2 => (1..100u64).prop_map(Op::NoWait),
            2 => (1..20u8).prop_map(Op::Burst),
            1 => Just(Op::Panic),
            1 => Just(Op::PanicNoWait),
            1 => Just(Op::Stop),
            1 => Just(Op::CloneHandle),
            1 => Just(Op::DropHandle),
        ]
        .boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        match op {
            // Keep one handle to observe the server with.
            Op::DropHandle => state.handles > 1,
            _ => true,
        }
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        match op {
            Op::Call(n) | Op::Cast(n) | Op::NoWait(n) if state.alive => state.total += n,
            Op::Burst(k) if state.alive => state.total += u64::from(*k),
            Op::Panic | Op::PanicNoWait => state.panic(),
            Op::Stop => state.alive = false,
            Op::CloneHandle => state.handles += 1,
            Op::DropHandle => state.handles -= 1,
            _ => {}
        }
        state
    }
}

struct System {
    runtime: tokio::runtime::Runtime,
    handles: Vec<CounterHandle>,
    requests: usize,
    outcomes: usize,
}

/// Generous in paused time; a hang makes the paused clock jump to it, so
/// it fails at once instead of stalling.
const LIMIT: Duration = Duration::from_secs(3600);

impl System {
    fn run<T>(&mut self, call: impl Future<Output = T>) -> T {
        self.requests += 1;
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(LIMIT, call).await })
            .expect("a call hung");
        self.outcomes += 1;
        outcome
    }
}

impl StateMachineTest for System {
    type SystemUnderTest = System;
    type Reference = Reference;

    fn init_test(model: &Model) -> System {
        quiet_injected_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let handle = runtime.block_on(async {
            let builder = Builder::new(Counter { total: 0 }).capacity(8);
            match model.policy {
                Policy::Stop => builder,
                Policy::Continue => builder.on_panic(PanicPolicy::Continue),
                Policy::Restart => builder.restart(
                    Restart::new(|| Counter { total: 0 })
                        .max_restarts(MAX_RESTARTS)
                        .window(Duration::from_secs(24 * 3600)),
                ),
            }
            .spawn()
        });
        System {
            runtime,
            handles: vec![handle],
            requests: 0,
            outcomes: 0,
        }
    }

    fn apply(mut sys: System, model: &Model, op: Op) -> System {
        // `model` is the state *after* `op`.
        let handle = sys.handles.last().unwrap().clone();
        let closed = Err(CallError::Closed);
        match op {
            Op::Call(n) => {
                let got = sys.run(handle.add(n).into_future());
                let want = if model.alive { Ok(model.total) } else { closed };
                assert_eq!(got, want);
            }
            // Enqueue-only calls behind a queued panic may still be
            // accepted (and then dropped when the server stops), so a dead
            // model allows either answer; a live one demands `Ok`.
            Op::Cast(n) => {
                let got = sys.run(handle.add_cast(n).into_future());
                assert!(got.is_ok() || !model.alive, "cast: {got:?}");
                assert!(got == Ok(()) || got == Err(CallError::Closed));
            }
            Op::NoWait(n) => {
                let got = sys.run(handle.add(n).no_wait().into_future());
                assert!(got.is_ok() || !model.alive, "no_wait: {got:?}");
                assert!(got == Ok(()) || got == Err(CallError::Closed));
            }
            Op::Burst(k) => {
                let calls: Vec<_> = (0..k)
                    .map(|_| {
                        let handle = handle.clone();
                        sys.runtime.spawn(async move { handle.add(1).await })
                    })
                    .collect();
                let mut values = Vec::new();
                for call in calls {
                    values.push(sys.run(async { call.await.unwrap() }));
                }
                if model.alive {
                    let mut values: Vec<u64> = values.into_iter().map(Result::unwrap).collect();
                    values.sort_unstable();
                    let first = model.total - u64::from(k) + 1;
                    assert_eq!(values, (first..=model.total).collect::<Vec<_>>());
                } else {
                    assert!(values.iter().all(|v| *v == Err(CallError::Closed)));
                }
            }
            Op::Panic => {
                let got = sys.run(handle.boom().into_future());
                match got {
                    Err(CallError::Panicked(message)) => assert_eq!(message.as_str(), "injected"),
                    Err(CallError::Closed) => {} // it was already dead
                    other => panic!("boom gave {other:?}"),
                }
            }
            Op::PanicNoWait => {
                let _ = sys.run(handle.boom().no_wait().into_future());
            }
            Op::Stop => {
                sys.run(handle.stop());
                assert!(handle.is_closed());
            }
            Op::CloneHandle => sys.handles.push(handle),
            Op::DropHandle => drop(sys.handles.pop()),
        }
        sys
    }

    fn check_invariants(sys: &System, model: &Model) {
        assert_eq!(
            sys.requests, sys.outcomes,
            "every request resolved exactly once"
        );
        assert_eq!(sys.handles.len(), model.handles);
    }

    fn teardown(mut sys: System, model: Model) {
        // Dropping every handle ends the server, whatever state it is in.
        let handle = sys.handles.pop().unwrap();
        sys.handles.clear();
        let reason = sys.run(async move {
            let closed = handle.clone();
            drop(handle);
            // `closed` keeps it alive, so stop explicitly and check the
            // call after it fails at once.
            closed.stop().await;
            closed.add(1).await
        });
        assert_eq!(reason, Err(CallError::Closed));
        let _ = model;
    }
}

/// Injected panics are expected by the hundred; keep the log readable.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"injected") {
                default(info);
            }
        }));
    });
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn every_request_resolves_exactly_once(sequential 1..40 => System);
}
