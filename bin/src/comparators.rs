//! `colo-compare comparators`: which comparators this build links, what each claims and does,
//! and which ones a configuration enables.

use std::path::Path;
use std::process::ExitCode;

use colo_core::Registry;
use colo_core::registry::ComparatorsConfig;

use crate::config;

/// Prints the comparator table, per pipeline when a configuration file is given.
pub fn list(config_file: Option<&Path>) -> ExitCode {
    match config_file {
        None => print_table(&ComparatorsConfig::default()),
        Some(path) => match config::load(path) {
            Ok(c) => {
                for p in &c.pipelines {
                    println!("pipeline {}:", p.name);
                    print_table(&p.comparators);
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}

fn print_table(config: &ComparatorsConfig) {
    let registrations = Registry::registrations();
    if registrations.is_empty() {
        println!("no comparators are linked into this program");
        return;
    }
    let registry = Registry::build(config);
    let rows: Vec<(&str, &str, String, &str)> = registrations
        .iter()
        .map(|r| {
            let entry = registry
                .as_ref()
                .ok()
                .and_then(|reg| reg.entries().iter().find(|e| e.name == r.name));
            let claims = match entry {
                Some(e) => e.claims.clone(),
                // Disabled comparators are not built by the registry; build one to ask.
                None => (r.build)(config.settings.get(r.name))
                    .map(|c| c.claims())
                    .unwrap_or_default(),
            };
            let claims: Vec<String> = claims.iter().map(ToString::to_string).collect();
            let state = if entry.is_some() {
                "enabled"
            } else {
                "disabled"
            };
            (r.name, state, claims.join(", "), r.summary)
        })
        .collect();
    let width = |f: fn(&(&str, &str, String, &str)) -> usize, title: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let (wn, ws, wc) = (
        width(|r| r.0.len(), "NAME"),
        width(|r| r.1.len(), "STATE"),
        width(|r| r.2.len(), "CLAIMS"),
    );
    println!(
        "{:<wn$}  {:<ws$}  {:<wc$}  SUMMARY",
        "NAME", "STATE", "CLAIMS"
    );
    for (name, state, claims, summary) in &rows {
        println!("{name:<wn$}  {state:<ws$}  {claims:<wc$}  {summary}");
    }
    if let Err(e) = registry {
        println!("(this configuration cannot run: {e})");
    }
}
