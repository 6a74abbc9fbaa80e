//! A real `nats-server` process on a free loopback port, for the tests and
//! the benchmark of the `nats` feature (Debian package `nats-server`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
    /// Starts one on a port of 127.0.0.1 it picks itself (so that servers
    /// started at once never collide), or `None` (after saying so)
    /// if `nats-server` is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with_config("")
    }

    /// Starts one with `config` (nats-server's configuration syntax) added
    /// after the listen address.
    pub fn start_with_config(config: &str) -> Option<Self> {
        static CONFIGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let binary = binary()?;
        let config = (!config.is_empty()).then(|| {
            let n = CONFIGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("patchboard-nats-{}-{n}.conf", std::process::id()));
            std::fs::write(&path, config).expect("the config file can be written");
            path
        });
        let mut server = NatsServer {
            binary,
            port: 0,
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

    /// Starts the process on `self.port` (0: one it picks) and waits until
    /// it listens, reading the port from its log.
    fn spawn(&mut self) {
        let port = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut command = Command::new(&self.binary);
        command.args(["-a", "127.0.0.1", "-p", &port]);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let log = BufReader::new(child.stderr.take().expect("its log is piped"));
        self.child = Some(child);
        // Its log says where it listens; read on (and dropped) by a thread
        // of its own so that the server never blocks on a full pipe.
        let (listening, port) = mpsc::channel();
        std::thread::spawn(move || {
            const MARK: &str = "Listening for client connections on ";
            for line in log.lines().map_while(Result::ok) {
                if let Some(at) = line.find(MARK) {
                    let address = &line[at + MARK.len()..];
                    let port = address
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.trim().parse().ok());
                    let _ = listening.send(port);
                }
            }
        });
        // Bounded: a server that never comes up fails the test instead of
        // hanging it.
        match port.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(port)) => self.port = port,
            Ok(None) => panic!("nats-server's log names no port it listens on"),
            Err(_) => panic!(
                "nats-server did not listen within 10 s (exited: {:?})",
                self.child
                    .as_mut()
                    .and_then(|child| child.try_wait().ok().flatten())
            ),
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
