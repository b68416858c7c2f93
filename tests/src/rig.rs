//! A daemon under test with the test playing every peer: primary and secondary
//! filter-redirectors, the output's reader and the COLO controller.
//!
//! Sockets are TCP on loopback port 0 or UNIX sockets in a fresh temporary directory, and
//! either the daemon listens (the test dials it) or the daemon dials (the test listens and
//! accepts), so every scenario can run over every kind of endpoint.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_std::net::{TcpListener, TcpStream};
use async_std::os::unix::net::{UnixListener, UnixStream};
use colo_actors::{Daemon, Endpoint, OutputStatus, PipelineConfig, Role, ShutdownReport};
use colo_core::{CheckpointReason, Counters, DropReason, Frame, ReleaseReason, Side};
use tempfile::TempDir;

use crate::frames::Net;
use crate::logcap;
use crate::peer::{Duplex, Peer};

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(2);

/// The socket family of a pipeline's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP on 127.0.0.1.
    Tcp,
    /// UNIX sockets in a temporary directory.
    Unix,
}

/// Who listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The daemon listens (`*-listen`), the test connects.
    DaemonListens,
    /// The test listens, the daemon dials (`*-connect`).
    DaemonDials,
}

/// One way of wiring a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// TCP or UNIX.
    pub transport: Transport,
    /// Who listens.
    pub mode: Mode,
    /// `vnet_hdr_support`.
    pub vnet: bool,
}

impl Setup {
    /// Every combination.
    pub const ALL: [Setup; 8] = [
        Setup::new(Transport::Tcp, Mode::DaemonListens, false),
        Setup::new(Transport::Tcp, Mode::DaemonListens, true),
        Setup::new(Transport::Tcp, Mode::DaemonDials, false),
        Setup::new(Transport::Tcp, Mode::DaemonDials, true),
        Setup::new(Transport::Unix, Mode::DaemonListens, false),
        Setup::new(Transport::Unix, Mode::DaemonListens, true),
        Setup::new(Transport::Unix, Mode::DaemonDials, false),
        Setup::new(Transport::Unix, Mode::DaemonDials, true),
    ];

    /// A setup.
    pub const fn new(transport: Transport, mode: Mode, vnet: bool) -> Self {
        Setup {
            transport,
            mode,
            vnet,
        }
    }

    /// The frame template for this setup: with a 12-byte vnet header when vnet is on.
    pub fn net(&self) -> Net {
        Net {
            vnet: if self.vnet {
                (1..=12).collect()
            } else {
                Vec::new()
            },
            ..Net::default()
        }
    }
}

impl Setup {
    /// A frame holding the Ethernet bytes `eth`, behind this setup's vnet header.
    pub fn frame(&self, eth: &[u8]) -> Frame {
        let vnet = self.net().vnet;
        if vnet.is_empty() {
            return Frame::new(eth.to_vec());
        }
        let len = u32::try_from(vnet.len()).expect("small vnet header");
        let mut data = vnet;
        data.extend_from_slice(eth);
        Frame::with_vnet(len, data)
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        };
        let m = match self.mode {
            Mode::DaemonListens => "listen",
            Mode::DaemonDials => "connect",
        };
        let v = if self.vnet { "-vnet" } else { "" };
        write!(f, "{t}-{m}{v}")
    }
}

/// Where the test finds the daemon's end of one socket.
enum Site {
    /// The daemon listens on this TCP address.
    DialTcp(SocketAddr),
    /// The daemon listens on this UNIX path.
    DialUnix(PathBuf),
    /// The daemon dials this TCP listener of the test.
    AcceptTcp(TcpListener),
    /// The daemon dials this UNIX listener of the test.
    AcceptUnix(UnixListener),
}

struct Pipe {
    name: String,
    setup: Setup,
    sites: Vec<(Role, Site)>,
}

/// A pipeline to start: its name, wiring and any settings to change.
pub struct PipeSpec {
    /// Pipeline name (unique per test, as log lines are found by it).
    pub name: String,
    /// Wiring.
    pub setup: Setup,
    /// Changes to the default settings.
    pub tweak: Box<dyn FnOnce(&mut PipelineConfig)>,
}

impl PipeSpec {
    /// A pipeline with default settings.
    pub fn new(name: &str, setup: Setup) -> Self {
        PipeSpec {
            name: name.to_string(),
            setup,
            tweak: Box::new(|_| {}),
        }
    }

    /// The same pipeline with changed settings.
    pub fn tweak(mut self, f: impl FnOnce(&mut PipelineConfig) + 'static) -> Self {
        self.tweak = Box::new(f);
        self
    }
}

/// A running daemon and the test's ends of its sockets.
pub struct Rig {
    daemon: Option<Daemon>,
    pipes: Vec<Pipe>,
    dir: TempDir,
}

const ROLES: [Role; 4] = [
    Role::PrimaryIn,
    Role::SecondaryIn,
    Role::Outdev,
    Role::NotifyDev,
];

fn short(role: Role) -> &'static str {
    match role {
        Role::PrimaryIn => "p",
        Role::SecondaryIn => "s",
        Role::Outdev => "o",
        Role::NotifyDev => "n",
    }
}

impl Rig {
    /// Starts one pipeline named `name` wired as `setup`, notify channel included.
    pub async fn start(name: &str, setup: Setup) -> Rig {
        Rig::start_many(vec![PipeSpec::new(name, setup)]).await
    }

    /// Starts one pipeline with changed settings.
    pub async fn start_with(
        name: &str,
        setup: Setup,
        tweak: impl FnOnce(&mut PipelineConfig) + 'static,
    ) -> Rig {
        Rig::start_many(vec![PipeSpec::new(name, setup).tweak(tweak)]).await
    }

    /// Starts a daemon running every pipeline in `specs`.
    pub async fn start_many(specs: Vec<PipeSpec>) -> Rig {
        logcap::install();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut configs = Vec::new();
        let mut pipes = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let mut endpoints = Vec::new();
            let mut sites = Vec::new();
            for role in ROLES {
                let path = dir.path().join(format!("{i}{}.sock", short(role)));
                let (endpoint, site) = match (spec.setup.transport, spec.setup.mode) {
                    (Transport::Tcp, Mode::DaemonListens) => {
                        (Endpoint::TcpListen("127.0.0.1:0".into()), None)
                    }
                    (Transport::Unix, Mode::DaemonListens) => (
                        Endpoint::UnixListen(path.clone()),
                        Some(Site::DialUnix(path)),
                    ),
                    (Transport::Tcp, Mode::DaemonDials) => {
                        let l = TcpListener::bind("127.0.0.1:0")
                            .await
                            .expect("bind a test listener");
                        let addr = l.local_addr().expect("listener address");
                        (
                            Endpoint::TcpConnect(addr.to_string()),
                            Some(Site::AcceptTcp(l)),
                        )
                    }
                    (Transport::Unix, Mode::DaemonDials) => {
                        let l = UnixListener::bind(&path)
                            .await
                            .expect("bind a test UNIX listener");
                        (
                            Endpoint::UnixConnect(path.clone()),
                            Some(Site::AcceptUnix(l)),
                        )
                    }
                };
                endpoints.push(endpoint);
                if let Some(site) = site {
                    sites.push((role, site));
                }
            }
            let [p, s, o, n]: [Endpoint; 4] = endpoints.try_into().expect("four endpoints");
            let mut config = PipelineConfig::new(&spec.name, p, s, o);
            config.notify_dev = Some(n);
            config.vnet_hdr_support = spec.setup.vnet;
            (spec.tweak)(&mut config);
            configs.push(config);
            pipes.push(Pipe {
                name: spec.name,
                setup: spec.setup,
                sites,
            });
        }
        let daemon = Daemon::start(configs).await.expect("daemon starts");
        for (name, role, addr) in daemon.local_addrs() {
            let pipe = pipes
                .iter_mut()
                .find(|p| p.name == name)
                .expect("address of a known pipeline");
            let role = ROLES
                .into_iter()
                .find(|r| r.name() == role)
                .expect("a known role");
            pipe.sites.push((role, Site::DialTcp(addr)));
        }
        Rig {
            daemon: Some(daemon),
            pipes,
            dir,
        }
    }

    /// The daemon.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    /// The temporary directory holding the UNIX sockets.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn pipe(&self, name: &str) -> &Pipe {
        self.pipes
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no pipeline {name} in this rig"))
    }

    fn first(&self) -> &str {
        &self.pipes[0].name
    }

    /// A new connection to the first pipeline's `role` socket.
    pub async fn connect(&self, role: Role) -> Peer {
        self.connect_to(self.first(), role).await
    }

    /// A new connection to pipeline `name`'s `role` socket: dialled, or accepted when the
    /// daemon dials.
    pub async fn connect_to(&self, name: &str, role: Role) -> Peer {
        let pipe = self.pipe(name);
        let site = pipe
            .sites
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("no {role} socket in pipeline {name}"));
        let stream: Box<dyn Duplex> = match site {
            Site::DialTcp(addr) => {
                let s = TcpStream::connect(addr)
                    .await
                    .expect("connect to the daemon");
                s.set_nodelay(true).expect("nodelay");
                Box::new(s)
            }
            Site::DialUnix(path) => Box::new(
                UnixStream::connect(path)
                    .await
                    .expect("connect to the daemon"),
            ),
            Site::AcceptTcp(l) => {
                let (s, _) = async_std::future::timeout(WAIT, l.accept())
                    .await
                    .unwrap_or_else(|_| panic!("the daemon did not dial {role} within {WAIT:?}"))
                    .expect("accept the daemon");
                s.set_nodelay(true).expect("nodelay");
                Box::new(s)
            }
            Site::AcceptUnix(l) => {
                let (s, _) = async_std::future::timeout(WAIT, l.accept())
                    .await
                    .unwrap_or_else(|_| panic!("the daemon did not dial {role} within {WAIT:?}"))
                    .expect("accept the daemon");
                Box::new(s)
            }
        };
        let vnet = pipe.setup.vnet;
        match role {
            // Q15: the controller's frames carry the field with vnet on, the daemon's never do.
            Role::NotifyDev => Peer::new(stream, vnet, false),
            _ => Peer::new(stream, vnet, vnet),
        }
    }

    /// The first pipeline's counters now.
    pub fn counters(&self) -> Counters {
        self.counters_of(self.first())
    }

    /// Pipeline `name`'s counters now.
    pub fn counters_of(&self, name: &str) -> Counters {
        self.daemon()
            .stats()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
            .unwrap_or_else(|| panic!("no stats for pipeline {name}"))
    }

    /// The first pipeline's output state now.
    pub fn output(&self) -> OutputStatus {
        let name = self.first();
        self.daemon()
            .outputs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o)
            .unwrap_or_else(|| panic!("no output status for pipeline {name}"))
    }

    /// Waits until the first pipeline's output state satisfies `done`; panics after [`WAIT`].
    pub async fn wait_output(
        &self,
        what: &str,
        done: impl Fn(&OutputStatus) -> bool,
    ) -> OutputStatus {
        let start = Instant::now();
        loop {
            let o = self.output();
            if done(&o) {
                return o;
            }
            assert!(
                start.elapsed() < WAIT,
                "output not {what} within {WAIT:?}: {o:?}"
            );
            async_std::task::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until the first pipeline's counters satisfy `done`; panics after [`WAIT`].
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Counters) -> bool) -> Counters {
        self.wait_until_in(self.first(), what, done).await
    }

    /// Waits until pipeline `name`'s counters satisfy `done`; panics after [`WAIT`].
    pub async fn wait_until_in(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&Counters) -> bool,
    ) -> Counters {
        let start = Instant::now();
        loop {
            let c = self.counters_of(name);
            if done(&c) {
                return c;
            }
            assert!(
                start.elapsed() < WAIT,
                "{name}: not {what} within {WAIT:?}; counters: {}",
                summary(&c)
            );
            async_std::task::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Shuts the daemon down, checks every pipeline's counter identity, returns the report.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        let daemon = self.daemon.take().expect("the daemon runs");
        let report = daemon.shutdown(grace).await;
        for p in &report.pipelines {
            if let Err(e) = p.counters.check() {
                panic!("{}: counters do not add up: {e}", p.name);
            }
        }
        report
    }
}

/// Runs a test body on the async runtime.
pub fn run<F: std::future::Future>(body: F) -> F::Output {
    async_std::task::block_on(body)
}

/// TCP, the daemon listening, vnet off.
pub const TCP_LISTEN: Setup = Setup::new(Transport::Tcp, Mode::DaemonListens, false);
/// TCP, the daemon listening, vnet on.
pub const TCP_LISTEN_VNET: Setup = Setup::new(Transport::Tcp, Mode::DaemonListens, true);
/// TCP, the daemon dialling, vnet off.
pub const TCP_CONNECT: Setup = Setup::new(Transport::Tcp, Mode::DaemonDials, false);
/// TCP, the daemon dialling, vnet on.
pub const TCP_CONNECT_VNET: Setup = Setup::new(Transport::Tcp, Mode::DaemonDials, true);
/// UNIX, the daemon listening, vnet off.
pub const UNIX_LISTEN: Setup = Setup::new(Transport::Unix, Mode::DaemonListens, false);
/// UNIX, the daemon listening, vnet on.
pub const UNIX_LISTEN_VNET: Setup = Setup::new(Transport::Unix, Mode::DaemonListens, true);
/// UNIX, the daemon dialling, vnet off.
pub const UNIX_CONNECT: Setup = Setup::new(Transport::Unix, Mode::DaemonDials, false);
/// UNIX, the daemon dialling, vnet on.
pub const UNIX_CONNECT_VNET: Setup = Setup::new(Transport::Unix, Mode::DaemonDials, true);

/// Generates one `#[test]` per setup for an `async fn scenario(name: String, setup: Setup)`,
/// in a module named after the scenario: `setup_tests!(t01: all);` or
/// `setup_tests!(t06: tcp_listen => TCP_LISTEN, unix_connect_vnet => UNIX_CONNECT_VNET);`.
/// The pipeline name is `scenario-setup`, unique per test.
#[macro_export]
macro_rules! setup_tests {
    ($scenario:ident: all) => {
        $crate::setup_tests!($scenario:
            tcp_listen => $crate::rig::TCP_LISTEN,
            tcp_listen_vnet => $crate::rig::TCP_LISTEN_VNET,
            tcp_connect => $crate::rig::TCP_CONNECT,
            tcp_connect_vnet => $crate::rig::TCP_CONNECT_VNET,
            unix_listen => $crate::rig::UNIX_LISTEN,
            unix_listen_vnet => $crate::rig::UNIX_LISTEN_VNET,
            unix_connect => $crate::rig::UNIX_CONNECT,
            unix_connect_vnet => $crate::rig::UNIX_CONNECT_VNET,
        );
    };
    ($scenario:ident: $($test:ident => $setup:expr),+ $(,)?) => {
        mod $scenario {
            $(
                #[test]
                fn $test() {
                    let setup = $setup;
                    let name = format!("{}-{}", stringify!($scenario), setup);
                    $crate::rig::run(super::$scenario(name, setup));
                }
            )+
        }
    };
}

fn index_of(names: &[&str], name: &str) -> usize {
    names
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no reason named {name}: {names:?}"))
}

/// Primary packets released for the reason named `reason` ("matched", "uncompared", ...).
pub fn released(c: &Counters, reason: &str) -> u64 {
    c.released[index_of(&ReleaseReason::NAMES, reason)]
}

/// Packets from `side` dropped for the reason named `reason`.
pub fn dropped(c: &Counters, side: Side, reason: &str) -> u64 {
    c.dropped[side.index()][index_of(&DropReason::NAMES, reason)]
}

/// Checkpoint requests for the reason named `reason` ("mismatch", "timeout", ...).
pub fn checkpoints(c: &Counters, reason: &str) -> u64 {
    c.checkpoints[index_of(&CheckpointReason::NAMES, reason)]
}

/// The counters that tests look at, on one line.
pub fn summary(c: &Counters) -> String {
    format!(
        "received {:?}, empty {:?}, held {:?}, released {:?}, dropped {:?}, checkpoints {:?}, flushes {}",
        c.received, c.empty_frames, c.held, c.released, c.dropped, c.checkpoints, c.flushes
    )
}
