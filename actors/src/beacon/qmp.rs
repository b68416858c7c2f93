//! The QMP wire format as beacon mode uses it: one JSON object per line, commands carrying an
//! `id` that QEMU echoes in the reply, and the events the beacon needs mapped to
//! [`QemuEvent`]. Pure functions, so the parsing is tested without a QEMU.

use colo_core::Timestamp;
use colo_core::beacon::QemuEvent;
use serde_json::{Value, json};
use thiserror::Error;

/// The longest line accepted from QEMU; QMP replies to the commands used here are a few KiB.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// One message from QEMU.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Message {
    /// The greeting that opens a session.
    Greeting,
    /// A command succeeded.
    Return {
        /// The command's `id`.
        id: Option<u64>,
        /// Its result.
        value: Value,
    },
    /// A command failed.
    Error {
        /// The command's `id`.
        id: Option<u64>,
        /// QEMU's description.
        desc: String,
    },
    /// An event the beacon uses.
    Event(QemuEvent),
    /// Any other event, by name.
    Other(String),
}

/// A line that is no QMP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum QmpError {
    /// Not JSON.
    #[error("not JSON ({0})")]
    Json(String),
    /// JSON, but none of the message kinds.
    #[error("not a QMP message")]
    Unknown,
}

/// Reads one line (without its line break).
pub(crate) fn parse(line: &[u8]) -> Result<Message, QmpError> {
    let v: Value = serde_json::from_slice(line).map_err(|e| QmpError::Json(e.to_string()))?;
    let id = v.get("id").and_then(Value::as_u64);
    if v.get("QMP").is_some() {
        Ok(Message::Greeting)
    } else if let Some(value) = v.get("return") {
        Ok(Message::Return {
            id,
            value: value.clone(),
        })
    } else if let Some(e) = v.get("error") {
        let desc = e
            .get("desc")
            .and_then(Value::as_str)
            .unwrap_or("no description")
            .to_string();
        Ok(Message::Error { id, desc })
    } else if let Some(name) = v.get("event").and_then(Value::as_str) {
        Ok(event(name, &v).map_or_else(|| Message::Other(name.to_string()), Message::Event))
    } else {
        Err(QmpError::Unknown)
    }
}

fn event(name: &str, v: &Value) -> Option<QemuEvent> {
    let data = |key: &str| v.get("data")?.get(key)?.as_str().map(str::to_string);
    match name {
        "STOP" => {
            let t = v.get("timestamp")?;
            let s = t.get("seconds")?.as_u64()?;
            let us = t.get("microseconds")?.as_u64()?;
            Some(QemuEvent::Stop {
                at: Timestamp::from_micros(s.saturating_mul(1_000_000).saturating_add(us)),
            })
        }
        "RESUME" => Some(QemuEvent::Resume),
        "MIGRATION_PASS" => Some(QemuEvent::MigrationPass),
        "MIGRATION" => Some(QemuEvent::Migration {
            colo: data("status")? == "colo",
        }),
        "COLO_EXIT" => Some(QemuEvent::ColoExit {
            reason: data("reason").unwrap_or_else(|| "unknown".into()),
        }),
        _ => None,
    }
}

/// The line that runs `command` with `arguments` as request `id`.
pub(crate) fn command(command: &str, arguments: Value, id: u64) -> Vec<u8> {
    let mut line = json!({ "execute": command, "arguments": arguments, "id": id }).to_string();
    line.push('\n');
    line.into_bytes()
}

/// `migrate-set-capabilities` turning on the `events` capability (for `MIGRATION` and
/// `MIGRATION_PASS`).
pub(crate) fn enable_events() -> Value {
    json!({ "capabilities": [{ "capability": "events", "state": true }] })
}

/// The arguments of the checkpoint request: `x-checkpoint-delay` set to its current value,
/// which wakes the COLO thread without changing the period.
pub(crate) fn checkpoint_delay(ms: u64) -> Value {
    json!({ "x-checkpoint-delay": ms })
}

/// `x-checkpoint-delay` from a `query-migrate-parameters` result.
pub(crate) fn read_checkpoint_delay(parameters: &Value) -> Option<u64> {
    parameters.get("x-checkpoint-delay")?.as_u64()
}

/// Whether a `query-migrate` result says the migration is in COLO.
pub(crate) fn in_colo(migrate: &Value) -> bool {
    migrate.get("status").and_then(Value::as_str) == Some("colo")
}

#[cfg(test)]
mod test {
    use super::*;

    fn msg(line: &str) -> Message {
        parse(line.as_bytes()).expect("a QMP message")
    }

    #[test]
    fn reads_qemus_messages() {
        assert_eq!(
            msg(r#"{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": ["oob"]}}"#),
            Message::Greeting
        );
        assert_eq!(
            msg(r#"{"return": {}, "id": 3}"#),
            Message::Return {
                id: Some(3),
                value: json!({})
            }
        );
        assert_eq!(
            msg(
                r#"{"id": 4, "error": {"class": "GenericError", "desc": "There's a migration process in progress"}}"#
            ),
            Message::Error {
                id: Some(4),
                desc: "There's a migration process in progress".into()
            }
        );
        assert_eq!(
            msg(
                r#"{"timestamp": {"seconds": 1700000000, "microseconds": 123456}, "event": "STOP"}"#
            ),
            Message::Event(QemuEvent::Stop {
                at: Timestamp::from_micros(1_700_000_000_123_456)
            })
        );
        assert_eq!(
            msg(r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}"#),
            Message::Event(QemuEvent::Resume)
        );
        assert_eq!(
            msg(r#"{"event": "MIGRATION_PASS", "data": {"pass": 7}}"#),
            Message::Event(QemuEvent::MigrationPass)
        );
        assert_eq!(
            msg(r#"{"event": "MIGRATION", "data": {"status": "colo"}}"#),
            Message::Event(QemuEvent::Migration { colo: true })
        );
        assert_eq!(
            msg(r#"{"event": "MIGRATION", "data": {"status": "completed"}}"#),
            Message::Event(QemuEvent::Migration { colo: false })
        );
        assert_eq!(
            msg(r#"{"event": "COLO_EXIT", "data": {"mode": "primary", "reason": "request"}}"#),
            Message::Event(QemuEvent::ColoExit {
                reason: "request".into()
            })
        );
        assert_eq!(
            msg(r#"{"event": "SHUTDOWN", "data": {}}"#),
            Message::Other("SHUTDOWN".into())
        );
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert!(matches!(parse(b"{not json"), Err(QmpError::Json(_))));
        assert_eq!(parse(b"[1, 2]"), Err(QmpError::Unknown));
        assert_eq!(parse(b"{\"hello\": 1}"), Err(QmpError::Unknown));
        // A STOP without its timestamp is not understood, but still an event.
        assert_eq!(msg(r#"{"event": "STOP"}"#), Message::Other("STOP".into()));
        assert_eq!(
            msg(r#"{"event": "MIGRATION"}"#),
            Message::Other("MIGRATION".into())
        );
    }

    #[test]
    fn writes_commands_as_one_line_with_their_id() {
        let line = command("migrate-set-parameters", checkpoint_delay(20000), 9);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(
            v,
            json!({"execute": "migrate-set-parameters", "arguments": {"x-checkpoint-delay": 20000}, "id": 9})
        );
        assert_eq!(
            read_checkpoint_delay(&json!({"x-checkpoint-delay": 200, "max-bandwidth": 1})),
            Some(200)
        );
        assert!(in_colo(&json!({"status": "colo"})));
        assert!(!in_colo(&json!({"status": "active"})));
        assert_eq!(
            enable_events()["capabilities"][0]["capability"],
            json!("events")
        );
    }
}
