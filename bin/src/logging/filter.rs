//! Which log lines are kept: a default level and per-module levels, layered from the
//! configuration file, then `-v`/`--log-level`, then the `COLO_LOG` environment variable
//! (`info,colo_core=debug`, in the spirit of `RUST_LOG`).

use std::collections::BTreeMap;

use log::LevelFilter;
use thiserror::Error;

use super::level::{Level, UnknownLevel};
use crate::config::LogConfig;

/// The levels in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// The level of modules not listed.
    pub default: LevelFilter,
    /// Levels by module path; a module path covers its submodules.
    pub modules: BTreeMap<String, LevelFilter>,
}

/// A malformed `COLO_LOG` value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("COLO_LOG: \"{directive}\": {source}")]
pub struct DirectiveError {
    /// The comma-separated part that is wrong.
    pub directive: String,
    /// What is wrong with it.
    pub source: UnknownLevel,
}

impl Filter {
    /// The levels a configuration file asks for.
    pub fn from_config(config: &LogConfig) -> Self {
        Filter {
            default: config.level.0,
            modules: config
                .modules
                .iter()
                .map(|(m, l)| (m.clone(), l.0))
                .collect(),
        }
    }

    /// The level for log records of `target` (a module path): the most specific module
    /// entry that covers it, else the default.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.modules
            .iter()
            .filter(|(m, _)| {
                target
                    .strip_prefix(m.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .max_by_key(|(m, _)| m.len())
            .map_or(self.default, |(_, l)| *l)
    }

    /// The most verbose level any module gets.
    pub fn max(&self) -> LevelFilter {
        self.modules.values().copied().fold(self.default, Ord::max)
    }

    /// Replaces the default level (`--log-level`, `-v`).
    pub fn set_default(&mut self, level: LevelFilter) {
        self.default = level;
    }

    /// Applies `COLO_LOG`-style directives: `LEVEL` sets the default, `MODULE=LEVEL` one
    /// module, a bare `MODULE` turns on everything for it.
    pub fn apply_directives(&mut self, spec: &str) -> Result<(), DirectiveError> {
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let error = |source| DirectiveError {
                directive: directive.to_string(),
                source,
            };
            match directive.split_once('=') {
                Some((module, level)) => {
                    let level: Level = level.trim().parse().map_err(error)?;
                    self.modules.insert(module.trim().to_string(), level.0);
                }
                None => match directive.parse::<Level>() {
                    Ok(level) => self.default = level.0,
                    Err(_) if is_module_path(directive) => {
                        self.modules
                            .insert(directive.to_string(), LevelFilter::Trace);
                    }
                    Err(e) => return Err(error(e)),
                },
            }
        }
        Ok(())
    }
}

fn is_module_path(s: &str) -> bool {
    s.split("::").all(|part| {
        !part.is_empty()
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !part.starts_with(|c: char| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn config(level: &str, modules: &[(&str, &str)]) -> LogConfig {
        LogConfig {
            level: level.parse().expect("level"),
            modules: modules
                .iter()
                .map(|(m, l)| (m.to_string(), l.parse().expect("level")))
                .collect(),
            file: None,
        }
    }

    #[test]
    fn layers_override_in_order() {
        let mut f = Filter::from_config(&config("warn", &[("colo_core", "debug")]));
        assert_eq!(f.default, LevelFilter::Warn);
        assert_eq!(f.modules["colo_core"], LevelFilter::Debug);
        f.set_default(LevelFilter::Info);
        f.apply_directives("error, colo_core=trace,colo_actors::egress")
            .expect("valid directives");
        assert_eq!(f.default, LevelFilter::Error);
        assert_eq!(f.modules["colo_core"], LevelFilter::Trace);
        assert_eq!(f.modules["colo_actors::egress"], LevelFilter::Trace);
    }

    #[test]
    fn the_most_specific_module_wins() {
        let f = Filter::from_config(&config(
            "warn",
            &[("colo_actors", "debug"), ("colo_actors::egress", "error")],
        ));
        assert_eq!(f.level_for("colo_actors::egress"), LevelFilter::Error);
        assert_eq!(f.level_for("colo_actors::tracker"), LevelFilter::Debug);
        assert_eq!(f.level_for("colo_actorsx"), LevelFilter::Warn);
        assert_eq!(f.level_for("colo_core"), LevelFilter::Warn);
        assert_eq!(f.max(), LevelFilter::Debug);
    }

    #[test]
    fn bad_directives_are_refused_whole() {
        let mut f = Filter::from_config(&LogConfig::default());
        assert_eq!(
            f.apply_directives("info,colo_core=loud")
                .map_err(|e| e.to_string()),
            Err("COLO_LOG: \"colo_core=loud\": unknown log level \"loud\" (expected off, error, warn, info, debug or trace)".into())
        );
        assert!(f.apply_directives("not a module").is_err());
    }
}
