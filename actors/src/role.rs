//! Which socket of a pipeline an actor serves; named as QEMU names the properties, so log
//! lines read like QEMU's (`primary_in`, `secondary_in`, `outdev`, `notify_dev`).

use std::fmt;

use colo_core::Side;

/// One of a pipeline's four sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The primary guest's packets come in here.
    PrimaryIn,
    /// The secondary guest's packets come in here.
    SecondaryIn,
    /// Released primary packets go out here.
    Outdev,
    /// The COLO controller's channel.
    NotifyDev,
}

impl Role {
    /// QEMU's property name for this socket.
    pub const fn name(self) -> &'static str {
        match self {
            Role::PrimaryIn => "primary_in",
            Role::SecondaryIn => "secondary_in",
            Role::Outdev => "outdev",
            Role::NotifyDev => "notify_dev",
        }
    }

    /// The input socket that carries `side`'s packets.
    pub const fn input(side: Side) -> Role {
        match side {
            Side::Primary => Role::PrimaryIn,
            Side::Secondary => Role::SecondaryIn,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
