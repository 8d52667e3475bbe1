//! HTTP clients that never panic for want of CA certificates.
//!
//! reqwest (rustls with the platform verifier) fails to build a client when the system has no
//! CA certificates, and `reqwest::Client::new()` panics in that case. Daemons mostly talk plain
//! HTTP to their neighbours on loopback, which needs no certificates at all; so [`build`]
//! tries the system roots first and, if there are none, logs one warning and builds a client
//! with no trusted roots: plain HTTP works, HTTPS requests fail with a certificate error that
//! names the cause, and nothing panics.

use std::sync::atomic::{AtomicBool, Ordering};

pub use reqwest::{Client, ClientBuilder};

/// Build `configure(Client::builder())`, falling back to no trusted roots when the system has
/// no CA certificates.
#[allow(clippy::disallowed_methods)] // the one place clients are built (clippy.toml)
pub fn build(configure: impl Fn(ClientBuilder) -> ClientBuilder) -> Result<Client, reqwest::Error> {
    match configure(Client::builder()).build() {
        Ok(client) => Ok(client),
        Err(err) => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "cannot load the system's CA certificates ({}); plain HTTP works, HTTPS will fail until ca-certificates is installed",
                    crate::error_chain(&err)
                );
            }
            configure(Client::builder())
                .tls_certs_only(Vec::<reqwest::Certificate>::new())
                .build()
        }
    }
}

/// A client for daemons on this machine: no proxy (a proxy variable must not route
/// 127.0.0.1 elsewhere), the given overall timeout, redirects not followed.
pub fn loopback(timeout: std::time::Duration) -> Result<Client, reqwest::Error> {
    build(|b| {
        b.no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(std::time::Duration::from_secs(2)))
            .redirect(reqwest::redirect::Policy::none())
    })
}
