//! The CLI's browser sign-in.

/// Codes handed to CLIs' loopback listeners, waiting for their exchange.
#[derive(Default)]
pub struct CliLogins {}
