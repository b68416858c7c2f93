//! The primary QEMU's COLO trace (`-trace enable=colo_* -D FILE -msg timestamp=on`, the `log`
//! trace backend): when each checkpoint was requested, when the secondary reported
//! `vmstate-received` (after which QEMU flushes its comparators) and `vmstate-loaded`, on the
//! host's wall clock.
//!
//! A line reads `PID@SECONDS.MICROSECONDS:colo_send_message Send 'checkpoint-request' message`.
//! Trace names are not a stable interface of QEMU; this is for tests only.

use std::time::{SystemTime, UNIX_EPOCH};

/// One checkpoint as the primary traced it; times in µs since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// `Send 'checkpoint-request'`: the checkpoint starts.
    pub request: u64,
    /// `Receive 'vmstate-received'`: QEMU's flush point follows.
    pub received: Option<u64>,
    /// `Receive 'vmstate-loaded'`: the secondary runs the new state.
    pub loaded: Option<u64>,
}

/// The wall clock now, in µs since the Unix epoch (the trace's clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn time_of(line: &str) -> Option<u64> {
    let stamp = line.split_once('@')?.1.split_once(':')?.0;
    let (s, us) = stamp.split_once('.')?;
    let us = format!("{us:0<6}");
    Some(s.parse::<u64>().ok()? * 1_000_000 + us.get(..6)?.parse::<u64>().ok()?)
}

/// The checkpoints in `text`, in order.
pub fn checkpoints(text: &str) -> Vec<Checkpoint> {
    let mut out: Vec<Checkpoint> = Vec::new();
    for line in text.lines() {
        let Some(t) = time_of(line) else { continue };
        if line.contains("Send 'checkpoint-request'") {
            out.push(Checkpoint {
                request: t,
                received: None,
                loaded: None,
            });
        } else if line.contains("Receive 'vmstate-received'") {
            if let Some(c) = out.last_mut().filter(|c| c.received.is_none()) {
                c.received = Some(t);
            }
        } else if line.contains("Receive 'vmstate-loaded'") {
            if let Some(c) = out.last_mut().filter(|c| c.loaded.is_none()) {
                c.loaded = Some(t);
            }
        }
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_the_log_backends_lines() {
        let text = "\
27602@1795759055.504534:colo_receive_message Receive 'checkpoint-ready' message
27602@1795759056.504375:colo_send_message Send 'checkpoint-request' message
27602@1795759056.508910:colo_vm_state_change Change 'run' => 'stop'
27602@1795759056.512456:colo_receive_message Receive 'vmstate-received' message
27602@1795759056.520001:colo_receive_message Receive 'vmstate-loaded' message
27602@1795759057.5:colo_send_message Send 'checkpoint-request' message
garbage line
";
        assert_eq!(
            checkpoints(text),
            [
                Checkpoint {
                    request: 1_795_759_056_504_375,
                    received: Some(1_795_759_056_512_456),
                    loaded: Some(1_795_759_056_520_001),
                },
                Checkpoint {
                    request: 1_795_759_057_500_000,
                    received: None,
                    loaded: None,
                },
            ]
        );
        assert!(now_us() > 1_700_000_000_000_000);
    }
}
