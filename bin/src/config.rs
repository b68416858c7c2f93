//! The configuration: global settings and the pipelines, from a RON file, the command line or
//! the embedded default, with errors that name the file, line, column and field (D-IN-3).
//!
//! Deserializing catches syntax, type and unknown-field mistakes (`ron` gives their position);
//! [`check`] then catches what only makes sense across values (zero timeouts, duplicate names or
//! endpoints, unknown comparators), and the [`SourceMap`] finds where the offending field is
//! written.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use colo_actors::{Endpoint, PipelineConfig};
use colo_core::registry::{ComparatorsConfig, Registry, RegistryError};
use serde::Deserialize;
use thiserror::Error;

use crate::logging::level::Level;
use crate::source_map::{FieldPath, Position, SourceMap};

/// Everything a configuration file holds.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where log lines go and how many.
    #[serde(default)]
    pub log: LogConfig,
    /// The control socket's path (UNIX, mode 0600; `colo-compare ctl` talks to it). Off when
    /// `None`.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    /// Where to serve Prometheus metrics over HTTP, as `IP:PORT`. Off when `None`.
    #[serde(default)]
    pub metrics: Option<String>,
    /// Allow `metrics` on an address other than loopback (the endpoint has no authentication).
    #[serde(default)]
    pub metrics_allow_remote: bool,
    /// One pipeline per protected NIC.
    pub pipelines: Vec<PipelineConfig>,
}

/// The `log` section.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// The level of every module not named in `modules`.
    pub level: Level,
    /// Levels of single modules, by module path (`colo_core`, `colo_actors::egress`).
    pub modules: BTreeMap<String, Level>,
    /// A file to append to instead of stderr; reopened on SIGHUP.
    pub file: Option<PathBuf>,
}

/// The name the embedded default goes by in messages.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// What `colo-compare run` uses with neither a file nor endpoints: one pipeline listening on
/// loopback ports 9001 to 9004.
pub const EMBEDDED_DEFAULT: &str = r#"(
    pipelines: [
        (
            name: "nic0",
            primary_in: "tcp-listen:127.0.0.1:9001",
            secondary_in: "tcp-listen:127.0.0.1:9002",
            outdev: "tcp-listen:127.0.0.1:9003",
            notify_dev: Some("tcp-listen:127.0.0.1:9004"),
        ),
    ],
)
"#;

/// Why a configuration was refused. Display is the one line the operator sees.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file as named by the operator.
        file: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{file}:{}:{}: {field}: {problem}", at.line, at.col)]
    Invalid {
        /// The file as named by the operator.
        file: String,
        /// Where the offending field is written.
        at: Position,
        /// The offending field.
        field: FieldPath,
        /// What is wrong with it.
        problem: String,
    },
    /// A command-line option has an invalid value.
    #[error("command line: {flag}: {problem}")]
    Option {
        /// The option, as typed (`--compare-timeout`).
        flag: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A semantic mistake: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The offending field.
    pub path: FieldPath,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<DaemonConfig, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

/// Parses and checks configuration text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<DaemonConfig, LoadError> {
    let invalid = |at: Position, field: FieldPath, problem: String| LoadError::Invalid {
        file: file.to_string(),
        at,
        field,
        problem: one_line(&problem),
    };
    if text.trim().is_empty() {
        return Err(invalid(
            Position { line: 1, col: 1 },
            FieldPath::root(),
            "the file is empty; it needs at least (pipelines: [...])".into(),
        ));
    }
    let config = match ron::Options::default().from_str::<DaemonConfig>(text) {
        Ok(c) => c,
        Err(e) => {
            let map = SourceMap::new(text);
            let mut at = Position {
                line: e.span.start.line,
                col: e.span.start.col,
            };
            let mut field = map.path_at(at);
            if is_about_a_value(&e.code) {
                // ron points somewhere inside the value; report where it starts, as for
                // the semantic checks.
                at = map.locate(&field);
            }
            let problem = describe(&e.code, &mut field);
            return Err(invalid(at, field, problem));
        }
    };
    check(&config).map_err(|p| invalid(SourceMap::new(text).locate(&p.path), p.path, p.problem))?;
    Ok(config)
}

/// The embedded default configuration.
pub fn embedded_default() -> Result<DaemonConfig, LoadError> {
    parse(EMBEDDED_NAME, EMBEDDED_DEFAULT)
}

/// A configuration made of one pipeline given on the command line; errors name the option.
pub fn from_command_line(pipeline: PipelineConfig) -> Result<DaemonConfig, LoadError> {
    let config = DaemonConfig {
        log: LogConfig::default(),
        control_socket: None,
        metrics: None,
        metrics_allow_remote: false,
        pipelines: vec![pipeline],
    };
    check(&config).map_err(|p| {
        // The option is the field's path inside the pipeline: beacon.primary_in is
        // --beacon-primary-in.
        let path = p.path.to_string();
        let field = path.strip_prefix("pipelines[0].").unwrap_or(&path);
        LoadError::Option {
            flag: format!("--{}", field.replace(['.', '_'], "-")),
            problem: one_line(&p.problem),
        }
    })?;
    Ok(config)
}

/// `s` with line breaks and other control characters escaped: an error stays one line even
/// when it quotes a runaway string.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The checks deserializing cannot make. Returns the first problem found, in file order.
pub fn check(config: &DaemonConfig) -> Result<(), Problem> {
    let root = FieldPath::root();
    if config.pipelines.is_empty() {
        return Err(Problem {
            path: root.field("pipelines"),
            problem: "at least one pipeline is needed".into(),
        });
    }
    for (key, path) in [
        (&config.log.file, root.clone().field("log").field("file")),
        (&config.control_socket, root.clone().field("control_socket")),
    ] {
        if key.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(Problem {
                path,
                problem: "the path is empty".into(),
            });
        }
    }
    if let Some(addr) = &config.metrics {
        let path = root.clone().field("metrics");
        match addr.parse::<SocketAddr>() {
            Err(_) => {
                return Err(Problem {
                    path,
                    problem: format!("\"{addr}\": expected IP:PORT, for example 127.0.0.1:9100"),
                });
            }
            Ok(a) if !a.ip().is_loopback() && !config.metrics_allow_remote => {
                return Err(Problem {
                    path,
                    problem: format!(
                        "{a} is not a loopback address and the metrics endpoint has no \
                         authentication; set metrics_allow_remote: true to serve it there"
                    ),
                });
            }
            Ok(_) => {}
        }
    }
    if config.log.modules.contains_key("") {
        return Err(Problem {
            path: root.clone().field("log").field("modules"),
            problem: "a module name is empty".into(),
        });
    }
    let mut endpoints: Vec<(&Endpoint, FieldPath)> = Vec::new();
    for (i, p) in config.pipelines.iter().enumerate() {
        let here = root.clone().field("pipelines").index(i);
        p.validate().map_err(|e| Problem {
            path: e.field.split('.').fold(here.clone(), FieldPath::field),
            problem: e.problem,
        })?;
        if let Some(c) = &p.capture {
            let earlier = config.pipelines[..i]
                .iter()
                .position(|q| q.capture.as_ref().is_some_and(|d| d.path == c.path));
            if let Some(j) = earlier {
                return Err(Problem {
                    path: here.clone().field("capture").field("path"),
                    problem: format!(
                        "{} is already the capture of pipelines[{j}]",
                        c.path.display()
                    ),
                });
            }
        }
        if let Err(e) = Registry::build(&p.comparators) {
            return Err(registry_problem(
                &p.comparators,
                here.field("comparators"),
                e,
            ));
        }
        if let Some(j) = config.pipelines[..i].iter().position(|q| q.name == p.name) {
            return Err(Problem {
                path: here.field("name"),
                problem: format!("\"{}\" is already the name of pipelines[{j}]", p.name),
            });
        }
        let mut mine = vec![
            ("primary_in", Some(&p.primary_in)),
            ("secondary_in", Some(&p.secondary_in)),
            ("outdev", Some(&p.outdev)),
            ("notify_dev", p.notify_dev.as_ref()),
        ];
        if let Some(b) = &p.beacon {
            mine.extend(b.endpoints().into_iter().map(|(f, e)| (f, Some(e))));
        }
        for (role, endpoint) in mine {
            let Some(endpoint) = endpoint else { continue };
            let path = role.split('.').fold(here.clone(), FieldPath::field);
            if let Some((_, first)) = endpoints
                .iter()
                .find(|(e, _)| *e == endpoint && !e.is_ephemeral())
            {
                return Err(Problem {
                    path,
                    problem: format!("{endpoint} is already used by {first}"),
                });
            }
            endpoints.push((endpoint, path));
        }
    }
    Ok(())
}

fn registry_problem(config: &ComparatorsConfig, at: FieldPath, e: RegistryError) -> Problem {
    let path = match &e {
        RegistryError::Unknown { name, .. } => {
            match config.disabled.iter().position(|d| d == name) {
                Some(k) => at.field("disabled").index(k),
                None => at.field("settings").field(name),
            }
        }
        RegistryError::Settings { name, .. } => at.field("settings").field(name),
        RegistryError::DuplicateName { .. } | RegistryError::Conflict { .. } => at,
    };
    Problem {
        path,
        problem: e.to_string(),
    }
}

/// Whether a `ron` error is about a value that is well-formed but wrong for its field.
fn is_about_a_value(code: &ron::Error) -> bool {
    matches!(
        code,
        ron::Error::Message(_)
            | ron::Error::InvalidValueForType { .. }
            | ron::Error::IntegerOutOfBounds
            | ron::Error::ExpectedInteger
            | ron::Error::ExpectedBoolean
            | ron::Error::ExpectedString
            | ron::Error::ExpectedOption
            | ron::Error::ExpectedFloat
            | ron::Error::ExpectedArray
            | ron::Error::ExpectedMap
    )
}

/// The operator's wording of a `ron` error; completes `field` where the error names it.
fn describe(code: &ron::Error, field: &mut FieldPath) -> String {
    let mut complete = |name: &str| {
        if field.last_field() != Some(name) {
            *field = std::mem::take(field).field(name);
        }
    };
    match code {
        ron::Error::NoSuchStructField {
            expected, found, ..
        } => {
            complete(found);
            format!("unknown field (expected one of: {})", expected.join(", "))
        }
        ron::Error::MissingStructField { field: name, .. } => {
            complete(name);
            "missing (this field is required)".into()
        }
        ron::Error::DuplicateStructField { field: name, .. } => {
            complete(name);
            "given twice".into()
        }
        ron::Error::Message(m) => m.clone(),
        ron::Error::InvalidValueForType { expected, found } => {
            format!("expected {expected}, found {found}")
        }
        ron::Error::Eof => "the file ends too early (an unclosed bracket?)".into(),
        ron::Error::ExpectedOption => "expected None or Some(...)".into(),
        ron::Error::ExpectedComma => "expected a comma before this".into(),
        ron::Error::TrailingCharacters => "unexpected text after the configuration".into(),
        ron::Error::ExpectedDifferentStructName { found, .. } => {
            format!("write the configuration as (...), not {found}(...)")
        }
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn error(text: &str) -> String {
        match parse("t.ron", text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    const ONE: &str = r#"(
    pipelines: [
        (
            name: "nic0",
            primary_in: "unix-listen:/tmp/p",
            secondary_in: "unix-listen:/tmp/s",
            outdev: "unix-listen:/tmp/o",
            compare_timeout: 0,
        ),
    ],
)"#;

    #[test]
    fn the_embedded_default_is_valid() {
        let c = embedded_default().expect("the embedded default is valid");
        assert_eq!(c.pipelines.len(), 1);
        assert_eq!(
            c.pipelines[0].notify_dev,
            Some(Endpoint::TcpListen("127.0.0.1:9004".into()))
        );
        assert_eq!(c.log, LogConfig::default());
    }

    #[test]
    fn the_example_file_is_valid_and_uses_every_default() {
        let c = parse(
            "colo-compare.example.ron",
            include_str!("../colo-compare.example.ron"),
        )
        .expect("the example is valid");
        let p = &c.pipelines[0];
        let defaults = PipelineConfig::new(
            &p.name,
            p.primary_in.clone(),
            p.secondary_in.clone(),
            p.outdev.clone(),
        );
        assert_eq!(
            PipelineConfig {
                notify_dev: None,
                ..p.clone()
            },
            defaults
        );
    }

    #[test]
    fn semantic_errors_point_at_the_field() {
        assert_eq!(
            error(ONE),
            "t.ron:8:30: pipelines[0].compare_timeout: must be positive"
        );
    }

    #[test]
    fn syntax_errors_name_the_field_around_them() {
        let typo = ONE.replace("compare_timeout: 0", "compare_timout: 5");
        assert!(
            error(&typo).starts_with(
                "t.ron:8:13: pipelines[0].compare_timout: unknown field (expected one of: name, "
            ),
            "{}",
            error(&typo)
        );
        let missing = ONE.replace("outdev: \"unix-listen:/tmp/o\",", "");
        assert_eq!(
            error(&missing),
            "t.ron:9:9: pipelines[0].outdev: missing (this field is required)"
        );
    }

    #[test]
    fn no_edit_of_the_example_panics_and_every_error_is_one_line_inside_the_file() {
        let example = include_str!("../colo-compare.example.ron");
        let lines = example.lines().count();
        let chars: Vec<char> = example.chars().collect();
        let mut refused = 0;
        for i in (0..chars.len()).step_by(11) {
            for replacement in ["", "(", ")", "\"", ",", ":", "[", "}", "0", "-x", "/*", "é"] {
                let mut text: String = chars[..i].iter().collect();
                text.push_str(replacement);
                text.extend(&chars[i + 1..]);
                let Err(e) = parse("f.ron", &text) else {
                    continue;
                };
                refused += 1;
                let line = e.to_string();
                assert!(!line.contains('\n'), "{line}");
                let LoadError::Invalid { at, .. } = e else {
                    panic!("{line}");
                };
                assert!(
                    (1..=lines + 1).contains(&at.line) && at.col >= 1,
                    "{line} for {text}"
                );
            }
        }
        assert!(refused > 500, "{refused}");
    }

    #[test]
    fn port_0_may_repeat_other_endpoints_may_not() {
        let two = |second_outdev: &str| {
            format!(
                r#"(pipelines: [
    (name: "a", primary_in: "tcp-listen:127.0.0.1:0", secondary_in: "tcp-listen:127.0.0.1:0",
     outdev: "tcp-listen:127.0.0.1:0", notify_dev: Some("unix-connect:/run/ctl")),
    (name: "b", primary_in: "tcp-listen:127.0.0.1:0", secondary_in: "tcp-listen:127.0.0.1:0",
     outdev: "{second_outdev}"),
])"#
            )
        };
        assert!(parse("t.ron", &two("tcp-listen:127.0.0.1:0")).is_ok());
        assert_eq!(
            parse("t.ron", &two("unix-connect:/run/ctl"))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(
                "t.ron:5:14: pipelines[1].outdev: unix-connect:/run/ctl is already used by \
                 pipelines[0].notify_dev"
                    .into()
            )
        );
    }

    #[test]
    fn metrics_stay_on_loopback_unless_allowed() {
        let with = |extra: &str| {
            ONE.replace("compare_timeout: 0,", "").replacen(
                "(\n    pipelines",
                &format!("(\n    {extra}\n    pipelines"),
                1,
            )
        };
        let c = parse("t.ron", &with(r#"metrics: Some("127.0.0.1:9100"),"#)).expect("loopback");
        assert_eq!(c.metrics.as_deref(), Some("127.0.0.1:9100"));
        assert!(parse("t.ron", &with(r#"metrics: Some("[::1]:0"),"#)).is_ok());
        assert_eq!(
            error(&with(r#"metrics: Some("0.0.0.0:9100"),"#)),
            "t.ron:2:14: metrics: 0.0.0.0:9100 is not a loopback address and the metrics \
             endpoint has no authentication; set metrics_allow_remote: true to serve it there"
        );
        assert!(
            parse(
                "t.ron",
                &with(r#"metrics: Some("0.0.0.0:9100"), metrics_allow_remote: true,"#)
            )
            .is_ok()
        );
        assert!(error(&with(r#"metrics: Some("localhost"),"#)).contains("expected IP:PORT"));
    }

    #[test]
    fn capture_errors_point_into_the_capture() {
        let text = ONE.replace(
            "compare_timeout: 0,",
            "capture: Some((path: \"/tmp/m.pcap\", max_bytes: 3)),",
        );
        assert_eq!(
            error(&text),
            "t.ron:8:60: pipelines[0].capture.max_bytes: must be at least 56 (a header and one \
             record pair)"
        );
    }

    #[test]
    fn beacon_errors_point_into_the_beacon() {
        let with = |beacon: &str| ONE.replace("compare_timeout: 0,", beacon);
        let good = r#"beacon: Some((primary_in: "unix-connect:/b/p", secondary_in: "unix-connect:/b/s",
            outdev: "unix-connect:/b/o", qmp: Some("unix-connect:/b/q"))),"#;
        let c = parse("t.ron", &with(good)).expect("a valid beacon");
        assert_eq!(
            c.pipelines[0].beacon.as_ref().and_then(|b| b.qmp.clone()),
            Some(Endpoint::UnixConnect("/b/q".into()))
        );
        assert_eq!(
            error(&with(
                &good.replace("unix-connect:/b/o", "unix-listen:/tmp/o")
            )),
            "t.ron:9:21: pipelines[0].beacon.outdev: is the same endpoint as outdev \
             (unix-listen:/tmp/o)"
        );
        assert_eq!(
            error(&with(&good.replace("unix-connect:/b/q", "tcp-conect:h:1"))),
            "t.ron:9:47: pipelines[0].beacon.qmp: \"tcp-conect:h:1\": expected tcp-listen:HOST:PORT, \
             tcp-connect:HOST:PORT, unix-listen:PATH or unix-connect:PATH"
        );
        assert_eq!(
            error(&with(&format!(
                "{good} notify_dev: Some(\"unix-listen:/tmp/n\"),"
            ))),
            "t.ron:8:21: pipelines[0].beacon: cannot be combined with notify_dev: in KVM COLO the \
             beacon marks flushes and takes requests, notify_dev is Xen COLO's channel"
        );
        assert!(
            error(&with(&good.replace("outdev: ", "outdv: ")))
                .contains("pipelines[0].beacon.outdv: unknown field"),
            "{}",
            error(&with(&good.replace("outdev: ", "outdv: ")))
        );
    }

    #[test]
    fn command_line_errors_name_the_option() {
        let mut p = PipelineConfig::new(
            "nic0",
            Endpoint::UnixListen("/a".into()),
            Endpoint::UnixListen("/b".into()),
            Endpoint::UnixListen("/c".into()),
        );
        p.max_queue_size = 0;
        assert_eq!(
            from_command_line(p.clone())
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("command line: --max-queue-size: must be positive".into())
        );
        p.max_queue_size = 1;
        p.beacon = Some(colo_actors::BeaconConfig {
            primary_in: Endpoint::UnixConnect("/q".into()),
            secondary_in: Endpoint::UnixConnect("/r".into()),
            outdev: Endpoint::UnixListen("/c".into()),
            qmp: None,
        });
        assert_eq!(
            from_command_line(p).map(|_| ()).map_err(|e| e.to_string()),
            Err(
                "command line: --beacon-outdev: is the same endpoint as outdev (unix-listen:/c)"
                    .into()
            )
        );
    }
}
