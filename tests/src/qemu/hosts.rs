//! Two QEMU hosts with colo-compare between them, wired exactly as the README's "Running
//! with QEMU" section says, with the test playing both guests, the outside world and the
//! COLO controller.
//!
//! No guest runs. Each host is `qemu-system-x86_64 -M none` whose netdev `hn0` (the README's
//! NIC backend, a tap in real life) is a socket netdev dialling the test (the "world"), and
//! whose guest NIC is stood in for by a second socket netdev (the "guest") on the same QEMU
//! hub. A frame the test writes to the guest socket reaches `hn0` exactly as a frame the
//! guest transmits would, so the README's `queue=rx` filter-redirectors see it; a frame
//! injected by the `indev` filter-redirector leaves through `hn0` to the world socket.
//! (A paused guest behind a real NIC does not work for the return path: QEMU holds every
//! frame sent toward the backend while the VM is not running.)

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_std::net::{TcpListener, TcpStream};
use async_std::os::unix::net::UnixStream;
use colo_actors::notify::{COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT};
use colo_actors::{Daemon, Endpoint, OutputStatus, PipelineConfig, Role, ShutdownReport};
use colo_core::Counters;
use tempfile::TempDir;

use crate::logcap;
use crate::peer::{Duplex, Peer};
use crate::qemu::binary::{QemuBinary, Version};
use crate::qemu::process::{QemuProcess, START_WITHIN};
use crate::qemu::readme::{Recipe, option_value, options};
use crate::rig::{Transport, WAIT, summary};

/// Who listens on the sockets between the QEMUs and colo-compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QemuRole {
    /// QEMU's chardevs dial colo-compare and redial after a disconnect (`reconnect-ms`).
    Dials,
    /// QEMU's chardevs listen (`server=on,wait=off`); colo-compare dials them.
    Listens,
}

/// One way of wiring the hosts to colo-compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wiring {
    /// TCP on loopback or UNIX sockets.
    pub transport: Transport,
    /// Who listens.
    pub qemu: QemuRole,
    /// `vnet_hdr_support` on both ends.
    pub vnet: bool,
}

impl Wiring {
    /// A wiring.
    pub const fn new(transport: Transport, qemu: QemuRole, vnet: bool) -> Self {
        Wiring {
            transport,
            qemu,
            vnet,
        }
    }
}

impl fmt::Display for Wiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        };
        let r = match self.qemu {
            QemuRole::Dials => "qemu-dials",
            QemuRole::Listens => "qemu-listens",
        };
        let v = if self.vnet { "-vnet" } else { "" };
        write!(f, "{t}-{r}{v}")
    }
}

/// Where a pipeline socket is, as a QEMU chardev names it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Address {
    /// TCP on 127.0.0.1 (port 0: QEMU picks one when it listens).
    Tcp(u16),
    /// A UNIX socket path.
    Unix(PathBuf),
}

/// The README's options for one host, rewritten for a wiring.
fn rewrite(
    recipe: &Recipe,
    args: &[String],
    wiring: Wiring,
    version: Version,
    address: &dyn Fn(Role) -> Address,
) -> (Vec<String>, Vec<(String, Role)>) {
    let mut out = Vec::new();
    let mut chardevs = Vec::new();
    for (opt, value) in options(args) {
        out.push(opt.to_string());
        match opt {
            "-chardev" => {
                let id = option_value(value, "id").expect("the README's chardevs have an id");
                let port = option_value(value, "port")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("README chardev {id} has no TCP port"));
                let role = recipe.role_of_port(port).unwrap_or_else(|| {
                    panic!("README chardev {id}: port {port} is none of the configuration's")
                });
                chardevs.push((id.to_string(), role));
                out.push(chardev(value, &address(role), wiring.qemu, version));
            }
            "-object" if value.starts_with("filter-redirector,") && wiring.vnet => {
                out.push(format!("{value},vnet_hdr_support=on"));
            }
            _ => out.push(value.to_string()),
        }
    }
    (out, chardevs)
}

/// One `-chardev socket,...` value with its address and role replaced.
fn chardev(value: &str, address: &Address, role: QemuRole, version: Version) -> String {
    const REPLACED: [&str; 7] = [
        "host=",
        "port=",
        "path=",
        "reconnect-ms=",
        "reconnect=",
        "server=",
        "wait=",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    for (i, kv) in value.split(',').enumerate() {
        if i == 0 || kv.starts_with("id=") {
            parts.push(kv.to_string());
        } else if !REPLACED.iter().any(|r| kv.starts_with(r)) {
            kept.push(kv.to_string());
        }
    }
    match address {
        Address::Tcp(port) => parts.push(format!("host=127.0.0.1,port={port}")),
        Address::Unix(path) => parts.push(format!("path={}", path.display())),
    }
    match role {
        QemuRole::Dials => {
            let ms = option_value(value, "reconnect-ms")
                .and_then(|v| v.parse().ok())
                .expect("the README's chardevs redial with reconnect-ms");
            parts.push(version.reconnect_option(ms));
        }
        QemuRole::Listens => parts.push("server=on,wait=off".into()),
    }
    parts.extend(kept);
    parts.join(",")
}

/// The netdev the README's filters attach to (the guest NIC's backend).
fn netdev_of(args: &[String]) -> String {
    options(args)
        .into_iter()
        .filter(|(o, _)| *o == "-object")
        .find_map(|(_, v)| option_value(v, "netdev"))
        .expect("the README's filter-redirectors name a netdev")
        .to_string()
}

/// Accepts one connection within [`START_WITHIN`].
async fn accept(listener: &TcpListener, what: &str) -> TcpStream {
    let (s, _) = async_std::future::timeout(START_WITHIN, listener.accept())
        .await
        .unwrap_or_else(|_| panic!("QEMU did not connect its {what} within {START_WITHIN:?}"))
        .expect("accept QEMU's netdev");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// One QEMU host: its process, and the test's ends of its guest and world sockets.
pub struct Host {
    name: String,
    bin: QemuBinary,
    dir: PathBuf,
    args: Vec<String>,
    chardevs: Vec<(String, Role)>,
    guest_listener: TcpListener,
    world_listener: TcpListener,
    process: QemuProcess,
    /// The guest's NIC as the test plays it: a frame written here is one the guest sends.
    pub guest: Peer,
    /// The outside world behind the NIC's backend: what the host lets out arrives here.
    pub world: Peer,
}

impl Host {
    /// Starts QEMU with the harness's netdevs and the README's options (`options`), and
    /// accepts its guest and world connections.
    async fn start(
        bin: &QemuBinary,
        dir: &Path,
        name: &str,
        netdev: &str,
        options: Vec<String>,
        chardevs: Vec<(String, Role)>,
    ) -> Host {
        let guest_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the guest listener");
        let world_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the world listener");
        let port = |l: &TcpListener| l.local_addr().expect("listener address").port();
        let mut args: Vec<String> = [
            "-M",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-netdev",
            &format!(
                "socket,id=guest,connect=127.0.0.1:{}",
                port(&guest_listener)
            ),
            "-netdev",
            "hubport,id=guest-port,hubid=0,netdev=guest",
            "-netdev",
            &format!(
                "socket,id={netdev},connect=127.0.0.1:{}",
                port(&world_listener)
            ),
            "-netdev",
            &format!("hubport,id={netdev}-port,hubid=0,netdev={netdev}"),
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        args.extend(options);
        let process = QemuProcess::spawn(bin, dir, name, &args).await;
        let guest = accept(&guest_listener, "guest netdev").await;
        let world = accept(&world_listener, "world netdev").await;
        Host {
            name: name.to_string(),
            bin: bin.clone(),
            dir: dir.to_path_buf(),
            args,
            chardevs,
            guest_listener,
            world_listener,
            process,
            guest: Peer::new(Box::new(guest), false, false),
            world: Peer::new(Box::new(world), false, false),
        }
    }

    /// Waits until every chardev of the README's options is connected to colo-compare.
    async fn wait_ready(&mut self) {
        let labels: Vec<String> = self.chardevs.iter().map(|(l, _)| l.clone()).collect();
        self.process.wait_connected(&labels).await;
    }

    /// The ports QEMU bound its listening TCP chardevs to; from now on a restart binds the
    /// same ones, so that colo-compare finds it again.
    async fn learn_ports(&mut self) -> Vec<(Role, u16)> {
        let mut found = Vec::new();
        for (label, role) in self.chardevs.clone() {
            let port = self.process.listening_port(&label).await;
            for a in self.args.iter_mut() {
                if option_value(a, "id") == Some(label.as_str()) {
                    *a = a.replace(",port=0,", &format!(",port={port},"));
                }
            }
            found.push((role, port));
        }
        found
    }

    /// Kills QEMU (SIGKILL, as a crash) and waits until it is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts QEMU again with the same command line and waits until its chardevs are
    /// connected; the guest and world sockets are the new process's.
    pub async fn revive(&mut self) {
        self.process.kill();
        self.process = QemuProcess::spawn(&self.bin, &self.dir, &self.name, &self.args).await;
        let guest = accept(&self.guest_listener, "guest netdev").await;
        let world = accept(&self.world_listener, "world netdev").await;
        self.guest = Peer::new(Box::new(guest), false, false);
        self.world = Peer::new(Box::new(world), false, false);
        self.wait_ready().await;
    }

    /// Whether QEMU still runs.
    pub fn running(&mut self) -> bool {
        self.process.running()
    }

    /// The command line and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!("{}: {}", self.name, self.process.diagnostics())
    }
}

/// The primary host, the secondary host, colo-compare between them and the controller.
pub struct Site {
    /// The wiring.
    pub wiring: Wiring,
    /// The primary host.
    pub primary: Host,
    /// The secondary host.
    pub secondary: Host,
    /// The COLO controller's connection to colo-compare's notify channel.
    pub controller: Peer,
    daemon: Option<Daemon>,
    pipeline: String,
    _dir: TempDir,
}

impl Site {
    /// Starts everything as the README says, wired as `wiring`, and returns once every
    /// socket is connected.
    pub async fn start(bin: &QemuBinary, wiring: Wiring) -> Site {
        Site::start_with(bin, wiring, Recipe::load()).await
    }

    /// Starts everything as `recipe` says (a changed copy of the README's, to show why the
    /// README says what it says).
    pub async fn start_with(bin: &QemuBinary, wiring: Wiring, recipe: Recipe) -> Site {
        logcap::install();
        let dir = tempfile::tempdir().expect("temporary directory");
        let netdev = netdev_of(&recipe.primary_host);
        assert_eq!(
            netdev_of(&recipe.secondary_host),
            netdev,
            "both hosts' filters attach to the same netdev name"
        );
        let path = |role: Role| dir.path().join(format!("{role}.sock"));
        let mut config = recipe.pipeline.clone();
        config.vnet_hdr_support = wiring.vnet;
        config.notify_dev = Some(match wiring.transport {
            Transport::Tcp => Endpoint::TcpListen("127.0.0.1:0".into()),
            Transport::Unix => Endpoint::UnixListen(path(Role::NotifyDev)),
        });
        let version = bin.version;
        let (daemon, mut primary, mut secondary) = match wiring.qemu {
            QemuRole::Dials => {
                for role in [Role::PrimaryIn, Role::SecondaryIn, Role::Outdev] {
                    set(
                        &mut config,
                        role,
                        match wiring.transport {
                            Transport::Tcp => Endpoint::TcpListen("127.0.0.1:0".into()),
                            Transport::Unix => Endpoint::UnixListen(path(role)),
                        },
                    );
                }
                let daemon = Daemon::start(vec![config.clone()])
                    .await
                    .expect("colo-compare starts with the README's configuration");
                let bound: HashMap<&str, u16> = daemon
                    .local_addrs()
                    .into_iter()
                    .map(|(_, role, addr)| (role, addr.port()))
                    .collect();
                let address = |role: Role| match wiring.transport {
                    Transport::Tcp => Address::Tcp(
                        bound
                            .get(role.name())
                            .copied()
                            .unwrap_or_else(|| panic!("colo-compare does not listen for {role}")),
                    ),
                    Transport::Unix => Address::Unix(path(role)),
                };
                let (p, pc) = rewrite(&recipe, &recipe.primary_host, wiring, version, &address);
                let (s, sc) = rewrite(&recipe, &recipe.secondary_host, wiring, version, &address);
                let primary = Host::start(bin, dir.path(), "primary-host", &netdev, p, pc).await;
                let secondary =
                    Host::start(bin, dir.path(), "secondary-host", &netdev, s, sc).await;
                (daemon, primary, secondary)
            }
            QemuRole::Listens => {
                let address = |role: Role| match wiring.transport {
                    Transport::Tcp => Address::Tcp(0),
                    Transport::Unix => Address::Unix(path(role)),
                };
                let (p, pc) = rewrite(&recipe, &recipe.primary_host, wiring, version, &address);
                let (s, sc) = rewrite(&recipe, &recipe.secondary_host, wiring, version, &address);
                let mut primary =
                    Host::start(bin, dir.path(), "primary-host", &netdev, p, pc).await;
                let mut secondary =
                    Host::start(bin, dir.path(), "secondary-host", &netdev, s, sc).await;
                let mut ports: HashMap<Role, u16> = HashMap::new();
                if wiring.transport == Transport::Tcp {
                    ports.extend(primary.learn_ports().await);
                    ports.extend(secondary.learn_ports().await);
                }
                for role in [Role::PrimaryIn, Role::SecondaryIn, Role::Outdev] {
                    set(
                        &mut config,
                        role,
                        match wiring.transport {
                            Transport::Tcp => {
                                let port = ports.get(&role).unwrap_or_else(|| {
                                    panic!("no QEMU chardev listens for {role}")
                                });
                                Endpoint::TcpConnect(format!("127.0.0.1:{port}"))
                            }
                            Transport::Unix => Endpoint::UnixConnect(path(role)),
                        },
                    );
                }
                let daemon = Daemon::start(vec![config.clone()])
                    .await
                    .expect("colo-compare starts with the README's configuration");
                (daemon, primary, secondary)
            }
        };
        primary.wait_ready().await;
        secondary.wait_ready().await;
        let stream: Box<dyn Duplex> = match wiring.transport {
            Transport::Tcp => {
                let addr = daemon
                    .local_addrs()
                    .into_iter()
                    .find(|(_, role, _)| *role == Role::NotifyDev.name())
                    .map(|(_, _, a)| a)
                    .expect("the notify channel listens");
                Box::new(
                    TcpStream::connect(addr)
                        .await
                        .expect("connect the controller"),
                )
            }
            Transport::Unix => Box::new(
                UnixStream::connect(path(Role::NotifyDev))
                    .await
                    .expect("connect the controller"),
            ),
        };
        let mut controller = Peer::new(stream, wiring.vnet, false);
        // Answered once colo-compare has taken the connection: no request can miss it now.
        controller.send_message(COLO_USERSPACE_PROXY_INIT).await;
        let reply = controller
            .recv(WAIT)
            .await
            .expect("an answer to the controller");
        assert_eq!(&reply.data[..], COLO_COMPARE_GET_XEN_INIT);
        Site {
            wiring,
            primary,
            secondary,
            controller,
            daemon: Some(daemon),
            pipeline: config.name,
            _dir: dir,
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("colo-compare runs")
    }

    /// colo-compare's counters now.
    pub fn counters(&self) -> Counters {
        self.daemon()
            .stats()
            .into_iter()
            .find(|(n, _)| *n == self.pipeline)
            .map(|(_, c)| c)
            .expect("the README's pipeline runs")
    }

    /// colo-compare's output state now.
    pub fn output(&self) -> OutputStatus {
        self.daemon()
            .outputs()
            .into_iter()
            .find(|(n, _)| *n == self.pipeline)
            .map(|(_, o)| o)
            .expect("the README's pipeline runs")
    }

    /// Waits until colo-compare's counters satisfy `done`; panics after [`WAIT`].
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Counters) -> bool) -> Counters {
        let start = Instant::now();
        loop {
            let c = self.counters();
            if done(&c) {
                return c;
            }
            assert!(
                start.elapsed() < WAIT,
                "[{}] not {what} within {WAIT:?}; counters: {}\n{}\n{}",
                self.wiring,
                summary(&c),
                self.primary.diagnostics(),
                self.secondary.diagnostics()
            );
            async_std::task::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until colo-compare's output state satisfies `done`; panics after [`WAIT`].
    pub async fn wait_output(&self, what: &str, done: impl Fn(&OutputStatus) -> bool) {
        let start = Instant::now();
        loop {
            let o = self.output();
            if done(&o) {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "[{}] output not {what} within {WAIT:?}: {o:?}",
                self.wiring
            );
            async_std::task::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops colo-compare (orderly), checks its counters add up, and stops both QEMUs.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        let daemon = self.daemon.take().expect("colo-compare runs");
        let report = daemon.shutdown(grace).await;
        for p in &report.pipelines {
            if let Err(e) = p.counters.check() {
                panic!("{}: counters do not add up: {e}", p.name);
            }
        }
        for host in [&mut self.primary, &mut self.secondary] {
            assert!(
                host.running(),
                "QEMU died during the test\n{}",
                host.diagnostics()
            );
        }
        report
    }
}

/// Sets the endpoint of `role` in `config`.
fn set(config: &mut PipelineConfig, role: Role, endpoint: Endpoint) {
    match role {
        Role::PrimaryIn => config.primary_in = endpoint,
        Role::SecondaryIn => config.secondary_in = endpoint,
        Role::Outdev => config.outdev = endpoint,
        Role::NotifyDev => config.notify_dev = Some(endpoint),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(&format!("QEMU emulator version {s}")).expect("version")
    }

    #[test]
    fn a_chardev_keeps_its_id_and_extra_options_and_changes_address_and_role() {
        let readme = "socket,id=compare_pri,host=127.0.0.1,port=9001,reconnect-ms=1000,nodelay=on";
        assert_eq!(
            chardev(readme, &Address::Tcp(4321), QemuRole::Dials, v("10.0.2")),
            "socket,id=compare_pri,host=127.0.0.1,port=4321,reconnect-ms=1000,nodelay=on"
        );
        assert_eq!(
            chardev(readme, &Address::Tcp(4321), QemuRole::Dials, v("7.2.22")),
            "socket,id=compare_pri,host=127.0.0.1,port=4321,reconnect=1,nodelay=on"
        );
        assert_eq!(
            chardev(
                readme,
                &Address::Unix("/t/p.sock".into()),
                QemuRole::Listens,
                v("7.2.22")
            ),
            "socket,id=compare_pri,path=/t/p.sock,server=on,wait=off,nodelay=on"
        );
    }
}
