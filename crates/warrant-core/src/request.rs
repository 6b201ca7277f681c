//! The request state machine.
//!
//! ```text
//!  pending(stage 0) --approve*--> pending(stage 1) ... --last stage passes--> approved
//!     |  \-- deny by an allowed approver --> denied
//!     |-- cancel by the requester, or the requester leaves --> cancelled
//!     \-- pending past its deadline --> expired
//! ```
//! Who is allowed to approve a stage depends on the directory; the caller resolves it and passes
//! `allowed`. The machine enforces the rest: order of stages, distinct approvers, never the
//! requester, one outcome.

use crate::model::ApprovalStage;
use crate::name::Name;
use crate::time::{ActivationDuration, Timestamp};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Every stage passed; a grant exists.
    Approved,
    /// An approver said no.
    Denied,
    /// The requester withdrew it, or left.
    Cancelled,
    /// Nobody decided in time.
    Expired,
}

impl RequestStatus {
    /// The stable spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// Parses the stable spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "cancelled" => Self::Cancelled,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// One approval given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Who approved.
    pub approver: Name,
    /// The stage (0-based) it counted for.
    pub stage: u32,
    /// When.
    pub at: Timestamp,
}

/// A request for a privileged role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Unique id.
    pub id: String,
    /// The requester.
    pub identity: Name,
    /// The target.
    pub target: Name,
    /// The role on the target.
    pub role: Name,
    /// How long the grant lasts once active.
    pub duration: ActivationDuration,
    /// Why.
    pub reason: String,
    /// A ticket reference.
    pub ticket: Option<String>,
    /// The earliest start asked for.
    pub start_at: Option<Timestamp>,
    /// The eligibility rule (or custom policy) that made the requester eligible.
    pub rule_id: String,
    /// The approval stages, copied from the rule when the request was made.
    pub stages: Vec<ApprovalStage>,
    /// The open stage (0-based); equals `stages.len()` once approved.
    pub current_stage: u32,
    /// Stored status (see [`Request::status_at`] for the effective one).
    pub status: RequestStatus,
    /// Approvals given so far.
    pub approvals: Vec<Approval>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it expires if still pending.
    pub expires_at: Timestamp,
    /// When it left `pending`.
    pub decided_at: Option<Timestamp>,
    /// Who decided (approver of the last stage, denier, canceller).
    pub decided_by: Option<Name>,
    /// Why it ended, where a reason exists (denial note, leaver).
    pub note: Option<String>,
}

/// What an approval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageOutcome {
    /// The stage still needs more approvals.
    StillOpen {
        /// Approvals this stage has.
        have: u32,
        /// Approvals this stage needs.
        need: u32,
    },
    /// The stage passed and the next one opened.
    StagePassed {
        /// The stage that opened.
        next: u32,
    },
    /// The last stage passed: the request is approved.
    Approved,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request is no longer pending.
    #[error("the request is {} and can no longer change", .0.as_str())]
    NotPending(RequestStatus),
    /// The request passed its deadline.
    #[error("the request expired before it was decided")]
    Expired,
    /// The requester tried to approve or deny their own request.
    #[error("you cannot approve or deny your own request")]
    SelfApproval,
    /// This approver already approved the request.
    #[error("you have already approved this request; another approver must decide")]
    AlreadyApproved,
    /// The caller is not an approver of the open stage.
    #[error("you are not an approver of this request's open stage")]
    NotAnApprover,
    /// Only the requester may cancel.
    #[error("only the requester can cancel a request")]
    NotRequester,
}

impl Request {
    /// The status at `now`: a pending request past its deadline is expired, whatever is stored.
    pub fn status_at(&self, now: Timestamp) -> RequestStatus {
        if self.status == RequestStatus::Pending && now >= self.expires_at {
            RequestStatus::Expired
        } else {
            self.status
        }
    }

    fn ensure_pending(&self, now: Timestamp) -> Result<(), RequestError> {
        match self.status_at(now) {
            RequestStatus::Pending => Ok(()),
            RequestStatus::Expired => Err(RequestError::Expired),
            s => Err(RequestError::NotPending(s)),
        }
    }

    /// The open stage, if any.
    pub fn open_stage(&self) -> Option<&ApprovalStage> {
        self.stages.get(self.current_stage as usize)
    }

    /// Records an approval by `approver`, who `allowed` says may approve the open stage.
    pub fn approve(
        &mut self,
        approver: &Name,
        allowed: bool,
        now: Timestamp,
    ) -> Result<StageOutcome, RequestError> {
        self.ensure_pending(now)?;
        if *approver == self.identity {
            return Err(RequestError::SelfApproval);
        }
        if self.approvals.iter().any(|a| a.approver == *approver) {
            return Err(RequestError::AlreadyApproved);
        }
        let Some(stage) = self.open_stage() else {
            // A pending request always has an open stage; a request without stages is
            // approved when it is made.
            return Err(RequestError::NotPending(self.status));
        };
        if !allowed {
            return Err(RequestError::NotAnApprover);
        }
        let need = stage.count.max(1);
        self.approvals.push(Approval {
            approver: approver.clone(),
            stage: self.current_stage,
            at: now,
        });
        let have = self.approvals_in_stage(self.current_stage);
        if have < need {
            return Ok(StageOutcome::StillOpen { have, need });
        }
        self.current_stage += 1;
        if self.open_stage().is_some() {
            Ok(StageOutcome::StagePassed {
                next: self.current_stage,
            })
        } else {
            self.status = RequestStatus::Approved;
            self.decided_at = Some(now);
            self.decided_by = Some(approver.clone());
            Ok(StageOutcome::Approved)
        }
    }

    /// Approvals counted for `stage`.
    pub fn approvals_in_stage(&self, stage: u32) -> u32 {
        let n = self.approvals.iter().filter(|a| a.stage == stage).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Approves a request that has no stages (at creation).
    pub fn approve_without_stages(&mut self, now: Timestamp) {
        if self.stages.is_empty() && self.status == RequestStatus::Pending {
            self.status = RequestStatus::Approved;
            self.decided_at = Some(now);
        }
    }

    /// Ends the request on a denial by `approver`, whom `allowed` says may decide it.
    pub fn deny(
        &mut self,
        approver: &Name,
        allowed: bool,
        note: Option<String>,
        now: Timestamp,
    ) -> Result<(), RequestError> {
        self.ensure_pending(now)?;
        if *approver == self.identity {
            return Err(RequestError::SelfApproval);
        }
        if !allowed {
            return Err(RequestError::NotAnApprover);
        }
        self.finish(RequestStatus::Denied, Some(approver.clone()), note, now);
        Ok(())
    }

    /// Withdraws the request at the requester's wish.
    pub fn cancel(&mut self, by: &Name, now: Timestamp) -> Result<(), RequestError> {
        if *by != self.identity {
            return Err(RequestError::NotRequester);
        }
        self.ensure_pending(now)?;
        self.finish(RequestStatus::Cancelled, Some(by.clone()), None, now);
        Ok(())
    }

    /// Withdraws the request because the requester left or lost eligibility.
    pub fn withdraw(&mut self, note: &str, now: Timestamp) -> Result<(), RequestError> {
        self.ensure_pending(now)?;
        self.finish(RequestStatus::Cancelled, None, Some(note.to_owned()), now);
        Ok(())
    }

    /// Marks a pending request past its deadline as expired.
    pub fn expire(&mut self, now: Timestamp) -> Result<(), RequestError> {
        if self.status != RequestStatus::Pending {
            return Err(RequestError::NotPending(self.status));
        }
        if now < self.expires_at {
            return Err(RequestError::NotPending(self.status));
        }
        self.finish(RequestStatus::Expired, None, None, now);
        Ok(())
    }

    fn finish(
        &mut self,
        status: RequestStatus,
        by: Option<Name>,
        note: Option<String>,
        now: Timestamp,
    ) {
        self.status = status;
        self.decided_at = Some(now);
        self.decided_by = by;
        self.note = note;
    }

    /// The grant window for an approval at `approved_at`: it starts at the approval or the
    /// requested start, whichever is later, and lasts the requested duration from then.
    pub fn grant_window(&self, approved_at: Timestamp) -> (Timestamp, Timestamp) {
        let starts = self.start_at.map_or(approved_at, |s| s.max(approved_at));
        (starts, starts.plus_secs(self.duration.secs()))
    }
}
