//! A log level as the operator writes it (`off`, `error`, `warn`, `info`, `debug`, `trace`),
//! shared by the configuration file, `--log-level` and `COLO_LOG` so all three accept the same
//! words and reject the same mistakes.

use std::fmt;
use std::str::FromStr;

use log::LevelFilter;
use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// A level filter with an operator-facing spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level(pub LevelFilter);

/// A word that is not a log level.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown log level \"{0}\" (expected off, error, warn, info, debug or trace)")]
pub struct UnknownLevel(pub String);

impl Default for Level {
    fn default() -> Self {
        Level(LevelFilter::Info)
    }
}

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let filter = match s.to_ascii_lowercase().as_str() {
            "off" => LevelFilter::Off,
            "error" => LevelFilter::Error,
            "warn" | "warning" => LevelFilter::Warn,
            "info" => LevelFilter::Info,
            "debug" => LevelFilter::Debug,
            "trace" => LevelFilter::Trace,
            _ => return Err(UnknownLevel(s.to_string())),
        };
        Ok(Level(filter))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.as_str().to_ascii_lowercase())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parses_the_six_words_in_any_case() {
        for (word, filter) in [
            ("off", LevelFilter::Off),
            ("ERROR", LevelFilter::Error),
            ("warn", LevelFilter::Warn),
            ("Info", LevelFilter::Info),
            ("debug", LevelFilter::Debug),
            ("trace", LevelFilter::Trace),
        ] {
            assert_eq!(word.parse(), Ok(Level(filter)));
        }
        assert_eq!(Level(LevelFilter::Debug).to_string(), "debug");
        assert_eq!(
            "verbose".parse::<Level>().map_err(|e| e.to_string()),
            Err(
                "unknown log level \"verbose\" (expected off, error, warn, info, debug or trace)"
                    .into()
            )
        );
    }
}
