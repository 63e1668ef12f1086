//! Wire types shared by AgentRelay's HQ, runner and CLI: the REST objects, the viewer's session
//! WebSocket frames and the runner ↔ HQ protocol. Nothing else lives here.
//!
//! Every JSON frame is `{"type": "...", "payload": {...}}`; PTY bytes travel as binary frames and
//! never pass through these types.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod requests;
pub mod runner;
pub mod users;
pub mod viewer;
pub mod workspace;

pub use users::{Access, Grant, Owner, Role, User};

/// The runner protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest runner protocol version HQ still accepts (its own and the previous one).
pub const MIN_PROTOCOL_VERSION: u32 = PROTOCOL_VERSION.saturating_sub(1);

/// Largest terminal dimension accepted for rows or columns.
pub const MAX_TERMINAL_DIMENSION: u16 = 1000;

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TermSize {
    /// Number of rows (1–1000).
    pub rows: u16,
    /// Number of columns (1–1000).
    pub cols: u16,
}

impl TermSize {
    /// The size used when a client names none.
    pub const DEFAULT: TermSize = TermSize { rows: 24, cols: 80 };

    /// Whether both dimensions are within 1–1000.
    pub fn is_valid(self) -> bool {
        (1..=MAX_TERMINAL_DIMENSION).contains(&self.rows) && (1..=MAX_TERMINAL_DIMENSION).contains(&self.cols)
    }
}

/// How a session's process ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExitStatus {
    /// The process's exit code, when it exited on its own.
    pub code: Option<i32>,
    /// The signal's name (`"SIGKILL"`) when a signal ended it.
    pub signal: Option<String>,
}

/// Whether a runner currently holds a connection to HQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunnerStatus {
    /// Connected and sending heartbeats.
    Online,
    /// Not connected (or its heartbeats stopped).
    Offline,
}

/// A runner as `GET /api/runners` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Runner {
    /// Stable id, kept in the runner's state dir.
    pub id: Uuid,
    /// Display name, unique among online runners.
    pub name: String,
    /// Free-form `key=value` labels used for targeting.
    pub labels: BTreeMap<String, String>,
    /// Online or offline.
    pub status: RunnerStatus,
    /// The host name of the runner's machine.
    pub hostname: String,
    /// Operating system and architecture, e.g. `linux/x86_64`.
    pub os: String,
    /// The runner's software version.
    pub version: String,
    /// What the runner offers to start by name.
    pub presets: Vec<Preset>,
    /// What the runner lets HQ start (`--allow`, `--allow-env`, `--presets-only`); known while
    /// it is connected, the open policy for a runner HQ remembers from before a restart.
    #[serde(default)]
    pub policy: runner::RunnerPolicy,
    /// The repositories it offers for workspaces (`--repo`); known while it is connected.
    #[serde(default)]
    pub repos: Vec<workspace::RepoInfo>,
    /// Whose personal runner this is (enrolled with their own runner token): only they see it
    /// listed and start sessions on it. `null` for a shared runner, which every member may use.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// When the current (or last) connection was made.
    pub connected_at: DateTime<Utc>,
    /// When HQ last heard from the runner.
    pub last_seen_at: DateTime<Utc>,
}

/// A session's lifecycle; it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// HQ asked the runner to start it.
    Starting,
    /// The process runs in a PTY on the runner.
    Running,
    /// The process ended (with a code or a signal).
    Exited,
    /// The process could not be started.
    Failed,
    /// The runner vanished and did not come back in time.
    Lost,
}

impl SessionStatus {
    /// Whether the session has reached an end state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Exited | Self::Failed | Self::Lost)
    }
}

/// A session as `GET /api/sessions` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// Session id (UUID v7).
    pub id: Uuid,
    /// The runner it runs on.
    pub runner_id: Uuid,
    /// The argv it runs.
    pub command: Vec<String>,
    /// Lifecycle state.
    pub status: SessionStatus,
    /// Exit code, once exited on its own.
    pub exit_code: Option<i32>,
    /// Signal name, once killed by a signal.
    pub signal: Option<String>,
    /// Why it failed or was lost.
    pub error: Option<String>,
    /// Who created it (token name; kept for compatibility, see `owner`).
    pub created_by: String,
    /// The user who started it: they, the users it is granted to and admins see it.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Output bytes produced so far (the next byte's offset).
    pub output_bytes: u64,
    /// The preset it was started from, if any.
    #[serde(default)]
    pub preset: Option<String>,
    /// A name people gave it (`POST /api/sessions`, `PATCH /api/sessions/{id}`), if any.
    #[serde(default)]
    pub name: Option<String>,
    /// What the process is doing now; `None` unless it is running.
    #[serde(default)]
    pub activity: Option<Activity>,
    /// When the current activity began.
    #[serde(default)]
    pub activity_since: Option<DateTime<Utc>>,
    /// The signal that set the current activity.
    #[serde(default)]
    pub activity_source: Option<ActivitySource>,
    /// Who is attached now.
    #[serde(default)]
    pub viewers: Vec<ViewerInfo>,
    /// Why HQ stopped writing this session's output log (a full disk, say); the live stream
    /// went on, but output after the offset it names is not on disk.
    #[serde(default)]
    pub log_error: Option<String>,
    /// Tokens and cost the agent reported so far (through OpenTelemetry), if it reports any.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Its git worktree, for a session started with `"workspace"`.
    #[serde(default)]
    pub workspace: Option<workspace::Workspace>,
}

/// What an agent used: tokens by kind and, where the agent says, what it cost. Totals for the
/// session (or, in `GET /api/usage`, for a day, a runner and a user).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Input tokens (not counting cache reads).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the model's prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the model's prompt cache.
    #[serde(default)]
    pub cache_creation_tokens: u64,
    /// Cost in US dollars, as the agent computed it; `null` when it does not say.
    pub cost_usd: Option<f64>,
    /// The model it used most recently.
    pub model: Option<String>,
}

/// One row of `GET /api/usage`: what one user's sessions on one runner used in one day (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRow {
    /// The day, `YYYY-MM-DD` (UTC), when the agent reported the use.
    pub day: String,
    /// The runner.
    pub runner_id: Uuid,
    /// Its name, when HQ knows the runner.
    pub runner: Option<String>,
    /// Who started the sessions.
    pub user: String,
    /// The sums (`model` is not kept per day).
    pub usage: Usage,
}

impl Usage {
    /// Adds `other`'s counts (and cost, if either knows one); `other`'s model wins if it has one.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
        self.cost_usd = match (self.cost_usd, other.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        if other.model.is_some() {
            self.model.clone_from(&other.model);
        }
    }

    /// What `later` (a newer total of the same session) adds to this one; counts never go
    /// backwards (a total that shrank, from a restarted agent, counts from zero).
    pub fn growth_to(&self, later: &Usage) -> Usage {
        let grew = |old: u64, new: u64| if new >= old { new - old } else { new };
        let cost = match (self.cost_usd, later.cost_usd) {
            (_, None) => None,
            (None, Some(new)) => Some(new),
            (Some(old), Some(new)) => Some(if new >= old { new - old } else { new }),
        };
        Usage {
            input_tokens: grew(self.input_tokens, later.input_tokens),
            output_tokens: grew(self.output_tokens, later.output_tokens),
            cache_read_tokens: grew(self.cache_read_tokens, later.cache_read_tokens),
            cache_creation_tokens: grew(self.cache_creation_tokens, later.cache_creation_tokens),
            cost_usd: cost,
            model: later.model.clone(),
        }
    }
}

/// A command a runner offers by name (built in, or from its `--presets` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preset {
    /// Name used to start it, e.g. `claude`.
    pub name: String,
    /// A line for people.
    #[serde(default)]
    pub description: String,
    /// The argv it runs.
    pub command: Vec<String>,
    /// Regular expressions that, matched on a line of a quiet screen, mean "waiting for input".
    #[serde(default)]
    pub prompt_patterns: Vec<String>,
    /// Whether a session started from it takes an initial task (`prompt` in `POST /api/sessions`),
    /// which the runner passes to the agent in the agent's own way.
    #[serde(default)]
    pub takes_prompt: bool,
}

/// What a running session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// It printed recently.
    Working,
    /// Its output stopped on a prompt: it needs someone.
    WaitingForInput,
    /// Its output stopped, and nothing on screen asks for anything.
    Idle,
}

/// What set a session's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    /// Output arrived, or stopped.
    Output,
    /// A prompt pattern matched the screen.
    Screen,
    /// The process (or an agent hook) reported it through the runner.
    Hook,
}

/// A session's activity at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityState {
    /// What it is doing.
    pub activity: Activity,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Which signal said so.
    pub source: ActivitySource,
}

/// Someone attached to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ViewerInfo {
    /// The name of their token.
    pub name: String,
    /// Whether they watch through a read-only share.
    pub read_only: bool,
}

/// `POST /api/login`'s answer: who signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginAnswer {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// For a share: the one session it opens.
    pub session_id: Option<Uuid>,
    /// The user behind the sign-in (absent for a share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

/// `POST /api/sessions/{id}/shares`'s answer: a read-only link, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedShare {
    /// The share token's id (revoke it with `DELETE /api/tokens/{id}`).
    pub id: Uuid,
    /// The link to hand out; the token rides in its fragment.
    pub url: String,
    /// The share token itself.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// `GET /api/sessions/{id}/screen?format=json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Screen {
    /// Screen height.
    pub rows: u16,
    /// Screen width.
    pub cols: u16,
    /// Where the cursor is (0-based).
    pub cursor: Cursor,
    /// One string per row, trailing spaces trimmed.
    pub lines: Vec<String>,
    /// The selection menu on screen (numbered options, one of them marked), if HQ recognizes one.
    #[serde(default)]
    pub menu: Option<Menu>,
}

/// A selection menu on a session's screen: its question and the answers it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Menu {
    /// The question above the options (`Do you want to proceed?`); empty when there is none.
    pub prompt: String,
    /// The options, top to bottom.
    pub options: Vec<MenuOption>,
}

/// One answer a menu offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MenuOption {
    /// What to type to pick it (`"1"`): send it as `text` to `POST /api/sessions/{id}/input`.
    pub key: String,
    /// What it says (`Yes, and always allow access to /src from this project`).
    pub label: String,
}

/// A cursor position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cursor {
    /// 0-based row.
    pub row: u16,
    /// 0-based column.
    pub col: u16,
}

/// The error body every failed REST call returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    /// The error itself.
    pub error: ErrorBody,
}

/// A machine-readable code, a human message and, for bad input, the field at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable code such as `runner_offline`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The request field at fault, for `bad_request`.
    pub field: Option<String>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything, including tokens and the audit log.
    Admin,
    /// Runners and sessions, not tokens.
    User,
    /// Only dialing in as a runner.
    Runner,
    /// Read-only access to one session.
    Share,
}

/// A managed token as `GET /api/tokens` lists it (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// Token id.
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// For a share token: the one session it opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// What it may do.
    pub scope: Scope,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// The user it belongs to (acts as).
    #[serde(default)]
    pub user: Option<Owner>,
    /// For a runner token: runners it enrolls are shared (every member may use them) rather
    /// than personal to `user`.
    #[serde(default)]
    pub shared: bool,
}

/// The answer to `POST /api/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// Token id.
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// The secret itself.
    pub token: String,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// The user it belongs to.
    #[serde(default)]
    pub user: Option<Owner>,
    /// For a runner token: whether the runners it enrolls are shared.
    #[serde(default)]
    pub shared: bool,
}

/// One line of the audit log (`GET /api/audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it (a token name, `admin`, or a runner name).
    pub actor: Option<String>,
    /// The user behind it, when there is one.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// That user's name.
    #[serde(default)]
    pub user: Option<String>,
    /// What happened, e.g. `session.started`.
    pub action: String,
    /// What it happened to (an id or name).
    pub target: Option<String>,
    /// The client address it came from.
    pub address: Option<String>,
    /// More, for people.
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_grows_and_adds_without_counting_twice() {
        let at = |input, output, cost| Usage {
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
            model: Some("m".into()),
            ..Default::default()
        };
        let growth = at(10, 5, Some(0.5)).growth_to(&at(15, 5, Some(0.75)));
        assert_eq!((growth.input_tokens, growth.output_tokens, growth.cost_usd), (5, 0, Some(0.25)));
        // The same total again (a resend after a reconnect) adds nothing.
        assert_eq!(
            at(15, 5, None).growth_to(&at(15, 5, None)),
            Usage { model: Some("m".into()), ..Default::default() }
        );
        // A total that shrank is a restarted agent: it counts from zero.
        assert_eq!(at(15, 5, None).growth_to(&at(3, 1, None)).input_tokens, 3);
        let mut sum = at(1, 2, None);
        sum.add(&at(3, 4, Some(0.5)));
        assert_eq!((sum.input_tokens, sum.output_tokens, sum.cost_usd), (4, 6, Some(0.5)));
    }
}
