//! What the SSH gateway asks the engine: who a key belongs to, and — for a person, a target and
//! maybe a role — whether they hold an active grant there now and with which upstream
//! credential to connect: a fresh ed25519 key and a certificate from Warrant's CA for the
//! role's `login`, valid until the grant ends (recorded for the KRL and audited like every
//! certificate).

use warrant_core::{Grant, GrantStatus, IdentityStatus, Name, Secret, TargetKind, Timestamp};
use warrant_sshca::CaKey;

use crate::Engine;
use crate::error::{EngineError, Result};
use crate::policy::PolicyState;

/// Where and how the gateway connects upstream for one session.
#[derive(Debug)]
pub struct GatewayUpstream {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The target's pinned host key (one OpenSSH public key line).
    pub host_key: String,
    /// The account to log in as (the role's `login`).
    pub account: String,
    /// The session's own private key (OpenSSH PEM), made for this session only.
    pub private_key: Secret<String>,
    /// Its certificate (principal: `account`), valid until the grant ends.
    pub certificate: String,
    /// The certificate's serial.
    pub serial: i64,
    /// The grant.
    pub grant_id: String,
    /// The role it is under.
    pub role: String,
    /// When the grant ends (the gateway ends the session then).
    pub ends_at: Timestamp,
    /// Recording: `strict` (no recording, no session), `best-effort` or `off`.
    pub record: String,
    /// Record what the person types too.
    pub record_input: bool,
    /// Let `ssh -L` / `-W` through to what the target can reach (the role's `forwarding:
    /// [port]`).
    pub port_forwarding: bool,
    /// Let `ssh -A` through (the role's `forwarding: [agent]`).
    pub agent_forwarding: bool,
}

pub(crate) fn denied(message: impl Into<String>) -> EngineError {
    EngineError::forbidden("gateway_denied", message)
}

/// The one active grant of `identity` on `target` (of `role`, when named) whose role `fits`
/// the gateway, with that role. Refusals say what to request (`kind`: e.g. "with an SSH
/// login") or, for several roles, how to choose one (`choose`: e.g. `alice+web-1+ROLE`).
pub(crate) async fn the_grant(
    q: &mut warrant_store::Q<'_>,
    identity: &Name,
    target: &str,
    role: Option<&str>,
    now: Timestamp,
    fits: impl Fn(&warrant_core::TargetRole) -> bool,
    (kind, choose): (&str, &str),
) -> Result<(warrant_core::Grant, warrant_core::TargetRole)> {
    let mut candidates = Vec::new();
    for g in q.grants(Some(identity.as_str()), true, 1000).await? {
        if g.target.as_str() != target
            || g.status_at(now) != GrantStatus::Active
            || role.is_some_and(|r| r != g.role.as_str())
        {
            continue;
        }
        let Some(r) = q.role(target, g.role.as_str()).await? else {
            continue;
        };
        if fits(&r) {
            candidates.push((g, r));
        }
    }
    candidates.sort_by(|a, b| a.0.role.cmp(&b.0.role).then(b.0.ends_at.cmp(&a.0.ends_at)));
    candidates.dedup_by(|a, b| a.0.role == b.0.role);
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(denied(match role {
            Some(r) => format!(
                "you hold no active grant of {r} on {target}: warrant request {target} {r} --for 1h --reason …"
            ),
            None => format!(
                "you hold no active grant on {target} {kind}: warrant request {target} ROLE --for 1h --reason …"
            ),
        })),
        _ => {
            let roles: Vec<&str> = candidates.iter().map(|c| c.0.role.as_str()).collect();
            Err(denied(format!(
                "you hold several roles on {target} ({}): choose one with {choose}",
                roles.join(", ")
            )))
        }
    }
}

impl Engine {
    /// The active identity a registered public key (SHA-256 fingerprint) belongs to, if it is
    /// `claimed` — the name the person typed. `None` for an unknown key, a key of someone
    /// else, or a disabled identity.
    pub async fn gateway_identity(&self, claimed: &str, fingerprint: &str) -> Result<Option<Name>> {
        let mut r = self.store().read().await?;
        let Some(key) = r.q().ssh_key_by_fingerprint(fingerprint).await? else {
            return Ok(None);
        };
        if !key.identity.eq_ignore_ascii_case(claimed) {
            return Ok(None);
        }
        Ok(r.q()
            .identity(&key.identity)
            .await?
            .filter(|i| i.status == IdentityStatus::Active)
            .map(|i| i.name))
    }

    /// The active identity a Warrant-issued user certificate belongs to, if it is `claimed`:
    /// signed by Warrant's CA, valid now, its key id naming `claimed` and a grant that is still
    /// active (so a revoked grant's certificate opens nothing here either). `None` otherwise.
    pub async fn gateway_identity_by_cert(
        &self,
        claimed: &str,
        cert: &warrant_hostssh::ssh_key::Certificate,
    ) -> Result<Option<Name>> {
        use warrant_hostssh::ssh_key::{HashAlg, PublicKey};
        let ca = PublicKey::from_openssh(&self.ssh_ca_public().await?)
            .map_err(|e| EngineError::internal(format!("the SSH CA's public key: {e}")))?;
        let ca_fp = ca.fingerprint(HashAlg::Sha256);
        let now = u64::try_from(self.now().unix_seconds()).unwrap_or(0);
        if cert.validate_at(now, [&ca_fp]).is_err() {
            return Ok(None);
        }
        // Key ids are `<identity> grant=<id> target=… role=…` (crate::ssh::sign_for_grant).
        let mut words = cert.key_id().split(' ');
        let (Some(who), Some(grant)) = (words.next(), words.next()) else {
            return Ok(None);
        };
        let Some(grant_id) = grant.strip_prefix("grant=") else {
            return Ok(None);
        };
        if !who.eq_ignore_ascii_case(claimed) || !self.grant_still_active(grant_id, who).await? {
            return Ok(None);
        }
        let mut r = self.store().read().await?;
        Ok(r.q()
            .identity(who)
            .await?
            .filter(|i| i.status == IdentityStatus::Active)
            .map(|i| i.name))
    }

    /// The upstream of a gateway session for `identity` on `target` (and `role`, needed when
    /// several of the person's active grants there have a `login`). Refusals say what to do.
    pub async fn gateway_upstream(
        &self,
        identity: &str,
        target: &str,
        role: Option<&str>,
    ) -> Result<GatewayUpstream> {
        // Nothing that hands out access while a mandatory audit sink is behind.
        self.audit_gate()?;
        let ca = self.ssh_ca().await?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let t = tx
            .q()
            .target(target)
            .await?
            .filter(|t| t.kind == TargetKind::Ssh)
            .ok_or_else(|| denied(format!("no SSH target {target} (warrant targets)")))?;
        let who = tx
            .q()
            .identity(identity)
            .await?
            .filter(|i| i.status == IdentityStatus::Active)
            .ok_or_else(|| denied("your identity is not active"))?;
        let (grant, role_def) = the_grant(
            &mut tx.q(),
            &who.name,
            target,
            role,
            now,
            |r| r.login.is_some(),
            ("with an SSH login", &format!("{identity}+{target}+ROLE")),
        )
        .await?;
        let account = role_def.login.clone().unwrap_or_default();
        let (host, port) = crate::pg::host_port(&t, 22)?;
        let host_key = t.host_key.clone().ok_or_else(|| {
            denied(format!(
                "target {target} has no pinned host_key: an admin sets it in the org file"
            ))
        })?;
        let session_key = CaKey::generate()
            .map_err(|e| EngineError::internal(format!("a session key: {}", e.code())))?;
        let private_key = session_key
            .to_openssh()
            .map_err(|e| EngineError::internal(format!("a session key: {}", e.code())))?;
        let (certificate, serial) = crate::ssh::sign_for_grant(
            &mut tx,
            &ca,
            &grant,
            &role_def,
            std::slice::from_ref(&account),
            &session_key.public_openssh(),
            " via=gateway",
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(GatewayUpstream {
            host,
            port,
            host_key,
            account,
            private_key,
            certificate,
            serial,
            grant_id: grant.id.clone(),
            role: grant.role.to_string(),
            ends_at: grant.ends_at,
            record: role_def.record.clone().unwrap_or_else(|| "strict".into()),
            record_input: role_def.record_input,
            port_forwarding: role_def.forwarding.iter().any(|f| f == "port"),
            agent_forwarding: role_def.forwarding.iter().any(|f| f == "agent"),
        })
    }
}

/// The vault's associated data for the recording key.
pub(crate) const RECORDING_KEY_AAD: &str = "recording-key";

/// What a gateway reports when a session starts.
#[derive(Debug, Clone)]
pub struct SessionStart {
    /// The gateway's session id.
    pub session_id: String,
    /// `ssh` or `postgres`.
    pub kind: String,
    /// Who.
    pub identity: String,
    /// Where.
    pub target: String,
    /// As which upstream account.
    pub account: String,
    /// Under which grant.
    pub grant_id: String,
    /// The recording's file name, if recorded.
    pub recording: Option<String>,
}

impl Engine {
    /// The key that signs recordings' manifests, made and sealed at first use.
    pub async fn recording_key(&self) -> Result<warrant_recording::RecordingKey> {
        let key_error = |e: warrant_audit::signing::SignatureError| {
            EngineError::internal(format!("the recording key: {e}"))
        };
        let seed = self
            .own_key(
                RECORDING_KEY_AAD,
                || {
                    let key = warrant_recording::RecordingKey::generate().map_err(key_error)?;
                    Ok(crate::ownkeys::NewKey {
                        private: key.to_seed(),
                        public: key.public_base64(),
                    })
                },
                |public| warrant_audit::Event::RecordingKeyCreated {
                    public_key: public.to_owned(),
                },
            )
            .await?;
        warrant_recording::RecordingKey::from_seed(&seed).map_err(key_error)
    }

    /// The public key recordings are signed with (base64), for `warrant recording verify`.
    pub async fn recording_public_key(&self) -> Result<String> {
        Ok(self.recording_key().await?.public_base64())
    }

    /// Records (and audits) a gateway session that started.
    pub async fn gateway_session_started(&self, s: &SessionStart) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.w()
            .await?
            .insert_gateway_session(&warrant_store::GatewaySessionRow {
                id: s.session_id.clone(),
                kind: s.kind.clone(),
                identity: s.identity.clone(),
                target: s.target.clone(),
                account: s.account.clone(),
                grant_id: s.grant_id.clone(),
                started_at: now,
                ended_at: None,
                end_reason: None,
                bytes_up: 0,
                bytes_down: 0,
                recording: s.recording.clone(),
                sha256: None,
            })
            .await?;
        tx.audit(
            now,
            Some(s.identity.as_str()),
            &warrant_audit::Event::GatewaySessionStarted {
                session_id: s.session_id.clone(),
                kind: s.kind.clone(),
                identity: s.identity.clone(),
                target: s.target.clone(),
                account: s.account.clone(),
                grant_id: s.grant_id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records (and audits) the end of a gateway session.
    pub async fn gateway_session_ended(
        &self,
        session_id: &str,
        reason: &str,
        bytes_up: u64,
        bytes_down: u64,
        recording_sha256: Option<String>,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let Some(mut s) = tx.q().gateway_session(session_id).await? else {
            return Err(EngineError::not_found(
                "session_not_found",
                format!("no session {session_id}"),
            ));
        };
        s.ended_at = Some(now);
        s.end_reason = Some(reason.to_owned());
        s.bytes_up = i64::try_from(bytes_up).unwrap_or(i64::MAX);
        s.bytes_down = i64::try_from(bytes_down).unwrap_or(i64::MAX);
        s.sha256.clone_from(&recording_sha256);
        tx.w().await?.end_gateway_session(&s).await?;
        tx.audit(
            now,
            None,
            &warrant_audit::Event::GatewaySessionEnded {
                session_id: s.id.clone(),
                identity: s.identity.clone(),
                target: s.target.clone(),
                reason: reason.to_owned(),
                bytes_up,
                bytes_down,
                recording_sha256,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audits something the gateway refused.
    pub async fn gateway_refused(
        &self,
        identity: &str,
        target: Option<&str>,
        what: &str,
        reason: &str,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        // A name the person typed that is no identity (maybe a password) is kept as a digest.
        let identity = if identity == "*" || tx.q().identity(identity).await?.is_some() {
            identity.to_owned()
        } else {
            crate::auth::unknown_name(identity)
        };
        tx.audit(
            now,
            None,
            &warrant_audit::Event::GatewayRefused {
                identity: identity.chars().take(200).collect(),
                target: target.map(str::to_owned),
                what: what.to_owned(),
                reason: reason.chars().take(500).collect(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sessions, newest first: everyone's for auditors, one's own otherwise.
    pub async fn gateway_sessions(
        &self,
        actor: &crate::Actor,
    ) -> Result<Vec<warrant_store::GatewaySessionRow>> {
        let mut r = self.store().read().await?;
        let all = r.q().gateway_sessions(1000).await?;
        Ok(if actor.role >= warrant_core::SystemRole::Auditor {
            all
        } else {
            all.into_iter()
                .filter(|s| s.identity == actor.name.as_str())
                .collect()
        })
    }

    /// One session (auditors, or its own person).
    pub async fn gateway_session(
        &self,
        actor: &crate::Actor,
        id: &str,
    ) -> Result<warrant_store::GatewaySessionRow> {
        let mut r = self.store().read().await?;
        r.q()
            .gateway_session(id)
            .await?
            .filter(|s| {
                actor.role >= warrant_core::SystemRole::Auditor || s.identity == actor.name.as_str()
            })
            .ok_or_else(|| {
                EngineError::not_found(
                    "session_not_found",
                    format!("no session {id} (warrant sessions)"),
                )
            })
    }
}

impl Engine {
    /// Whether `grant_id` is still active now and its holder `identity` still active (the
    /// gateway ends sessions whose answer turns false).
    pub async fn grant_still_active(&self, grant_id: &str, identity: &str) -> Result<bool> {
        let now = self.now();
        let mut r = self.store().read().await?;
        let grant_ok = r.q().grant(grant_id).await?.is_some_and(|g| {
            g.identity.as_str() == identity && g.status_at(now) == GrantStatus::Active
        });
        if !grant_ok {
            return Ok(false);
        }
        Ok(r.q()
            .identity(identity)
            .await?
            .is_some_and(|i| i.status == IdentityStatus::Active))
    }
}

impl Engine {
    /// Marks ended, with reason `server_stopped`, every gateway session the store still has as
    /// live: at start, nothing can be live yet (a crash or a stop cut them). Returns how many.
    pub async fn close_dangling_sessions(&self) -> Result<u64> {
        let dangling = {
            let mut r = self.store().read().await?;
            r.q().unended_gateway_sessions().await?
        };
        for id in &dangling {
            self.gateway_session_ended(id, "server_stopped", 0, 0, None)
                .await?;
        }
        Ok(dangling.len() as u64)
    }
}

impl Engine {
    /// Whether a gateway session of `identity` on `target` (as `role`) needs a second factor
    /// at the gateway: when the rule (or custom policy) under which one of their active grants
    /// there was given requires MFA, or is gone (fail closed).
    pub async fn gateway_mfa_required(
        &self,
        identity: &str,
        target: &str,
        role: Option<&str>,
    ) -> Result<bool> {
        let now = self.now();
        let grants = {
            let mut r = self.store().read().await?;
            r.q().grants(Some(identity), true, 1000).await?
        };
        let policy = self.policy();
        Ok(grants
            .iter()
            .filter(|g| {
                g.target.as_str() == target
                    && g.status_at(now) == GrantStatus::Active
                    && role.is_none_or(|r| r == g.role.as_str())
            })
            .any(|g| rule_requires_mfa(&policy, g)))
    }

    /// Checks a second factor typed at the gateway (a TOTP code or a recovery code): rate
    /// limited and used once like every code, audited either way (`mfa.verified` with purpose
    /// `gateway`, or `mfa.failed`).
    pub async fn gateway_verify_code(&self, identity: &str, code: &Secret<String>) -> Result<bool> {
        let now = self.now();
        self.mfa_rate_check(identity, now)?;
        let mut tx = self.store().begin().await?;
        let proof = self
            .tx_prove(&mut tx, identity, code.expose().trim(), false, now)
            .await?;
        let Some(proof) = proof else {
            tx.rollback().await?;
            self.mfa_failed(identity, now);
            let reason = if self.has_mfa(identity).await? {
                "wrong_code"
            } else {
                "not_enrolled"
            };
            self.audit_mfa_failure(identity, "gateway", reason).await?;
            return Ok(false);
        };
        tx.audit(
            now,
            Some(identity),
            &warrant_audit::Event::MfaVerified {
                identity: identity.to_owned(),
                method: proof.as_str().to_owned(),
                purpose: "gateway".into(),
            },
        )
        .await?;
        tx.commit().await?;
        self.mfa_succeeded(identity);
        Ok(true)
    }
}

/// Whether the rule that gave `grant` asks for a second factor at the gateway. Fails closed: a
/// rule that is no longer in the policy requires one.
pub(crate) fn rule_requires_mfa(policy: &PolicyState, grant: &Grant) -> bool {
    let settings = match grant.rule_id.strip_prefix("policy:") {
        Some(name) => policy.custom_settings.get(name),
        None => policy.rules.get(&grant.rule_id).map(|r| &r.settings),
    };
    settings.is_none_or(|s| s.require_mfa)
}
