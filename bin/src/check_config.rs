//! `colo-compare check-config FILE`: validate a file before deploying it.

use std::path::Path;
use std::process::ExitCode;

use colo_actors::PipelineConfig;
use colo_core::Registry;

use crate::config;

/// Prints one line per pipeline and succeeds, or prints the first mistake and exits 2.
pub fn check_config(file: &Path) -> ExitCode {
    match config::load(file) {
        Ok(c) => {
            for p in &c.pipelines {
                println!("{}", summary(p));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// A pipeline on one line, in QEMU's `property=value` style.
pub fn summary(p: &PipelineConfig) -> String {
    let notify = p
        .notify_dev
        .as_ref()
        .map_or_else(|| "none".to_string(), ToString::to_string);
    let comparators = Registry::build(&p.comparators).map_or_else(
        |e| format!("({e})"),
        |r| {
            let names: Vec<_> = r.entries().iter().map(|e| e.name).collect();
            if names.is_empty() {
                "none".into()
            } else {
                names.join(",")
            }
        },
    );
    let beacon = p.beacon.as_ref().map_or_else(String::new, |b| {
        let ends: Vec<String> = b
            .endpoints()
            .iter()
            .map(|(name, e)| format!("{name}={e}"))
            .collect();
        format!(" {}", ends.join(" "))
    });
    format!(
        "{}: primary_in={} secondary_in={} outdev={} notify_dev={notify} compare_timeout={}ms \
         expired_scan_cycle={}ms max_queue_size={} vnet_hdr_support={} comparators={comparators}\
         {beacon}",
        p.name,
        p.primary_in,
        p.secondary_in,
        p.outdev,
        p.compare_timeout,
        p.expired_scan_cycle,
        p.max_queue_size,
        if p.vnet_hdr_support { "on" } else { "off" },
    )
}
