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
    /// More arguments (a cluster node's).
    args: Vec<String>,
    child: Option<Child>,
    /// A mark each time its log says it has reloaded its configuration.
    reloaded: Option<mpsc::Receiver<()>>,
}

/// A user of a test's `nats-server`: its name, which is also its password,
/// and what it may do: `None` for everything, or the subjects it may
/// publish and subscribe to (nats-server's syntax: `"bank.>"`, and
/// `"bank.* q"` for a subscription in the queue group `q` only).
#[allow(dead_code)] // Not every user of this module has users.
#[derive(Clone, Copy, Debug)]
pub struct User<'a> {
    pub name: &'a str,
    pub publish: Option<&'a [&'a str]>,
    pub subscribe: Option<&'a [&'a str]>,
}

/// The `authorization` block that gives `users` (and nobody else) access.
fn authorization(users: &[User<'_>]) -> String {
    let list = |subjects: &[&str]| {
        let quoted: Vec<String> = subjects.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut config = String::from("authorization {\n  users = [\n");
    for user in users {
        let mut permissions = Vec::new();
        if let Some(publish) = user.publish {
            permissions.push(format!("publish: {}", list(publish)));
        }
        if let Some(subscribe) = user.subscribe {
            permissions.push(format!("subscribe: {}", list(subscribe)));
        }
        config.push_str(&format!(
            "    {{ user: {name:?}, password: {name:?}{} }}\n",
            if permissions.is_empty() {
                String::new()
            } else {
                format!(", permissions: {{ {} }}", permissions.join(", "))
            },
            name = user.name,
        ));
    }
    config.push_str("  ]\n}\n");
    config
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
            args: Vec::new(),
            child: None,
            reloaded: None,
        };
        server.spawn();
        Some(server)
    }

    /// Starts one whose only users are `users`, each with its permissions
    /// (in a config file; on 127.0.0.1 and a port it picks, as
    /// [`start`](Self::start)).
    #[allow(dead_code)]
    pub fn start_with_users(users: &[User<'_>]) -> Option<Self> {
        Self::start_with_config(&authorization(users))
    }

    /// Gives it `users` instead, as an operator editing its config file
    /// does, and returns once it has reloaded them (`--signal reload`);
    /// its connections stay. Panics after 10 s.
    #[allow(dead_code)]
    pub fn reload_users(&mut self, users: &[User<'_>]) {
        let config = self.config.as_ref().expect("a server started with users");
        std::fs::write(config, authorization(users)).expect("the config file can be written");
        let pid = self.child.as_ref().expect("a running server").id();
        let signalled = Command::new(&self.binary)
            .arg("--signal")
            .arg(format!("reload={pid}"))
            .status()
            .expect("nats-server --signal runs");
        assert!(signalled.success(), "nats-server --signal reload failed");
        self.reloaded
            .as_ref()
            .expect("its log is read")
            .recv_timeout(Duration::from_secs(10))
            .expect("nats-server reloaded its configuration within 10 s");
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
        command.args(&self.args);
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
        let (reloading, reloaded) = mpsc::channel();
        self.reloaded = Some(reloaded);
        std::thread::spawn(move || {
            const MARK: &str = "Listening for client connections on ";
            for line in log.lines().map_while(Result::ok) {
                if line.contains("Reloaded server configuration") {
                    let _ = reloading.send(());
                }
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

/// A cluster of `nats-server` nodes on loopback, each routed to the others
/// (`--cluster`, `--routes`); killed when dropped.
#[allow(dead_code)] // Not every user of this module starts a cluster.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

#[allow(dead_code)]
impl NatsCluster {
    /// Starts `size` nodes, or `None` (after saying so) if `nats-server`
    /// is not installed. The routes come up shortly after: see
    /// [`routed`](Self::routed).
    pub fn start(size: usize) -> Option<Self> {
        let binary = binary()?;
        // Ports for the routes, picked by the system (and freed just
        // before the nodes take them).
        let routes: Vec<u16> = (0..size)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|listener| listener.local_addr())
                    .map(|address| address.port())
                    .expect("a free loopback port")
            })
            .collect();
        let urls: Vec<String> = routes
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect();
        let nodes = routes
            .iter()
            .map(|port| {
                let mut node = NatsServer {
                    binary: binary.clone(),
                    port: 0,
                    config: None,
                    reloaded: None,
                    args: vec![
                        "--cluster_name".into(),
                        "patchboard".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{port}"),
                        "--routes".into(),
                        urls.join(","),
                    ],
                    child: None,
                };
                node.spawn();
                node
            })
            .collect();
        Some(NatsCluster { nodes })
    }

    /// Blocks until every node has a route to every other (their
    /// monitoring is off; the log is not kept): a message published on
    /// one node reaches a subscriber on each other, checked with a raw
    /// client per node. Bounded: panics after 10 s.
    pub fn routed(&self) {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let connect = |node: &NatsServer| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut info = [0u8; 4096];
            let _ = stream.read(&mut info);
            stream
                .write_all(b"CONNECT {\"verbose\":false}\r\nSUB routed.probe 1\r\nPING\r\n")
                .unwrap();
            stream
        };
        let mut streams: Vec<_> = self.nodes.iter().map(connect).collect();
        'round: while std::time::Instant::now() < deadline {
            for (at, stream) in streams.iter_mut().enumerate() {
                let _ =
                    stream.write_all(format!("PUB routed.probe 1\r\n{at}\r\nPING\r\n").as_bytes());
            }
            std::thread::sleep(Duration::from_millis(100));
            for stream in &mut streams {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                }
                let seen = String::from_utf8_lossy(&seen);
                let from = (0..self.nodes.len())
                    .filter(|at| seen.contains(&format!("MSG routed.probe 1 1\r\n{at}\r\n")))
                    .count();
                if from < self.nodes.len() {
                    continue 'round;
                }
            }
            return;
        }
        panic!("the cluster's routes did not come up within 10 s");
    }
}
