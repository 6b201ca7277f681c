//! The HTTP client that the CLI and the tests use: the same routes, the same JSON shapes.

use std::fmt;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::ErrorBody;

/// A failed call: the server's error code and message, or a transport failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// Stable code (`connection_failed` when the server was not reached).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ClientError {}

/// A client of one Warrant server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8200`), with a bearer token.
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            base: self.base.clone(),
            token,
            http: self.http.clone(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and decodes the JSON answer.
    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.raw(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError {
            status: Some(status),
            code: "bad_answer".into(),
            message: format!("the server's answer did not parse: {e}"),
        })
    }

    /// GET of a binary answer (a recording), with the token; errors decoded as JSON.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        Ok(self.raw::<()>(Method::GET, path, None).await?.1)
    }

    /// GET of a long answer, written to `out` as it arrives (an audit export): the bytes
    /// written. An answer cut short by the server is an error, never a short success.
    pub async fn download(
        &self,
        path: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, ClientError> {
        let mut resp = self.request::<()>(Method::GET, path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(decode_error(status, &bytes));
        }
        let failed = |code: &str, message: String| ClientError {
            status: Some(status.as_u16()),
            code: code.into(),
            message,
        };
        let mut written = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                failed(
                    "download_cut",
                    format!(
                        "the server stopped before the end (what was written is incomplete): {e}"
                    ),
                )
            })?;
            let Some(chunk) = chunk else { break };
            out.write_all(&chunk)
                .map_err(|e| failed("write_failed", format!("writing the answer: {e}")))?;
            written += chunk.len() as u64;
        }
        out.flush()
            .map_err(|e| failed("write_failed", format!("writing the answer: {e}")))?;
        Ok(written)
    }

    /// Sends a request with the token (and a JSON body); the answer, whatever its status.
    async fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.map_err(|e| ClientError {
            status: None,
            code: "connection_failed".into(),
            message: format!(
                "cannot reach {}: {e} (is `warrant serve` running? set --server or WARRANT_SERVER)",
                self.base
            ),
        })
    }

    /// Sends a request; the status and body of a successful answer, a decoded error otherwise.
    async fn raw<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let resp = self.request(method, path, body).await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError {
            status: Some(status.as_u16()),
            code: "connection_failed".into(),
            message: format!("reading the answer failed: {e}"),
        })?;
        if !status.is_success() {
            return Err(decode_error(status, &bytes));
        }
        Ok((status.as_u16(), bytes.to_vec()))
    }

    /// GET of a plain-text answer (the SSH CA's public key).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{}", self.base, path);
        let resp = self.http.get(&url).send().await.map_err(|e| ClientError {
            status: None,
            code: "connection_failed".into(),
            message: format!("cannot reach {}: {e}", self.base),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ClientError {
            status: Some(status.as_u16()),
            code: "connection_failed".into(),
            message: format!("reading the answer failed: {e}"),
        })?;
        if !status.is_success() {
            return Err(ClientError {
                status: Some(status.as_u16()),
                code: "http_error".into(),
                message: text,
            });
        }
        Ok(text)
    }

    /// GET.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// PATCH with a JSON body.
    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send::<(), T>(Method::DELETE, path, None).await
    }
}

/// The error of an unsuccessful answer: Warrant's JSON error, or the status and text.
fn decode_error(status: reqwest::StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => ClientError {
            status: Some(status.as_u16()),
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => ClientError {
            status: Some(status.as_u16()),
            code: "http_error".into(),
            message: format!("{status}: {}", String::from_utf8_lossy(bytes)),
        },
    }
}

/// Percent-encodes one path or query segment.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
