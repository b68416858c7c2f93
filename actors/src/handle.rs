//! A cloneable handle on the running daemon for the control socket and the metrics endpoint:
//! it reads the published state and sends commands to the tracker actors, without owning the
//! daemon (whose shutdown stays with whoever started it).

use std::sync::Arc;

use colo_core::TrackerConfig;
use colo_core::config::ConfigError;
use futures::SinkExt;
use futures::channel::{mpsc, oneshot};
use thiserror::Error;

use crate::capture::CaptureConfig;
use crate::daemon::UnknownPipeline;
use crate::flows::FlowView;
use crate::live::{LiveMap, PipelineSnapshot};
use crate::tracker::{Control, Reconfigure};

/// Why a command to a pipeline was not carried out.
#[derive(Debug, Error)]
pub enum CommandError {
    /// No such pipeline.
    #[error(transparent)]
    Unknown(#[from] UnknownPipeline),
    /// The pipeline's tracker has stopped (the daemon is shutting down).
    #[error("pipeline \"{0}\" is shutting down")]
    Stopped(String),
    /// The pipeline refused new settings.
    #[error("pipeline \"{pipeline}\": {source}")]
    Refused {
        /// The pipeline.
        pipeline: String,
        /// What it refused.
        source: ConfigError,
    },
}

struct Pipeline {
    name: String,
    observe: bool,
    control: mpsc::Sender<Control>,
}

/// A handle on the running daemon's pipelines.
#[derive(Clone)]
pub struct DaemonHandle {
    pipelines: Arc<[Pipeline]>,
    live: LiveMap,
}

impl DaemonHandle {
    /// A handle on pipelines given as (name, observe mode, control channel).
    pub(crate) fn new(
        pipelines: Vec<(String, bool, mpsc::Sender<Control>)>,
        live: LiveMap,
    ) -> Self {
        DaemonHandle {
            pipelines: pipelines
                .into_iter()
                .map(|(name, observe, control)| Pipeline {
                    name,
                    observe,
                    control,
                })
                .collect(),
            live,
        }
    }

    /// The names of the pipelines, in configuration order.
    pub fn pipelines(&self) -> Vec<String> {
        self.pipelines.iter().map(|p| p.name.clone()).collect()
    }

    /// Everything published about every pipeline, in configuration order.
    pub fn snapshot(&self) -> Vec<PipelineSnapshot> {
        self.pipelines
            .iter()
            .filter_map(|p| {
                let live = self.live.get(&p.name)?;
                Some(PipelineSnapshot {
                    name: p.name.clone(),
                    observe: p.observe,
                    failed_over: live.failed_over,
                    counters: live.counters.clone(),
                    output: live.output.clone(),
                    capture: live.capture.clone(),
                    requests: live.requests,
                    beacon: live.beacon.clone(),
                })
            })
            .collect()
    }

    fn find(&self, pipeline: &str) -> Result<&Pipeline, UnknownPipeline> {
        self.pipelines
            .iter()
            .find(|p| p.name == pipeline)
            .ok_or_else(|| UnknownPipeline(pipeline.to_string()))
    }

    /// Sends the command `make` builds around a reply channel and waits for the reply.
    async fn ask<T>(
        &self,
        pipeline: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Control,
    ) -> Result<T, CommandError> {
        let p = self.find(pipeline)?;
        let stopped = || CommandError::Stopped(p.name.clone());
        let (reply, answer) = oneshot::channel();
        p.control
            .clone()
            .send(make(reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    /// Checkpoint flush of one pipeline, as `COLO_CHECKPOINT`; returns once it is made.
    pub async fn checkpoint(&self, pipeline: &str) -> Result<(), CommandError> {
        self.ask(pipeline, |ack| Control::Checkpoint(Some(ack)))
            .await
    }

    /// Failover of one pipeline; returns once the held packets are released.
    pub async fn failover(&self, pipeline: &str) -> Result<(), CommandError> {
        self.ask(pipeline, Control::Failover).await
    }

    /// The tracked connections of one pipeline, in creation order.
    pub async fn flows(&self, pipeline: &str) -> Result<Vec<FlowView>, CommandError> {
        self.ask(pipeline, Control::Flows).await
    }

    /// Applies new engine and capture settings to one pipeline without losing any packet;
    /// refused (and nothing changed) when the engine cannot take them.
    pub async fn reconfigure(
        &self,
        pipeline: &str,
        tracker: TrackerConfig,
        capture: Option<CaptureConfig>,
    ) -> Result<(), CommandError> {
        let settings = Reconfigure { tracker, capture };
        self.ask(pipeline, |reply| Control::Reconfigure(settings, reply))
            .await?
            .map_err(|source| CommandError::Refused {
                pipeline: pipeline.to_string(),
                source,
            })
    }
}
