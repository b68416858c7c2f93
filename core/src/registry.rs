//! The set of comparators linked into the program, and which one takes a flow.
//!
//! Comparator crates register with `inventory::submit!` a [`Registration`]; a crate that is
//! linked (named in code: `use my_plugin as _;`) contributes, one that is not simply is not
//! there. [`Registry::build`] turns the registrations and the comparator sections of the
//! configuration into the comparators a tracker uses. For a flow, the matching [`Claim`] with
//! the highest specificity wins; two enabled comparators making the same claim are a
//! configuration error rather than a silent tie.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::comparator::{Claim, Comparator};
use crate::flow::FlowKey;

/// How a comparator is built from its configuration section.
pub type BuildFn = fn(Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String>;

/// A comparator's entry in the program-wide registry.
pub struct Registration {
    /// Unique short name, also the key of its configuration section.
    pub name: &'static str,
    /// One line for `colo-compare comparators`.
    pub summary: &'static str,
    /// Builds the comparator from its section (`None` when the file has none).
    pub build: BuildFn,
}

inventory::collect!(Registration);

/// Comparator sections of the configuration.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComparatorsConfig {
    /// Names of registered comparators to leave out.
    pub disabled: Vec<String>,
    /// Per-comparator settings, by name.
    pub settings: BTreeMap<String, ron::Value>,
}

/// Why the comparators could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The configuration names a comparator that is not linked into this program.
    #[error("unknown comparator \"{name}\" (linked: {known})")]
    Unknown {
        /// The name given.
        name: String,
        /// The registered names.
        known: String,
    },
    /// Two registrations share a name.
    #[error("two comparators are registered as \"{name}\"")]
    DuplicateName {
        /// The name.
        name: &'static str,
    },
    /// Two enabled comparators make the same claim.
    #[error("comparators \"{first}\" and \"{second}\" both claim {claim}; disable one")]
    Conflict {
        /// One comparator.
        first: &'static str,
        /// The other.
        second: &'static str,
        /// The claim both make.
        claim: Claim,
    },
    /// A comparator refused its settings.
    #[error("comparator \"{name}\": {problem}")]
    Settings {
        /// The comparator.
        name: &'static str,
        /// What it said.
        problem: String,
    },
}

/// Deserializes a comparator's section into its settings type; no section gives the defaults.
pub fn settings<T: DeserializeOwned + Default>(section: Option<&ron::Value>) -> Result<T, String> {
    match section {
        None => Ok(T::default()),
        Some(v) => v.clone().into_rust::<T>().map_err(|e| e.to_string()),
    }
}

/// One usable comparator.
pub struct Entry {
    /// Its registered name.
    pub name: &'static str,
    /// Its one-line description.
    pub summary: &'static str,
    /// Its claims.
    pub claims: Vec<Claim>,
    /// The comparator.
    pub comparator: Arc<dyn Comparator>,
}

/// The comparators a tracker chooses from.
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Every registration linked into the program, sorted by name.
    pub fn registrations() -> Vec<&'static Registration> {
        let mut all: Vec<_> = inventory::iter::<Registration>.into_iter().collect();
        all.sort_by_key(|r| r.name);
        all
    }

    /// Builds the registry from every linked registration and the configuration.
    pub fn build(config: &ComparatorsConfig) -> Result<Registry, RegistryError> {
        Self::build_from(&Self::registrations(), config)
    }

    /// Builds the registry from the given registrations (tests use this to stage one).
    pub fn build_from(
        registrations: &[&Registration],
        config: &ComparatorsConfig,
    ) -> Result<Registry, RegistryError> {
        let known = || {
            registrations
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        for name in config.disabled.iter().chain(config.settings.keys()) {
            if !registrations.iter().any(|r| r.name == name) {
                return Err(RegistryError::Unknown {
                    name: name.clone(),
                    known: known(),
                });
            }
        }
        let mut entries: Vec<Entry> = Vec::new();
        for r in registrations {
            if entries.iter().any(|e| e.name == r.name) {
                return Err(RegistryError::DuplicateName { name: r.name });
            }
            if config.disabled.iter().any(|d| d == r.name) {
                continue;
            }
            let comparator = (r.build)(config.settings.get(r.name)).map_err(|problem| {
                RegistryError::Settings {
                    name: r.name,
                    problem,
                }
            })?;
            let claims = comparator.claims();
            for e in &entries {
                if let Some(claim) = claims.iter().find(|c| e.claims.contains(c)) {
                    return Err(RegistryError::Conflict {
                        first: e.name,
                        second: r.name,
                        claim: *claim,
                    });
                }
            }
            entries.push(Entry {
                name: r.name,
                summary: r.summary,
                claims,
                comparator,
            });
        }
        Ok(Registry { entries })
    }

    /// The usable comparators, by name.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The index of the comparator that takes a flow with this key, if any claims it.
    pub fn select(&self, key: &FlowKey) -> Option<usize> {
        let mut best: Option<(u8, usize)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            for c in &e.claims {
                if c.matches(key) && best.is_none_or(|(s, _)| c.specificity() > s) {
                    best = Some((c.specificity(), i));
                }
            }
        }
        best.map(|(_, i)| i)
    }
}
