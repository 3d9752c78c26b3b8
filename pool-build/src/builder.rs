//! [`Builder`]: protox -> prost messages + tonic client/server + `PooledXClient`.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{build_error, proto_error};
use crate::generator::{GenerationReport, PooledServiceGenerator};
use crate::policy::{Policies, RetryPolicy};

/// Configures code generation; start from [`configure()`](crate::configure).
///
/// Setters mirror `tonic_prost_build::Builder`'s common ones, plus
/// [`build_pooled_client`](Self::build_pooled_client).
#[derive(Debug, Clone)]
pub struct Builder {
    build_client: bool,
    build_server: bool,
    build_pooled_client: bool,
    out_dir: Option<PathBuf>,
    file_descriptor_set_path: Option<PathBuf>,
    type_attributes: Vec<(String, String)>,
    field_attributes: Vec<(String, String)>,
    extern_paths: Vec<(String, String)>,
    compile_well_known_types: bool,
    emit_rerun_if_changed: bool,
    service_config: Option<PathBuf>,
    retry_idempotent: Option<RetryPolicy>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            build_client: true,
            build_server: true,
            build_pooled_client: true,
            out_dir: None,
            file_descriptor_set_path: None,
            type_attributes: Vec::new(),
            field_attributes: Vec::new(),
            extern_paths: Vec::new(),
            compile_well_known_types: false,
            // Like tonic: print `cargo:rerun-if-changed` only when run by cargo.
            emit_rerun_if_changed: std::env::var_os("CARGO").is_some(),
            service_config: None,
            retry_idempotent: None,
        }
    }
}

impl Builder {
    /// Generate tonic's `x_client::XClient` (default `true`).
    ///
    /// `PooledXClient` wraps tonic's client, so `build_client(false)` turns it off too.
    #[must_use]
    pub fn build_client(mut self, enable: bool) -> Self {
        self.build_client = enable;
        self
    }

    /// Generate tonic's `x_server::XServer` and `x_server::X` trait (default `true`).
    #[must_use]
    pub fn build_server(mut self, enable: bool) -> Self {
        self.build_server = enable;
        self
    }

    /// Generate `PooledXClient` for every service (default `true`; needs
    /// [`build_client`](Self::build_client)).
    #[must_use]
    pub fn build_pooled_client(mut self, enable: bool) -> Self {
        self.build_pooled_client = enable;
        self
    }

    /// Where to write the generated `<package>.rs` files (default: `$OUT_DIR`).
    #[must_use]
    pub fn out_dir(mut self, out_dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(out_dir.as_ref().to_path_buf());
        self
    }

    /// Also write the encoded `FileDescriptorSet` (with imports and source info) to `path`,
    /// e.g. for `tonic-reflection`.
    #[must_use]
    pub fn file_descriptor_set_path(mut self, path: impl AsRef<Path>) -> Self {
        self.file_descriptor_set_path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Add an attribute to matching messages, enums and oneofs
    /// (`prost_build::Config::type_attribute`).
    #[must_use]
    pub fn type_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.type_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Add an attribute to matching fields (`prost_build::Config::field_attribute`).
    #[must_use]
    pub fn field_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.field_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Use an existing Rust path for a protobuf package or type
    /// (`prost_build::Config::extern_path`): `.extern_path(".common", "::common_protos")`.
    #[must_use]
    pub fn extern_path(mut self, proto_path: impl AsRef<str>, rust_path: impl AsRef<str>) -> Self {
        self.extern_paths.push((
            proto_path.as_ref().to_owned(),
            rust_path.as_ref().to_owned(),
        ));
        self
    }

    /// Generate `google.protobuf` types instead of using `prost-types` (default `false`).
    #[must_use]
    pub fn compile_well_known_types(mut self, enable: bool) -> Self {
        self.compile_well_known_types = enable;
        self
    }

    /// Print `cargo:rerun-if-changed` for every `.proto` file read (default: when run by cargo).
    #[must_use]
    pub fn emit_rerun_if_changed(mut self, enable: bool) -> Self {
        self.emit_rerun_if_changed = enable;
        self
    }

    /// Parses `protos` (looked up like imports, relative to `includes`, or given as paths under
    /// one of them) and writes one `<package>.rs` per protobuf package.
    ///
    /// # Errors
    ///
    /// A missing file, a syntax error, an unknown import or type (as `file:line:column:
    /// message`), an RPC name that collides with the pooled client's own methods, a message
    /// type that is not a Rust type, `OUT_DIR` unset without [`out_dir`](Self::out_dir), or an
    /// I/O error writing the output.
    pub fn compile_protos<P, I>(self, protos: &[P], includes: &[I]) -> io::Result<()>
    where
        P: AsRef<Path>,
        I: AsRef<Path>,
    {
        let includes: Vec<&Path> = includes.iter().map(AsRef::as_ref).collect();
        for proto in protos {
            let proto = proto.as_ref();
            if !proto.is_file() && !includes.iter().any(|include| include.join(proto).is_file()) {
                return Err(build_error(
                    io::ErrorKind::NotFound,
                    format!(
                        "proto file `{}` not found (neither a file nor under an include directory: {})",
                        proto.display(),
                        includes.iter().map(|i| format!("`{}`", i.display())).collect::<Vec<_>>().join(", "),
                    ),
                ));
            }
        }
        let mut compiler = protox::Compiler::new(includes.iter().copied())
            .map_err(|err| proto_error(err, &includes))?;
        compiler.include_source_info(true).include_imports(true);
        if self.emit_rerun_if_changed {
            // Before parsing: if a proto is broken, cargo still watches it for the fix.
            for proto in protos {
                println!("cargo:rerun-if-changed={}", proto.as_ref().display());
            }
        }
        compiler
            .open_files(protos)
            .map_err(|err| proto_error(err, &includes))?;
        if self.emit_rerun_if_changed {
            for file in compiler.files() {
                if let Some(path) = file.path() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
        if let Some(path) = &self.file_descriptor_set_path {
            std::fs::write(path, compiler.encode_file_descriptor_set()).map_err(|err| {
                build_error(
                    err.kind(),
                    format!(
                        "writing the file descriptor set to {}: {err}",
                        path.display()
                    ),
                )
            })?;
        }
        self.compile_fds(compiler.file_descriptor_set())
    }

    /// Checks a gRPC service config (the JSON file the pool takes through
    /// `connection.service_config`, `service_config_json` or `#[grpc_pool(service_config)]`)
    /// against the compiled protos: the build fails, naming the file and line, when a
    /// `methodConfig` name matches no service or method. Its other fields are checked when the
    /// pool's configuration is built.
    pub fn service_config(mut self, path: impl AsRef<Path>) -> Self {
        self.service_config = Some(path.as_ref().to_path_buf());
        self
    }

    /// Gives every method the .proto marks `option idempotency_level = IDEMPOTENT` or
    /// `NO_SIDE_EFFECTS` this retry policy by default, so they need not be listed one by one
    /// in a service config. The pool's service config still decides: a retry or hedging
    /// policy it gives a method (by its name, its service's, or the default entry) replaces
    /// this one. The generated docs of each method state the policy in effect. The policy is
    /// checked when code is generated (the error names the field and the value).
    pub fn retry_idempotent(mut self, policy: RetryPolicy) -> Self {
        self.retry_idempotent = Some(policy);
        self
    }

    /// Generates code from an already parsed `FileDescriptorSet` (it should include imports
    /// and, for doc comments, source info).
    ///
    /// # Errors
    ///
    /// As [`compile_protos`](Self::compile_protos), minus parsing.
    pub fn compile_fds(self, fds: prost_types::FileDescriptorSet) -> io::Result<()> {
        let mut policies = Policies::default();
        if let Some(path) = &self.service_config {
            if self.emit_rerun_if_changed {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            let json = crate::service_config::check(path, &fds)?;
            policies.service_config = Some((path.display().to_string(), json));
        }
        if let Some(policy) = &self.retry_idempotent {
            policy.check()?;
            policies.idempotent = Some(policy.clone());
        }
        let out_dir = match self.out_dir.clone() {
            Some(dir) => dir,
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    build_error(
                        io::ErrorKind::NotFound,
                        "OUT_DIR is not set: call grpc-pool-build from build.rs or set out_dir(..)",
                    )
                })?,
        };

        let report = Rc::new(RefCell::new(GenerationReport::default()));
        let tonic = (self.build_client || self.build_server).then(|| {
            tonic_prost_build::configure()
                .build_client(self.build_client)
                .build_server(self.build_server)
                .compile_well_known_types(self.compile_well_known_types)
                .service_generator()
        });
        let generator = PooledServiceGenerator::new(
            tonic,
            self.build_client && self.build_pooled_client,
            Rc::clone(&report),
            policies,
        );

        let mut config = prost_build::Config::new();
        // Like tonic-prost-build's `compile_protos`: generated messages are not linted.
        config.type_attribute(".", "#[allow(clippy::all)]");
        config.service_generator(Box::new(generator));

        // Client and server off here: with either on, tonic installs its own generator over ours
        // (ours already runs tonic's with the user's choice).
        let mut tonic = tonic_prost_build::configure()
            .build_client(false)
            .build_server(false)
            .out_dir(&out_dir)
            .compile_well_known_types(self.compile_well_known_types);
        for (path, attribute) in &self.type_attributes {
            tonic = tonic.type_attribute(path, attribute);
        }
        for (path, attribute) in &self.field_attributes {
            tonic = tonic.field_attribute(path, attribute);
        }
        for (proto, rust) in &self.extern_paths {
            tonic = tonic.extern_path(proto, rust);
        }
        std::fs::create_dir_all(&out_dir)?;
        tonic.compile_fds_with_config(fds, config)?;

        let report = report.borrow();
        if report.errors.is_empty() {
            Ok(())
        } else {
            Err(build_error(
                io::ErrorKind::InvalidInput,
                report.errors.join("\n"),
            ))
        }
    }
}
