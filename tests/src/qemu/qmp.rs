//! A minimal QMP client: enough to learn which chardevs are connected and on which port a
//! listening chardev was bound, and to run the odd command.
//!
//! QMP is JSON, one message per line; replies carry `return` or `error`, and asynchronous
//! events may come in between, which are skipped.

use std::path::Path;
use std::time::{Duration, Instant};

use async_std::io::BufReader;
use async_std::os::unix::net::UnixStream;
use futures::io::{AsyncBufReadExt, AsyncWriteExt};
use serde_json::{Value, json};

/// How long one QMP command may take.
const REPLY_WITHIN: Duration = Duration::from_secs(5);

/// A connected, negotiated QMP session.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// One chardev as `query-chardev` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chardev {
    /// Its id.
    pub label: String,
    /// QEMU's description: `disconnected:tcp:127.0.0.1:PORT,server=on`, `unix:PATH`, ...
    pub filename: String,
}

impl Chardev {
    /// Whether a peer is connected (QEMU prefixes the description with `disconnected:`).
    pub fn connected(&self) -> bool {
        !self.filename.starts_with("disconnected:")
    }

    /// The TCP port a listening chardev is bound to.
    pub fn listening_port(&self) -> Option<u16> {
        let rest = self.filename.strip_prefix("disconnected:")?;
        let rest = rest.strip_prefix("tcp:")?;
        let addr = rest.split(',').next()?;
        addr.rsplit_once(':')?.1.parse().ok()
    }
}

impl Qmp {
    /// Connects to the QMP socket at `path`, retrying until `deadline`, and leaves the
    /// capabilities negotiation behind.
    pub async fn connect(path: &Path, deadline: Instant) -> Result<Qmp, String> {
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("QMP socket {}: {e}", path.display()));
                }
                Err(_) => async_std::task::sleep(Duration::from_millis(5)).await,
            }
        };
        let mut qmp = Qmp {
            reader: BufReader::new(stream.clone()),
            writer: stream,
        };
        let greeting = qmp.line().await?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", json!({})).await?;
        Ok(qmp)
    }

    async fn line(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = async_std::future::timeout(REPLY_WITHIN, self.reader.read_line(&mut line))
            .await
            .map_err(|_| format!("no QMP message within {REPLY_WITHIN:?}"))?
            .map_err(|e| format!("QMP read: {e}"))?;
        if n == 0 {
            return Err("QMP connection closed".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP sent invalid JSON ({e}): {line}"))
    }

    /// Runs `command` with `arguments`; its `return` value, or QMP's error as text.
    pub async fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        let mut msg = json!({ "execute": command, "arguments": arguments }).to_string();
        msg.push('\n');
        self.writer
            .write_all(msg.as_bytes())
            .await
            .map_err(|e| format!("QMP write: {e}"))?;
        loop {
            let mut reply = self.line().await?;
            if let Some(r) = reply.get_mut("return") {
                return Ok(r.take());
            }
            if let Some(e) = reply.get("error") {
                return Err(format!("{command}: {e}"));
            }
        }
    }

    /// Every chardev and its state.
    pub async fn chardevs(&mut self) -> Result<Vec<Chardev>, String> {
        let list = self.execute("query-chardev", json!({})).await?;
        let list = list
            .as_array()
            .ok_or_else(|| format!("query-chardev returned {list}"))?;
        Ok(list
            .iter()
            .map(|c| Chardev {
                label: c["label"].as_str().unwrap_or_default().to_string(),
                filename: c["filename"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn dev(filename: &str) -> Chardev {
        Chardev {
            label: "c".into(),
            filename: filename.into(),
        }
    }

    #[test]
    fn reads_the_state_and_port_from_the_description() {
        let listening = dev("disconnected:tcp:127.0.0.1:38825,server=on");
        assert!(!listening.connected());
        assert_eq!(listening.listening_port(), Some(38825));
        let client = dev("tcp:127.0.0.1:58308 <-> 127.0.0.1:49137");
        assert!(client.connected());
        assert_eq!(client.listening_port(), None);
        assert!(!dev("disconnected:unix:/tmp/x/pin").connected());
        assert!(dev("unix:").connected());
    }
}
