//! The build-time check of a gRPC service config: every `service` and `method` its
//! `methodConfig` entries name must exist in the compiled protos, or the build fails naming
//! the file and line of the entry. A misspelt name would otherwise leave its methods without
//! the policy, silently (the runtime cannot tell a typo from another client's service).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use prost_types::FileDescriptorSet;
use serde_json::Value;

use crate::error::build_error;

/// Checks the names of the service config at `path` against `fds`; returns its JSON.
pub(crate) fn check(path: &Path, fds: &FileDescriptorSet) -> io::Result<Value> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        build_error(
            e.kind(),
            format!("service config {shown}: cannot read it: {e}"),
        )
    })?;
    let root: Value = serde_json::from_str(&text).map_err(|e| {
        build_error(
            io::ErrorKind::InvalidData,
            format!("{shown}:{}:{}: invalid JSON: {e}", e.line(), e.column()),
        )
    })?;
    let services = services(fds);
    let mut errors = Vec::new();
    let entries = root.get("methodConfig").and_then(Value::as_array);
    for (i, entry) in entries.into_iter().flatten().enumerate() {
        let names = entry.get("name").and_then(Value::as_array);
        for (j, name) in names.into_iter().flatten().enumerate() {
            let service = name.get("service").and_then(Value::as_str).unwrap_or("");
            let method = name.get("method").and_then(Value::as_str).unwrap_or("");
            if service.is_empty() {
                continue; // the default entry
            }
            let at = format!("methodConfig[{i}].name[{j}]");
            let Some(methods) = services.get(service) else {
                let known: Vec<&str> = services.keys().map(String::as_str).collect();
                errors.push(format!(
                    "{shown}:{}: {at}.service {service:?} is no service of the compiled protos (they have: {})",
                    line_of(&text, service),
                    known.join(", ")
                ));
                continue;
            };
            if !method.is_empty() && !methods.iter().any(|m| m == method) {
                errors.push(format!(
                    "{shown}:{}: {at}.method {method:?} is no method of {service} (it has: {})",
                    line_of(&text, method),
                    methods.join(", ")
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(root)
    } else {
        Err(build_error(io::ErrorKind::InvalidInput, errors.join("\n")))
    }
}

/// Every service of `fds` by full name (`package.Service`), with its methods.
fn services(fds: &FileDescriptorSet) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            let name = if package.is_empty() {
                service.name().to_owned()
            } else {
                format!("{package}.{}", service.name())
            };
            let methods = service.method.iter().map(|m| m.name().to_owned()).collect();
            out.insert(name, methods);
        }
    }
    out
}

/// The 1-based line of the first occurrence of `"value"` in `text` (the entry that names it).
fn line_of(text: &str, value: &str) -> usize {
    let quoted = format!("\"{value}\"");
    text.find(&quoted)
        .map_or(1, |at| text[..at].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};

    fn fds() -> FileDescriptorSet {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                package: Some("users.v1".into()),
                service: vec![ServiceDescriptorProto {
                    name: Some("Users".into()),
                    method: vec![MethodDescriptorProto {
                        name: Some("GetUser".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn check_text(text: &str) -> io::Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.json");
        std::fs::write(&path, text).unwrap();
        check(&path, &fds()).map(drop)
    }

    #[test]
    fn names_that_exist_pass_and_the_default_needs_none() {
        check_text(
            r#"{"methodConfig": [
                {"name": [{"service": "users.v1.Users", "method": "GetUser"}]},
                {"name": [{"service": "users.v1.Users"}, {}]}
            ]}"#,
        )
        .unwrap();
    }

    #[test]
    fn a_misspelt_service_or_method_fails_naming_file_and_line() {
        let err = check_text(
            "{\"methodConfig\": [\n  {\"name\": [{\"service\": \"users.v1.User\"}]},\n  {\"name\": [{\"service\": \"users.v1.Users\", \"method\": \"GetUsr\"}]}\n]}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "svc.json:2: methodConfig[0].name[0].service \"users.v1.User\" is no service"
            ),
            "{err}"
        );
        assert!(err.contains("(they have: users.v1.Users)"), "{err}");
        assert!(err.contains("svc.json:3: methodConfig[1].name[0].method \"GetUsr\" is no method of users.v1.Users (it has: GetUser)"), "{err}");
    }

    #[test]
    fn invalid_json_names_line_and_column() {
        let err = check_text("{\n  \"methodConfig\": [,]\n}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("svc.json:2:"), "{err}");
    }
}
