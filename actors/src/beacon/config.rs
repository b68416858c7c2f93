//! Beacon mode's settings: where the primary QEMU's beacon `colo-compare` object and,
//! optionally, its QMP monitor are.

use serde::{Deserialize, Serialize};

use colo_core::config::ConfigError;

use crate::endpoint::Endpoint;

/// The beacon of a KVM COLO pipeline (see `colo_core::beacon`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeaconConfig {
    /// The beacon object's `primary_in` chardev: the parked frame is written here.
    pub primary_in: Endpoint,
    /// The beacon object's `secondary_in` chardev: checkpoint requests (pokes) go here.
    pub secondary_in: Endpoint,
    /// The beacon object's `outdev` chardev: the parked frame comes out here at each flush.
    pub outdev: Endpoint,
    /// A QMP monitor of the primary QEMU: the request path while the beacon is not
    /// connected, missed-flush detection (`STOP`/`RESUME`) and `COLO_EXIT` (failover).
    #[serde(default)]
    pub qmp: Option<Endpoint>,
}

impl BeaconConfig {
    /// The beacon's sockets with their field names, QMP last when set.
    pub fn endpoints(&self) -> Vec<(&'static str, &Endpoint)> {
        let mut all = vec![
            ("beacon.primary_in", &self.primary_in),
            ("beacon.secondary_in", &self.secondary_in),
            ("beacon.outdev", &self.outdev),
        ];
        if let Some(q) = &self.qmp {
            all.push(("beacon.qmp", q));
        }
        all
    }
}

/// Refuses two sockets of one pipeline (its own and its beacon's, named as in the file) that
/// are the same endpoint; TCP port 0 is a fresh port at every bind, so it may repeat.
pub(crate) fn distinct(ends: &[(&'static str, &Endpoint)]) -> Result<(), ConfigError> {
    for (i, (a, ea)) in ends.iter().enumerate() {
        if let Some((b, _)) = ends[i + 1..]
            .iter()
            .find(|(_, eb)| eb == ea && !ea.is_ephemeral())
        {
            return Err(ConfigError {
                field: b,
                problem: format!("is the same endpoint as {a} ({ea})"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().expect("valid endpoint")
    }

    #[test]
    fn reads_the_sockets_and_names_them_as_in_the_file() {
        let c: BeaconConfig = ron::from_str(
            r#"(primary_in: "unix-connect:/b/p", secondary_in: "unix-connect:/b/s",
                outdev: "unix-connect:/b/o", qmp: Some("unix-connect:/b/qmp"))"#,
        )
        .expect("valid");
        let names: Vec<&str> = c.endpoints().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "beacon.primary_in",
                "beacon.secondary_in",
                "beacon.outdev",
                "beacon.qmp"
            ]
        );
        assert_eq!(c.qmp, Some(ep("unix-connect:/b/qmp")));
        let bare: BeaconConfig = ron::from_str(
            r#"(primary_in: "tcp-connect:h:1", secondary_in: "tcp-connect:h:2", outdev: "tcp-connect:h:3")"#,
        )
        .expect("qmp is optional");
        assert_eq!(bare.endpoints().len(), 3);
    }

    #[test]
    fn the_same_socket_twice_is_named() {
        let a = ep("unix-connect:/x");
        let b = ep("unix-connect:/y");
        let zero = ep("tcp-listen:h:0");
        assert_eq!(distinct(&[("p", &a), ("q", &b)]), Ok(()));
        assert_eq!(distinct(&[("p", &zero), ("q", &zero)]), Ok(()));
        assert_eq!(
            distinct(&[("p", &a), ("q", &b), ("beacon.outdev", &a)]).map_err(|e| e.to_string()),
            Err("beacon.outdev: is the same endpoint as p (unix-connect:/x)".into())
        );
    }
}
