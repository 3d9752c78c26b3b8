//! The attribute's keys, in one table: what each accepts, which runtime field it sets (its
//! bounds come from that field's rule in `rules::FIELDS`), and where its value goes.

use crate::rules;

/// What a key's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accepts {
    /// A non-blank string.
    Name,
    /// An integer literal within the field's `Kind::Count` bounds.
    Count,
    /// A duration string within the field's `Kind::Duration` bounds.
    Duration,
    /// A duration string, or `"off"`.
    DurationOrOff,
    /// `true` or `false`.
    Bool,
    /// One of [`PRESETS`].
    Preset,
    /// An `http://` or `https://` URI (for `endpoint`, also `etcd:///<prefix>`); the key may
    /// be repeated.
    Endpoint,
    /// An environment variable prefix.
    EnvPrefix,
    /// A JSON file, relative to the crate's `Cargo.toml`, read and checked at compile time
    /// and compiled in.
    JsonFile,
}

/// Where a key's value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The name argument of `NamedPool::new`.
    PoolName,
    /// The `env` of `PoolDefaults::new`, read by `POOL.start_from_env()`.
    EnvPrefix,
    /// A call of the `PoolConfigBuilder` setter named like the key; `field` is the TOML path
    /// of the runtime field it sets, whose rule bounds the value.
    Builder { field: &'static str },
}

/// One key of `#[grpc_pool(...)]`.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) accepts: Accepts,
    pub(crate) target: Target,
    /// The example value of "expected ..." messages (none for `Bool` and `Preset`).
    pub(crate) example: &'static str,
}

const fn key(name: &'static str, accepts: Accepts, target: Target, example: &'static str) -> Key {
    Key {
        name,
        accepts,
        target,
        example,
    }
}

const fn builder(
    name: &'static str,
    accepts: Accepts,
    field: &'static str,
    example: &'static str,
) -> Key {
    key(name, accepts, Target::Builder { field }, example)
}

/// Every key, in the order "unknown key" messages list them.
pub(crate) const KEYS: &[Key] = &[
    key("name", Accepts::Name, Target::PoolName, "\"users\""),
    builder("size", Accepts::Count, "pool.size", "4"),
    builder(
        "checkout_timeout",
        Accepts::Duration,
        "pool.checkout_timeout",
        "\"2s\"",
    ),
    builder(
        "connect_timeout",
        Accepts::Duration,
        "connection.connect_timeout",
        "\"5s\"",
    ),
    builder(
        "keepalive",
        Accepts::Duration,
        "connection.keepalive",
        "\"30s\"",
    ),
    builder(
        "keepalive_while_idle",
        Accepts::Bool,
        "connection.keepalive_while_idle",
        "",
    ),
    builder(
        "reconnect_probe_interval",
        Accepts::Duration,
        "connection.reconnect_probe_interval",
        "\"50ms\"",
    ),
    builder(
        "ping_interval",
        Accepts::DurationOrOff,
        "connection.ping_interval",
        "\"25s\"",
    ),
    builder("health_check", Accepts::Bool, "connection.health_check", ""),
    builder(
        "max_in_flight_per_channel",
        Accepts::Count,
        "pool.max_in_flight_per_channel",
        "100",
    ),
    builder("preset", Accepts::Preset, "endpoint.type", ""),
    builder(
        "endpoint",
        Accepts::Endpoint,
        "endpoints",
        "\"http://127.0.0.1:50051\"",
    ),
    builder(
        "etcd_endpoint",
        Accepts::Endpoint,
        "discovery.etcd.endpoints",
        "\"http://127.0.0.1:2379\"",
    ),
    key("env", Accepts::EnvPrefix, Target::EnvPrefix, "\"USERS\""),
    builder(
        "service_config",
        Accepts::JsonFile,
        "connection.service_config",
        "\"service_config.json\"",
    ),
    builder("min_size", Accepts::Count, "pool.min_size", "2"),
    builder("max_size", Accepts::Count, "pool.max_size", "16"),
    builder(
        "max_connection_age",
        Accepts::DurationOrOff,
        "connection.max_connection_age",
        "\"30m\"",
    ),
    builder("wait_for_ready", Accepts::Bool, "pool.wait_for_ready", ""),
];

/// `preset = "..."` values and the `Preset` variants they expand to.
pub(crate) const PRESETS: &[(&str, &str)] = &[
    ("production", "Production"),
    ("local", "Local"),
    ("test", "Test"),
];

/// The [`PRESETS`] for messages: `"production", "local" or "test"`.
pub(crate) const PRESET_CHOICES: &str = "\"production\", \"local\" or \"test\"";

impl Key {
    /// The key called `name`.
    pub(crate) fn find(name: &str) -> Option<&'static Key> {
        KEYS.iter().find(|k| k.name == name)
    }

    /// `` `name`, `size`, ... `` for "expected one of" messages.
    pub(crate) fn list() -> String {
        let names: Vec<String> = KEYS.iter().map(|k| format!("`{}`", k.name)).collect();
        names.join(", ")
    }

    /// Whether the key may be given more than once.
    pub(crate) fn repeatable(&self) -> bool {
        self.accepts == Accepts::Endpoint
    }

    /// The rule of the runtime field the key sets.
    pub(crate) fn rule(&self) -> Option<rules::Kind> {
        match self.target {
            Target::Builder { field } => rules::field(field).map(|f| f.kind),
            Target::PoolName | Target::EnvPrefix => None,
        }
    }

    /// What the value should look like, for "expected ..." messages.
    pub(crate) fn expected(&self) -> String {
        let (name, example) = (self.name, self.example);
        let what = match self.accepts {
            Accepts::Name | Accepts::EnvPrefix => "a string literal",
            Accepts::Count => "an integer literal",
            Accepts::Duration => "a duration string",
            Accepts::DurationOrOff => "a duration string or \"off\"",
            Accepts::Endpoint => "a URI string",
            Accepts::JsonFile => "a file path (relative to Cargo.toml)",
            Accepts::Bool => return format!("`true` or `false` for `{name}`"),
            Accepts::Preset => return format!("a string literal for `{name}`: {PRESET_CHOICES}"),
        };
        format!("{what} for `{name}`, e.g. `{name} = {example}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keys_set_runtime_fields_of_their_kind() {
        for key in KEYS {
            let Target::Builder { field } = key.target else {
                continue;
            };
            let kind = rules::field(field)
                .unwrap_or_else(|| panic!("`{}`: no runtime field {field}", key.name))
                .kind;
            let fits = match key.accepts {
                Accepts::Count => matches!(kind, rules::Kind::Count { .. }),
                Accepts::Duration => matches!(kind, rules::Kind::Duration { off: false, .. }),
                Accepts::DurationOrOff => matches!(kind, rules::Kind::Duration { off: true, .. }),
                Accepts::Bool => kind == rules::Kind::Bool,
                Accepts::Preset => kind == rules::Kind::Text,
                Accepts::Endpoint => kind == rules::Kind::List,
                Accepts::JsonFile => kind == rules::Kind::Text,
                Accepts::Name | Accepts::EnvPrefix => false,
            };
            assert!(
                fits,
                "`{}` accepts {:?}, {field} is {kind:?}",
                key.name, key.accepts
            );
        }
    }

    #[test]
    fn keys_are_distinct() {
        for (i, a) in KEYS.iter().enumerate() {
            assert!(KEYS[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
    }
}
