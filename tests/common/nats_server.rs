//! A real `nats-server` process on a free loopback port, for the tests and
//! the benchmark of the `nats` feature (Debian package `nats-server`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server`; killed when dropped.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    config: Option<PathBuf>,
    child: Option<Child>,
}

/// `nats-server`, if installed. Outside CI a missing one is reported
/// loudly and the caller skips; with `CI=true` it is a failure (`.ci/run`
/// installs it).
pub fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([
            "/usr/sbin".into(),
            "/usr/bin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but nats-server is missing: .ci/run installs the `nats-server` package"
        );
        eprintln!(
            "SKIPPED: nats-server not found (apt-get install -y nats-server to run the NATS tests)"
        );
    }
    found
}

impl NatsServer {
    /// Starts one on a free port of 127.0.0.1, or `None` (after saying so)
    /// if `nats-server` is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with_config("")
    }

    /// Starts one with `config` (nats-server's configuration syntax) added
    /// after the listen address.
    pub fn start_with_config(config: &str) -> Option<Self> {
        let binary = binary()?;
        let port = free_port();
        let config = (!config.is_empty()).then(|| {
            let path = std::env::temp_dir().join(format!(
                "switchboard-nats-{}-{port}.conf",
                std::process::id()
            ));
            std::fs::write(&path, config).expect("the config file can be written");
            path
        });
        let mut server = NatsServer {
            binary,
            port,
            config,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the process (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    #[allow(dead_code)] // Not every user of this module restarts it.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.binary);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        // Ready once it accepts connections (bounded: a server that never
        // comes up fails the test instead of hanging it).
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}
