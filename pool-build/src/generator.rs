//! Our `prost_build::ServiceGenerator`: tonic's generator, then `PooledXClient`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use prost_build::{Service, ServiceGenerator};

use crate::policy::Policies;
use crate::pooled_client;

/// What the generator learned while prost drove it; read back after generation.
#[derive(Debug, Default)]
pub(crate) struct GenerationReport {
    /// Errors that cannot be raised from inside `ServiceGenerator::generate` (it returns `()`).
    pub(crate) errors: Vec<String>,
    /// Fully-qualified names of the services given a pooled client.
    pub(crate) pooled_services: Vec<String>,
}

/// Wraps tonic's service generator and appends a `PooledXClient` per service.
pub(crate) struct PooledServiceGenerator {
    /// tonic's generator, `None` when the user turned both client and server off.
    tonic: Option<Box<dyn ServiceGenerator>>,
    /// Whether to append `PooledXClient` (needs tonic's client, which it wraps).
    pooled: bool,
    /// Packages that got at least one pooled client (they need the fallback settings import).
    packages: BTreeSet<String>,
    report: Rc<RefCell<GenerationReport>>,
    /// Call policies known at build time (defaults and what the method docs say).
    policies: Policies,
}

impl PooledServiceGenerator {
    pub(crate) fn new(
        tonic: Option<Box<dyn ServiceGenerator>>,
        pooled: bool,
        report: Rc<RefCell<GenerationReport>>,
        policies: Policies,
    ) -> Self {
        Self {
            tonic,
            pooled,
            packages: BTreeSet::new(),
            report,
            policies,
        }
    }
}

impl ServiceGenerator for PooledServiceGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let pooled = if self.pooled {
            Some(pooled_client::generate(&service, &self.policies))
        } else {
            None
        };
        let package = service.package.clone();
        let full_name = pooled_client::full_service_name(&service);
        if let Some(tonic) = self.tonic.as_mut() {
            tonic.generate(service, buf);
        }
        match pooled {
            None => {}
            Some(Err(message)) => self.report.borrow_mut().errors.push(message),
            Some(Ok(tokens)) => match syn::parse2::<syn::File>(tokens) {
                Ok(file) => {
                    buf.push_str(&prettyplease::unparse(&file));
                    self.packages.insert(package);
                    self.report.borrow_mut().pooled_services.push(full_name);
                }
                Err(err) => self.report.borrow_mut().errors.push(format!(
                    "internal error: generated PooledClient for `{full_name}` does not parse: {err}"
                )),
            },
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        if let Some(tonic) = self.tonic.as_mut() {
            tonic.finalize(buf);
        }
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        if let Some(tonic) = self.tonic.as_mut() {
            tonic.finalize_package(package, buf);
        }
        if self.packages.contains(package) {
            buf.push_str(&prettyplease::unparse(&fallback_import()));
        }
    }
}

/// The one per-package item: modules without `#[grpc_pool]` resolve `__GRPC_POOL_SETTINGS`
/// (read by `PooledXClient::connect`) to this glob import's `None`; the attribute's own item
/// shadows the glob.
pub(crate) fn fallback_import() -> syn::File {
    syn::parse_quote! {
        #[allow(unused_imports)]
        use ::grpc_pool::__private::fallback::*;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_import_is_a_single_glob_use() {
        let file = fallback_import();
        assert_eq!(file.items.len(), 1);
        let text = prettyplease::unparse(&file);
        assert!(
            text.contains("use ::grpc_pool::__private::fallback::*;"),
            "{text}"
        );
    }
}
