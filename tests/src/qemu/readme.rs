//! The README's "Running with QEMU" recipe, read from the README itself so that the tests run
//! exactly what users are told to run.
//!
//! The section holds three marked code blocks: the options added to the primary host's QEMU,
//! those added to the secondary host's QEMU, and the colo-compare configuration. The tests
//! change only what the README says may change: addresses (TCP port or UNIX path), who
//! listens (`server=on,wait=off` for `reconnect-ms=...`, `*-connect:` for `*-listen:`),
//! `vnet_hdr_support`, and `reconnect=SECONDS` on QEMU before 9.2.

use std::path::{Path, PathBuf};

use colo_actors::{Endpoint, PipelineConfig, Role};
use serde::Deserialize;

/// The section's heading.
pub const SECTION: &str = "## Running with QEMU";
/// Marker before the primary host's options.
pub const PRIMARY_MARK: &str = "<!-- qemu-primary-host -->";
/// Marker before the secondary host's options.
pub const SECONDARY_MARK: &str = "<!-- qemu-secondary-host -->";
/// Marker before the colo-compare configuration.
pub const CONFIG_MARK: &str = "<!-- colo-compare-config -->";

/// What the README says to run.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// Options added to the primary host's QEMU, one argument per element.
    pub primary_host: Vec<String>,
    /// Options added to the secondary host's QEMU.
    pub secondary_host: Vec<String>,
    /// Its one pipeline.
    pub pipeline: PipelineConfig,
}

/// The configuration file's shape, as far as the README uses it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    pipelines: Vec<PipelineConfig>,
}

/// The README beside the workspace root.
pub fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

impl Recipe {
    /// Reads the recipe from the README; panics naming what is missing.
    pub fn load() -> Recipe {
        let path = readme_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Recipe::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Reads the recipe from README text.
    pub fn parse(readme: &str) -> Result<Recipe, String> {
        let start = readme
            .find(SECTION)
            .ok_or_else(|| format!("no section \"{SECTION}\""))?;
        let rest = &readme[start + SECTION.len()..];
        let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
        let config_text = block(section, CONFIG_MARK)?;
        let file: ConfigFile = ron::from_str(&config_text)
            .map_err(|e| format!("the configuration block does not load: {e}"))?;
        let [pipeline]: [PipelineConfig; 1] = file.pipelines.try_into().map_err(|p: Vec<_>| {
            format!("the configuration block has {} pipelines, not one", p.len())
        })?;
        Ok(Recipe {
            primary_host: arguments(&block(section, PRIMARY_MARK)?),
            secondary_host: arguments(&block(section, SECONDARY_MARK)?),
            pipeline,
        })
    }

    /// The pipeline socket the README connects a chardev on `port` to.
    pub fn role_of_port(&self, port: u16) -> Option<Role> {
        [
            Role::PrimaryIn,
            Role::SecondaryIn,
            Role::Outdev,
            Role::NotifyDev,
        ]
        .into_iter()
        .find(|r| self.endpoint(*r).and_then(endpoint_port) == Some(port))
    }

    /// The configured endpoint of `role`.
    pub fn endpoint(&self, role: Role) -> Option<&Endpoint> {
        let p = &self.pipeline;
        match role {
            Role::PrimaryIn => Some(&p.primary_in),
            Role::SecondaryIn => Some(&p.secondary_in),
            Role::Outdev => Some(&p.outdev),
            Role::NotifyDev => p.notify_dev.as_ref(),
        }
    }
}

/// The TCP port of an endpoint.
pub fn endpoint_port(e: &Endpoint) -> Option<u16> {
    match e {
        Endpoint::TcpListen(a) | Endpoint::TcpConnect(a) => a.rsplit_once(':')?.1.parse().ok(),
        Endpoint::UnixListen(_) | Endpoint::UnixConnect(_) => None,
    }
}

/// The fenced code block that follows `mark`.
pub fn block(section: &str, mark: &str) -> Result<String, String> {
    let at = section
        .find(mark)
        .ok_or_else(|| format!("no {mark} in \"{SECTION}\""))?;
    let mut lines = section[at + mark.len()..].lines().skip(1);
    if !lines.next().is_some_and(|l| l.starts_with("```")) {
        return Err(format!("{mark} is not followed by a code block"));
    }
    let mut body = String::new();
    for line in lines {
        if line.starts_with("```") {
            return Ok(body);
        }
        body.push_str(line);
        body.push('\n');
    }
    Err(format!("the code block after {mark} is not closed"))
}

/// Shell-style lines of options into arguments: comments and line continuations dropped.
pub fn arguments(block: &str) -> Vec<String> {
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| l.trim_end_matches('\\').split_whitespace())
        .map(str::to_string)
        .collect()
}

/// The value of `key=` in a comma-separated QEMU option string.
pub fn option_value<'a>(opts: &'a str, key: &str) -> Option<&'a str> {
    opts.split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The `(option, value)` pairs of `args` (`-chardev socket,...` gives `("-chardev", "socket,...")`).
pub fn options(args: &[String]) -> Vec<(&str, &str)> {
    args.chunks(2)
        .filter_map(|c| match c {
            [o, v] => Some((o.as_str(), v.as_str())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod test {
    use super::*;

    const SAMPLE: &str = "# x\n\n## Running with QEMU\n\ntext\n\n<!-- qemu-primary-host -->\n```sh\n\
# a comment\n  -chardev socket,id=a,host=127.0.0.1,port=9001,reconnect-ms=1000 \\\n  \
-object filter-redirector,id=r,netdev=hn0,queue=rx,outdev=a\n```\n\n<!-- qemu-secondary-host -->\n\
```sh\n-chardev socket,id=b,host=192.0.2.1,port=9002,reconnect-ms=1000\n```\n\n\
<!-- colo-compare-config -->\n```ron\n(pipelines: [(name: \"n\", primary_in: \"tcp-listen:127.0.0.1:9001\", \
secondary_in: \"tcp-listen:192.0.2.1:9002\", outdev: \"tcp-listen:127.0.0.1:9003\")])\n```\n\n## Next\n";

    #[test]
    fn reads_the_marked_blocks() {
        let r = Recipe::parse(SAMPLE).expect("a recipe");
        assert_eq!(
            r.primary_host,
            [
                "-chardev",
                "socket,id=a,host=127.0.0.1,port=9001,reconnect-ms=1000",
                "-object",
                "filter-redirector,id=r,netdev=hn0,queue=rx,outdev=a"
            ]
        );
        assert_eq!(r.secondary_host.len(), 2);
        assert_eq!(r.pipeline.name, "n");
        assert_eq!(r.role_of_port(9002), Some(Role::SecondaryIn));
        assert_eq!(r.role_of_port(9004), None);
        assert_eq!(option_value(&r.primary_host[1], "port"), Some("9001"));
        assert_eq!(option_value(&r.primary_host[1], "id"), Some("a"));
    }

    #[test]
    fn names_what_is_missing() {
        let e = Recipe::parse(&SAMPLE.replace("<!-- qemu-secondary-host -->", ""))
            .expect_err("incomplete");
        assert!(e.contains("qemu-secondary-host"), "{e}");
        let e = Recipe::parse("# nothing").expect_err("no section");
        assert!(e.contains("Running with QEMU"), "{e}");
    }
}
