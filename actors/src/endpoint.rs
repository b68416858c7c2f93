//! Where a pipeline's sockets are, written like socat: `tcp-listen:HOST:PORT`,
//! `tcp-connect:HOST:PORT`, `unix-listen:PATH`, `unix-connect:PATH`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// One socket of a pipeline: TCP or UNIX, listening for its peer or dialling it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Listen on `HOST:PORT` and serve one peer at a time.
    TcpListen(String),
    /// Dial `HOST:PORT`, redialling with backoff when the peer goes away.
    TcpConnect(String),
    /// Listen on a UNIX socket path (created with mode 0600).
    UnixListen(PathBuf),
    /// Dial a UNIX socket path.
    UnixConnect(PathBuf),
}

/// A malformed endpoint string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// The scheme is not one of the four known ones.
    #[error(
        "\"{0}\": expected tcp-listen:HOST:PORT, tcp-connect:HOST:PORT, unix-listen:PATH or unix-connect:PATH"
    )]
    Scheme(String),
    /// A TCP address without a valid `HOST:PORT`.
    #[error("\"{0}\": expected HOST:PORT with a port number (0-65535)")]
    Address(String),
    /// A UNIX endpoint with an empty path.
    #[error("\"{0}\": the socket path is empty")]
    EmptyPath(String),
}

impl Endpoint {
    /// Whether this endpoint waits for its peer.
    pub fn is_listen(&self) -> bool {
        matches!(self, Endpoint::TcpListen(_) | Endpoint::UnixListen(_))
    }

    /// Whether every bind of this endpoint gets a fresh address (TCP port 0), so that two
    /// sockets written alike are still distinct.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self, Endpoint::TcpListen(a) if a.ends_with(":0"))
    }
}

fn host_port(s: &str, rest: &str) -> Result<String, EndpointError> {
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| EndpointError::Address(s.into()))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(EndpointError::Address(s.into()));
    }
    Ok(rest.to_string())
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| EndpointError::Scheme(s.into()))?;
        let path = |rest: &str| {
            if rest.is_empty() {
                Err(EndpointError::EmptyPath(s.into()))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        match scheme {
            "tcp-listen" => Ok(Endpoint::TcpListen(host_port(s, rest)?)),
            "tcp-connect" => Ok(Endpoint::TcpConnect(host_port(s, rest)?)),
            "unix-listen" => Ok(Endpoint::UnixListen(path(rest)?)),
            "unix-connect" => Ok(Endpoint::UnixConnect(path(rest)?)),
            _ => Err(EndpointError::Scheme(s.into())),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::TcpListen(a) => write!(f, "tcp-listen:{a}"),
            Endpoint::TcpConnect(a) => write!(f, "tcp-connect:{a}"),
            Endpoint::UnixListen(p) => write!(f, "unix-listen:{}", p.display()),
            Endpoint::UnixConnect(p) => write!(f, "unix-connect:{}", p.display()),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parses_the_four_forms() {
        assert_eq!(
            "tcp-listen:127.0.0.1:9001".parse(),
            Ok(Endpoint::TcpListen("127.0.0.1:9001".into()))
        );
        assert_eq!(
            "tcp-connect:[::1]:9".parse(),
            Ok(Endpoint::TcpConnect("[::1]:9".into()))
        );
        assert_eq!(
            "unix-listen:/tmp/p".parse(),
            Ok(Endpoint::UnixListen("/tmp/p".into()))
        );
        assert_eq!(
            "unix-connect:/tmp/p".parse(),
            Ok(Endpoint::UnixConnect("/tmp/p".into()))
        );
        for s in [
            "tcp:1:2",
            "tcp-listen:9001",
            "tcp-listen:h:99999",
            "unix-listen:",
            "nothing",
        ] {
            assert!(s.parse::<Endpoint>().is_err(), "{s}");
        }
        let e: Endpoint = "tcp-listen:localhost:0".parse().expect("valid");
        assert_eq!(e.to_string(), "tcp-listen:localhost:0");
    }
}
