//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Warrant: privileged access management anchored in identity.
#[derive(Debug, Parser)]
#[command(name = "warrant", version, about)]
pub struct Cli {
    /// The server to talk to (default: the one `warrant login` saved, else http://127.0.0.1:8200).
    #[arg(long, global = true, env = "WARRANT_SERVER")]
    pub server: Option<String>,
    /// A bearer token (default: the one `warrant login` saved).
    #[arg(long, global = true, env = "WARRANT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Server options; each is also `WARRANT_<NAME>` in the environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory (SQLite store, admin token).
    #[arg(long, env = "WARRANT_DATA_DIR", default_value = "./warrant-data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "WARRANT_LISTEN", default_value = "127.0.0.1:8200")]
    pub listen: SocketAddr,
    /// PostgreSQL store instead of SQLite, e.g. postgres://user:pw@host/db.
    #[arg(long, env = "WARRANT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Address of the SSH gateway: people run `ssh -p PORT IDENTITY+TARGET[+ROLE]@HOST` with a
    /// key they registered (`warrant ssh-key add`) and an active grant.
    #[arg(long, env = "WARRANT_SSH_LISTEN")]
    pub ssh_listen: Option<SocketAddr>,
    /// Address of the PostgreSQL gateway: people connect with psql or any driver as
    /// `user=IDENTITY dbname=TARGET[+ROLE]`, a token from `warrant db-token` as the password.
    #[arg(long, env = "WARRANT_PG_LISTEN")]
    pub pg_listen: Option<SocketAddr>,
    /// The PostgreSQL gateway's TLS certificate chain (PEM); without it, a self-signed one is
    /// made in the data directory (`pg_gateway_tls.crt`, for clients' `sslrootcert`).
    #[arg(long, env = "WARRANT_PG_TLS_CERT", requires = "pg_tls_key")]
    pub pg_tls_cert: Option<PathBuf>,
    /// The private key of `--pg-tls-cert` (PEM).
    #[arg(long, env = "WARRANT_PG_TLS_KEY", requires = "pg_tls_cert")]
    pub pg_tls_key: Option<PathBuf>,
    /// A host name people reach the PostgreSQL gateway by, for the self-signed certificate
    /// (repeat for several; comma-separated in the environment), so that `sslmode=verify-full`
    /// works from other machines.
    #[arg(
        long,
        env = "WARRANT_PG_TLS_NAME",
        value_delimiter = ',',
        conflicts_with = "pg_tls_cert"
    )]
    pub pg_tls_name: Vec<String>,
    /// Seed the demo organisation (on an empty store).
    #[arg(long, env = "WARRANT_DEMO")]
    pub demo: bool,
    /// How long a request may wait for approval, e.g. 24h.
    #[arg(long, env = "WARRANT_REQUEST_TTL", default_value = "24h")]
    pub request_ttl: String,
    /// Server config file (YAML): OIDC sign-in, LDAP sync, session timeouts.
    #[arg(long, env = "WARRANT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Where the audit chain to verify lives.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Verify offline on this data directory (SQLite).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Verify offline on this PostgreSQL store.
    #[arg(long, hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Sign in and save the token in the config directory.
    Login {
        /// Identity name (password sign-in).
        #[arg(long, required_unless_present = "oidc")]
        user: Option<String>,
        /// Sign in through the organisation's OpenID provider in a browser instead (the
        /// provider redirects back to a listener on 127.0.0.1).
        #[arg(long, conflicts_with_all = ["user", "password_stdin"])]
        oidc: bool,
        /// The loopback port for the provider's redirect (default: any free port). Set it when
        /// the provider only accepts a registered redirect such as http://127.0.0.1:8765/callback.
        #[arg(long, requires = "oidc", default_value_t = 0)]
        redirect_port: u16,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// A code from your authenticator app (or a recovery code), when you have a second
        /// factor. One-time codes die once used, so an argument is fine.
        #[arg(long)]
        otp: Option<String>,
    },
    /// Sign out (revokes the saved token).
    Logout,
    /// Who the current token belongs to.
    Whoami,
    /// Manage identities.
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// List identities.
    Identities,
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// List groups with their members.
    Groups,
    /// Manage targets and their roles.
    #[command(subcommand)]
    Target(TargetCmd),
    /// List targets with their roles.
    Targets,
    /// Manage eligibility rules.
    #[command(subcommand)]
    Rule(RuleCmd),
    /// List eligibility rules.
    Rules,
    /// Custom Cedar policies, and testing a hypothetical request.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Apply an org file (groups, identities, targets, roles, rules, policies).
    Apply {
        /// The file (YAML or JSON).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Request a role on a target.
    Request {
        /// Target.
        target: String,
        /// Role.
        role: String,
        /// Duration, e.g. 30m.
        #[arg(long = "for")]
        duration: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Ticket reference.
        #[arg(long)]
        ticket: Option<String>,
        /// Start later (RFC 3339).
        #[arg(long)]
        start: Option<String>,
    },
    /// List requests (yours by default).
    Requests {
        /// Everyone's (auditors and admins).
        #[arg(long, conflicts_with = "to_approve")]
        all: bool,
        /// Those waiting for your approval.
        #[arg(long)]
        to_approve: bool,
    },
    /// Show one request.
    Show {
        /// Request id.
        id: String,
    },
    /// Approve the open stage of a request.
    Approve {
        /// Request id.
        id: String,
    },
    /// Deny a request.
    Deny {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel your own pending request.
    Cancel {
        /// Request id.
        id: String,
    },
    /// List grants (yours by default).
    Grants {
        /// Everyone's (auditors and admins).
        #[arg(long)]
        all: bool,
        /// Only those in force or scheduled.
        #[arg(long)]
        active: bool,
    },
    /// Revoke a grant.
    Revoke {
        /// Grant id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Whether an identity holds an active grant now (exit 0 allowed, 1 denied).
    Check {
        /// Identity.
        #[arg(long)]
        identity: String,
        /// Target.
        #[arg(long)]
        target: String,
        /// Role.
        #[arg(long)]
        role: String,
    },
    /// Directory sync.
    #[command(subcommand)]
    Sync(SyncCmd),
    /// The vault of secrets at rest.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// The temporary database role of your active grant: created now, shown once.
    DbCreds {
        /// The grant's id.
        grant: String,
    },
    /// A database token: your password at the PostgreSQL gateway for the next minutes
    /// (`PGPASSWORD=$(warrant db-token) psql "host=GATEWAY port=PORT user=YOU dbname=TARGET"`).
    DbToken {
        /// How long it lives (default 10m, at most 1h).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Run psql on a PostgreSQL target as the temporary role of your active grant there
    /// (created now; the password goes to psql only).
    Psql {
        /// Target.
        target: String,
        /// The role, when you hold several grants on the target.
        #[arg(long)]
        role: Option<String>,
        /// Arguments for psql, after `--` (e.g. `-- -c 'SELECT 1'`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Warrant's SSH user CA and managed key.
    #[command(subcommand)]
    Ssh(SshCmd),
    /// Gateway sessions: the list (yours; auditors: all), replay, end a live one.
    Sessions {
        /// What to do (default: list).
        #[command(subcommand)]
        cmd: Option<SessionsCmd>,
    },
    /// Session recordings: the asciicast file, and its verification.
    #[command(subcommand)]
    Recording(RecordingCmd),
    /// Your SSH public keys, for signing in to the SSH gateway.
    #[command(subcommand)]
    SshKey(SshKeyCmd),
    /// List your SSH public keys (admins: --identity).
    SshKeys {
        /// Whose (admins).
        #[arg(long)]
        identity: Option<String>,
    },
    /// Vaulted accounts: shared privileged accounts whose secrets Warrant keeps.
    #[command(subcommand)]
    Account(AccountCmd),
    /// List vaulted accounts (auditors and admins).
    Accounts,
    /// Scan a target for privileged accounts: updates the inventory, opens exceptions for
    /// what appeared since the last scan (admins).
    Discover {
        /// Target (kind postgres or ssh).
        target: String,
    },
    /// The inventory of privileged accounts found by discovery.
    Inventory {
        /// One target only.
        #[arg(long)]
        target: Option<String>,
    },
    /// Privileges found by discovery that Warrant did not grant.
    Exceptions {
        /// One target only.
        #[arg(long)]
        target: Option<String>,
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
    },
    /// Resolve a discovery exception (accepted, or fixed on the target).
    ResolveException {
        /// Exception id.
        id: String,
        /// Why it is resolved.
        #[arg(long)]
        note: String,
    },
    /// An OpenSSH user certificate for your active grant (to standard output unless -o).
    SshCert {
        /// Target.
        target: String,
        /// Role.
        role: String,
        /// Your public key, e.g. ~/.ssh/id_ed25519.pub.
        #[arg(long)]
        key: std::path::PathBuf,
        /// Write the certificate here (e.g. ~/.ssh/id_ed25519-cert.pub).
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
    /// Second factors (TOTP, recovery codes) and step-up.
    #[command(subcommand)]
    Mfa(MfaCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Your tokens.
    Tokens,
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Clean-up work owed after grants closed, with failures.
    Jobs,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// Create an identity.
    Add {
        /// Name.
        name: String,
        /// Email.
        #[arg(long, default_value = "")]
        email: String,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Manager.
        #[arg(long)]
        manager: Option<String>,
        /// user, auditor or admin.
        #[arg(long)]
        role: Option<String>,
        /// Read an initial password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change attributes.
    Update {
        /// Name.
        name: String,
        /// Email.
        #[arg(long)]
        email: Option<String>,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Manager ("" clears).
        #[arg(long)]
        manager: Option<String>,
        /// user, auditor or admin.
        #[arg(long)]
        role: Option<String>,
    },
    /// Disable (a leaver: grants revoked, requests cancelled, tokens revoked).
    Disable {
        /// Name.
        name: String,
    },
    /// Enable again.
    Enable {
        /// Name.
        name: String,
    },
    /// Delete (a leaver).
    Delete {
        /// Name.
        name: String,
    },
    /// Set a password (read from standard input). Changing your own needs --current.
    Passwd {
        /// Name.
        name: String,
        /// Standard input holds your current password, then the new one, on two lines.
        #[arg(long)]
        current: bool,
    },
    /// Show one identity.
    Show {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a group.
    Add {
        /// Name.
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete an empty, unused group.
    Delete {
        /// Name.
        name: String,
    },
    /// Add a member.
    AddMember {
        /// Group.
        group: String,
        /// Identity.
        name: String,
    },
    /// Remove a member (a mover).
    RemoveMember {
        /// Group.
        group: String,
        /// Identity.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TargetCmd {
    /// Create or update a target.
    Add {
        /// Name.
        name: String,
        /// postgres, ssh or generic.
        #[arg(long)]
        kind: String,
        /// Owner group.
        #[arg(long)]
        owner: String,
        /// host:port.
        #[arg(long)]
        address: Option<String>,
        /// 1 low … 4 critical.
        #[arg(long)]
        risk_tier: Option<i64>,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a target (with its roles and rules).
    Delete {
        /// Name.
        name: String,
    },
    /// Create or update a role of a target.
    AddRole {
        /// Target.
        target: String,
        /// Role.
        role: String,
        /// SSH principal (repeatable).
        #[arg(long = "principal")]
        principals: Vec<String>,
        /// SSH upstream login.
        #[arg(long)]
        login: Option<String>,
        /// PostgreSQL role membership (repeatable).
        #[arg(long = "db-role")]
        db_roles: Vec<String>,
        /// The vaulted account a grant of this role may check out.
        #[arg(long)]
        account: Option<String>,
    },
    /// Delete a role.
    DeleteRole {
        /// Target.
        target: String,
        /// Role.
        role: String,
    },
    /// Set the target's admin password (sealed at rest; used to make temporary roles).
    SetSecret {
        /// Target.
        target: String,
        /// Read the password from standard input (secrets are never taken as arguments).
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// Create or update an eligibility rule.
    Add {
        /// Subject group.
        #[arg(
            long,
            conflicts_with = "identity",
            required_unless_present = "identity"
        )]
        group: Option<String>,
        /// Subject identity.
        #[arg(long)]
        identity: Option<String>,
        /// Target.
        #[arg(long)]
        target: String,
        /// Role.
        #[arg(long)]
        role: String,
        /// Longest grant, e.g. 1h.
        #[arg(long)]
        max_duration: String,
        /// Whether a reason is required.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        require_reason: bool,
        /// Whether MFA is required.
        #[arg(long)]
        require_mfa: bool,
        /// Tickets must match this regular expression.
        #[arg(long)]
        ticket_pattern: Option<String>,
        /// Approval stage SOURCE:COUNT, in order (owners:1, manager:1, group:NAME:2).
        #[arg(long = "approval")]
        approvals: Vec<String>,
    },
    /// Delete a rule by id.
    Delete {
        /// Rule id (see `warrant rules`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Create or replace a custom policy from a file.
    Add {
        /// Name.
        name: String,
        /// File with one Cedar policy.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Delete a custom policy.
    Delete {
        /// Name.
        name: String,
    },
    /// List custom policies.
    List,
    /// Evaluate a hypothetical request: which policy decides, and why.
    Test {
        /// Who (default: you).
        #[arg(long)]
        identity: Option<String>,
        /// Target.
        #[arg(long)]
        target: String,
        /// Role.
        #[arg(long)]
        role: String,
        /// Duration.
        #[arg(long = "for", default_value = "1h")]
        duration: String,
        /// Reason.
        #[arg(long, default_value = "")]
        reason: String,
        /// Ticket.
        #[arg(long)]
        ticket: Option<String>,
        /// With MFA.
        #[arg(long)]
        mfa: bool,
        /// At this time (RFC 3339).
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SshCmd {
    /// The CA's public key, for sshd's TrustedUserCAKeys.
    Ca,
    /// Warrant's managed public key: authorise it for the admin_user of each SSH target so
    /// that Warrant can scan the host and rotate vaulted Linux accounts (admins).
    ManagedKey,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// Replay a recorded session in this terminal, with its timing.
    Play {
        /// Session id.
        id: String,
        /// Play this many times as fast.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Never pause longer than this many seconds.
        #[arg(long, default_value_t = 2.0)]
        max_idle: f64,
    },
    /// End a live session now (admins); its person sees why.
    Kill {
        /// Session id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordingCmd {
    /// Write a session's recording (asciicast v2) to standard output.
    Get {
        /// Session id.
        id: String,
    },
    /// Check a recording against its signed manifest: any change is reported (exit 1).
    Verify {
        /// Session id.
        id: String,
        /// The recording public key to trust (base64; default: the server's, which you should
        /// compare with the one you keep).
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SshKeyCmd {
    /// Register a public key (the .pub file; ed25519 or ECDSA).
    Add {
        /// The public key file, e.g. ~/.ssh/id_ed25519.pub.
        file: std::path::PathBuf,
        /// A label (default: the key's comment).
        #[arg(long)]
        label: Option<String>,
        /// Whose (admins).
        #[arg(long)]
        identity: Option<String>,
    },
    /// Remove a key by id (see `warrant ssh-keys`).
    Delete {
        /// Key id.
        id: String,
        /// Whose (admins).
        #[arg(long)]
        identity: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Vault a shared account (admins); its current secret on standard input.
    Add {
        /// Target it lives on.
        target: String,
        /// Its name there (PostgreSQL role, Linux user, or a label for an API key).
        name: String,
        /// The accountable group.
        #[arg(long)]
        owner: String,
        /// Allow several checkouts at a time (default: exclusive).
        #[arg(long)]
        shared: bool,
        /// Rotate on this period too, e.g. 24h or 30d.
        #[arg(long)]
        rotate_every: Option<String>,
        /// Do not rotate after each check-in.
        #[arg(long)]
        no_rotate_after_checkin: bool,
        /// Read the secret from standard input (secrets are never taken as arguments).
        #[arg(long)]
        secret_stdin: bool,
    },
    /// Replace the stored secret (admins), e.g. after a change made outside Warrant.
    SetSecret {
        /// Target.
        target: String,
        /// Account.
        name: String,
        /// Read the secret from standard input.
        #[arg(long)]
        secret_stdin: bool,
    },
    /// Delete a vaulted account (admins).
    Delete {
        /// Target.
        target: String,
        /// Account.
        name: String,
    },
    /// Check the account out under your active grant of a role that names it.
    Checkout {
        /// Target.
        target: String,
        /// Account.
        name: String,
    },
    /// Show the secret of an account you have checked out (audited).
    Reveal {
        /// Target.
        target: String,
        /// Account.
        name: String,
    },
    /// Return an account you have checked out (a rotation follows where configured).
    Checkin {
        /// Target.
        target: String,
        /// Account.
        name: String,
    },
    /// Rotate the secret now (admins and the owner group).
    Rotate {
        /// Target.
        target: String,
        /// Account.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCmd {
    /// Rotate the key-encryption key and re-wrap every secret under it, while the server runs
    /// (with WARRANT_KEK: re-wrap under the key in force).
    Rekey,
}

#[derive(Debug, Subcommand)]
pub enum SyncCmd {
    /// Pull users and groups from LDAP / Active Directory now (the server's `ldap:` config).
    Ldap {
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply even if more identities would be removed than the safeguard allows.
        #[arg(long)]
        force: bool,
        /// Show the running or last sync instead of starting one.
        #[arg(long, conflicts_with_all = ["dry_run", "force"])]
        status: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MfaCmd {
    /// Your second factors (or an identity's, for auditors and admins).
    Status {
        /// Identity (default: you).
        name: Option<String>,
    },
    /// Start a TOTP enrolment: prints the otpauth:// URI and the secret for your app.
    Enrol {
        /// A label, e.g. the phone's name.
        #[arg(long)]
        label: Option<String>,
    },
    /// Confirm the enrolment with the app's first code; prints your recovery codes once.
    Confirm {
        /// The 6-digit code.
        code: String,
    },
    /// Step-up: prove a second factor for this session (counts for 5 minutes).
    Verify {
        /// A code from your app, or a recovery code.
        code: String,
    },
    /// New recovery codes, replacing the old ones (needs a fresh `mfa verify`).
    RecoveryCodes,
    /// Remove every second factor of an identity (admins; a lost phone). Ends its sessions.
    Reset {
        /// Identity.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token (shown once).
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// Lifetime, e.g. 30d.
        #[arg(long)]
        expires: Option<String>,
        /// `full` (your rights) or `scim` (only SCIM provisioning at /scim/v2; admins).
        #[arg(long, default_value = "full", value_parser = ["full", "scim"])]
        scope: String,
    },
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Verify the hash chain and its signed checkpoints (through the server, offline with
    /// --data-dir / --database-url, or an export bundle with --bundle).
    ///
    /// A bundle is checked against the audit key you vouch for, with --fingerprint (as
    /// `warrant audit verify` shows it on the server) or --key; without either, only against
    /// the key the bundle itself names, which anyone making a bundle can choose.
    ///
    /// Exit codes: 0 intact (a bundle: and signed by the key given with --fingerprint or
    /// --key); 1 broken, or a bundle signed by another key than the one given; 2 could not be
    /// checked (unreadable, not a bundle, a bad option); 3 a bundle intact but checked only
    /// against its own key (give --fingerprint or --key).
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Verify this export bundle (`warrant audit export`) offline instead.
        #[arg(long, conflicts_with_all = ["data_dir", "database_url"])]
        bundle: Option<PathBuf>,
        /// Trust only this audit key (base64: the `public_key` in the header of a bundle
        /// already trusted) for the bundle.
        #[arg(long, requires = "bundle", conflicts_with = "fingerprint")]
        key: Option<String>,
        /// Trust only the audit key with this fingerprint (`ab12:cd34:…`, as `warrant audit
        /// verify` shows it on the server) for the bundle.
        #[arg(long, requires = "bundle", value_name = "FP")]
        fingerprint: Option<String>,
    },
    /// Export the audit trail from a time on: a signed bundle (verify it offline with
    /// `warrant audit verify --bundle FILE`), Warrant's JSON lines, or OCSF JSON lines.
    Export {
        /// From when: an RFC 3339 time (2026-12-01T00:00:00Z) or a duration ago (24h, 7d);
        /// default: everything.
        #[arg(long)]
        since: Option<String>,
        /// bundle (default), jsonl or ocsf.
        #[arg(long, default_value = "bundle", value_parser = ["bundle", "jsonl", "ocsf"])]
        format: String,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Each SIEM sink's delivery: cursor, lag, errors, whether it blocks access.
    Sinks,
    /// Archive (a signed bundle in the server's archive directory) and prune the records made
    /// before a time; what remains still verifies from its signed anchor. Admins only.
    Prune {
        /// An RFC 3339 time, or a duration ago (400d).
        #[arg(long)]
        before: String,
    },
    /// Search the trail by time, actor, identity, target, kind, request or grant.
    Search(crate::cli::audit_search::SearchArgs),
    /// Show the latest events.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Keep printing new events.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}
