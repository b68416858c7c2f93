//! The control socket's protocol: JSON lines, one request object per line, one response
//! object per line, shared by the server and `colo-compare ctl`.
//!
//! A request is `{"cmd": "stats"}`, `{"cmd": "flows", "pipeline": "nic0", "match": "10.0.0.5",
//! "min_held": 2}`, `{"cmd": "checkpoint"}`, ...; a response is `{"ok": true, "result": ...}`
//! or `{"ok": false, "error": "one readable line"}`.

use std::collections::BTreeMap;

use colo_actors::{FlowView, PipelineSnapshot};
use colo_core::{CheckpointReason, DropReason, ReleaseReason, Side};
use serde::{Deserialize, Serialize};

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Counters and state of every pipeline.
    Stats,
    /// The tracked connections, filtered.
    Flows(FlowFilter),
    /// Checkpoint flush, as `COLO_CHECKPOINT`: one pipeline, or all.
    Checkpoint {
        /// The pipeline; every pipeline when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline: Option<String>,
    },
    /// Failover: one pipeline, or all.
    Failover {
        /// The pipeline; every pipeline when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline: Option<String>,
    },
    /// Orderly shutdown: drain every pipeline, then the daemon exits 0.
    Shutdown,
    /// Re-read the configuration file and apply what can change.
    Reload,
}

/// Which flows `flows` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowFilter {
    /// Only this pipeline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Only flows whose description (`udp 10.0.0.1:53 > 10.0.0.2:4000`) contains this.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matching: Option<String>,
    /// Only flows holding at least this many packets (both sides).
    pub min_held: u64,
    /// At most this many flows, the oldest-waiting first (all when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What it returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it was not carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success carrying `result`.
    pub fn success(result: impl Serialize) -> Self {
        match serde_json::to_value(result) {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response::failure(format!("cannot encode the result: {e}")),
        }
    }

    /// A failure saying why.
    pub fn failure(error: impl Into<String>) -> Self {
        Response {
            ok: false,
            result: None,
            error: Some(error.into()),
        }
    }
}

/// Counts per side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide {
    /// The primary's.
    pub primary: u64,
    /// The secondary's.
    pub secondary: u64,
}

impl PerSide {
    fn of(v: [u64; 2]) -> Self {
        PerSide {
            primary: v[Side::Primary.index()],
            secondary: v[Side::Secondary.index()],
        }
    }
}

/// One comparator's decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComparatorStats {
    /// Its name.
    pub name: String,
    /// Primary packets released because they matched.
    pub matched: u64,
    /// Failed comparisons.
    pub mismatched: u64,
    /// Connections it took.
    pub connections: u64,
}

/// Held-time percentiles, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeldMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Releases measured.
    pub count: u64,
}

/// The output's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputStats {
    /// An output peer is connected.
    pub connected: bool,
    /// Released frames waiting to be written.
    pub buffered_frames: u64,
    /// Their bytes.
    pub buffered_bytes: u64,
    /// Frames written.
    pub written_frames: u64,
}

/// The mismatch capture's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// The file.
    pub path: String,
    /// Mismatches written.
    pub written: u64,
    /// Mismatches not written.
    pub skipped: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// One pipeline in `stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStats {
    /// Its name.
    pub name: String,
    /// Observe mode.
    pub observe: bool,
    /// Failover has happened.
    pub failed_over: bool,
    /// Frames received.
    pub received: PerSide,
    /// Primary packets released, by reason (non-zero ones).
    pub released: BTreeMap<String, u64>,
    /// Packets dropped, by side and reason (non-zero ones).
    pub dropped: BTreeMap<String, BTreeMap<String, u64>>,
    /// Packets held now.
    pub held: PerSide,
    /// Bytes held now.
    pub held_bytes: u64,
    /// Checkpoint requests, by reason (non-zero ones).
    pub checkpoints: BTreeMap<String, u64>,
    /// Observe mode: would-be checkpoint requests, by reason (non-zero ones).
    pub would_checkpoints: BTreeMap<String, u64>,
    /// Observe mode: how comparisons of released packets ended, by reason (non-zero ones).
    pub would_release: BTreeMap<String, u64>,
    /// Checkpoint flushes.
    pub flushes: u64,
    /// Connections tracked now.
    pub connections: u64,
    /// Per comparator.
    pub comparators: Vec<ComparatorStats>,
    /// Held time.
    pub held_ms: HeldMs,
    /// The output.
    pub output: OutputStats,
    /// The capture, when configured.
    pub capture: Option<CaptureStats>,
}

fn nonzero(names: &[&str], values: &[u64]) -> BTreeMap<String, u64> {
    names
        .iter()
        .zip(values)
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.to_string(), *n))
        .collect()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

impl PipelineStats {
    /// The stats of a snapshot.
    pub fn of(p: &PipelineSnapshot) -> Self {
        let c = &p.counters;
        let h = &c.held_time;
        let pct = |q| h.percentile(q).map_or(0.0, ms);
        let dropped = Side::BOTH
            .iter()
            .map(|s| {
                (
                    s.name().to_string(),
                    nonzero(&DropReason::NAMES, &c.dropped[s.index()]),
                )
            })
            .filter(|(_, m)| !m.is_empty())
            .collect();
        PipelineStats {
            name: p.name.clone(),
            observe: p.observe,
            failed_over: p.failed_over,
            received: PerSide::of(c.received),
            released: nonzero(&ReleaseReason::NAMES, &c.released),
            dropped,
            held: PerSide::of(c.held),
            held_bytes: c.held_bytes,
            checkpoints: nonzero(&CheckpointReason::NAMES, &c.checkpoints),
            would_checkpoints: nonzero(&CheckpointReason::NAMES, &c.would_checkpoints),
            would_release: nonzero(&ReleaseReason::NAMES, &c.would_release),
            flushes: c.flushes,
            connections: c.flows,
            comparators: c
                .comparators
                .iter()
                .map(|k| ComparatorStats {
                    name: k.name.to_string(),
                    matched: k.matched,
                    mismatched: k.mismatched,
                    connections: k.flows,
                })
                .collect(),
            held_ms: HeldMs {
                p50: pct(0.5),
                p90: pct(0.9),
                p99: pct(0.99),
                max: ms(h.max()),
                count: h.count(),
            },
            output: OutputStats {
                connected: p.output.connected,
                buffered_frames: p.output.buffered_frames,
                buffered_bytes: p.output.buffered_bytes,
                written_frames: p.output.written_frames,
            },
            capture: p.capture.as_ref().map(|k| CaptureStats {
                path: k.path.display().to_string(),
                written: k.written,
                skipped: k.skipped,
                bytes: k.bytes,
            }),
        }
    }
}

/// The result of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Every pipeline, in configuration order.
    pub pipelines: Vec<PipelineStats>,
}

/// One flow in `flows`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowEntry {
    /// Its pipeline.
    pub pipeline: String,
    /// The connection, as logs write it.
    pub flow: String,
    /// Its comparator.
    pub comparator: String,
    /// Packets held per side.
    pub held: PerSide,
    /// Bytes held.
    pub held_bytes: u64,
    /// Age of its oldest held packet, ms; `None` when nothing is held.
    pub oldest_age_ms: Option<f64>,
}

impl FlowEntry {
    /// The entry of one flow of `pipeline`.
    pub fn of(pipeline: &str, f: &FlowView) -> Self {
        FlowEntry {
            pipeline: pipeline.to_string(),
            flow: f.key.to_string(),
            comparator: f.comparator.to_string(),
            held: PerSide::of(f.held.map(u64::from)),
            held_bytes: f.held_bytes,
            oldest_age_ms: f.oldest_age.map(ms),
        }
    }
}

/// The result of `flows`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flows {
    /// Flows that passed the filter.
    pub total: usize,
    /// The ones shown (at most `limit`), the oldest-waiting first.
    pub flows: Vec<FlowEntry>,
}

/// The result of `checkpoint` and `failover`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The pipelines it was carried out on.
    pub pipelines: Vec<String>,
}

/// One pipeline's drain in the result of `shutdown`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    /// The pipeline.
    pub name: String,
    /// Held primary packets released by the drain.
    pub released_at_shutdown: u64,
    /// Released frames that could not be written.
    pub unwritten: u64,
}

/// The result of `shutdown`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownDone {
    /// Every pipeline's drain.
    pub pipelines: Vec<Drained>,
}

/// The result of `reload`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// What changed, one line each (empty when the file changed nothing).
    pub changes: Vec<String>,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r: Request = serde_json::from_str(r#"{"cmd":"flows","match":"10.0.0.5","min_held":2}"#)
            .expect("valid");
        assert_eq!(
            r,
            Request::Flows(FlowFilter {
                matching: Some("10.0.0.5".into()),
                min_held: 2,
                ..FlowFilter::default()
            })
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"checkpoint"}"#).expect("valid");
        assert_eq!(r, Request::Checkpoint { pipeline: None });
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Request::Stats).expect("encodes"),
            r#"{"cmd":"stats"}"#
        );
    }
}
