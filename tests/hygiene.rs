//! Generated code uses absolute paths only: shadowing `core`, `std` and the
//! prelude's names next to the server changes nothing.

#![allow(dead_code, non_camel_case_types)]

mod shadowed {
    mod core {}
    mod std {}
    mod patchboard {}

    struct Option;
    struct Result;
    struct Vec;
    struct Box;
    struct Send;
    struct Future;
    struct Duration;
    struct Arc;
    trait Clone {}
    trait Debug {}
    trait From {}

    pub struct Counter {
        pub count: u64,
    }

    /// A protocol next to the shadowed names.
    #[::patchboard::protocol]
    pub trait Peeking {
        /// The count, doubled.
        fn double(&self) -> u64;
        /// The count, later.
        async fn later(&self) -> ::core::option::Option<u64>;
    }

    #[::patchboard::server]
    impl Peeking for Counter {
        fn double(&self) -> u64 {
            self.count * 2
        }

        async fn later(&self) -> ::core::option::Option<u64> {
            ::core::option::Option::Some(self.count)
        }
    }

    #[::patchboard::server(timeout = "1s", capacity = 4, protocols(Peeking))]
    impl Counter {
        #[on_start]
        fn start(&mut self) -> ::core::result::Result<(), ::std::string::String> {
            ::core::result::Result::Ok(())
        }

        #[every(::std::time::Duration::from_secs(60))]
        fn tick(&mut self) {}

        pub fn bump(&mut self, by: u64) -> u64 {
            self.count += by;
            self.count
        }

        #[priority]
        pub fn peek(&self) -> ::core::option::Option<u64> {
            ::core::option::Option::Some(self.count)
        }

        #[cast]
        pub fn reset(&mut self) {
            self.count = 0;
        }
    }
}

#[tokio::test]
async fn shadowed_names_do_not_leak_into_generated_code() {
    use patchboard::Server;
    let test = async {
        let counter = shadowed::Counter { count: 0 }.spawn();
        assert_eq!(counter.bump(2).await, Ok(2));
        assert_eq!(counter.peek().await, Ok(Some(2)));
        counter.reset().await.unwrap();
        assert_eq!(counter.bump(1).await, Ok(1));
        let peeking = shadowed::PeekingClient::from(counter.clone());
        assert_eq!(peeking.double().await, Ok(2));
        assert_eq!(peeking.later().await, Ok(Some(1)));
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), test)
        .await
        .expect("no hang");
}

/// `#[server(crate = ..)]` for crates that re-export patchboard.
mod reexported {
    pub mod my_runtime {
        pub use ::patchboard as sb;
    }

    pub struct Ping;

    #[::patchboard::server(crate = crate::reexported::my_runtime::sb)]
    impl Ping {
        pub fn ping(&self) -> &'static str {
            "pong"
        }
    }
}

#[tokio::test]
async fn crate_option_reaches_the_runtime_through_a_reexport() {
    use patchboard::Server;
    let ping = reexported::Ping.spawn();
    let pong = tokio::time::timeout(std::time::Duration::from_secs(10), ping.ping()).await;
    assert_eq!(pong.expect("no hang"), Ok("pong"));
}
