//! Requests, approvals, grants, revocation and the check.

use warrant_audit::Event;
use warrant_core::{
    ActivationDuration, ActivationSettings, ApprovalStage, ApproverSource, Grant, GrantStatus,
    Identity, IdentityStatus, Name, Request, RequestStatus, StageOutcome, SystemRole, Target,
    Timestamp,
};
use warrant_policy::{Decision, DecisionInput, RequestContext, TargetAttrs};
use warrant_store::{JobRow, Q, WriteTx};

use crate::auth::Actor;
use crate::directory::identity_not_found;
use crate::error::{EngineError, Result};
use crate::policy::PolicyState;
use crate::{Engine, require_role};

/// How far in the future a request may ask to start.
const MAX_START_AHEAD_SECS: i64 = 30 * 24 * 3600;
/// How far in the past a requested start may lie (clock skew); earlier is refused.
const START_SKEW_SECS: i64 = 300;

/// A request as submitted.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The target.
    pub target: Name,
    /// The role on it.
    pub role: Name,
    /// How long the grant should last once active.
    pub duration: ActivationDuration,
    /// Why.
    pub reason: String,
    /// A ticket reference.
    pub ticket: Option<String>,
    /// The earliest start.
    pub start_at: Option<Timestamp>,
}

/// A request as its viewer sees it.
#[derive(Debug, Clone)]
pub struct RequestView {
    /// The request.
    pub request: Request,
    /// Its status now.
    pub status: RequestStatus,
    /// The grant it produced.
    pub grant: Option<Grant>,
    /// Whether the viewer may approve its open stage.
    pub can_approve: bool,
}

impl RequestView {
    /// The view after a change: nobody is offered an approval in the answer to a change.
    fn settled(request: Request, grant: Option<Grant>, now: Timestamp) -> Self {
        Self {
            status: request.status_at(now),
            request,
            grant,
            can_approve: false,
        }
    }
}

/// Which requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFilter {
    /// The caller's own.
    Mine,
    /// Pending requests whose open stage the caller may approve.
    ToApprove,
    /// All (auditors and admins).
    All,
}

/// The answer of the check API.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Whether an active grant exists now.
    pub allowed: bool,
    /// The grant, when allowed.
    pub grant: Option<Grant>,
}

fn target_not_found(name: &str) -> EngineError {
    EngineError::not_found(
        "target_not_found",
        format!("no target named {name:?} (see warrant targets)"),
    )
}

fn disabled(actor: &Actor) -> EngineError {
    EngineError::forbidden(
        "identity_disabled",
        format!(
            "identity {} is disabled and can neither request nor approve",
            actor.name
        ),
    )
}

fn request_not_found(id: &str) -> EngineError {
    EngineError::not_found(
        "request_not_found",
        format!("no request with id {id:?} that you can see (see warrant requests)"),
    )
}

/// Stores a transition of a pending request; refuses if it was decided meanwhile.
pub(crate) async fn save_transition(tx: &mut WriteTx, r: &Request) -> Result<()> {
    if tx.w().await?.update_request(r).await? {
        Ok(())
    } else {
        Err(EngineError::conflict(
            "request_not_pending",
            format!("request {} was decided meanwhile", r.id),
        ))
    }
}

async fn load_request(q: &mut Q<'_>, id: &str) -> Result<Request> {
    q.request(id).await?.ok_or_else(|| request_not_found(id))
}

fn grant_not_found(id: &str) -> EngineError {
    EngineError::not_found(
        "grant_not_found",
        format!("no grant with id {id:?} that you can see (see warrant grants)"),
    )
}

/// Evaluates eligibility of `ident` (member of `groups`) for `role` on `target`.
pub(crate) fn decide(
    policy: &PolicyState,
    ident: &Identity,
    groups: &[Name],
    target: &Target,
    role: &str,
    ctx: RequestContext,
) -> Decision {
    let groups: Vec<String> = groups.iter().map(ToString::to_string).collect();
    policy.engine.decide(&DecisionInput {
        identity: ident.name.as_str(),
        email: &ident.email,
        active: ident.status == IdentityStatus::Active,
        groups: &groups,
        target: TargetAttrs {
            name: target.name.as_str(),
            kind: target.kind.as_str(),
            risk_tier: target.risk_tier,
            owner: target.owner.as_str(),
        },
        role,
        context: ctx,
    })
}

/// The permits a decision found, with their settings.
fn candidates<'p>(policy: &'p PolicyState, d: &Decision) -> Vec<(String, &'p ActivationSettings)> {
    let mut c: Vec<(String, &ActivationSettings)> = d
        .matched_rules
        .iter()
        .filter_map(|id| policy.rules.get(id).map(|r| (id.clone(), &r.settings)))
        .chain(d.custom_permits.iter().filter_map(|n| {
            policy
                .custom_settings
                .get(n)
                .map(|s| (format!("policy:{n}"), s))
        }))
        .collect();
    // Prefer the lightest path that fits: fewest stages, fewest approvals, then the id.
    c.sort_by_key(|(id, s)| {
        (
            s.approvals.len(),
            s.approvals.iter().map(|a| a.count).sum::<u32>(),
            id.clone(),
        )
    });
    c
}

/// Why `settings` refuse this request, if they do.
fn settings_refusal(
    rule: &str,
    s: &ActivationSettings,
    duration: ActivationDuration,
    reason: &str,
    ticket: Option<&str>,
    mfa: bool,
) -> Option<EngineError> {
    if s.require_mfa && !mfa {
        return Some(crate::mfa::step_up_required(&format!(
            "{rule} requires a second factor proved within the last 5 minutes"
        )));
    }
    if duration > s.max_duration {
        return Some(EngineError::invalid(
            "duration_exceeds_max",
            format!(
                "{duration} is longer than the {} that {rule} allows: ask for {} or less",
                s.max_duration, s.max_duration
            ),
        ));
    }
    if s.require_reason && reason.trim().is_empty() {
        return Some(EngineError::invalid(
            "reason_required",
            format!("{rule} requires a reason: pass --reason"),
        ));
    }
    if let Some(p) = &s.ticket_pattern {
        let Some(t) = ticket.filter(|t| !t.trim().is_empty()) else {
            return Some(EngineError::invalid(
                "ticket_required",
                format!("{rule} requires a ticket matching {p}: pass --ticket"),
            ));
        };
        let ok = regex::Regex::new(&format!("^(?:{p})$")).is_ok_and(|re| re.is_match(t));
        if !ok {
            return Some(EngineError::invalid(
                "ticket_mismatch",
                format!("ticket {t:?} does not match {p}, which {rule} requires"),
            ));
        }
    }
    None
}

/// Picks the permit this request goes under, or says why none fits.
pub(crate) fn choose(
    policy: &PolicyState,
    d: &Decision,
    duration: ActivationDuration,
    reason: &str,
    ticket: Option<&str>,
    mfa: bool,
) -> Result<(String, ActivationSettings)> {
    let (identity, target, role) = (&d.identity, &d.target, &d.role);
    if !d.allowed {
        let message = if d.forbids.is_empty() {
            format!(
                "{identity} is not eligible for {role} on {target}: no eligibility rule or policy permits it (ask the target's owners for a rule)"
            )
        } else {
            format!(
                "{identity} may not activate {role} on {target} now: {}",
                d.explain()
            )
        };
        return Err(EngineError::forbidden("not_eligible", message));
    }
    let cands = candidates(policy, d);
    let mut first_refusal = None;
    for (id, s) in &cands {
        match settings_refusal(id, s, duration, reason, ticket, mfa) {
            None => return Ok((id.clone(), (*s).clone())),
            Some(e) => {
                first_refusal.get_or_insert(e);
            }
        }
    }
    Err(first_refusal.unwrap_or_else(|| {
        EngineError::forbidden(
            "not_eligible",
            format!("{identity} is not eligible for {role} on {target}"),
        )
    }))
}

/// Whether `who` may approve `stage` of `req`.
pub(crate) async fn may_approve_stage(
    q: &mut Q<'_>,
    stage: &ApprovalStage,
    req: &Request,
    target: Option<&Target>,
    requester_manager: Option<&Name>,
    who: &Name,
) -> Result<bool> {
    if *who == req.identity {
        return Ok(false);
    }
    Ok(match &stage.from {
        ApproverSource::Owners => match target {
            Some(t) => q.is_member(t.owner.as_str(), who.as_str()).await?,
            None => false,
        },
        ApproverSource::Manager => requester_manager == Some(who),
        ApproverSource::Group(g) => q.is_member(g.as_str(), who.as_str()).await?,
    })
}

/// What a caller may do with a request, from the stages that name them.
#[derive(Debug, Clone, Copy, Default)]
struct Rights {
    /// May approve the open stage.
    open: bool,
    /// May deny: an approver of the open stage or a later one.
    remaining: bool,
    /// Is named by some stage, passed or not: may see the request.
    any: bool,
}

async fn approver_rights(q: &mut Q<'_>, req: &Request, who: &Name) -> Result<Rights> {
    let active = q
        .identity(who.as_str())
        .await?
        .is_some_and(|i| i.status == IdentityStatus::Active);
    if !active {
        return Ok(Rights::default());
    }
    let target = q.target(req.target.as_str()).await?;
    let manager = q
        .identity(req.identity.as_str())
        .await?
        .and_then(|i| i.manager);
    let mut rights = Rights::default();
    let current = req.current_stage as usize;
    for (i, stage) in req.stages.iter().enumerate() {
        if may_approve_stage(q, stage, req, target.as_ref(), manager.as_ref(), who).await? {
            rights.any = true;
            rights.open |= i == current;
            rights.remaining |= i >= current;
        }
    }
    Ok(rights)
}

/// Whether `actor` may see `req`: its requester, anyone a stage names or who approved it, and
/// auditors and admins.
fn may_see(actor: &Actor, req: &Request, rights: Rights) -> bool {
    rights.any
        || req.identity == actor.name
        || actor.role >= SystemRole::Auditor
        || req.approvals.iter().any(|a| a.approver == actor.name)
}

/// Closes a grant as `status` (ended or revoked) and records it; owes clean-up when `jobs`.
pub(crate) async fn close_grant(
    tx: &mut WriteTx,
    mut g: Grant,
    status: GrantStatus,
    by: Option<&Name>,
    reason: &str,
    jobs: bool,
    now: Timestamp,
) -> Result<bool> {
    g.status = status;
    if status == GrantStatus::Revoked {
        g.revoked_at = Some(now);
        g.revoked_by = by.cloned();
        g.revoke_reason = Some(reason.to_owned());
    }
    if !tx.w().await?.close_grant(&g).await? {
        return Ok(false);
    }
    let event = match status {
        GrantStatus::Revoked => Event::GrantRevoked {
            grant_id: g.id.clone(),
            identity: g.identity.to_string(),
            target: g.target.to_string(),
            role: g.role.to_string(),
            reason: reason.to_owned(),
        },
        _ => Event::GrantEnded {
            grant_id: g.id.clone(),
            identity: g.identity.to_string(),
            target: g.target.to_string(),
            role: g.role.to_string(),
            lag_ms: (now.millis() - g.ends_at.millis()).max(0),
        },
    };
    tx.audit(now, by.map(Name::as_str), &event).await?;
    crate::accounts::check_in_grant(tx, &g.id, now).await?;
    if jobs {
        tx.w()
            .await?
            .insert_job(&JobRow {
                id: warrant_iam::new_id()?,
                kind: "grant_cleanup".into(),
                grant_id: g.id.clone(),
                attempts: 0,
                next_at: now,
                last_error: None,
                created_at: now,
                done_at: None,
            })
            .await?;
    }
    Ok(true)
}

async fn withdraw_request(
    tx: &mut WriteTx,
    mut r: Request,
    note: &str,
    now: Timestamp,
) -> Result<bool> {
    if r.withdraw(note, now).is_err() {
        return Ok(false);
    }
    if !tx.w().await?.update_request(&r).await? {
        return Ok(false);
    }
    tx.audit(
        now,
        None,
        &Event::RequestCancelled {
            request_id: r.id.clone(),
            identity: r.identity.to_string(),
            target: r.target.to_string(),
            note: r.note.clone(),
        },
    )
    .await?;
    Ok(true)
}

/// Leaver: revokes every open grant of `identity` and cancels its pending requests.
pub(crate) async fn revoke_all_of(
    tx: &mut WriteTx,
    identity: &str,
    why: &str,
    jobs: bool,
    now: Timestamp,
) -> Result<(u64, u64)> {
    let grants = tx.q().grants(Some(identity), true, i64::MAX).await?;
    let mut revoked = 0;
    for g in grants {
        revoked += u64::from(close_grant(tx, g, GrantStatus::Revoked, None, why, jobs, now).await?);
    }
    let reqs = tx.q().requests(Some(identity), true, i64::MAX).await?;
    let mut cancelled = 0;
    for r in reqs {
        cancelled += u64::from(withdraw_request(tx, r, why, now).await?);
    }
    Ok((revoked, cancelled))
}

/// Mover: revokes the open grants and cancels the pending requests of `identity` that no rule
/// or policy supports any more, given its current groups.
pub(crate) async fn revoke_ineligible(
    tx: &mut WriteTx,
    policy: &PolicyState,
    identity: &str,
    why: &str,
    jobs: bool,
    now: Timestamp,
) -> Result<(u64, u64)> {
    let Some(ident) = tx.q().identity(identity).await? else {
        return Ok((0, 0));
    };
    let groups = tx.q().groups_of(identity).await?;
    let still = async |tx: &mut WriteTx, target: &Name, role: &Name, secs: i64| -> Result<bool> {
        let Some(t) = tx.q().target(target.as_str()).await? else {
            return Ok(false);
        };
        // Eligibility, not circumstance: the context satisfies every setting so that only
        // the permits themselves count.
        let d = decide(
            policy,
            &ident,
            &groups,
            &t,
            role.as_str(),
            RequestContext {
                duration_secs: secs,
                has_reason: true,
                has_ticket: true,
                mfa: true,
                now_unix: now.unix_seconds(),
            },
        );
        Ok(!d.matched_rules.is_empty() || !d.custom_permits.is_empty())
    };
    let mut revoked = 0;
    for g in tx.q().grants(Some(identity), true, i64::MAX).await? {
        let secs = (g.ends_at.millis() - g.starts_at.millis()) / 1000;
        if !still(tx, &g.target, &g.role, secs).await? {
            revoked +=
                u64::from(close_grant(tx, g, GrantStatus::Revoked, None, why, jobs, now).await?);
        }
    }
    let mut cancelled = 0;
    for r in tx.q().requests(Some(identity), true, i64::MAX).await? {
        if !still(tx, &r.target, &r.role, r.duration.secs()).await? {
            cancelled += u64::from(withdraw_request(tx, r, why, now).await?);
        }
    }
    Ok((revoked, cancelled))
}

impl Engine {
    pub(crate) fn jobs_enabled(&self) -> bool {
        !self.inner.cleanups.is_empty()
    }

    /// Makes a request. Refused at once (and audited) when no rule makes the caller eligible or
    /// a setting is not met; approved at once when the rule has no stages.
    pub async fn create_request(&self, actor: &Actor, input: NewRequest) -> Result<RequestView> {
        let _gate = self.policy_gate_read().await;
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let policy = self.policy();
        let outcome = self
            .tx_create_request(&mut tx, &policy, actor, &input, now)
            .await;
        match outcome {
            Ok(view) => {
                tx.commit().await?;
                if view.grant.is_some() {
                    self.wake_scheduler();
                }
                Ok(view)
            }
            Err(e) => {
                tx.rollback().await?;
                if matches!(e.kind, crate::ErrorKind::Internal) {
                    return Err(e);
                }
                // The refusal itself is a record: who asked for what, and why not.
                let mut tx = self.store().begin().await?;
                tx.audit(
                    now,
                    Some(actor.name.as_str()),
                    &Event::RequestRefused {
                        identity: actor.name.to_string(),
                        target: input.target.to_string(),
                        role: input.role.to_string(),
                        code: e.code.to_owned(),
                        reason: e.message.clone(),
                    },
                )
                .await?;
                tx.commit().await?;
                Err(e)
            }
        }
    }

    async fn tx_create_request(
        &self,
        tx: &mut WriteTx,
        policy: &PolicyState,
        actor: &Actor,
        input: &NewRequest,
        now: Timestamp,
    ) -> Result<RequestView> {
        let ident = tx
            .q()
            .identity(actor.name.as_str())
            .await?
            .ok_or_else(|| identity_not_found(actor.name.as_str()))?;
        if ident.status != IdentityStatus::Active {
            return Err(disabled(actor));
        }
        let target = tx
            .q()
            .target(input.target.as_str())
            .await?
            .ok_or_else(|| target_not_found(input.target.as_str()))?;
        if tx
            .q()
            .role(input.target.as_str(), input.role.as_str())
            .await?
            .is_none()
        {
            return Err(EngineError::not_found(
                "role_not_found",
                format!(
                    "target {} has no role {:?} (see warrant targets)",
                    input.target,
                    input.role.as_str()
                ),
            ));
        }
        if input.reason.len() > 2000 {
            return Err(EngineError::invalid(
                "reason_too_long",
                "keep the reason under 2000 characters",
            ));
        }
        if input.ticket.as_ref().is_some_and(|t| t.len() > 200) {
            return Err(EngineError::invalid(
                "ticket_too_long",
                "keep the ticket under 200 characters",
            ));
        }
        if let Some(s) = input.start_at {
            if s < now.plus_secs(-START_SKEW_SECS) {
                return Err(EngineError::invalid(
                    "start_in_past",
                    "the requested start is in the past: omit --start or give a future time",
                ));
            }
            if s > now.plus_secs(MAX_START_AHEAD_SECS) {
                return Err(EngineError::invalid(
                    "start_too_far",
                    "the requested start is more than 30 days ahead",
                ));
            }
        }
        let groups = tx.q().groups_of(actor.name.as_str()).await?;
        let ticket = input.ticket.as_deref().filter(|t| !t.trim().is_empty());
        let fresh_mfa = crate::mfa::is_fresh(actor, now);
        let d = decide(
            policy,
            &ident,
            &groups,
            &target,
            input.role.as_str(),
            RequestContext {
                duration_secs: input.duration.secs(),
                has_reason: !input.reason.trim().is_empty(),
                has_ticket: ticket.is_some(),
                mfa: fresh_mfa,
                now_unix: input.start_at.unwrap_or(now).unix_seconds(),
            },
        );
        let (rule_id, settings) =
            choose(policy, &d, input.duration, &input.reason, ticket, fresh_mfa)?;
        let mut req = Request {
            id: warrant_iam::new_time_ordered_id(now)?,
            identity: actor.name.clone(),
            target: input.target.clone(),
            role: input.role.clone(),
            duration: input.duration,
            reason: input.reason.trim().to_owned(),
            ticket: ticket.map(str::to_owned),
            start_at: input.start_at,
            rule_id: rule_id.clone(),
            stages: settings.approvals.clone(),
            current_stage: 0,
            status: RequestStatus::Pending,
            approvals: Vec::new(),
            created_at: now,
            expires_at: now.plus_secs(self.inner.config.request_ttl_secs),
            decided_at: None,
            decided_by: None,
            note: None,
        };
        req.approve_without_stages(now);
        tx.w().await?.insert_request(&req).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::RequestCreated {
                request_id: req.id.clone(),
                identity: req.identity.to_string(),
                target: req.target.to_string(),
                role: req.role.to_string(),
                duration_secs: req.duration.secs(),
                reason: req.reason.clone(),
                ticket: req.ticket.clone(),
                rule: rule_id,
                stages: req.stages.len(),
            },
        )
        .await?;
        let grant = if req.status == RequestStatus::Approved {
            Some(issue_grant(tx, &req, now).await?)
        } else {
            None
        };
        Ok(RequestView::settled(req, grant, now))
    }

    /// Approves the open stage of a request. Approving the last stage re-checks eligibility and
    /// creates the grant, in the same transaction.
    pub async fn approve(&self, actor: &Actor, id: &str) -> Result<RequestView> {
        let _gate = self.policy_gate_read().await;
        let mut tx = self.store().begin().await?;
        // Time and policy are read once the writer lock is held.
        let now = self.now();
        let policy = self.policy();
        let mut req = load_request(&mut tx.q(), id).await?;
        let rights = approver_rights(&mut tx.q(), &req, &actor.name).await?;
        if !may_see(actor, &req, rights) {
            return Err(request_not_found(id));
        }
        if rights.open
            && req
                .stages
                .get(req.current_stage as usize)
                .is_some_and(|s| s.require_mfa)
            && !crate::mfa::is_fresh(actor, now)
        {
            return Err(crate::mfa::step_up_required(
                "approving this stage requires a second factor proved within the last 5 minutes",
            ));
        }
        let outcome = req.approve(&actor.name, rights.open, now)?;
        let approval = req
            .approvals
            .last()
            .cloned()
            .ok_or_else(|| EngineError::internal("approval not recorded"))?;
        tx.w().await?.add_approval(&req.id, &approval).await?;
        save_transition(&mut tx, &req).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::RequestApproved {
                request_id: req.id.clone(),
                identity: req.identity.to_string(),
                target: req.target.to_string(),
                stage: approval.stage,
                complete: outcome == StageOutcome::Approved,
            },
        )
        .await?;
        let mut grant = None;
        if outcome == StageOutcome::Approved {
            // Eligibility may have changed while the request waited.
            if let Err(e) = self.recheck(&mut tx, &policy, &req, now).await {
                tx.rollback().await?;
                let mut tx = self.store().begin().await?;
                if let Some(r) = tx.q().request(id).await? {
                    withdraw_request(
                        &mut tx,
                        r,
                        &format!("no longer eligible: {}", e.message),
                        now,
                    )
                    .await?;
                }
                tx.commit().await?;
                return Err(EngineError::conflict(
                    "requester_no_longer_eligible",
                    format!(
                        "the request was cancelled: the requester is no longer eligible ({})",
                        e.message
                    ),
                ));
            }
            grant = Some(issue_grant(&mut tx, &req, now).await?);
        }
        tx.commit().await?;
        if grant.is_some() {
            self.wake_scheduler();
        }
        Ok(RequestView::settled(req, grant, now))
    }

    async fn recheck(
        &self,
        tx: &mut WriteTx,
        policy: &PolicyState,
        req: &Request,
        now: Timestamp,
    ) -> Result<()> {
        let ident = tx
            .q()
            .identity(req.identity.as_str())
            .await?
            .filter(|i| i.status == IdentityStatus::Active)
            .ok_or_else(|| {
                EngineError::forbidden("not_eligible", "the requester is disabled or gone")
            })?;
        let target = tx
            .q()
            .target(req.target.as_str())
            .await?
            .ok_or_else(|| target_not_found(req.target.as_str()))?;
        let groups = tx.q().groups_of(req.identity.as_str()).await?;
        let d = decide(
            policy,
            &ident,
            &groups,
            &target,
            req.role.as_str(),
            RequestContext {
                duration_secs: req.duration.secs(),
                has_reason: !req.reason.is_empty(),
                has_ticket: req.ticket.is_some(),
                // A second factor was proved when the request was made.
                mfa: true,
                now_unix: req.start_at.unwrap_or(now).max(now).unix_seconds(),
            },
        );
        choose(
            policy,
            &d,
            req.duration,
            &req.reason,
            req.ticket.as_deref(),
            true,
        )
        .map(|_| ())
    }

    /// Denies a request; any approver of the open or a later stage may.
    pub async fn deny(&self, actor: &Actor, id: &str, note: Option<String>) -> Result<RequestView> {
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let mut req = load_request(&mut tx.q(), id).await?;
        let rights = approver_rights(&mut tx.q(), &req, &actor.name).await?;
        if !may_see(actor, &req, rights) {
            return Err(request_not_found(id));
        }
        let note = note
            .map(|n| n.trim().chars().take(2000).collect::<String>())
            .filter(|n| !n.is_empty());
        req.deny(&actor.name, rights.remaining, note.clone(), now)?;
        save_transition(&mut tx, &req).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::RequestDenied {
                request_id: req.id.clone(),
                identity: req.identity.to_string(),
                target: req.target.to_string(),
                note,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(RequestView::settled(req, None, now))
    }

    /// Cancels one's own pending request.
    pub async fn cancel(&self, actor: &Actor, id: &str) -> Result<RequestView> {
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let mut req = load_request(&mut tx.q(), id).await?;
        if req.identity != actor.name && actor.role < SystemRole::Auditor {
            return Err(request_not_found(id));
        }
        req.cancel(&actor.name, now)?;
        save_transition(&mut tx, &req).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::RequestCancelled {
                request_id: req.id.clone(),
                identity: req.identity.to_string(),
                target: req.target.to_string(),
                note: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(RequestView::settled(req, None, now))
    }

    /// One request: visible to its requester, its approvers, auditors and admins.
    pub async fn request(&self, actor: &Actor, id: &str) -> Result<RequestView> {
        let now = self.now();
        let mut r = self.store().read().await?;
        let req = load_request(&mut r.q(), id).await?;
        let rights = approver_rights(&mut r.q(), &req, &actor.name).await?;
        if !may_see(actor, &req, rights) {
            return Err(request_not_found(id));
        }
        let grant = match req.status {
            RequestStatus::Approved => r.q().grant_of_request(&req.id).await?,
            _ => None,
        };
        Ok(RequestView {
            status: req.status_at(now),
            can_approve: rights.open && req.status_at(now) == RequestStatus::Pending,
            request: req,
            grant,
        })
    }

    /// Lists requests, newest first.
    pub async fn requests(&self, actor: &Actor, filter: RequestFilter) -> Result<Vec<RequestView>> {
        let now = self.now();
        let mut r = self.store().read().await?;
        let reqs = match filter {
            RequestFilter::Mine => {
                r.q()
                    .requests(Some(actor.name.as_str()), false, 1000)
                    .await?
            }
            RequestFilter::All => {
                require_role(actor, SystemRole::Auditor)?;
                r.q().requests(None, false, 1000).await?
            }
            RequestFilter::ToApprove => r.q().requests(None, true, 1000).await?,
        };
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            let status = req.status_at(now);
            let can_approve = status == RequestStatus::Pending
                && !req.approvals.iter().any(|a| a.approver == actor.name)
                && approver_rights(&mut r.q(), &req, &actor.name).await?.open;
            if filter == RequestFilter::ToApprove && !can_approve {
                continue;
            }
            let grant = match req.status {
                RequestStatus::Approved => r.q().grant_of_request(&req.id).await?,
                _ => None,
            };
            out.push(RequestView {
                request: req,
                status,
                grant,
                can_approve,
            });
        }
        Ok(out)
    }

    /// Lists grants, newest first: one's own, or everyone's for auditors and admins.
    pub async fn grants(&self, actor: &Actor, all: bool, open_only: bool) -> Result<Vec<Grant>> {
        if all {
            require_role(actor, SystemRole::Auditor)?;
        }
        let mut r = self.store().read().await?;
        let who = (!all).then_some(actor.name.as_str());
        let now = self.now();
        let mut grants = r.q().grants(who, open_only, 1000).await?;
        if open_only {
            grants.retain(|g| !g.status_at(now).is_closed());
        }
        Ok(grants)
    }

    /// One grant: its holder's, the target owners', auditors' and admins'.
    pub async fn grant(&self, actor: &Actor, id: &str) -> Result<Grant> {
        let mut r = self.store().read().await?;
        let g = r.q().grant(id).await?.ok_or_else(|| grant_not_found(id))?;
        if g.identity == actor.name || actor.role >= SystemRole::Auditor {
            return Ok(g);
        }
        let owner = r.q().target(g.target.as_str()).await?.map(|t| t.owner);
        match owner {
            Some(o) if r.q().is_member(o.as_str(), actor.name.as_str()).await? => Ok(g),
            _ => Err(grant_not_found(id)),
        }
    }

    /// Revokes a grant: admins, the target's owners and the holder may.
    pub async fn revoke(&self, actor: &Actor, id: &str, reason: Option<String>) -> Result<Grant> {
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let g = tx.q().grant(id).await?.ok_or_else(|| grant_not_found(id))?;
        let is_owner = match tx.q().target(g.target.as_str()).await? {
            Some(t) => {
                tx.q()
                    .is_member(t.owner.as_str(), actor.name.as_str())
                    .await?
            }
            None => false,
        };
        let allowed = actor.role == SystemRole::Admin || g.identity == actor.name || is_owner;
        if !allowed {
            return Err(if actor.role >= SystemRole::Auditor {
                EngineError::forbidden(
                    "forbidden",
                    "only admins, the target's owners and the holder can revoke a grant",
                )
            } else {
                grant_not_found(id)
            });
        }
        if g.status_at(now).is_closed() {
            return Err(EngineError::conflict(
                "grant_closed",
                format!("grant {id} is already {}", g.status_at(now).as_str()),
            ));
        }
        let reason = reason
            .map(|r| r.trim().chars().take(2000).collect::<String>())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| format!("revoked by {}", actor.name));
        close_grant(
            &mut tx,
            g.clone(),
            GrantStatus::Revoked,
            Some(&actor.name),
            &reason,
            self.jobs_enabled(),
            now,
        )
        .await?;
        tx.commit().await?;
        self.wake_scheduler();
        let mut r = self.store().read().await?;
        r.q().grant(id).await?.ok_or_else(|| grant_not_found(id))
    }

    /// Whether `identity` holds an active grant for `role` on `target` now. Anyone may check
    /// themselves; checking others needs the auditor role.
    pub async fn check(
        &self,
        actor: &Actor,
        identity: &str,
        target: &str,
        role: &str,
    ) -> Result<CheckResult> {
        if actor.name.as_str() != identity {
            require_role(actor, SystemRole::Auditor)?;
        }
        let now = self.now();
        let mut r = self.store().read().await?;
        let grant = r.q().active_grant(identity, target, role, now).await?;
        Ok(CheckResult {
            allowed: grant.is_some(),
            grant,
        })
    }
}

async fn issue_grant(tx: &mut WriteTx, req: &Request, now: Timestamp) -> Result<Grant> {
    let (starts_at, ends_at) = req.grant_window(now);
    let g = Grant {
        id: warrant_iam::new_time_ordered_id(now)?,
        request_id: req.id.clone(),
        identity: req.identity.clone(),
        target: req.target.clone(),
        role: req.role.clone(),
        rule_id: req.rule_id.clone(),
        starts_at,
        ends_at,
        status: if starts_at > now {
            GrantStatus::Scheduled
        } else {
            GrantStatus::Active
        },
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    tx.w().await?.insert_grant(&g, now).await?;
    tx.audit(
        now,
        req.decided_by.as_ref().map(Name::as_str),
        &Event::GrantCreated {
            grant_id: g.id.clone(),
            request_id: req.id.clone(),
            identity: g.identity.to_string(),
            target: g.target.to_string(),
            role: g.role.to_string(),
            starts_at: g.starts_at.rfc3339(),
            ends_at: g.ends_at.rfc3339(),
        },
    )
    .await?;
    Ok(g)
}
