//! Single sign-on with OpenID Connect.

use crate::config::HqConfig;

/// Single sign-on, configured.
pub struct Oidc {}

impl Oidc {
    /// From the `--oidc-*` flags; `None` without `--oidc-issuer`.
    pub fn from_config(_config: &HqConfig) -> anyhow::Result<Option<Self>> {
        Ok(None)
    }
}
