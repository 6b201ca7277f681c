//! The SCIM 2.0 service provider (RFC 7643, RFC 7644): users and groups pushed by an IdP.
//!
//! `warrant-scim` parses, validates, patches and projects resource documents; this module maps
//! them onto the directory. Each SCIM resource is an identity or group whose source is `scim`,
//! plus a row in `scim_resources` that keeps the document the IdP sent and its version (the
//! ETag). A PATCH is applied to the current document and then handled as a replacement, so
//! PUT and PATCH share one path: the differences become directory changes (leaver on
//! `active=false` or DELETE, mover on removal from a group), each audited with `via = scim`, in
//! the transaction that stores the new document.
//!
//! Warrant names are fixed at creation: `userName` is the identity's name and cannot change
//! (re-provision instead), and a group's name is `Name::slug(displayName)` at creation while
//! later renames change only its description. Relations (`groups` of a user, `members` of a
//! group) are read from the memberships table, never from the stored document.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};
use warrant_audit::Event;
use warrant_core::{IdentityStatus, Name, Secret, Source, SystemRole, Timestamp};
use warrant_scim::schema::{ENTERPRISE_USER_SCHEMA, MAX_RESULTS};
use warrant_scim::{Filter, PatchRequest, ResourceSchema, ScimError};
use warrant_store::{ScimRow, WriteTx};

use crate::Engine;
use crate::auth::Actor;
use crate::directory::{
    IdentityInput, IdentityUpdate, hash_password, tx_add_group, tx_add_identity, tx_add_member,
    tx_delete_identity, tx_remove_member, tx_set_password_hash, tx_set_status, tx_update_identity,
};
use crate::error::{EngineError, ErrorKind};

/// Result of a SCIM operation.
pub type ScimResult<T> = std::result::Result<T, ScimError>;

/// Users or groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Self::User => "Users",
            Self::Group => "Groups",
        }
    }

    fn schemas(self) -> Vec<&'static ResourceSchema> {
        match self {
            Self::User => warrant_scim::schema::user_schemas().to_vec(),
            Self::Group => warrant_scim::schema::group_schemas().to_vec(),
        }
    }
}

/// A resource as returned, with its ETag.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimResource {
    /// The representation (already projected).
    pub body: Value,
    /// `W/"<version>"`.
    pub etag: String,
    /// Its URL.
    pub location: String,
}

/// Query parameters of a listing (RFC 7644 §3.4.2).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `filter`.
    pub filter: Option<String>,
    /// `startIndex` (1-based).
    pub start_index: Option<i64>,
    /// `count`.
    pub count: Option<i64>,
    /// `attributes`.
    pub attributes: Option<String>,
    /// `excludedAttributes`.
    pub excluded_attributes: Option<String>,
}

/// The SCIM form of an engine error.
pub fn scim_error(e: EngineError) -> ScimError {
    match e.kind {
        ErrorKind::Invalid => ScimError::invalid_value(e.message),
        ErrorKind::NotFound => ScimError::not_found(e.message),
        ErrorKind::Conflict if matches!(e.code, "identity_exists" | "group_exists") => {
            ScimError::uniqueness(e.message)
        }
        ErrorKind::Conflict => ScimError::new(409, None, e.message),
        ErrorKind::Forbidden => ScimError::new(403, None, e.message),
        ErrorKind::Unauthenticated => ScimError::new(401, None, e.message),
        ErrorKind::RateLimited => ScimError::new(429, None, e.message),
        ErrorKind::Unavailable => ScimError::new(503, None, e.message),
        ErrorKind::Internal => {
            tracing::error!(error = %e.message, "SCIM request failed");
            ScimError::new(500, None, "internal error; the server log has the details")
        }
    }
}

fn from_store(e: warrant_store::StoreError) -> ScimError {
    scim_error(e.into())
}

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match` header value admits `version` (`*`, or a list naming its ETag, weak or
/// strong).
fn if_match_ok(header: Option<&str>, version: i64) -> bool {
    let Some(h) = header else { return true };
    h.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == version.to_string()
    })
}

fn precondition(version: i64) -> ScimError {
    ScimError::precondition_failed(format!(
        "the resource changed: its version is {}; GET it again and retry",
        etag(version)
    ))
}

fn not_found(kind: Kind, id: &str) -> ScimError {
    ScimError::not_found(format!("no {} with id {id}", kind.as_str()))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The attributes of a user document that map onto the identity.
struct UserFields {
    name: Name,
    display_name: String,
    email: String,
    active: bool,
    external_id: Option<String>,
    manager_id: Option<String>,
    password: Option<Secret<String>>,
}

fn user_fields(doc: &mut Value) -> ScimResult<UserFields> {
    let user_name = str_at(doc, "userName")
        .ok_or_else(|| ScimError::invalid_value("userName is required"))?
        .to_owned();
    let name = Name::new(user_name.as_str()).map_err(|e| {
        ScimError::invalid_value(format!(
            "userName: {e} (Warrant uses it as the identity's name)"
        ))
    })?;
    let display_name = str_at(doc, "displayName")
        .map(str::to_owned)
        .or_else(|| {
            doc.pointer("/name/formatted")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| {
            let given = doc.pointer("/name/givenName").and_then(Value::as_str);
            let family = doc.pointer("/name/familyName").and_then(Value::as_str);
            match (given, family) {
                (None, None) => None,
                (g, f) => Some([g, f].into_iter().flatten().collect::<Vec<_>>().join(" ")),
            }
        })
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| user_name.clone());
    let emails: Vec<&Value> = doc
        .get("emails")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let pick = emails
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| emails.iter().find(|e| str_at(e, "type") == Some("work")))
        .or_else(|| emails.first());
    let email = pick
        .and_then(|e| str_at(e, "value"))
        .unwrap_or_default()
        .to_owned();
    let active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
    let external_id = str_at(doc, "externalId").map(str::to_owned);
    let manager_id = doc
        .get(ENTERPRISE_USER_SCHEMA)
        .and_then(|e| e.get("manager"))
        .and_then(|m| str_at(m, "value"))
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let password = doc
        .as_object_mut()
        .and_then(|o| o.remove("password"))
        .map(|p| match p {
            Value::String(s) => Ok(Secret::new(s)),
            _ => Err(ScimError::invalid_value("password must be a string")),
        })
        .transpose()?;
    Ok(UserFields {
        name,
        display_name,
        email,
        active,
        external_id,
        manager_id,
        password,
    })
}

/// What is stored of a document: everything but the server's own and relational attributes.
fn stored_doc(doc: &Value, kind: Kind) -> String {
    let mut d = doc.clone();
    if let Some(o) = d.as_object_mut() {
        for k in ["id", "meta", "password", "groups"] {
            o.remove(k);
        }
        if kind == Kind::Group {
            o.remove("members");
        }
    }
    d.to_string()
}

impl Engine {
    fn scim_actor(actor: &Actor) -> ScimResult<Actor> {
        if actor.role < SystemRole::Admin {
            return Err(ScimError::new(
                403,
                None,
                "SCIM provisioning needs a token of an admin with scope scim",
            ));
        }
        Ok(actor.clone().through(Source::Scim))
    }

    /// Renders a stored resource with its relations and `meta`.
    async fn render(
        &self,
        q: &mut warrant_store::Q<'_>,
        base: &str,
        kind: Kind,
        row: &ScimRow,
        with_relations: bool,
        user_ids: Option<&HashMap<String, String>>,
    ) -> ScimResult<Value> {
        let mut doc: Value = serde_json::from_str(&row.data).map_err(|e| {
            scim_error(EngineError::internal(format!(
                "stored SCIM document {}: {e}",
                row.id
            )))
        })?;
        let location = format!("{base}/{}/{}", kind.endpoint(), row.id);
        let obj = doc.as_object_mut().ok_or_else(|| {
            scim_error(EngineError::internal(
                "stored SCIM document is not an object",
            ))
        })?;
        obj.insert("id".into(), row.id.clone().into());
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": kind.resource_type(),
                "created": row.created_at.rfc3339(),
                "lastModified": row.updated_at.rfc3339(),
                "location": location,
                "version": etag(row.version),
            }),
        );
        match kind {
            Kind::User => {
                if let Some(i) = q.identity(&row.name).await.map_err(from_store)? {
                    obj.insert("active".into(), (i.status == IdentityStatus::Active).into());
                }
                if with_relations {
                    let mut groups = Vec::new();
                    for g in q.groups_of(&row.name).await.map_err(from_store)? {
                        if let Some(gr) = q
                            .scim_by_name("group", g.as_str())
                            .await
                            .map_err(from_store)?
                        {
                            groups.push(json!({
                                "value": gr.id,
                                "$ref": format!("{base}/Groups/{}", gr.id),
                                "display": str_at(&serde_json::from_str::<Value>(&gr.data).unwrap_or(Value::Null), "displayName").unwrap_or(gr.name.as_str()),
                            }));
                        }
                    }
                    if !groups.is_empty() {
                        obj.insert("groups".into(), Value::Array(groups));
                    }
                }
            }
            Kind::Group => {
                let owned;
                let ids = match user_ids {
                    Some(m) => m,
                    None => {
                        owned = user_id_map(q).await?;
                        &owned
                    }
                };
                let members: Vec<Value> = q
                    .members(&row.name)
                    .await
                    .map_err(from_store)?
                    .iter()
                    .filter_map(|m| ids.get(m.as_str()).map(|id| (m, id)))
                    .map(|(m, id)| {
                        json!({
                            "value": id,
                            "$ref": format!("{base}/Users/{id}"),
                            "display": m.as_str(),
                            "type": "User",
                        })
                    })
                    .collect();
                obj.insert("members".into(), Value::Array(members));
            }
        }
        Ok(doc)
    }

    /// One resource.
    pub async fn scim_get(
        &self,
        actor: &Actor,
        base: &str,
        kind: Kind,
        id: &str,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> ScimResult<ScimResource> {
        Self::scim_actor(actor)?;
        let mut r = self.store().read().await.map_err(from_store)?;
        let mut q = r.q();
        let row = q
            .scim_by_id(kind.as_str(), id)
            .await
            .map_err(from_store)?
            .ok_or_else(|| not_found(kind, id))?;
        let doc = self.render(&mut q, base, kind, &row, true, None).await?;
        let body = warrant_scim::project(&doc, attributes, excluded, &kind.schemas())?;
        Ok(ScimResource {
            body,
            etag: etag(row.version),
            location: format!("{base}/{}/{}", kind.endpoint(), row.id),
        })
    }

    /// A listing: filtered, paged, projected (a ListResponse).
    pub async fn scim_list(
        &self,
        actor: &Actor,
        base: &str,
        kind: Kind,
        query: &ListQuery,
    ) -> ScimResult<Value> {
        Self::scim_actor(actor)?;
        let schemas = kind.schemas();
        let filter: Option<Filter> = query
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(warrant_scim::parse_filter)
            .transpose()?;
        if let Some(f) = &filter {
            f.check(&schemas)?;
        }
        let start = query.start_index.unwrap_or(1).max(1);
        let count = query
            .count
            .unwrap_or(MAX_RESULTS as i64)
            .clamp(0, MAX_RESULTS as i64);
        let mut r = self.store().read().await.map_err(from_store)?;
        let mut q = r.q();
        let rows = q.scim_all(kind.as_str()).await.map_err(from_store)?;
        let ids = match kind {
            Kind::Group => Some(user_id_map(&mut q).await?),
            Kind::User => None,
        };
        let mut matched = Vec::new();
        for row in &rows {
            // A common `userName eq "x"` / `externalId eq "x"` needs no rendering.
            if let Some(f) = &filter
                && let Some((path, value)) = f.eq_value()
                && path.sub.is_none()
            {
                let quick = if path.name.eq_ignore_ascii_case("externalId") {
                    Some(row.external_id.as_deref() == Some(value))
                } else if path.name.eq_ignore_ascii_case("id") {
                    Some(row.id == value)
                } else if kind == Kind::User && path.name.eq_ignore_ascii_case("userName") {
                    Some(row.name.eq_ignore_ascii_case(value))
                } else {
                    None
                };
                if let Some(hit) = quick {
                    if hit {
                        matched.push(row);
                    }
                    continue;
                }
            }
            match &filter {
                None => matched.push(row),
                Some(f) => {
                    let doc = self
                        .render(&mut q, base, kind, row, false, ids.as_ref())
                        .await?;
                    if f.matches(&doc, &schemas) {
                        matched.push(row);
                    }
                }
            }
        }
        let total = matched.len();
        let mut resources = Vec::new();
        let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
        let take = usize::try_from(count).unwrap_or(0);
        for row in matched.into_iter().skip(skip).take(take) {
            let doc = self
                .render(&mut q, base, kind, row, true, ids.as_ref())
                .await?;
            resources.push(warrant_scim::project(
                &doc,
                query.attributes.as_deref(),
                query.excluded_attributes.as_deref(),
                &schemas,
            )?);
        }
        Ok(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }))
    }

    /// POST: creates a user or group.
    pub async fn scim_create(
        &self,
        actor: &Actor,
        base: &str,
        kind: Kind,
        mut body: Value,
    ) -> ScimResult<ScimResource> {
        let actor = Self::scim_actor(actor)?;
        let schemas = kind.schemas();
        warrant_scim::validate(&mut body, &schemas)?;
        let id = warrant_iam::new_id().map_err(|e| scim_error(e.into()))?;
        match kind {
            Kind::User => {
                let fields = user_fields(&mut body)?;
                let hash = match fields.password.clone() {
                    Some(pw) => Some(hash_password(pw).await.map_err(scim_error)?),
                    None => None,
                };
                let _gate = self.policy_gate_read().await;
                let now = self.now();
                let mut tx = self.store().begin().await.map_err(from_store)?;
                if tx
                    .q()
                    .identity_named_ci(fields.name.as_str())
                    .await
                    .map_err(from_store)?
                    .is_some()
                {
                    return Err(ScimError::uniqueness(format!(
                        "userName {:?} is taken: an identity of that name exists (Warrant does not take over identities of another source)",
                        fields.name.as_str()
                    )));
                }
                let manager = self
                    .manager_name(&mut tx, fields.manager_id.as_deref())
                    .await?;
                let ident = tx_add_identity(
                    &mut tx,
                    &actor,
                    IdentityInput {
                        name: fields.name.clone(),
                        display_name: Some(fields.display_name.clone()),
                        email: fields.email.clone(),
                        manager,
                        system_role: SystemRole::User,
                        password: None,
                        external_id: fields.external_id.clone(),
                    },
                    now,
                )
                .await
                .map_err(scim_error)?;
                if let Some(h) = &hash {
                    tx_set_password_hash(&mut tx, &actor, &ident.name, h, now)
                        .await
                        .map_err(scim_error)?;
                }
                if !fields.active {
                    tx_set_status(
                        &mut tx,
                        &actor,
                        ident.name.as_str(),
                        IdentityStatus::Disabled,
                        self.jobs_enabled(),
                        now,
                    )
                    .await
                    .map_err(scim_error)?;
                }
                let row = ScimRow {
                    id: id.clone(),
                    kind: kind.as_str().into(),
                    name: ident.name.to_string(),
                    external_id: fields.external_id,
                    data: stored_doc(&body, kind),
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                self.finish_save(tx, &actor, base, kind, row, None).await
            }
            Kind::Group => {
                let display = str_at(&body, "displayName")
                    .ok_or_else(|| ScimError::invalid_value("displayName is required"))?
                    .to_owned();
                let name = Name::slug(&display).ok_or_else(|| {
                    ScimError::invalid_value(format!(
                        "displayName {display:?} leaves no usable group name (letters or digits needed)"
                    ))
                })?;
                let members = requested_members(&body)?;
                let _gate = self.policy_gate_read().await;
                let now = self.now();
                let mut tx = self.store().begin().await.map_err(from_store)?;
                if tx
                    .q()
                    .group(name.as_str())
                    .await
                    .map_err(from_store)?
                    .is_some()
                {
                    return Err(ScimError::uniqueness(format!(
                        "a group named {:?} exists (from displayName {display:?}); Warrant does not take over groups of another source",
                        name.as_str()
                    )));
                }
                tx_add_group(&mut tx, &actor, &name, &display, now)
                    .await
                    .map_err(scim_error)?;
                let external_id = str_at(&body, "externalId").map(str::to_owned);
                tx.w()
                    .await
                    .map_err(from_store)?
                    .save_group(
                        &warrant_core::Group {
                            name: name.clone(),
                            description: display,
                            source: Source::Scim,
                            external_id: external_id.clone(),
                        },
                        now,
                    )
                    .await
                    .map_err(from_store)?;
                let wanted = self.member_names(&mut tx, &members).await?;
                for m in &wanted {
                    tx_add_member(&mut tx, &actor, name.as_str(), m, now)
                        .await
                        .map_err(scim_error)?;
                }
                let row = ScimRow {
                    id: id.clone(),
                    kind: kind.as_str().into(),
                    name: name.to_string(),
                    external_id,
                    data: stored_doc(&body, kind),
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                self.finish_save(tx, &actor, base, kind, row, None).await
            }
        }
    }

    /// PUT: replaces a resource (guarded by `If-Match` when given).
    pub async fn scim_replace(
        &self,
        actor: &Actor,
        base: &str,
        kind: Kind,
        id: &str,
        mut body: Value,
        if_match: Option<&str>,
    ) -> ScimResult<ScimResource> {
        let actor = Self::scim_actor(actor)?;
        warrant_scim::validate(&mut body, &kind.schemas())?;
        let password = body
            .get("password")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.replace_with(
            &actor,
            base,
            kind,
            id,
            Change::Put(body),
            password,
            if_match,
        )
        .await
    }

    /// PATCH: applies the operations to the current document, then replaces it with the
    /// result, all under the writer lock (IdPs send changes of one group in parallel; each
    /// applies to the version before it). Answers with the full resource.
    pub async fn scim_patch(
        &self,
        actor: &Actor,
        base: &str,
        kind: Kind,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> ScimResult<ScimResource> {
        let actor = Self::scim_actor(actor)?;
        let ops = PatchRequest::parse(body)?;
        let password = password_in_ops(&ops);
        self.replace_with(
            &actor,
            base,
            kind,
            id,
            Change::Patch(&ops),
            password,
            if_match,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn replace_with(
        &self,
        actor: &Actor,
        base: &str,
        kind: Kind,
        id: &str,
        change: Change<'_>,
        password: Option<String>,
        if_match: Option<&str>,
    ) -> ScimResult<ScimResource> {
        // Hash before taking the writer: argon2 must not hold up everyone else.
        let hash = match password {
            Some(pw) => Some(hash_password(Secret::new(pw)).await.map_err(scim_error)?),
            None => None,
        };
        let _gate = self.policy_gate_read().await;
        let now = self.now();
        let policy = self.policy();
        let mut tx = self.store().begin().await.map_err(from_store)?;
        let row = current_row(&mut tx, kind, id, if_match).await?;
        let mut body = match change {
            Change::Put(body) => body,
            Change::Patch(ops) => {
                let schemas = kind.schemas();
                let mut doc = self
                    .render(&mut tx.q(), base, kind, &row, false, None)
                    .await?;
                warrant_scim::apply(&mut doc, &ops.operations, &schemas)?;
                warrant_scim::validate(&mut doc, &schemas)?;
                doc
            }
        };
        let fields = match kind {
            Kind::User => Some(user_fields(&mut body)?),
            Kind::Group => None,
        };
        let members = match kind {
            Kind::Group => Some(requested_members(&body)?),
            Kind::User => None,
        };
        match (fields, members) {
            (Some(f), _) => {
                if !f.name.as_str().eq_ignore_ascii_case(&row.name) {
                    return Err(ScimError::mutability(format!(
                        "userName is the Warrant identity's name and cannot change ({:?} → {:?}): deprovision and provision again",
                        row.name,
                        f.name.as_str()
                    )));
                }
                let manager = self.manager_name(&mut tx, f.manager_id.as_deref()).await?;
                let current = tx
                    .q()
                    .identity(&row.name)
                    .await
                    .map_err(from_store)?
                    .ok_or_else(|| not_found(kind, id))?;
                if current.source != Source::Scim {
                    return Err(not_found(kind, id));
                }
                // An identity that Warrant made an auditor or admin is not something a
                // provisioning token may take over: no password, no new external id.
                if current.system_role > SystemRole::User
                    && (hash.is_some() || f.external_id != row.external_id)
                {
                    return Err(ScimError::mutability(format!(
                        "{} has Warrant's {} role: its password and externalId cannot be changed over SCIM (an admin of Warrant can)",
                        row.name,
                        current.system_role.as_str()
                    )));
                }
                // A manager the IdP names but Warrant does not know yet is left as it was.
                let manager_update = match (&f.manager_id, manager) {
                    (None, _) => Some(None),
                    (Some(_), Some(m)) => Some(Some(m)),
                    (Some(_), None) => None,
                };
                tx_update_identity(
                    &mut tx,
                    actor,
                    &row.name,
                    IdentityUpdate {
                        display_name: Some(f.display_name.clone()),
                        email: Some(f.email.clone()),
                        manager: manager_update,
                        system_role: None,
                    },
                    now,
                )
                .await
                .map_err(scim_error)?;
                let status = if f.active {
                    IdentityStatus::Active
                } else {
                    IdentityStatus::Disabled
                };
                if status != current.status {
                    tx_set_status(&mut tx, actor, &row.name, status, self.jobs_enabled(), now)
                        .await
                        .map_err(scim_error)?;
                }
                if let Some(h) = &hash {
                    tx_set_password_hash(&mut tx, actor, &current.name, h, now)
                        .await
                        .map_err(scim_error)?;
                    // A password reset by the IdP ends what the old one opened: sessions and
                    // API tokens alike.
                    tx.w()
                        .await
                        .map_err(from_store)?
                        .revoke_tokens_of(current.name.as_str(), now)
                        .await
                        .map_err(from_store)?;
                }
                let saved = ScimRow {
                    external_id: f.external_id,
                    data: stored_doc(&body, kind),
                    version: row.version + 1,
                    updated_at: now,
                    ..row.clone()
                };
                self.finish_save(tx, actor, base, kind, saved, Some(row.version))
                    .await
            }
            (None, Some(members)) => {
                let display = str_at(&body, "displayName")
                    .ok_or_else(|| ScimError::invalid_value("displayName is required"))?
                    .to_owned();
                let external_id = str_at(&body, "externalId").map(str::to_owned);
                let name = Name::new(row.name.as_str()).map_err(|e| scim_error(e.into()))?;
                tx_add_group(&mut tx, actor, &name, &display, now)
                    .await
                    .map_err(scim_error)?;
                let wanted: BTreeSet<String> = self
                    .member_names(&mut tx, &members)
                    .await?
                    .into_iter()
                    .collect();
                let have: BTreeSet<String> = tx
                    .q()
                    .members(&row.name)
                    .await
                    .map_err(from_store)?
                    .into_iter()
                    .map(|n| n.to_string())
                    .collect();
                for m in wanted.difference(&have) {
                    tx_add_member(&mut tx, actor, &row.name, m, now)
                        .await
                        .map_err(scim_error)?;
                }
                for m in have.difference(&wanted) {
                    tx_remove_member(
                        &mut tx,
                        &policy,
                        actor,
                        &row.name,
                        m,
                        self.jobs_enabled(),
                        now,
                    )
                    .await
                    .map_err(scim_error)?;
                }
                let saved = ScimRow {
                    external_id,
                    data: stored_doc(&body, kind),
                    version: row.version + 1,
                    updated_at: now,
                    ..row.clone()
                };
                self.finish_save(tx, actor, base, kind, saved, Some(row.version))
                    .await
            }
            (None, None) => Err(ScimError::invalid_syntax("nothing to replace")),
        }
    }

    /// Stores the document, audits, commits, and renders the result.
    async fn finish_save(
        &self,
        mut tx: WriteTx,
        actor: &Actor,
        base: &str,
        kind: Kind,
        row: ScimRow,
        read_version: Option<i64>,
    ) -> ScimResult<ScimResource> {
        match read_version {
            None => tx
                .w()
                .await
                .map_err(from_store)?
                .insert_scim(&row)
                .await
                .map_err(from_store)?,
            Some(v) => tx
                .w()
                .await
                .map_err(from_store)?
                .update_scim(&row, v)
                .await
                .map_err(from_store)?,
        }
        tx.audit(
            row.updated_at,
            Some(actor.name.as_str()),
            &Event::ScimResourceSaved {
                kind: kind.as_str().into(),
                scim_id: row.id.clone(),
                name: row.name.clone(),
                version: row.version,
            },
        )
        .await
        .map_err(from_store)?;
        let doc = self
            .render(&mut tx.q(), base, kind, &row, true, None)
            .await?;
        tx.commit().await.map_err(from_store)?;
        self.wake_scheduler();
        Ok(ScimResource {
            body: warrant_scim::project(&doc, None, None, &kind.schemas())?,
            etag: etag(row.version),
            location: format!("{base}/{}/{}", kind.endpoint(), row.id),
        })
    }

    /// DELETE: a user is a leaver (its grants, requests and tokens go with it); a group's
    /// members are movers, and the group goes unless a rule, target or policy still names it
    /// (then it stays, empty).
    pub async fn scim_delete(
        &self,
        actor: &Actor,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
    ) -> ScimResult<()> {
        let actor = Self::scim_actor(actor)?;
        match kind {
            Kind::User => {
                let _gate = self.policy_gate_write().await;
                let now = self.now();
                let mut tx = self.store().begin().await.map_err(from_store)?;
                let row = current_row(&mut tx, kind, id, if_match).await?;
                let owned = tx
                    .q()
                    .identity(&row.name)
                    .await
                    .map_err(from_store)?
                    .is_some_and(|i| i.source == Source::Scim);
                if !owned {
                    return Err(not_found(kind, id));
                }
                let deleted =
                    tx_delete_identity(&mut tx, &actor, &row.name, self.jobs_enabled(), now).await;
                match deleted {
                    // A custom policy names the identity, so it cannot go; it must still stop
                    // being able to do anything: a leaver, disabled, and gone for SCIM.
                    Err(e) if e.code == "identity_in_policy" => {
                        tx.rollback().await.map_err(from_store)?;
                        tx = self.store().begin().await.map_err(from_store)?;
                        tracing::warn!(identity = %row.name, "SCIM DELETE of an identity a custom policy names: disabled instead");
                        tx_set_status(
                            &mut tx,
                            &actor,
                            &row.name,
                            IdentityStatus::Disabled,
                            self.jobs_enabled(),
                            now,
                        )
                        .await
                        .map_err(scim_error)?;
                    }
                    other => other.map_err(scim_error)?,
                }
                self.finish_delete(tx, &actor, kind, &row, now).await?;
                self.reload_policy().await.map_err(scim_error)?;
                Ok(())
            }
            Kind::Group => {
                let _gate = self.policy_gate_read().await;
                let now = self.now();
                let policy = self.policy();
                let mut tx = self.store().begin().await.map_err(from_store)?;
                let row = current_row(&mut tx, kind, id, if_match).await?;
                for m in tx.q().members(&row.name).await.map_err(from_store)? {
                    tx_remove_member(
                        &mut tx,
                        &policy,
                        &actor,
                        &row.name,
                        m.as_str(),
                        self.jobs_enabled(),
                        now,
                    )
                    .await
                    .map_err(scim_error)?;
                }
                if !crate::directory::group_in_use(&mut tx, &row.name)
                    .await
                    .map_err(scim_error)?
                {
                    tx.w()
                        .await
                        .map_err(from_store)?
                        .delete_group(&row.name)
                        .await
                        .map_err(from_store)?;
                    tx.audit(
                        now,
                        Some(actor.name.as_str()),
                        &Event::GroupDeleted {
                            via: actor.via().to_owned(),
                            group: row.name.clone(),
                        },
                    )
                    .await
                    .map_err(from_store)?;
                }
                self.finish_delete(tx, &actor, kind, &row, now).await
            }
        }
    }

    async fn finish_delete(
        &self,
        mut tx: WriteTx,
        actor: &Actor,
        kind: Kind,
        row: &ScimRow,
        now: Timestamp,
    ) -> ScimResult<()> {
        tx.w()
            .await
            .map_err(from_store)?
            .delete_scim(kind.as_str(), &row.id)
            .await
            .map_err(from_store)?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::ScimResourceDeleted {
                kind: kind.as_str().into(),
                scim_id: row.id.clone(),
                name: row.name.clone(),
            },
        )
        .await
        .map_err(from_store)?;
        tx.commit().await.map_err(from_store)?;
        self.wake_scheduler();
        Ok(())
    }

    /// The identity named by a SCIM manager reference, if Warrant knows it.
    async fn manager_name(&self, tx: &mut WriteTx, id: Option<&str>) -> ScimResult<Option<Name>> {
        let Some(id) = id else { return Ok(None) };
        let row = tx.q().scim_by_id("user", id).await.map_err(from_store)?;
        Ok(row.and_then(|r| Name::new(r.name).ok()))
    }

    /// Identity names for member references; an unknown reference is an error.
    async fn member_names(&self, tx: &mut WriteTx, ids: &[String]) -> ScimResult<Vec<String>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = tx
                .q()
                .scim_by_id("user", id)
                .await
                .map_err(from_store)?
                .ok_or_else(|| {
                    ScimError::invalid_value(format!(
                        "member {id:?} is not a user provisioned over SCIM: provision the user first"
                    ))
                })?;
            out.push(row.name);
        }
        Ok(out)
    }
}

/// The resource `id` read under the writer lock, if `if_match` (when given) names its version.
async fn current_row(
    tx: &mut WriteTx,
    kind: Kind,
    id: &str,
    if_match: Option<&str>,
) -> ScimResult<ScimRow> {
    let row = tx
        .q()
        .scim_by_id(kind.as_str(), id)
        .await
        .map_err(from_store)?
        .ok_or_else(|| not_found(kind, id))?;
    if !if_match_ok(if_match, row.version) {
        return Err(precondition(row.version));
    }
    Ok(row)
}

/// A PUT document or PATCH operations.
enum Change<'a> {
    Put(Value),
    Patch(&'a PatchRequest),
}

/// The password a PATCH sets, if any (`path: password`, or a path-less value carrying it).
fn password_in_ops(ops: &PatchRequest) -> Option<String> {
    ops.operations
        .iter()
        .rev()
        .find_map(|op| match (&op.path, &op.value) {
            (Some(p), Some(Value::String(v)))
                if p.attr.name.eq_ignore_ascii_case("password") && p.attr.sub.is_none() =>
            {
                Some(v.clone())
            }
            (None, Some(Value::Object(o))) => o
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("password"))
                .and_then(|(_, v)| v.as_str().map(str::to_owned)),
            _ => None,
        })
}

/// The `value`s of a group document's `members` (users only).
fn requested_members(doc: &Value) -> ScimResult<Vec<String>> {
    let Some(members) = doc.get("members") else {
        return Ok(Vec::new());
    };
    let list = members
        .as_array()
        .ok_or_else(|| ScimError::invalid_value("members must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        if str_at(m, "type").is_some_and(|t| !t.eq_ignore_ascii_case("User")) {
            return Err(ScimError::invalid_value(
                "only users can be members of a group in Warrant (no nested groups over SCIM)",
            ));
        }
        let v = str_at(m, "value")
            .ok_or_else(|| ScimError::invalid_value("each member needs a value (the user's id)"))?;
        if !out.iter().any(|x: &String| x == v) {
            out.push(v.to_owned());
        }
    }
    Ok(out)
}

/// Identity name → SCIM user id.
async fn user_id_map(q: &mut warrant_store::Q<'_>) -> ScimResult<HashMap<String, String>> {
    Ok(q.scim_all("user")
        .await
        .map_err(from_store)?
        .into_iter()
        .map(|r| (r.name, r.id))
        .collect())
}
