//! [`Preset`]: the `endpoint.type` of a configuration.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// A preset: TLS on or off and timings suited to an environment (`endpoint.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// TLS with the system (native) and webpki roots, health checks on.
    Production,
    /// Plaintext, for a server on the same machine or network.
    Local,
    /// Plaintext, fast retries and timeouts, no periodic health pings.
    Test,
}

impl Preset {
    /// The name used in TOML and environment variables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Production => "production",
            Preset::Local => "local",
            Preset::Test => "test",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "production" => Ok(Preset::Production),
            "local" => Ok(Preset::Local),
            "test" => Ok(Preset::Test),
            _ => Err(ConfigError::invalid(
                "endpoint.type",
                format!("{s:?}"),
                PRESETS,
            )),
        }
    }
}

/// What `endpoint.type` accepts, in the words of errors.
pub(super) const PRESETS: &str = "must be one of production, local, test";
