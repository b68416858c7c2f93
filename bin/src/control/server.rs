//! The control socket's server: a UNIX socket (mode 0600) where each line is a request and
//! gets one line of response.
//!
//! Commands reach the pipelines through a [`DaemonHandle`]; `shutdown` is handed to whoever
//! owns the daemon (it drains, answers with what the drain released, and the process exits 0
//! as after SIGTERM); `reload` re-reads the configuration file and applies what can change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_std::io::BufReader;
use async_std::os::unix::net::{UnixListener, UnixStream};
use colo_actors::DaemonHandle;
use futures::channel::{mpsc, oneshot};
use futures::lock::Mutex;
use futures::{AsyncBufReadExt, AsyncWriteExt, SinkExt, StreamExt};
use log::{debug, info, warn};

use super::protocol::{
    Done, FlowEntry, FlowFilter, Flows, PipelineStats, Reloaded, Request, Response, ShutdownDone,
    Stats,
};
use super::reload;
use crate::cli::LogArgs;
use crate::config::{self, DaemonConfig};
use crate::logging::{self, LogHandle};

/// Pause after a failed accept (for example when out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A `shutdown` request handed to the daemon's owner.
pub struct ShutdownRequest {
    /// Where the owner sends what the drain did.
    pub reply: oneshot::Sender<ShutdownDone>,
    /// Completed once the response is written, so the owner can wait for it before exiting.
    pub written: oneshot::Receiver<()>,
}

/// What `reload` needs: the file, the configuration in force and how it was layered.
pub struct ReloadSource {
    /// The configuration file the daemon was started with.
    pub path: PathBuf,
    /// The configuration in force (as applied, `--observe` included).
    pub current: Mutex<DaemonConfig>,
    /// The logger, whose levels a reload may change.
    pub log: Arc<LogHandle>,
    /// The command line's log options, which override the file's levels.
    pub log_args: LogArgs,
    /// `run --observe`: every pipeline observes whatever the file says.
    pub observe: bool,
}

/// Everything the server works with.
pub struct Context {
    /// The running pipelines.
    pub handle: DaemonHandle,
    /// Where `shutdown` requests go.
    pub shutdown: mpsc::Sender<ShutdownRequest>,
    /// `None` when the daemon was not started from a file (nothing to re-read).
    pub reload: Option<ReloadSource>,
}

/// Serves `listener` forever, one task per client.
pub async fn serve(listener: UnixListener, context: Arc<Context>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let context = Arc::clone(&context);
                async_std::task::spawn(async move {
                    if let Err(e) = client(stream, &context).await {
                        debug!("control: client: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("control: accept failed: {e}");
                async_std::task::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

async fn client(stream: UnixStream, context: &Context) -> std::io::Result<()> {
    let mut writer = stream.clone();
    let mut lines = BufReader::new(stream).lines();
    while let Some(line) = lines.next().await {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request = match serde_json::from_str::<Request>(&line) {
            Ok(r) => r,
            Err(e) => {
                write(&mut writer, &Response::failure(format!("bad request: {e}"))).await?;
                continue;
            }
        };
        if request == Request::Shutdown {
            return shutdown(&mut writer, context).await;
        }
        let response = answer(request, context).await;
        write(&mut writer, &response).await?;
    }
    Ok(())
}

async fn write(writer: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(response).map_err(std::io::Error::other)?;
    line.push('\n');
    writer.write_all(line.as_bytes()).await?;
    writer.flush().await
}

async fn shutdown(writer: &mut UnixStream, context: &Context) -> std::io::Result<()> {
    info!("control: shutdown requested");
    let (reply, drained) = oneshot::channel();
    let (written_tx, written) = oneshot::channel();
    let asked = context
        .shutdown
        .clone()
        .send(ShutdownRequest { reply, written })
        .await;
    let response = match (asked, drained.await) {
        (Ok(()), Ok(done)) => Response::success(done),
        _ => Response::failure("the daemon is already shutting down"),
    };
    let result = write(writer, &response).await;
    let _ = written_tx.send(());
    result
}

/// The pipelines a command names: one, or every one.
fn targets(handle: &DaemonHandle, pipeline: Option<String>) -> Result<Vec<String>, String> {
    let all = handle.pipelines();
    match pipeline {
        None => Ok(all),
        Some(p) if all.contains(&p) => Ok(vec![p]),
        Some(p) => Err(format!(
            "no pipeline named \"{p}\" (pipelines: {})",
            all.join(", ")
        )),
    }
}

async fn answer(request: Request, context: &Context) -> Response {
    let handle = &context.handle;
    match request {
        Request::Stats => Response::success(Stats {
            pipelines: handle.snapshot().iter().map(PipelineStats::of).collect(),
        }),
        Request::Flows(filter) => match flows(handle, filter).await {
            Ok(f) => Response::success(f),
            Err(e) => Response::failure(e),
        },
        Request::Checkpoint { pipeline } => {
            each(handle, pipeline, "checkpoint", |p| async move {
                handle.checkpoint(&p).await
            })
            .await
        }
        Request::Failover { pipeline } => {
            each(handle, pipeline, "failover", |p| async move {
                handle.failover(&p).await
            })
            .await
        }
        Request::Reload => match &context.reload {
            None => Response::failure(
                "reload needs a configuration file: this daemon was started without --config",
            ),
            Some(source) => match reload(handle, source).await {
                Ok(r) => Response::success(r),
                Err(e) => {
                    warn!("control: {e}");
                    Response::failure(e)
                }
            },
        },
        Request::Shutdown => Response::failure("shutdown is served apart"),
    }
}

async fn each<F, Fut>(
    handle: &DaemonHandle,
    pipeline: Option<String>,
    what: &str,
    command: F,
) -> Response
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), colo_actors::CommandError>>,
{
    let names = match targets(handle, pipeline) {
        Ok(n) => n,
        Err(e) => return Response::failure(e),
    };
    info!("control: {what} of {}", names.join(", "));
    for name in &names {
        if let Err(e) = command(name.clone()).await {
            return Response::failure(e.to_string());
        }
    }
    Response::success(Done { pipelines: names })
}

async fn flows(handle: &DaemonHandle, filter: FlowFilter) -> Result<Flows, String> {
    let mut entries = Vec::new();
    for name in targets(handle, filter.pipeline.clone())? {
        let views = handle.flows(&name).await.map_err(|e| e.to_string())?;
        entries.extend(
            views
                .iter()
                .filter(|v| v.held_total() >= filter.min_held)
                .map(|v| FlowEntry::of(&name, v))
                .filter(|e| filter.matching.as_ref().is_none_or(|m| e.flow.contains(m))),
        );
    }
    // The oldest-waiting first: those are the ones about to time out.
    entries.sort_by(|a, b| {
        b.oldest_age_ms
            .unwrap_or(-1.0)
            .total_cmp(&a.oldest_age_ms.unwrap_or(-1.0))
    });
    let total = entries.len();
    if let Some(limit) = filter.limit {
        entries.truncate(limit);
    }
    Ok(Flows {
        total,
        flows: entries,
    })
}

async fn reload(handle: &DaemonHandle, source: &ReloadSource) -> Result<Reloaded, String> {
    let mut current = source.current.lock().await;
    let mut new = config::load(&source.path).map_err(|e| format!("reload refused: {e}"))?;
    if source.observe {
        for p in &mut new.pipelines {
            p.observe = true;
        }
    }
    let plan = reload::plan(&current, &new).map_err(|e| e.to_string())?;
    let filter = if plan.log {
        Some(
            logging::layered(&new.log, &source.log_args)
                .map_err(|e| format!("reload refused: {e}"))?,
        )
    } else {
        None
    };
    for (name, tracker, capture) in plan.pipelines {
        handle
            .reconfigure(&name, tracker, capture)
            .await
            .map_err(|e| format!("reload failed: {e}"))?;
    }
    if let Some(filter) = filter {
        source.log.set_filter(filter);
    }
    for change in &plan.changes {
        info!("reload: {change}");
    }
    if plan.changes.is_empty() {
        info!("reload: {} changes nothing", source.path.display());
    }
    *current = new;
    Ok(Reloaded {
        changes: plan.changes,
    })
}
