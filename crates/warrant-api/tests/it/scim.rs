//! SCIM 2.0 over HTTP: discovery, provisioning tokens, users and groups with what Entra ID and
//! Okta really send, filters, paging, projections, ETags, SCIM errors that change nothing, and
//! lifecycle propagation (leaver on `active=false` and DELETE, mover on group removal).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warrant_core::{Name, SystemRole};
use warrant_engine::{Actor, Scope};

use crate::harness::Server;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// One raw SCIM answer.
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    location: Option<String>,
    content_type: String,
    body: Value,
}

struct Scim {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Scim {
    async fn new(s: &Server) -> Self {
        let admin = Actor::internal(Name::new("admin").unwrap(), SystemRole::Admin);
        let t = s
            .engine
            .create_api_token(&admin, "entra", None, Scope::Scim)
            .await
            .unwrap();
        Self {
            base: s.admin.base().to_owned(),
            token: Some(t.token.expose().clone()),
            http: reqwest::Client::new(),
        }
    }

    fn with_token(&self, token: Option<String>) -> Self {
        Self {
            base: self.base.clone(),
            token,
            http: self.http.clone(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}/scim/v2{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(m) = if_match {
            req = req.header("If-Match", m);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header("etag");
        let location = header("location");
        let content_type = header("content-type").unwrap_or_default();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
        };
        Answer {
            status,
            etag,
            location,
            content_type,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), None).await
    }
    async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body), None).await
    }
    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body), None).await
    }
    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None, None).await
    }
}

fn assert_scim_error(a: &Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["schemas"], json!([ERROR]), "{}", a.body);
    assert_eq!(a.body["status"], json!(status.to_string()), "{}", a.body);
    if let Some(t) = scim_type {
        assert_eq!(a.body["scimType"], json!(t), "{}", a.body);
    }
    assert!(
        a.content_type.starts_with("application/scim+json"),
        "{}",
        a.content_type
    );
}

/// What Okta sends to create a user (with the enterprise extension and a password).
fn okta_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "externalId": external_id,
        "name": {"givenName": "Sam", "familyName": "Provisioned"},
        "emails": [{"primary": true, "value": format!("{user_name}@example.com"), "type": "work"}],
        "displayName": "Sam Provisioned",
        "locale": "en-US",
        "active": true,
        "password": format!("{user_name}-scim-password"),
        ENTERPRISE: {"department": "Platform", "employeeNumber": "1042"},
    })
}

async fn create_user(scim: &Scim, user_name: &str) -> Value {
    let a = scim
        .post("/Users", okta_user(user_name, &format!("okta-{user_name}")))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body
}

async fn sign_in(s: &Server, user: &str, password: &str) -> Option<warrant_api::Client> {
    let t: Result<Value, _> = s
        .anon()
        .post(
            "/api/v1/auth/login",
            &json!({"user": user, "password": password}),
        )
        .await;
    t.ok().map(|t| s.client(t["token"].as_str().unwrap()))
}

/// A rule that makes `group` eligible for pg-prod readonly without approval.
async fn readonly_rule_for(s: &Server, group: &str) {
    let _: Value = s
        .admin
        .post(
            "/api/v1/rules",
            &json!({"id": "", "group": group, "target": "pg-prod", "role": "readonly",
                    "max_duration": "8h", "require_reason": true, "require_mfa": false,
                    "ticket_pattern": null, "approvals": []}),
        )
        .await
        .expect("admin adds a rule");
}

async fn active_grant(c: &warrant_api::Client) -> String {
    let r: Value = c
        .post(
            "/api/v1/requests",
            &json!({"target": "pg-prod", "role": "readonly", "duration": "1h", "reason": "on call"}),
        )
        .await
        .expect("request");
    r["grant"]["id"]
        .as_str()
        .expect("granted at once")
        .to_owned()
}

async fn grant_status(s: &Server, id: &str) -> String {
    let g: Value = s.admin.get(&format!("/api/v1/grants/{id}")).await.unwrap();
    g["status"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_endpoints_describe_the_service() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await.with_token(None);
    let spc = scim.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, StatusCode::OK);
    assert!(spc.content_type.starts_with("application/scim+json"));
    assert_eq!(spc.body["patch"]["supported"], json!(true));
    assert_eq!(spc.body["bulk"]["supported"], json!(false));
    assert_eq!(spc.body["filter"]["supported"], json!(true));
    assert_eq!(spc.body["etag"]["supported"], json!(true));
    let rt = scim.get("/ResourceTypes").await;
    let names: Vec<&str> = rt.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["User", "Group"]);
    let schemas = scim.get("/Schemas").await;
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&USER) && ids.contains(&ENTERPRISE) && ids.contains(&GROUP),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_provisioning_token_reaches_users_and_groups_and_it_reaches_nothing_else() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    assert_scim_error(&scim.with_token(None).get("/Users").await, 401, None);
    assert_scim_error(
        &scim
            .with_token(Some("wt_0000000000000000_nope".into()))
            .get("/Users")
            .await,
        401,
        None,
    );
    // An admin's full token is not a provisioning token.
    let full = s.fresh_token("admin", SystemRole::Admin).await;
    assert_scim_error(&scim.with_token(Some(full)).get("/Users").await, 403, None);
    // The provisioning token does nothing outside /scim/v2.
    let e = s
        .client(scim.token.as_deref().unwrap())
        .get::<Value>("/api/v1/me")
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.code.as_str()),
        (Some(403), "scope_insufficient")
    );
    // Only admins mint one.
    let alice = s.login("alice").await;
    let e = alice
        .post::<_, Value>("/api/v1/tokens", &json!({"name": "x", "scope": "scim"}))
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(403), "{e}");
    let t: Value = s
        .admin
        .post("/api/v1/tokens", &json!({"name": "okta", "scope": "scim"}))
        .await
        .unwrap();
    assert_eq!(t["scope"], json!("scim"));
    let ok = scim
        .with_token(t["token"].as_str().map(str::to_owned))
        .get("/Users")
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_read_filtered_paged_and_projected() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let created = scim.post("/Users", okta_user("sam", "okta-sam")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.location.as_deref(),
        Some(format!("{}/scim/v2/Users/{id}", scim.base).as_str())
    );
    assert_eq!(created.etag.as_deref(), Some("W/\"1\""));
    assert_eq!(created.body["meta"]["version"], json!("W/\"1\""));
    assert_eq!(created.body["meta"]["resourceType"], json!("User"));
    assert!(
        created.body.get("password").is_none(),
        "password is never returned"
    );
    assert!(!created.body.to_string().contains("sam-scim-password"));
    assert_eq!(created.body[ENTERPRISE]["department"], json!("Platform"));
    // The identity exists, owned by SCIM.
    let ident: Value = s.admin.get("/api/v1/identities/sam").await.unwrap();
    assert_eq!(ident["display_name"], json!("Sam Provisioned"));
    assert_eq!(ident["email"], json!("sam@example.com"));
    // The write-only password lets the identity sign in locally.
    assert!(sign_in(&s, "sam", "sam-scim-password").await.is_some());

    for n in ["tara", "uma", "vic"] {
        create_user(&scim, n).await;
    }
    let got = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["userName"], json!("sam"));

    let by_name = scim.get("/Users?filter=userName%20eq%20%22SAM%22").await;
    assert_eq!(
        by_name.body["totalResults"],
        json!(1),
        "userName is not case-exact: {}",
        by_name.body
    );
    let by_ext = scim
        .get("/Users?filter=externalId%20eq%20%22okta-uma%22")
        .await;
    assert_eq!(by_ext.body["Resources"][0]["userName"], json!("uma"));
    let by_value_path = scim
        .get("/Users?filter=emails%5Btype%20eq%20%22work%22%20and%20value%20sw%20%22t%22%5D")
        .await;
    assert_eq!(
        by_value_path.body["totalResults"],
        json!(1),
        "{}",
        by_value_path.body
    );
    let logic = scim
        .get("/Users?filter=(userName%20eq%20%22tara%22%20or%20userName%20eq%20%22vic%22)%20and%20not%20(active%20eq%20false)")
        .await;
    assert_eq!(logic.body["totalResults"], json!(2), "{}", logic.body);

    let page = scim.get("/Users?startIndex=2&count=2").await;
    assert_eq!(page.body["totalResults"], json!(4));
    assert_eq!(page.body["startIndex"], json!(2));
    assert_eq!(page.body["itemsPerPage"], json!(2));
    assert_eq!(page.body["Resources"].as_array().unwrap().len(), 2);

    let slim = scim.get(&format!("/Users/{id}?attributes=userName")).await;
    let keys: Vec<&String> = slim.body.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["id", "schemas", "userName"].contains(&k.as_str())),
        "{keys:?}"
    );
    let no_emails = scim
        .get(&format!("/Users/{id}?excludedAttributes=emails"))
        .await;
    assert!(no_emails.body.get("emails").is_none());
    assert!(no_emails.body.get("userName").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_scim_errors_and_changes_nothing() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    create_user(&scim, "sam").await;
    let before = s.audit_count().await;
    let users_before: Value = s.admin.get("/api/v1/identities").await.unwrap();

    let raw = scim
        .http
        .post(format!("{}/scim/v2/Users", scim.base))
        .bearer_auth(scim.token.as_deref().unwrap())
        .header("Content-Type", "application/scim+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["scimType"], json!("invalidSyntax"));

    let mut unknown_schema = okta_user("wes", "x1");
    unknown_schema["schemas"] = json!([USER, "urn:example:schemas:Nope"]);
    assert_scim_error(
        &scim.post("/Users", unknown_schema).await,
        400,
        Some("invalidSyntax"),
    );

    let mut yes = okta_user("wes", "x2");
    yes["active"] = json!("yes");
    assert_scim_error(&scim.post("/Users", yes).await, 400, Some("invalidValue"));

    let mut no_name = okta_user("wes", "x3");
    no_name.as_object_mut().unwrap().remove("userName");
    assert_scim_error(&scim.post("/Users", no_name).await, 400, None);

    let mut bad_name = okta_user("wes", "x4");
    bad_name["userName"] = json!("wes smith");
    assert_scim_error(
        &scim.post("/Users", bad_name).await,
        400,
        Some("invalidValue"),
    );

    assert_scim_error(
        &scim.post("/Users", okta_user("sam", "other")).await,
        409,
        Some("uniqueness"),
    );
    // A local identity is never taken over.
    assert_scim_error(
        &scim.post("/Users", okta_user("alice", "evil")).await,
        409,
        Some("uniqueness"),
    );

    assert_scim_error(
        &scim.get("/Users?filter=userName%20eq").await,
        400,
        Some("invalidFilter"),
    );
    assert_scim_error(
        &scim.get("/Users?filter=userName%20zz%20%22x%22").await,
        400,
        Some("invalidFilter"),
    );
    assert_scim_error(
        &scim.get("/Users?count=lots").await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(&scim.get("/Users/no-such-id").await, 404, None);
    assert_scim_error(&scim.get("/Widgets").await, 404, None);
    assert_scim_error(
        &scim
            .patch(
                "/Users/no-such-id",
                json!({"schemas": [PATCH_OP], "Operations": []}),
            )
            .await,
        404,
        None,
    );
    // Methods an endpoint does not support: 405, in the SCIM error schema.
    assert_scim_error(
        &scim
            .call(Method::PATCH, "/Users", Some(json!({})), None)
            .await,
        405,
        None,
    );
    assert_scim_error(&scim.delete("/Schemas").await, 405, None);

    assert_eq!(s.audit_count().await, before, "nothing was recorded");
    let users_after: Value = s.admin.get("/api/v1/identities").await.unwrap();
    assert_eq!(users_before, users_after, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_guard_replacements() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let u = create_user(&scim, "sam").await;
    let id = u["id"].as_str().unwrap();
    let mut body = okta_user("sam", "okta-sam");
    body["displayName"] = json!("Sam Renamed");
    let stale = scim
        .call(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(body.clone()),
            Some("W/\"7\""),
        )
        .await;
    assert_scim_error(&stale, 412, None);
    let ok = scim
        .call(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(body),
            Some("W/\"1\""),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.etag.as_deref(), Some("W/\"2\""));
    assert_eq!(ok.body["displayName"], json!("Sam Renamed"));
    let ident: Value = s.admin.get("/api/v1/identities/sam").await.unwrap();
    assert_eq!(ident["display_name"], json!("Sam Renamed"));
    // userName is the identity's name: it cannot change.
    let mut renamed = okta_user("samuel", "okta-sam");
    renamed["id"] = json!(id);
    assert_scim_error(
        &scim.put(&format!("/Users/{id}"), renamed).await,
        400,
        Some("mutability"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_deactivation_revokes_the_grant_in_the_same_response() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let u = create_user(&scim, "sam").await;
    let id = u["id"].as_str().unwrap();
    let g = scim
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Platform Ops", "externalId": "entra-g1",
                   "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    readonly_rule_for(&s, "platform-ops").await;
    let sam = sign_in(&s, "sam", "sam-scim-password").await.unwrap();
    let grant = active_grant(&sam).await;

    // A local admin cannot change what SCIM owns.
    let e = s
        .admin
        .post::<_, Value>("/api/v1/identities/sam/disable", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "source_owned", "{e}");

    // Entra ID: capitalised op, `active` as the string "False".
    let a = scim
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": [PATCH_OP],
                   "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["active"],
        json!(false),
        "PATCH answers with the full resource"
    );
    assert_eq!(a.body["userName"], json!("sam"));
    assert_eq!(grant_status(&s, &grant).await, "revoked");
    assert!(
        sam.get::<Value>("/api/v1/me").await.is_err(),
        "its session ended"
    );
    let audit = s.audit_after(0).await;
    let disabled = audit
        .iter()
        .find(|r| r["kind"] == json!("identity.disabled"))
        .expect("identity.disabled recorded");
    assert!(disabled["data"].to_string().contains("scim"), "{disabled}");

    // Okta re-activates with a path-less replace.
    let a = scim
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": [PATCH_OP],
                   "Operations": [{"op": "replace", "value": {"active": true}}]}),
        )
        .await;
    assert_eq!(a.body["active"], json!(true), "{}", a.body);
    // Enabling gives nothing back.
    assert_eq!(grant_status(&s, &grant).await, "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_from_a_group_is_a_mover_and_delete_is_a_leaver() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let sam = create_user(&scim, "sam").await;
    let tara = create_user(&scim, "tara").await;
    let (sam_id, tara_id) = (sam["id"].as_str().unwrap(), tara["id"].as_str().unwrap());
    let g = scim
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "DB Readers"}),
        )
        .await;
    let gid = g.body["id"].as_str().unwrap().to_owned();
    // Entra adds members with PATCH add.
    let add = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": sam_id}, {"value": tara_id}]}]}),
        )
        .await;
    assert_eq!(add.status, StatusCode::OK, "{}", add.body);
    assert_eq!(add.body["members"].as_array().unwrap().len(), 2);
    let user = scim.get(&format!("/Users/{sam_id}")).await;
    assert_eq!(user.body["groups"][0]["value"], json!(gid), "{}", user.body);
    readonly_rule_for(&s, "db-readers").await;
    let sam_c = sign_in(&s, "sam", "sam-scim-password").await.unwrap();
    let tara_c = sign_in(&s, "tara", "tara-scim-password").await.unwrap();
    let sam_grant = active_grant(&sam_c).await;
    let tara_grant = active_grant(&tara_c).await;

    // Entra removes a member by a filter path.
    let rm = scim
        .patch(
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Remove", "path": format!("members[value eq \"{sam_id}\"]")}]}),
        )
        .await;
    assert_eq!(rm.status, StatusCode::OK, "{}", rm.body);
    assert_eq!(rm.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(grant_status(&s, &sam_grant).await, "revoked", "mover");
    assert_eq!(grant_status(&s, &tara_grant).await, "active");

    // A local admin cannot change the membership of a SCIM group.
    let e = s
        .admin
        .post::<_, Value>(
            "/api/v1/groups/db-readers/members",
            &json!({"identity": "alice"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "source_owned");

    // DELETE: a leaver.
    let d = scim.delete(&format!("/Users/{tara_id}")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_eq!(grant_status(&s, &tara_grant).await, "revoked");
    assert_scim_error(&scim.get(&format!("/Users/{tara_id}")).await, 404, None);
    assert!(
        s.admin
            .get::<Value>("/api/v1/identities/tara")
            .await
            .is_err()
    );
    // The group that a rule names stays (empty) in Warrant, but is gone for SCIM.
    let d = scim.delete(&format!("/Groups/{gid}")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_scim_error(&scim.get(&format!("/Groups/{gid}")).await, 404, None);
    s.audit_count().await; // the chain verifies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_updates_with_put_and_entra_with_a_pathless_replace() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let boss = create_user(&scim, "boss").await;
    let u = create_user(&scim, "sam").await;
    let id = u["id"].as_str().unwrap();
    // Okta: PUT the whole user.
    let mut body = okta_user("sam", "okta-sam");
    body["id"] = json!(id);
    body["emails"] = json!([{"primary": true, "value": "sam.p@example.com", "type": "work"}]);
    let put = scim.put(&format!("/Users/{id}"), body).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let ident: Value = s.admin.get("/api/v1/identities/sam").await.unwrap();
    assert_eq!(ident["email"], json!("sam.p@example.com"));
    // Entra: several attributes at once, the manager as a bare id.
    let p = scim
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "value": {"displayName": "Samantha P", "name.familyName": "P"}},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss["id"]},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Security"}]}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body[ENTERPRISE]["department"], json!("Security"));
    let ident: Value = s.admin.get("/api/v1/identities/sam").await.unwrap();
    assert_eq!(ident["display_name"], json!("Samantha P"));
    assert_eq!(ident["manager"], json!("boss"), "{ident}");
    // Okta changes a password with a path-less replace: write-only, hashed, usable at once.
    let pw = scim
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "value": {"password": "a-new-scim-password"}}]}),
        )
        .await;
    assert_eq!(pw.status, StatusCode::OK, "{}", pw.body);
    assert!(!pw.body.to_string().contains("a-new-scim-password"));
    assert!(sign_in(&s, "sam", "sam-scim-password").await.is_none());
    assert!(sign_in(&s, "sam", "a-new-scim-password").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_are_unique_ignoring_case_and_parallel_patches_all_land() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    create_user(&scim, "sam").await;
    assert_scim_error(
        &scim.post("/Users", okta_user("SAM", "okta-other")).await,
        409,
        Some("uniqueness"),
    );
    // Entra ID sends member additions of one group in parallel, without If-Match.
    let g = scim
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Parallel"}),
        )
        .await;
    let gid = g.body["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            create_user(&scim, &format!("p{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let scim = std::sync::Arc::new(scim);
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let scim = std::sync::Arc::clone(&scim);
        let gid = gid.clone();
        tasks.push(tokio::spawn(async move {
            scim.patch(
                &format!("/Groups/{gid}"),
                json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": id}]}]}),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let got = scim.get(&format!("/Groups/{gid}")).await;
    let members: Vec<&str> = got.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 8, "{}", got.body);
    for id in &ids {
        assert!(members.contains(&id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioning_token_cannot_take_over_a_privileged_identity() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let u = create_user(&scim, "sam").await;
    let id = u["id"].as_str().unwrap();
    // Warrant's own role is a local decision, even for a provisioned identity.
    let _: Value = s
        .admin
        .patch("/api/v1/identities/sam", &json!({"role": "admin"}))
        .await
        .unwrap();
    for op in [
        json!({"op": "replace", "path": "password", "value": "attacker-chosen-pw"}),
        json!({"op": "replace", "path": "externalId", "value": "attacker-sub"}),
    ] {
        let a = scim
            .patch(
                &format!("/Users/{id}"),
                json!({"schemas": [PATCH_OP], "Operations": [op]}),
            )
            .await;
        assert_scim_error(&a, 400, Some("mutability"));
    }
    assert!(sign_in(&s, "sam", "attacker-chosen-pw").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_password_reset_ends_sessions_and_a_delete_always_ends_access() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let u = create_user(&scim, "sam").await;
    let id = u["id"].as_str().unwrap();
    let sam = sign_in(&s, "sam", "sam-scim-password").await.unwrap();
    let a = scim
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "password", "value": "reset-by-the-idp"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        sam.get::<Value>("/api/v1/me").await.is_err(),
        "the old session ended"
    );

    // A custom policy names sam: the identity cannot be deleted, but a DELETE still makes it a
    // leaver at once.
    let _: Value = s
        .admin
        .put(
            "/api/v1/policies/sam-forbid",
            &json!({"cedar": "forbid(principal == Warrant::Identity::\"sam\", action, resource);"}),
        )
        .await
        .unwrap();
    let sam = sign_in(&s, "sam", "reset-by-the-idp").await.unwrap();
    let d = scim.delete(&format!("/Users/{id}")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
    assert!(sam.get::<Value>("/api/v1/me").await.is_err());
    let ident: Value = s.admin.get("/api/v1/identities/sam").await.unwrap();
    assert_eq!(ident["status"], json!("disabled"));
    assert_scim_error(&scim.get(&format!("/Users/{id}")).await, 404, None);
    // Names are unique ignoring case, whatever creates them.
    let e = s
        .admin
        .post::<_, Value>("/api/v1/identities", &json!({"name": "SAM", "email": ""}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "identity_exists", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_leaver_leaves_no_scim_handle_on_a_later_identity_of_its_name() {
    let s = Server::start().await;
    let scim = Scim::new(&s).await;
    let u = create_user(&scim, "bob2").await;
    let id = u["id"].as_str().unwrap().to_owned();
    let a = scim
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // An admin deletes the disabled leaver (any source's leaver may be deleted) and creates a
    // local identity of the same name for someone else.
    let _: Value = s.admin.delete("/api/v1/identities/bob2").await.unwrap();
    s.add_identity("bob2", "user", &[]).await;
    let a = scim
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "password", "value": "taken-over-pw"}]}),
        )
        .await;
    assert_scim_error(&a, 404, None);
    assert_scim_error(&scim.delete(&format!("/Users/{id}")).await, 404, None);
    assert!(sign_in(&s, "bob2", "taken-over-pw").await.is_none());
    assert!(
        sign_in(&s, "bob2", &crate::harness::password_of("bob2"))
            .await
            .is_some()
    );
}
