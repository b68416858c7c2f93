//! The daemon: every pipeline's actors, started together and shut down in order.
//!
//! Per pipeline: a reader for each input, a tracker actor, an egress actor and, when
//! `notify_dev` is set, a notify actor, linked by bounded channels:
//!
//! ```text
//! reader(primary_in)   \  batches                 released frames
//!                       >-------> tracker --------------------------> egress --> outdev
//! reader(secondary_in) /           ^    \ checkpoint requests
//!                  COLO_CHECKPOINT |     v
//!                               notify <--> notify_dev
//! ```
//!
//! In beacon mode (KVM COLO) the beacon actor takes the notify actor's place: checkpoint
//! requests go to it, and its flushes reach the tracker through the primary reader as drain
//! barriers ([`crate::beacon`]).
//!
//! Shutdown goes upstream to downstream so that nothing already read is lost (D-LOSS-1):
//! readers and notify stop, the tracker processes what was read and drains every held
//! primary packet into egress, and egress writes it out within the grace period.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use colo_core::config::ConfigError;
use colo_core::registry::RegistryError;
use colo_core::{Counters, Frame, Registry, Side, Timestamp, Tracker};
use dashmap::DashMap;
use futures::SinkExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{AbortHandle, join_all};
use log::info;
use thiserror::Error;

use crate::beacon::{self, BeaconConfig, BeaconLinks};
use crate::credit::OutputCredit;
use crate::egress::Egress;
use crate::handle::{CommandError, DaemonHandle};
use crate::link::Link;
use crate::live::{LiveMap, LiveSlot, OutputStatus};
use crate::notify;
use crate::pipeline::PipelineConfig;
use crate::reader::{self, Batch};
use crate::role::Role;
use crate::runtime::{self, Task};
use crate::tracker::{Control, Output, TrackerActor};

/// Batches of input frames waiting for the tracker, per pipeline.
const INPUT_QUEUE: usize = 16;
/// Batches of released frames waiting for egress.
const OUTPUT_QUEUE: usize = 16;
/// Commands waiting for the tracker.
const CONTROL_QUEUE: usize = 16;
/// Checkpoint requests waiting to be sent; more merge with these.
const NOTIFY_QUEUE: usize = 4;

/// Why the daemon could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// No pipeline was configured.
    #[error("no pipeline configured")]
    NoPipelines,
    /// Two pipelines share a name.
    #[error("two pipelines are named \"{0}\"")]
    DuplicateName(String),
    /// A pipeline's settings are invalid.
    #[error("pipeline \"{pipeline}\": {source}")]
    Config {
        /// The pipeline.
        pipeline: String,
        /// What is wrong.
        source: ConfigError,
    },
    /// A pipeline's comparators could not be set up.
    #[error("pipeline \"{pipeline}\": {source}")]
    Registry {
        /// The pipeline.
        pipeline: String,
        /// What is wrong.
        source: RegistryError,
    },
    /// A listening endpoint could not be bound.
    #[error("pipeline \"{pipeline}\": cannot listen on {role} {endpoint}: {source}")]
    Bind {
        /// The pipeline.
        pipeline: String,
        /// Which socket of the pipeline.
        role: &'static str,
        /// The endpoint as configured.
        endpoint: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// A command named a pipeline the daemon does not run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no pipeline named \"{0}\"")]
pub struct UnknownPipeline(pub String);

/// What one pipeline did at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// The pipeline.
    pub name: String,
    /// Held primary packets released by the shutdown drain (D-LOSS-1).
    pub released_at_shutdown: u64,
    /// Released frames that could not be written because the output peer never came back.
    pub unwritten: u64,
    /// The final counters.
    pub counters: Counters,
}

/// What the whole daemon did at shutdown, one entry per pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Per-pipeline results, in configuration order.
    pub pipelines: Vec<PipelineReport>,
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "pipeline \"{}\": {} held primary packets released at shutdown, {} released frames unwritten; \
             received {} primary / {} secondary, released {}, dropped {} primary / {} secondary, {} checkpoint requests",
            self.name,
            self.released_at_shutdown,
            self.unwritten,
            c.received[Side::Primary.index()],
            c.received[Side::Secondary.index()],
            c.released_total(),
            c.dropped_total(Side::Primary),
            c.dropped_total(Side::Secondary),
            c.checkpoints_total()
        )
    }
}

/// One running pipeline's actors and the ends of its channels the daemon keeps.
struct Running {
    name: String,
    control: mpsc::Sender<Control>,
    closing: oneshot::Sender<Duration>,
    readers: Vec<Task<()>>,
    notify: Option<Task<()>>,
    beacon: Option<Task<()>>,
    tracker: Task<()>,
    egress: Task<u64>,
}

/// A pipeline whose sockets are bound, ready to be spawned.
struct Opened {
    config: PipelineConfig,
    registry: Registry,
    primary: Link,
    secondary: Link,
    outdev: Link,
    notify: Option<Link>,
    beacon: Option<BeaconLinks>,
}

/// The running daemon.
pub struct Daemon {
    pipelines: Vec<Running>,
    handle: DaemonHandle,
    live: LiveMap,
    addrs: Vec<(String, &'static str, SocketAddr)>,
    aborts: Vec<AbortHandle>,
}

impl Daemon {
    /// Binds every listening endpoint (so errors like "address in use" come back here),
    /// spawns the actors of every pipeline and returns once they are running.
    pub async fn start(configs: Vec<PipelineConfig>) -> Result<Daemon, StartError> {
        if configs.is_empty() {
            return Err(StartError::NoPipelines);
        }
        let mut names = HashSet::new();
        let mut built = Vec::with_capacity(configs.len());
        for config in configs {
            config.validate().map_err(|source| StartError::Config {
                pipeline: config.name.clone(),
                source,
            })?;
            if !names.insert(config.name.clone()) {
                return Err(StartError::DuplicateName(config.name));
            }
            let registry =
                Registry::build(&config.comparators).map_err(|source| StartError::Registry {
                    pipeline: config.name.clone(),
                    source,
                })?;
            built.push((config, registry));
        }
        let mut addrs = Vec::new();
        let mut opened = Vec::with_capacity(built.len());
        for (config, registry) in built {
            let primary = open(&config, Role::PrimaryIn, &config.primary_in, &mut addrs).await?;
            let secondary =
                open(&config, Role::SecondaryIn, &config.secondary_in, &mut addrs).await?;
            let outdev = open(&config, Role::Outdev, &config.outdev, &mut addrs).await?;
            let notify = match &config.notify_dev {
                Some(ep) => Some(open(&config, Role::NotifyDev, ep, &mut addrs).await?),
                None => None,
            };
            let beacon = match &config.beacon {
                Some(b) => Some(open_beacon(&config, b, &mut addrs).await?),
                None => None,
            };
            opened.push(Opened {
                config,
                registry,
                primary,
                secondary,
                outdev,
                notify,
                beacon,
            });
        }
        let live: LiveMap = Arc::new(DashMap::new());
        let observe: Vec<bool> = opened.iter().map(|o| o.config.observe).collect();
        let pipelines: Vec<Running> = opened.into_iter().map(|o| spawn(o, &live)).collect();
        let handle = DaemonHandle::new(
            pipelines
                .iter()
                .zip(observe)
                .map(|(p, observe)| (p.name.clone(), observe, p.control.clone()))
                .collect(),
            Arc::clone(&live),
        );
        let aborts = pipelines
            .iter()
            .flat_map(|p| {
                p.readers
                    .iter()
                    .chain(p.notify.iter())
                    .chain(p.beacon.iter())
                    .chain(std::iter::once(&p.tracker))
                    .map(Task::abort_handle)
                    .chain(std::iter::once(p.egress.abort_handle()))
            })
            .collect();
        Ok(Daemon {
            pipelines,
            handle,
            live,
            addrs,
            aborts,
        })
    }

    /// The actual local addresses of listening TCP endpoints, to learn ports after binding
    /// port 0: (pipeline, role as QEMU names it, address).
    pub fn local_addrs(&self) -> Vec<(String, &'static str, SocketAddr)> {
        self.addrs.clone()
    }

    /// A handle for the control socket and the metrics: it reads the published state and
    /// sends commands while the daemon runs.
    pub fn handle(&self) -> DaemonHandle {
        self.handle.clone()
    }

    /// The names of the pipelines, in configuration order.
    pub fn pipelines(&self) -> Vec<String> {
        self.pipelines.iter().map(|p| p.name.clone()).collect()
    }

    /// Live counters of every pipeline, by name, in configuration order.
    pub fn stats(&self) -> Vec<(String, Counters)> {
        self.pipelines
            .iter()
            .filter_map(|p| {
                let live = self.live.get(&p.name)?;
                Some((p.name.clone(), live.counters.clone()))
            })
            .collect()
    }

    /// Live state of every pipeline's output, by name, in configuration order.
    pub fn outputs(&self) -> Vec<(String, OutputStatus)> {
        self.pipelines
            .iter()
            .filter_map(|p| {
                let live = self.live.get(&p.name)?;
                Some((p.name.clone(), live.output.clone()))
            })
            .collect()
    }

    /// Checkpoint flush of one pipeline, as `COLO_CHECKPOINT` on its notify channel.
    /// Returns once the flush has been made.
    pub async fn checkpoint(&self, pipeline: &str) -> Result<(), UnknownPipeline> {
        match self.handle.checkpoint(pipeline).await {
            Err(CommandError::Unknown(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Failover of one pipeline: release everything held, then pass the primary straight
    /// through and discard the secondary. Returns once the held packets are released.
    pub async fn failover(&self, pipeline: &str) -> Result<(), UnknownPipeline> {
        match self.handle.failover(pipeline).await {
            Err(CommandError::Unknown(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Orderly shutdown (D-LOSS-1): every pipeline stops reading, drains (releases every
    /// held primary packet to the output), egress writes out what it buffered (waiting for
    /// the output peer up to `grace`), and everything closes.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        let pipelines = std::mem::take(&mut self.pipelines);
        let stops = pipelines.into_iter().map(|p| stop(p, grace, &self.live));
        let pipelines = join_all(stops).await;
        self.aborts.clear();
        ShutdownReport { pipelines }
    }
}

impl Drop for Daemon {
    /// A daemon dropped without [`Daemon::shutdown`] stops its actors and closes its sockets
    /// (without draining).
    fn drop(&mut self) {
        for a in &self.aborts {
            a.abort();
        }
    }
}

async fn open(
    config: &PipelineConfig,
    role: Role,
    endpoint: &crate::Endpoint,
    addrs: &mut Vec<(String, &'static str, SocketAddr)>,
) -> Result<Link, StartError> {
    open_named(config, role.name(), endpoint, addrs).await
}

/// Opens the socket the configuration calls `name` (`primary_in`, `beacon.outdev`, ...).
async fn open_named(
    config: &PipelineConfig,
    name: &'static str,
    endpoint: &crate::Endpoint,
    addrs: &mut Vec<(String, &'static str, SocketAddr)>,
) -> Result<Link, StartError> {
    let label = format!("[{}] {name}", config.name);
    let link = Link::open(endpoint, label)
        .await
        .map_err(|source| StartError::Bind {
            pipeline: config.name.clone(),
            role: name,
            endpoint: endpoint.to_string(),
            source,
        })?;
    if let Some(addr) = link.local_addr() {
        addrs.push((config.name.clone(), name, addr));
    }
    Ok(link)
}

async fn open_beacon(
    config: &PipelineConfig,
    b: &BeaconConfig,
    addrs: &mut Vec<(String, &'static str, SocketAddr)>,
) -> Result<BeaconLinks, StartError> {
    Ok(BeaconLinks {
        primary_in: open_named(config, "beacon.primary_in", &b.primary_in, addrs).await?,
        secondary_in: open_named(config, "beacon.secondary_in", &b.secondary_in, addrs).await?,
        outdev: open_named(config, "beacon.outdev", &b.outdev, addrs).await?,
        qmp: match &b.qmp {
            Some(q) => Some(open_named(config, "beacon.qmp", q, addrs).await?),
            None => None,
        },
    })
}

fn spawn(o: Opened, live: &LiveMap) -> Running {
    let Opened {
        config,
        registry,
        primary,
        secondary,
        outdev,
        notify,
        beacon,
    } = o;
    let name = config.name.clone();
    let vnet = config.vnet_hdr_support;
    let slot = LiveSlot::new(live, &name);
    let (input_tx, input_rx) = mpsc::channel::<Batch>(INPUT_QUEUE);
    let (control_tx, control_rx) = mpsc::channel::<Control>(CONTROL_QUEUE);
    let (output_tx, output_rx) = mpsc::channel::<Vec<Frame>>(OUTPUT_QUEUE);
    let (closing_tx, closing_rx) = oneshot::channel();
    let (requests_tx, notify) = match notify {
        Some(link) => {
            let (tx, rx) = mpsc::channel::<()>(NOTIFY_QUEUE);
            let task = runtime::spawn(notify::run(
                link,
                vnet,
                rx,
                control_tx.clone(),
                slot.clone(),
            ));
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let mut barriers = None;
    let (requests_tx, beacon) = match beacon {
        Some(links) => {
            let (barrier_tx, barrier_rx) = mpsc::unbounded();
            barriers = Some(barrier_rx);
            let (tx, rx) = mpsc::channel::<()>(NOTIFY_QUEUE);
            // Published at once, so that a beacon pipeline always shows its beacon.
            slot.set_beacon(beacon::BeaconStatus::default());
            let outlets = beacon::Outlets {
                label: format!("[{name}]").into(),
                barriers: barrier_tx,
                control: control_tx.clone(),
                live: slot.clone(),
            };
            (
                Some(tx),
                Some(runtime::spawn(beacon::run(links, rx, outlets))),
            )
        }
        None => (requests_tx, None),
    };
    let tracker = Tracker::new(config.tracker_config(), Arc::new(registry), Timestamp::ZERO);
    let credit = Arc::new(OutputCredit::new(config.output_buffer));
    let actor = TrackerActor::new(
        format!("[{name}]").into(),
        tracker,
        Output {
            frames: output_tx,
            credit: Arc::clone(&credit),
        },
        requests_tx,
        slot.clone(),
        config.capture.clone(),
    );
    let egress = Egress::new(outdev, vnet, config.output_buffer, credit, slot);
    let egress = runtime::spawn(egress.run(output_rx, closing_rx));
    let tracker = runtime::spawn(actor.run(input_rx, control_rx));
    let readers = vec![
        runtime::spawn(reader::run(
            primary,
            Side::Primary,
            vnet,
            input_tx.clone(),
            barriers,
        )),
        runtime::spawn(reader::run(
            secondary,
            Side::Secondary,
            vnet,
            input_tx,
            None,
        )),
    ];
    info!(
        "[{name}] started: primary_in {}, secondary_in {}, outdev {}, notify_dev {}, vnet_hdr_support {}, compare_timeout {} ms, expired_scan_cycle {} ms, max_queue_size {}, observe {}, capture {}",
        config.primary_in,
        config.secondary_in,
        config.outdev,
        config
            .notify_dev
            .as_ref()
            .map_or_else(|| "none".to_string(), ToString::to_string),
        if vnet { "on" } else { "off" },
        config.compare_timeout,
        config.expired_scan_cycle,
        config.max_queue_size,
        if config.observe { "on" } else { "off" },
        config
            .capture
            .as_ref()
            .map_or_else(|| "none".to_string(), |c| c.path.display().to_string())
    );
    if let Some(b) = &config.beacon {
        info!(
            "[{name}] KVM COLO beacon: primary_in {}, secondary_in {}, outdev {}, qmp {}",
            b.primary_in,
            b.secondary_in,
            b.outdev,
            b.qmp
                .as_ref()
                .map_or_else(|| "none".to_string(), ToString::to_string)
        );
    }
    Running {
        name,
        control: control_tx,
        closing: closing_tx,
        readers,
        notify,
        beacon,
        tracker,
        egress,
    }
}

async fn stop(p: Running, grace: Duration, live: &LiveMap) -> PipelineReport {
    let Running {
        name,
        mut control,
        closing,
        readers,
        notify,
        beacon,
        tracker,
        egress,
    } = p;
    for r in readers {
        r.stop().await;
    }
    if let Some(n) = notify {
        n.stop().await;
    }
    if let Some(b) = beacon {
        b.stop().await;
    }
    let _ = closing.send(grace);
    let (reply, drained) = oneshot::channel();
    let drained = match control.send(Control::Shutdown(reply)).await {
        Ok(()) => drained.await.ok(),
        Err(_) => None,
    };
    let unwritten = egress.join().await.unwrap_or(0);
    tracker.join().await;
    let (released_at_shutdown, counters) = match drained {
        Some(d) => (d.released, d.counters),
        None => (
            0,
            live.get(&name)
                .map(|l| l.counters.clone())
                .unwrap_or_default(),
        ),
    };
    let report = PipelineReport {
        name,
        released_at_shutdown,
        unwritten,
        counters,
    };
    info!("{report}");
    report
}

#[cfg(test)]
mod test {
    use super::*;

    fn is_send<T: Send>(_: &T) {}
    fn is_shared<T: Send + Sync>() {}

    #[test]
    fn the_daemon_can_be_shared_and_its_futures_spawned() {
        is_shared::<Daemon>();
        is_send(&Daemon::start(Vec::new()));
        let _ = |d: &Daemon| {
            is_send(&d.checkpoint("p"));
            is_send(&d.failover("p"));
        };
        let _ = |d: Daemon| is_send(&d.shutdown(Duration::ZERO));
    }

    #[test]
    fn no_pipeline_is_a_start_error() {
        let err = async_std::task::block_on(Daemon::start(Vec::new()))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("no pipeline configured"));
    }
}
