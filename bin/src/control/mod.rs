//! The control socket: the daemon's operator interface (`stats`, `flows`, `checkpoint`,
//! `failover`, `shutdown`, `reload`) as JSON lines over a UNIX socket, spoken by
//! `colo-compare ctl`.

pub mod protocol;
pub mod reload;
pub mod server;
