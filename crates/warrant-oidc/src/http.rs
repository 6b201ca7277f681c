//! The adapter that sends openidconnect's HTTP requests through the workspace's `reqwest`
//! (rustls with aws-lc-rs), so the crate pulls no second HTTP client and no second TLS provider.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::OidcError;

/// The largest response body read from the provider (discovery, keys, tokens).
const MAX_BODY_BYTES: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to the provider failed (no body, no credentials in the message).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("{}", chain(.0))]
    Reqwest(#[from] reqwest::Error),
    #[error("the response is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// The error and its sources, `: `-separated: reqwest's own message only says that sending
/// failed, the cause (refused connection, untrusted certificate, …) is in the sources.
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A `reqwest::Client` that never follows redirects (the provider's endpoints answer directly;
/// following a redirect from a token endpoint could send the code elsewhere), with timeouts and
/// a bounded response size.
#[derive(Clone, Debug)]
pub(crate) struct Http(reqwest::Client);

impl Http {
    /// A client trusting the system's roots plus those in `ca_file`.
    pub(crate) fn new(ca_file: Option<&Path>) -> Result<Self, OidcError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("warrant-oidc/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                OidcError::Config(format!(
                    "ca_file {} cannot be read ({e}): point it at a PEM file of CA certificates",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                OidcError::Config(format!(
                    "ca_file {} is not a PEM bundle of certificates ({e})",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(OidcError::Config(format!(
                    "ca_file {} holds no certificate: it should contain -----BEGIN CERTIFICATE----- blocks",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        builder
            .build()
            .map(Self)
            .map_err(|e| OidcError::Config(format!("the HTTP client cannot be set up ({e})")))
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let request = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .build()?;
        let mut response = self.0.execute(request).await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = HttpResponse::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
