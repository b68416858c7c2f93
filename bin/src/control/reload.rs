//! `reload`: what a re-read configuration may change in a running daemon, and what it may not.
//!
//! The engine's limits and timers, passthrough rules, the mismatch capture and the log levels
//! change between two inputs of a tracker, so no packet is lost or released twice. Sockets,
//! framing, the comparator set, observe mode and the set of pipelines cannot change without
//! restarting the actors that hold them; a file that changes any of them is refused whole,
//! naming the first such field, and the daemon runs on unchanged.

use std::fmt::Display;

use colo_actors::{CaptureConfig, PipelineConfig};
use colo_core::TrackerConfig;

use crate::config::DaemonConfig;

/// What to apply.
#[derive(Debug, Default)]
pub struct Plan {
    /// New engine and capture settings per changed pipeline.
    pub pipelines: Vec<(String, TrackerConfig, Option<CaptureConfig>)>,
    /// Whether the log levels changed.
    pub log: bool,
    /// What changes, one line each.
    pub changes: Vec<String>,
}

/// Why a configuration cannot be applied to the running daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "reload refused: {field} cannot change while running ({detail}); restart to apply it, nothing was changed"
)]
pub struct Refusal {
    /// The field, as written in the file.
    pub field: String,
    /// What the change is.
    pub detail: String,
}

fn refuse(field: String, old: impl Display, new: impl Display) -> Refusal {
    Refusal {
        field,
        detail: format!("{old} -> {new}"),
    }
}

fn shown<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

/// Compares the running configuration with a re-read one.
pub fn plan(old: &DaemonConfig, new: &DaemonConfig) -> Result<Plan, Refusal> {
    if old.control_socket != new.control_socket {
        return Err(refuse(
            "control_socket".into(),
            shown(&old.control_socket),
            shown(&new.control_socket),
        ));
    }
    if old.metrics != new.metrics || old.metrics_allow_remote != new.metrics_allow_remote {
        return Err(refuse(
            "metrics".into(),
            shown(&old.metrics),
            shown(&new.metrics),
        ));
    }
    if old.log.file != new.log.file {
        return Err(refuse(
            "log.file".into(),
            shown(&old.log.file),
            shown(&new.log.file),
        ));
    }
    let names = |c: &DaemonConfig| {
        c.pipelines
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    if names(old) != names(new) {
        return Err(refuse(
            "the set of pipelines".into(),
            names(old).join(", "),
            names(new).join(", "),
        ));
    }
    let mut plan = Plan::default();
    for (i, (o, n)) in old.pipelines.iter().zip(&new.pipelines).enumerate() {
        fixed(i, o, n)?;
        let mut changes = Vec::new();
        let mut note = |field: &str, a: String, b: String| {
            if a != b {
                changes.push(format!("{}: {field} {a} -> {b}", n.name));
            }
        };
        note(
            "compare_timeout",
            format!("{} ms", o.compare_timeout),
            format!("{} ms", n.compare_timeout),
        );
        note(
            "expired_scan_cycle",
            format!("{} ms", o.expired_scan_cycle),
            format!("{} ms", n.expired_scan_cycle),
        );
        note(
            "max_queue_size",
            o.max_queue_size.to_string(),
            n.max_queue_size.to_string(),
        );
        note(
            "max_held_bytes",
            o.max_held_bytes.to_string(),
            n.max_held_bytes.to_string(),
        );
        note(
            "max_connections",
            o.max_connections.to_string(),
            n.max_connections.to_string(),
        );
        note("passthrough", shown(&o.passthrough), shown(&n.passthrough));
        note("capture", shown(&o.capture), shown(&n.capture));
        if !changes.is_empty() {
            plan.pipelines
                .push((n.name.clone(), n.tracker_config(), n.capture.clone()));
            plan.changes.extend(changes);
        }
    }
    if old.log.level != new.log.level || old.log.modules != new.log.modules {
        plan.log = true;
        plan.changes.push(format!(
            "log: level {} -> {}, modules {:?} -> {:?}",
            old.log.level, new.log.level, old.log.modules, new.log.modules
        ));
    }
    Ok(plan)
}

/// Refuses a change of anything a running pipeline cannot take.
fn fixed(i: usize, o: &PipelineConfig, n: &PipelineConfig) -> Result<(), Refusal> {
    let field = |f: &str| format!("pipelines[{i}].{f} (pipeline {})", n.name);
    let ends = [
        ("primary_in", Some(&o.primary_in), Some(&n.primary_in)),
        ("secondary_in", Some(&o.secondary_in), Some(&n.secondary_in)),
        ("outdev", Some(&o.outdev), Some(&n.outdev)),
        ("notify_dev", o.notify_dev.as_ref(), n.notify_dev.as_ref()),
    ];
    for (name, a, b) in ends {
        if a != b {
            let show = |e: Option<&colo_actors::Endpoint>| {
                e.map_or_else(|| "none".to_string(), ToString::to_string)
            };
            return Err(refuse(field(name), show(a), show(b)));
        }
    }
    if o.vnet_hdr_support != n.vnet_hdr_support {
        return Err(refuse(
            field("vnet_hdr_support"),
            o.vnet_hdr_support,
            n.vnet_hdr_support,
        ));
    }
    if o.output_buffer != n.output_buffer {
        return Err(refuse(
            field("output_buffer"),
            o.output_buffer,
            n.output_buffer,
        ));
    }
    if o.comparators != n.comparators {
        return Err(refuse(
            field("comparators"),
            shown(&o.comparators),
            shown(&n.comparators),
        ));
    }
    if o.observe != n.observe {
        return Err(refuse(field("observe"), o.observe, n.observe));
    }
    if o.beacon != n.beacon {
        return Err(refuse(field("beacon"), shown(&o.beacon), shown(&n.beacon)));
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::parse;

    fn config(extra: &str) -> DaemonConfig {
        let text = format!(
            r#"(pipelines: [(name: "nic0", primary_in: "unix-listen:/tmp/p", secondary_in: "unix-listen:/tmp/s",
                outdev: "unix-listen:/tmp/o", {extra})])"#
        );
        parse("t.ron", &text).expect("valid")
    }

    #[test]
    fn timers_limits_and_capture_change() {
        let p = plan(
            &config(""),
            &config(r#"compare_timeout: 500, capture: Some((path: "/tmp/m.pcap")),"#),
        )
        .expect("applies");
        assert_eq!(p.pipelines.len(), 1);
        assert_eq!(p.pipelines[0].1.compare_timeout, 500);
        assert_eq!(p.changes.len(), 2);
        assert_eq!(p.changes[0], "nic0: compare_timeout 3000 ms -> 500 ms");
        assert!(!p.log);
        let same = plan(&config(""), &config("")).expect("applies");
        assert!(same.changes.is_empty() && same.pipelines.is_empty());
    }

    #[test]
    fn sockets_framing_comparators_and_observe_are_refused_by_name() {
        let refused = |extra: &str| {
            plan(&config(""), &config(extra))
                .map(|p| p.changes)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(r#"notify_dev: Some("unix-listen:/tmp/n"),"#),
            "reload refused: pipelines[0].notify_dev (pipeline nic0) cannot change while running \
             (none -> unix-listen:/tmp/n); restart to apply it, nothing was changed"
        );
        assert!(refused("vnet_hdr_support: true,").contains("vnet_hdr_support"));
        assert!(refused(r#"comparators: (disabled: ["ip"]),"#).contains("comparators"));
        assert!(refused("observe: true,").contains("pipelines[0].observe"));
    }
}
