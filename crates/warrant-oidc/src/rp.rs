//! [`RelyingParty`]: discovery, the login URL, the code exchange and ID token verification.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    DiscoveryError, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet, JsonWebKeySetUrl,
    JwsSigningAlgorithm, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use url::Url;
use warrant_core::{Clock, Secret, Timestamp};

use crate::claims::ExtraClaims;
use crate::http::{Http, HttpError};
use crate::login::PENDING_LOGIN_TTL_SECS;
use crate::{Claims, OidcConfig, OidcError, PendingLogin};

/// The shortest time between two fetches of the provider's key set triggered by tokens whose
/// key is unknown: a flood of forged tokens costs the provider one request per this many seconds.
pub const JWKS_REFETCH_INTERVAL_SECS: i64 = 60;

/// How far the provider's clock may be from Warrant's when checking `exp` and `iat`.
pub const ALLOWED_CLOCK_SKEW_SECS: i64 = 60;

type IdToken = openidconnect::IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type OidcTokenResponse = StandardTokenResponse<
    IdTokenFields<
        ExtraClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// openidconnect's client with our claims type, built from the provider's metadata.
type OidcClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    OidcTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Warrant as an OpenID Connect relying party of one provider: the discovered endpoints, the
/// provider's signing keys (refreshed when a token names a key Warrant has not seen) and the
/// client registration.
///
/// Cheap to clone: clones share the key cache. One sign-in is [`begin`](Self::begin) (send the
/// browser to the returned URL, keep the [`PendingLogin`] on the server), then
/// [`complete`](Self::complete) with the `state` and `code` of the callback.
///
/// The device authorization grant (RFC 8628) is not implemented: the provider the tests run
/// against does not offer it.
#[derive(Clone)]
pub struct RelyingParty(Arc<Inner>);

struct Inner {
    client: OidcClient,
    http: Http,
    issuer: IssuerUrl,
    client_id: ClientId,
    jwks_uri: JsonWebKeySetUrl,
    /// The asymmetric algorithms the provider signs ID tokens with; never `none` or HMAC.
    algs: Vec<CoreJwsSigningAlgorithm>,
    scopes: Vec<Scope>,
    groups_claim: String,
    extra_audiences: Vec<String>,
    keys: RwLock<Keys>,
    /// Held while the key set is being fetched again, so concurrent misses fetch it once.
    refetch: tokio::sync::Mutex<()>,
}

struct Keys {
    set: CoreJsonWebKeySet,
    /// Bumped at each successful refetch.
    generation: u64,
    /// When a refetch was last tried (Unix seconds from the caller's clock); `None` until then.
    fetched_at: Option<i64>,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("issuer", &self.0.issuer.as_str())
            .field("client_id", &self.0.client_id.as_str())
            .finish_non_exhaustive()
    }
}

/// Whether a verification failure may be cured by fetching the provider's keys again.
enum Check {
    /// The token's key is unknown or the signature fails with the cached keys.
    KeyMiss(OidcError),
    /// Anything else: final.
    Failed(OidcError),
}

impl RelyingParty {
    /// Reads the provider's discovery document (`<issuer>/.well-known/openid-configuration`)
    /// and its key set.
    ///
    /// Fails with `oidc_config` for a configuration that cannot work, `oidc_issuer` when the
    /// provider names itself differently from `cfg.issuer` (it must match exactly, trailing slash
    /// included), and `oidc_discovery` when the documents cannot be fetched or read.
    pub async fn discover(cfg: OidcConfig) -> Result<Self, OidcError> {
        cfg.validate()?;
        let http = Http::new(cfg.ca_file.as_deref())?;
        let issuer = IssuerUrl::new(cfg.issuer.clone())
            .map_err(|e| OidcError::Config(format!("issuer {:?}: {e}", cfg.issuer)))?;
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(|e| discovery_error(e, &cfg.issuer))?;

        if metadata.token_endpoint().is_none() {
            return Err(OidcError::Discovery(format!(
                "{} advertises no token_endpoint, so no authorization code can be exchanged",
                cfg.issuer
            )));
        }
        let advertised = metadata.id_token_signing_alg_values_supported();
        let algs: Vec<CoreJwsSigningAlgorithm> = advertised
            .iter()
            .filter(|alg| !alg.uses_shared_secret() && **alg != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        if algs.is_empty() {
            return Err(OidcError::Discovery(format!(
                "{} signs ID tokens only with {}; Warrant accepts asymmetric signatures only \
                 (RS256, PS256, ES256, EdDSA, …): change the client's ID token signature algorithm",
                cfg.issuer,
                alg_names(advertised)
            )));
        }
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let jwks_uri = metadata.jwks_uri().clone();
        let set = metadata.jwks().clone();
        let client_id = ClientId::new(cfg.client_id.clone());
        let secret = cfg
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose().clone()));
        let client = OidcClient::from_provider_metadata(metadata, client_id.clone(), secret)
            .set_auth_type(auth_type);
        let scopes = cfg
            .scopes
            .iter()
            // openidconnect always sends `openid` itself.
            .filter(|s| s.as_str() != "openid")
            .map(|s| Scope::new(s.clone()))
            .collect();
        tracing::info!(
            issuer = %cfg.issuer,
            keys = set.keys().len(),
            algs = %alg_names(&algs),
            "OpenID provider discovered"
        );
        Ok(Self(Arc::new(Inner {
            client,
            http,
            issuer,
            client_id,
            jwks_uri,
            algs,
            scopes,
            groups_claim: cfg.groups_claim,
            extra_audiences: cfg.extra_audiences,
            keys: RwLock::new(Keys {
                set,
                generation: 0,
                fetched_at: None,
            }),
            refetch: tokio::sync::Mutex::new(()),
        })))
    }

    /// The issuer, exactly as configured and confirmed by discovery.
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.0.issuer.as_str()
    }

    /// Warrant's client id at the provider.
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.0.client_id.as_str()
    }

    /// A fresh login: the URL to send the browser to, and what must be kept (server side) until
    /// the callback.
    ///
    /// The URL carries a random `state` and `nonce` and a PKCE S256 challenge; `redirect_uri`
    /// must be registered at the provider for this client.
    #[must_use]
    pub fn begin(&self, redirect_uri: &Url, clock: &dyn Clock) -> (Url, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .0
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(redirect_uri.clone())));
        for scope in &self.0.scopes {
            request = request.add_scope(scope.clone());
        }
        let (url, state, nonce) = request.url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: Secret::new(verifier.secret().clone()),
            redirect_uri: redirect_uri.clone(),
            created_at: clock.now(),
        };
        (url, pending)
    }

    /// Completes a login with the `state` and `code` of the provider's callback.
    ///
    /// Checks, in order: `state` equals the pending login's (constant time), the login is at
    /// most [`PENDING_LOGIN_TTL_SECS`] old; exchanges the code (with the PKCE verifier); then
    /// verifies the ID token: signature with the provider's keys (fetched again, at most every
    /// [`JWKS_REFETCH_INTERVAL_SECS`], when the token's key is unknown), issuer, audience (and
    /// `azp` when the token names several audiences), nonce, `exp` and `iat` with
    /// [`ALLOWED_CLOCK_SKEW_SECS`] of skew. Returns the verified claims.
    ///
    /// A pending login must be used once: drop it from the store before calling this.
    pub async fn complete(
        &self,
        pending: &PendingLogin,
        state: &str,
        code: &str,
        clock: &dyn Clock,
    ) -> Result<Claims, OidcError> {
        let token = self.exchange(pending, state, code, clock).await?;
        self.verify(&token, &pending.nonce, clock.now()).await
    }

    /// The state check and code exchange of [`complete`](Self::complete), returning the ID token
    /// as received (compact JWS), unverified. For tests that alter a real token before
    /// verifying it with [`verify_id_token`](Self::verify_id_token).
    #[doc(hidden)]
    pub async fn exchange_for_id_token(
        &self,
        pending: &PendingLogin,
        state: &str,
        code: &str,
        clock: &dyn Clock,
    ) -> Result<String, OidcError> {
        let token = self.exchange(pending, state, code, clock).await?;
        serde_json::to_value(&token)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| OidcError::InvalidToken("the ID token cannot be re-encoded".to_owned()))
    }

    /// Verifies a compact ID token as [`complete`](Self::complete) does after the exchange,
    /// expecting `nonce`. For tests.
    #[doc(hidden)]
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
        clock: &dyn Clock,
    ) -> Result<Claims, OidcError> {
        let token = IdToken::from_str(id_token).map_err(|_| {
            OidcError::InvalidToken(
                "the ID token is not a well-formed signed JWT with the standard claims".to_owned(),
            )
        })?;
        self.verify(&token, nonce, clock.now()).await
    }

    async fn exchange(
        &self,
        pending: &PendingLogin,
        state: &str,
        code: &str,
        clock: &dyn Clock,
    ) -> Result<IdToken, OidcError> {
        if !pending.state_matches(state) {
            return Err(OidcError::StateMismatch);
        }
        let age = clock.now().unix_seconds() - pending.created_at.unix_seconds();
        if age > PENDING_LOGIN_TTL_SECS {
            return Err(OidcError::Expired(format!(
                "the sign-in was started {age} s ago, more than the {PENDING_LOGIN_TTL_SECS} s \
                 allowed: start it again"
            )));
        }
        let request = self
            .0
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Config(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(
                pending.pkce_verifier.expose().clone(),
            ))
            .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(
                pending.redirect_uri.clone(),
            )));
        let response = request
            .request_async(&self.0.http)
            .await
            .map_err(|e| exchange_error(e, code))?;
        response.id_token().cloned().ok_or_else(|| {
            OidcError::InvalidToken(
                "the token response has no id_token: the provider must treat this client as \
                 OpenID Connect (scope `openid`)"
                    .to_owned(),
            )
        })
    }

    async fn verify(
        &self,
        token: &IdToken,
        nonce: &str,
        now: Timestamp,
    ) -> Result<Claims, OidcError> {
        let now = now.unix_seconds();
        let (set, generation) = self.keys();
        match self.check(token, nonce, now, set) {
            Ok(claims) => Ok(claims),
            Err(Check::Failed(e)) => Err(e),
            Err(Check::KeyMiss(e)) => {
                if !self.refetch_keys(now, generation).await {
                    return Err(e);
                }
                let (set, _) = self.keys();
                self.check(token, nonce, now, set).map_err(|c| match c {
                    Check::KeyMiss(e) | Check::Failed(e) => e,
                })
            }
        }
    }

    fn keys(&self) -> (CoreJsonWebKeySet, u64) {
        let keys = self.0.keys.read().unwrap_or_else(PoisonError::into_inner);
        (keys.set.clone(), keys.generation)
    }

    /// Fetches the key set again unless another caller did since `seen_generation` (then there
    /// is nothing to do) or a fetch was tried less than [`JWKS_REFETCH_INTERVAL_SECS`] ago.
    /// Returns whether the keys changed hands, i.e. whether verifying again is worth it.
    async fn refetch_keys(&self, now: i64, seen_generation: u64) -> bool {
        let _one_at_a_time = self.0.refetch.lock().await;
        {
            let mut keys = self.0.keys.write().unwrap_or_else(PoisonError::into_inner);
            if keys.generation != seen_generation {
                return true;
            }
            if let Some(at) = keys.fetched_at
                && now.abs_diff(at) < JWKS_REFETCH_INTERVAL_SECS.unsigned_abs()
            {
                tracing::debug!(
                    "ID token key not found; the provider's key set was fetched less than \
                     {JWKS_REFETCH_INTERVAL_SECS} s ago, not fetching it again"
                );
                return false;
            }
            // Failed fetches count too, so an unreachable provider is not hammered either.
            keys.fetched_at = Some(now);
        }
        match JsonWebKeySet::fetch_async(&self.0.jwks_uri, &self.0.http).await {
            Ok(set) => {
                let mut keys = self.0.keys.write().unwrap_or_else(PoisonError::into_inner);
                tracing::info!(
                    issuer = %self.0.issuer.as_str(),
                    keys = set.keys().len(),
                    "OpenID provider key set fetched again (unknown signing key)"
                );
                keys.set = set;
                keys.generation += 1;
                true
            }
            Err(e) => {
                tracing::warn!(
                    issuer = %self.0.issuer.as_str(),
                    error = %discovery_error(e, self.0.jwks_uri.as_str()),
                    "could not fetch the OpenID provider's key set again"
                );
                false
            }
        }
    }

    /// One verification against one key set.
    fn check(
        &self,
        token: &IdToken,
        nonce: &str,
        now: i64,
        set: CoreJsonWebKeySet,
    ) -> Result<Claims, Check> {
        let inner = &*self.0;
        // exp is checked against `time_fn`: moving it back by the skew accepts a token up to
        // the skew after its expiry.
        let lenient_now = at(now - ALLOWED_CLOCK_SKEW_SECS);
        let verifier = IdTokenVerifier::<CoreJsonWebKey>::new_public_client(
            inner.client_id.clone(),
            inner.issuer.clone(),
            set,
        )
        .set_allowed_algs(inner.algs.iter().cloned())
        .set_other_audience_verifier_fn(|aud| {
            inner.extra_audiences.iter().any(|a| a == aud.as_str())
        })
        .set_time_fn(move || lenient_now)
        .set_issue_time_verifier_fn(move |iat| {
            if iat.timestamp() > now + ALLOWED_CLOCK_SKEW_SECS {
                Err(format!(
                    "the ID token was issued in the future ({} s ahead of Warrant's clock): \
                     check that the clocks of Warrant and the provider agree",
                    iat.timestamp() - now
                ))
            } else {
                Ok(())
            }
        });
        let expected = Nonce::new(nonce.to_owned());
        let claims = token.claims(&verifier, &expected).map_err(claims_error)?;

        // openidconnect leaves `azp` to the caller (OpenID Connect Core 3.1.3.7, steps 4-5).
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != inner.client_id.as_str() => {
                return Err(Check::Failed(OidcError::Audience(format!(
                    "its authorized party (azp) is `{}`, not this client `{}`",
                    azp.as_str(),
                    inner.client_id.as_str()
                ))));
            }
            None if claims.audiences().len() > 1 => {
                return Err(Check::Failed(OidcError::Audience(
                    "it names several audiences but no authorized party (azp)".to_owned(),
                )));
            }
            _ => {}
        }
        Claims::from_id_token(claims, &inner.groups_claim).map_err(Check::Failed)
    }
}

/// The instant `secs` after the epoch; out of range means "the end of time", so nothing passes
/// as unexpired by accident.
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn alg_names(algs: &[CoreJwsSigningAlgorithm]) -> String {
    if algs.is_empty() {
        return "(none advertised)".to_owned();
    }
    algs.iter()
        .map(|a| {
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{a:?}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn claims_error(e: ClaimsVerificationError) -> Check {
    use ClaimsVerificationError as E;
    match e {
        E::Expired(m) => Check::Failed(OidcError::Expired(format!(
            "{m}; if the provider's or Warrant's clock is wrong, fix it, otherwise sign in again"
        ))),
        E::InvalidAudience(m) => Check::Failed(OidcError::Audience(format!(
            "{m}; check that Warrant's client_id is the client the provider issued the token to"
        ))),
        E::InvalidIssuer(m) => Check::Failed(OidcError::Issuer(format!(
            "the ID token's issuer is not the configured one: {m}"
        ))),
        E::InvalidNonce(m) => Check::Failed(OidcError::Nonce(m)),
        E::SignatureVerification(s) => signature_error(s),
        other => Check::Failed(OidcError::InvalidToken(other.to_string())),
    }
}

fn signature_error(e: SignatureVerificationError) -> Check {
    use SignatureVerificationError as E;
    match e {
        E::NoMatchingKey => Check::KeyMiss(OidcError::Signature(
            "no key the provider publishes matches the token's key id and algorithm".to_owned(),
        )),
        E::CryptoError(_) => Check::KeyMiss(OidcError::Signature(
            "the signature does not match the token with the provider's published keys".to_owned(),
        )),
        E::DisallowedAlg(m) | E::UnsupportedAlg(m) => Check::Failed(OidcError::Signature(format!(
            "{m}; Warrant accepts the asymmetric algorithms the provider advertises"
        ))),
        E::NoSignature => {
            Check::Failed(OidcError::Signature("the ID token is unsigned".to_owned()))
        }
        other => Check::Failed(OidcError::Signature(other.to_string())),
    }
}

fn discovery_error(e: DiscoveryError<HttpError>, issuer: &str) -> OidcError {
    match e {
        DiscoveryError::Validation(m) => OidcError::Issuer(format!(
            "discovery at {issuer}: {m}; set `issuer` to exactly the value the provider states \
             (trailing slash and path included)"
        )),
        DiscoveryError::Request(e) => OidcError::Discovery(format!(
            "{issuer} cannot be reached ({e}); check the URL, the network and, for a private CA, \
             ca_file"
        )),
        DiscoveryError::Response(status, _, m) => OidcError::Discovery(format!(
            "{issuer} answered {status} ({m}); check that the issuer URL is the provider's \
             (its /.well-known/openid-configuration must exist)"
        )),
        DiscoveryError::Parse(e) => OidcError::Discovery(format!(
            "{issuer} sent a document that is not valid OpenID provider metadata (at `{}`: {})",
            e.path(),
            e.inner()
        )),
        other => OidcError::Discovery(format!("{issuer}: {other}")),
    }
}

fn exchange_error(
    e: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
    code: &str,
) -> OidcError {
    // A provider may quote the code back in its description: never let it into a message.
    let scrub = |s: &str| {
        if code.is_empty() {
            s.to_owned()
        } else {
            s.replace(code, "<code>")
        }
    };
    match e {
        RequestTokenError::ServerResponse(r) => {
            let description = r
                .error_description()
                .map(|d| format!(": {}", scrub(d)))
                .unwrap_or_default();
            let hint = match r.error() {
                CoreErrorResponseType::InvalidGrant => {
                    " (the code was already used, expired, or was issued for another redirect URI \
                     or client: start the sign-in again)"
                }
                CoreErrorResponseType::InvalidClient
                | CoreErrorResponseType::UnauthorizedClient => {
                    " (check client_id and client_secret)"
                }
                _ => "",
            };
            OidcError::Exchange(format!("{}{description}{hint}", scrub(r.error().as_ref())))
        }
        RequestTokenError::Request(e) => OidcError::Exchange(format!(
            "the token endpoint cannot be reached ({})",
            scrub(&e.to_string())
        )),
        RequestTokenError::Parse(e, _body) => {
            let path = e.path().to_string();
            if path.starts_with("id_token") {
                OidcError::InvalidToken(format!(
                    "the ID token in the token response cannot be read (at `{path}`): it is not a \
                     signed JWT with well-formed standard claims"
                ))
            } else {
                OidcError::Exchange(format!(
                    "the token response cannot be read (at `{path}`): not an OAuth 2.0 token response"
                ))
            }
        }
        RequestTokenError::Other(m) => OidcError::Exchange(scrub(&m)),
    }
}
