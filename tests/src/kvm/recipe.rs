//! The README's "KVM COLO" recipe, read from the README itself: the options added to the
//! primary QEMU for the beacon, and colo-compare's pipeline with its beacon. The tests change
//! only the directory `/run/colo/` (to their temporary directory) and the pipeline's own three
//! sockets.

use std::path::Path;

use colo_actors::{BeaconConfig, PipelineConfig};

use crate::qemu::readme::{arguments, block, readme_path};

/// The section's heading.
pub const SECTION: &str = "## KVM COLO";
/// Marker before the primary QEMU's beacon options.
pub const QEMU_MARK: &str = "<!-- kvm-beacon-qemu -->";
/// Marker before the colo-compare configuration.
pub const CONFIG_MARK: &str = "<!-- kvm-beacon-config -->";
/// The directory the README puts the beacon's sockets in.
pub const RUN_DIR: &str = "/run/colo/";

/// What the README says to run, with its sockets moved into a test's directory.
#[derive(Clone, Debug)]
pub struct BeaconRecipe {
    /// Options added to the primary QEMU, one argument per element.
    pub qemu: Vec<String>,
    /// The one pipeline, beacon included.
    pub pipeline: PipelineConfig,
}

impl BeaconRecipe {
    /// Reads the recipe from the README with its sockets in `dir`; panics naming what is
    /// missing.
    pub fn load(dir: &Path) -> BeaconRecipe {
        let path = readme_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        BeaconRecipe::parse(&text, dir).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Reads the recipe from README text, with `/run/colo/` replaced by `dir`.
    pub fn parse(readme: &str, dir: &Path) -> Result<BeaconRecipe, String> {
        let start = readme
            .find(SECTION)
            .ok_or_else(|| format!("no section \"{SECTION}\""))?;
        let rest = &readme[start + SECTION.len()..];
        let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
        let here = format!("{}/", dir.display());
        let in_section = |e: String| format!("section \"{SECTION}\": {e}");
        let qemu = block(section, QEMU_MARK).map_err(in_section)?;
        let config = block(section, CONFIG_MARK).map_err(in_section)?;
        let config = colo_compare::config::parse("README.md", &config.replace(RUN_DIR, &here))
            .map_err(|e| format!("the configuration block does not load: {e}"))?;
        let [pipeline]: [PipelineConfig; 1] =
            config.pipelines.try_into().map_err(|p: Vec<_>| {
                format!("the configuration block has {} pipelines, not one", p.len())
            })?;
        if pipeline.beacon.is_none() {
            return Err("the configuration block's pipeline has no beacon".into());
        }
        Ok(BeaconRecipe {
            qemu: arguments(&qemu.replace(RUN_DIR, &here)),
            pipeline,
        })
    }

    /// The pipeline's beacon.
    pub fn beacon(&self) -> BeaconConfig {
        self.pipeline
            .beacon
            .clone()
            .expect("the recipe's pipeline has a beacon")
    }

    /// The `-object colo-compare,...` option's value.
    pub fn beacon_object(&self) -> &str {
        self.qemu
            .iter()
            .find(|a| a.starts_with("colo-compare,"))
            .expect("the recipe has a colo-compare object")
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::qemu::readme::option_value;

    #[test]
    fn the_readme_recipe_is_complete_and_consistent() {
        let dir = Path::new("/tmp/t");
        let r = BeaconRecipe::load(dir);
        r.pipeline.validate().expect("a valid pipeline");
        assert!(
            r.pipeline.notify_dev.is_none(),
            "the beacon replaces notify_dev"
        );
        let object = r.beacon_object();
        assert_eq!(option_value(object, "compare_timeout"), Some("3600000"));
        assert_eq!(option_value(object, "notify_dev"), None);
        assert_eq!(option_value(object, "max_queue_size"), None);
        assert!(option_value(object, "iothread").is_some());
        // Each of the beacon's chardevs is the socket the pipeline's beacon dials.
        let b = r.beacon();
        let path_of = |id: &str| {
            let chardev = r
                .qemu
                .iter()
                .find(|a| a.starts_with("socket,") && option_value(a, "id") == Some(id))
                .unwrap_or_else(|| panic!("no chardev {id}"));
            assert_eq!(option_value(chardev, "server"), Some("on"));
            format!(
                "unix-connect:{}",
                option_value(chardev, "path").expect("a path")
            )
        };
        let of = |property: &str| path_of(option_value(object, property).expect("a chardev"));
        assert_eq!(of("primary_in"), b.primary_in.to_string());
        assert_eq!(of("secondary_in"), b.secondary_in.to_string());
        assert_eq!(of("outdev"), b.outdev.to_string());
        let monitor = r
            .qemu
            .iter()
            .find(|a| option_value(a, "mode") == Some("control"))
            .expect("a QMP monitor for colo-compare");
        let qmp = b.qmp.expect("the recipe uses QMP").to_string();
        assert_eq!(
            path_of(option_value(monitor, "chardev").expect("its chardev")),
            qmp
        );
        assert!(qmp.starts_with("unix-connect:/tmp/t/"), "{qmp}");
        assert!(!r.qemu.iter().any(|a| a.contains(RUN_DIR)));
    }
}
