//! The runner ↔ HQ protocol: one control connection per runner (`/api/v1/ws/register`) and one
//! data connection per session (`/api/v1/ws/runner/session/{id}`). See `docs/protocol.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::viewer::Gap;
use crate::workspace::{ChangeSummary, Changes, Committed, Diff, Pushed, RepoInfo, Workspace, WorkspaceSpec};
use crate::{Activity, ExitStatus, Preset, TermSize};

/// Control frame from runner to HQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum RunnerMessage {
    /// First frame on every control connection.
    Hello(Hello),
    /// "Still here"; sent every heartbeat interval.
    Heartbeat,
    /// A `start` could not be carried out (bad command, refused program, …).
    SessionFailed(SessionFailed),
    /// The answer to a [`HqMessage::Workspace`] request.
    WorkspaceReply(WorkspaceReply),
    /// A session's workspace changed: its new summary (debounced, only when it moved).
    Changes(ChangesReport),
}

/// Control frame from HQ to runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum HqMessage {
    /// The hello was accepted.
    Welcome(Welcome),
    /// The hello was refused; HQ closes the connection after this. The runner must not redial.
    Refused(Refused),
    /// Start a session and dial its data connection.
    Start(StartSession),
    /// Work on a session's workspace (create, changes, diff, commit, push, remove); the runner
    /// answers with a [`RunnerMessage::WorkspaceReply`] of the same `request_id`.
    Workspace(WorkspaceRequest),
    /// "Still here"; sent every heartbeat interval.
    Heartbeat,
}

/// Payload of [`RunnerMessage::Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The runner's stable id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Labels for targeting.
    pub labels: BTreeMap<String, String>,
    /// Host name.
    pub hostname: String,
    /// `os/arch`.
    pub os: String,
    /// Runner software version.
    pub version: String,
    /// Protocol version the runner speaks.
    pub protocol_version: u32,
    /// Presets it can start.
    #[serde(default)]
    pub presets: Vec<Preset>,
    /// Sessions still alive on the runner (after an HQ outage), to be resumed.
    #[serde(default)]
    pub sessions: Vec<LiveSession>,
    /// What the runner lets HQ start (a runner before this field allowed everything it says
    /// in its own flags; HQ then checks nothing ahead and hears the runner's refusals).
    #[serde(default)]
    pub policy: RunnerPolicy,
    /// Sessions a previous runner process held whose process is gone, and why (a reboot, a
    /// killed session host): HQ marks them lost with that reason.
    #[serde(default)]
    pub ended: Vec<EndedSession>,
    /// The repositories it offers for workspaces.
    #[serde(default)]
    pub repos: Vec<RepoInfo>,
    /// Whether it answers workspace requests (older runners do not: HQ answers 501 for them).
    #[serde(default)]
    pub workspaces: bool,
}

/// What a runner lets HQ start, from its flags. The runner enforces it whatever HQ asks; HQ reads
/// it to answer a request it would refuse with a clear error before the runner sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunnerPolicy {
    /// `--presets-only`: HQ may start the runner's presets and nothing else; their argv,
    /// working directory and environment are fixed on the runner.
    #[serde(default)]
    pub locked: bool,
    /// `--allow`: the argv prefixes a command line must start with; empty when any may run.
    #[serde(default)]
    pub allow: Vec<Vec<String>>,
    /// The environment variables a request may set: names, or `PREFIX_*` patterns. `null` when
    /// any may (the runner still drops known interpreter and loader hijacks).
    #[serde(default)]
    pub env: Option<Vec<String>>,
}

impl RunnerPolicy {
    /// Whether a request may set the environment variable `name`.
    pub fn allows_env(&self, name: &str) -> bool {
        self.env.as_ref().is_none_or(|patterns| patterns.iter().any(|p| env_pattern_matches(p, name)))
    }

    /// Whether `command` starts with one of the allowed argv prefixes (or any command may run).
    pub fn allows_command(&self, command: &[String]) -> bool {
        command_allowed(&self.allow, command)
    }
}

/// Whether `command` starts with one of the argv prefixes in `allow`; an empty list allows all.
/// A prefix matches whole words: `["npm", "test"]` allows `npm test --watch`, not `npm install`.
pub fn command_allowed(allow: &[Vec<String>], command: &[String]) -> bool {
    allow.is_empty() || allow.iter().any(|prefix| command.starts_with(prefix))
}

/// Whether the variable `name` matches `pattern`: the same name, or `PREFIX_*` for any name that
/// starts with `PREFIX_`.
pub fn env_pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// A session that ended while no runner process was there to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndedSession {
    /// Session id.
    pub id: Uuid,
    /// What happened, for people.
    pub reason: String,
}

/// A session the runner still holds, with the output offsets its ring covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSession {
    /// Session id.
    pub id: Uuid,
    /// One past the last output byte produced.
    pub offset: u64,
}

/// Payload of [`HqMessage::Welcome`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// HQ's protocol version.
    pub protocol_version: u32,
    /// How often each side sends heartbeats, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

/// Payload of [`HqMessage::Refused`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    /// Why, for programs to match on.
    pub code: RefusalCode,
    /// A sentence the runner prints before exiting.
    pub message: String,
}

/// The stable codes of [`Refused`]; on the wire as snake_case strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// The runner speaks a protocol version HQ does not accept.
    ProtocolVersion,
    /// Another online runner has this name.
    NameTaken,
    /// The first frame was not a valid hello.
    BadHello,
    /// A code this build does not know (from a newer HQ).
    #[serde(other)]
    Unknown,
}

impl RefusalCode {
    /// The code as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProtocolVersion => "protocol_version",
            Self::NameTaken => "name_taken",
            Self::BadHello => "bad_hello",
            Self::Unknown => "unknown",
        }
    }
}

/// Payload of [`HqMessage::Start`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartSession {
    /// The new session's id.
    pub session_id: Uuid,
    /// argv; never empty.
    pub command: Vec<String>,
    /// Working directory, if any.
    pub cwd: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Initial PTY size.
    pub size: TermSize,
    /// The runner's preset this starts from: its working directory and environment apply
    /// (`cwd` and `env` above override them).
    #[serde(default)]
    pub preset: Option<String>,
    /// The agent's initial task, for a preset that takes one: the runner passes it the preset's
    /// way (one argument, never split or read by a shell).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Start in this session's workspace (made before by a `workspace` `create` request) instead
    /// of `cwd` or the preset's directory.
    #[serde(default)]
    pub workspace: bool,
}

/// Payload of [`HqMessage::Workspace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceRequest {
    /// Echoed in the reply.
    pub request_id: u64,
    /// Whose workspace (its worktree is named after the session).
    pub session_id: Uuid,
    /// What to do.
    pub op: WorkspaceOp,
}

/// What a [`WorkspaceRequest`] asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum WorkspaceOp {
    /// Make the worktree, on a new branch, from one of the runner's repositories (by name).
    Create(WorkspaceSpec),
    /// The changed files against the base commit.
    Changes,
    /// A unified diff of one file (or all), at most `max_bytes` long.
    Diff {
        /// One file, or all when `None`.
        path: Option<String>,
        /// The size cap.
        max_bytes: u64,
    },
    /// Commit everything in the worktree.
    Commit {
        /// The commit message.
        message: String,
    },
    /// Push the branch to the repository's remote.
    Push,
    /// Remove the worktree (the branch stays).
    Remove,
}

/// Payload of [`RunnerMessage::WorkspaceReply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceReply {
    /// The request's id.
    pub request_id: u64,
    /// What came of it.
    pub outcome: WorkspaceOutcome,
}

/// The answer to each [`WorkspaceOp`], or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum WorkspaceOutcome {
    /// The worktree exists.
    Created(Workspace),
    /// The changed files.
    Changes(Changes),
    /// The diff.
    Diff(Diff),
    /// The commit made.
    Committed(Committed),
    /// The push made.
    Pushed(Pushed),
    /// The worktree is gone.
    Removed,
    /// It could not be done.
    Failed(WorkspaceFailure),
}

/// Why a workspace request failed: a code for HQ to pick the status by, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceFailure {
    /// What went wrong.
    pub code: WorkspaceError,
    /// Said for people, naming the repository, branch or path.
    pub message: String,
}

/// The codes of [`WorkspaceFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceError {
    /// The runner offers no repository of that name.
    UnknownRepo,
    /// The repository's directory is gone or is not a git repository.
    RepoMissing,
    /// The repository's working tree has uncommitted changes.
    RepoDirty,
    /// The branch exists already.
    BranchExists,
    /// The branch name is not one git takes.
    BadBranch,
    /// The base names no commit of the repository.
    BadBase,
    /// The path is outside the worktree, or not a path.
    BadPath,
    /// The commit message is empty or too long.
    BadMessage,
    /// The session has no worktree on this runner (never made, or removed).
    NoWorkspace,
    /// Nothing to commit.
    NothingToCommit,
    /// The repository has no remote to push to.
    NoRemote,
    /// Git failed (the message has its last lines) or did not finish in time.
    GitFailed,
    /// A code this build does not know (from a newer runner).
    #[serde(other)]
    Unknown,
}

/// Payload of [`RunnerMessage::Changes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangesReport {
    /// The session.
    pub session_id: Uuid,
    /// Its workspace's changes now.
    pub summary: ChangeSummary,
}

/// Payload of [`RunnerMessage::SessionFailed`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFailed {
    /// The session that could not start.
    pub session_id: Uuid,
    /// Why, for people.
    pub error: String,
    /// The runner's policy refused it (rather than the program failing to start): HQ audits it.
    #[serde(default)]
    pub refused: bool,
}

/// Text frame from runner to HQ on a session's data connection. Binary frames carry output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum DataUp {
    /// First frame: which session, and which output offsets the runner still holds.
    Open(OpenData),
    /// Output `[from, to)` is no longer held by the runner; the stream goes on at `to`.
    Gap(Gap),
    /// The process ended; sent after the last output byte.
    Exit(ExitStatus),
    /// The process reported what it is doing (`agentrelay-runner report`, e.g. from an agent's
    /// hooks); this wins over HQ's guesses from output and screen.
    Activity(ActivityReport),
    /// The session's tokens and cost so far (totals, from the agent's OpenTelemetry export to
    /// the runner), sent when they change and again after a reconnect.
    Usage(crate::Usage),
    /// The session's host went without the exit (killed): the session is lost; sent after the
    /// last output byte, instead of `exit`.
    Lost(LostReport),
}

/// Payload of [`DataUp::Lost`] and [`DataDown::Ended`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostReport {
    /// Why, for people.
    pub reason: String,
}

/// Payload of [`DataUp::Activity`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityReport {
    /// What the process says it is doing.
    pub activity: Activity,
}

/// Payload of [`DataUp::Open`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenData {
    /// The runner's id.
    pub runner_id: Uuid,
    /// The session's id.
    pub session_id: Uuid,
    /// Oldest output offset still in the runner's ring.
    pub start: u64,
    /// One past the newest output byte.
    pub end: u64,
    /// The runner keeps output until HQ acknowledges it as stored (`ack`), so a replica that
    /// dies costs nothing another cannot get again; absent (false) from older runners.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acks: bool,
}

/// Text frame from HQ to runner on a session's data connection. Binary frames carry input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum DataDown {
    /// Reply to `open`: send output from this offset on.
    Resume(Resume),
    /// Resize the PTY (ordered with input).
    Resize(TermSize),
    /// Hang the process group up, then kill it after the grace period.
    Kill,
    /// HQ has already ended this session (it was lost while the runner was away): the runner
    /// ends its process and forgets it; nothing more is wanted from it.
    Ended(LostReport),
    /// Output before `offset` is stored durably: the runner may let it go. Sent only after a
    /// `resume` that said `acks: true`.
    Ack(Ack),
}

/// Payload of [`DataDown::Ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// One past the last byte HQ has stored.
    pub offset: u64,
}

/// Payload of [`DataDown::Resume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The first offset HQ does not hold yet.
    pub from: u64,
    /// HQ sends `ack` frames: the runner keeps output until they cover it (instead of until it
    /// is sent). Only when the runner's `open` said `acks: true`; absent (false) from older HQs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acks: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_variants_and_payloads_round_trip() {
        let beat = serde_json::to_string(&RunnerMessage::Heartbeat).expect("serializable");
        assert_eq!(beat, r#"{"type":"heartbeat"}"#);
        let kill: DataDown = serde_json::from_str(r#"{"type":"kill"}"#).expect("valid kill");
        assert_eq!(kill, DataDown::Kill);
        let resume = DataDown::Resume(Resume { from: 42, acks: false });
        let text = serde_json::to_string(&resume).expect("serializable");
        assert_eq!(text, r#"{"type":"resume","payload":{"from":42}}"#);
        assert_eq!(serde_json::from_str::<DataDown>(&text).expect("round trip"), resume);
        let acked = DataDown::Resume(Resume { from: 42, acks: true });
        let text = serde_json::to_string(&acked).expect("serializable");
        assert_eq!(text, r#"{"type":"resume","payload":{"from":42,"acks":true}}"#);
        let ack: DataDown = serde_json::from_str(r#"{"type":"ack","payload":{"offset":7}}"#).expect("ack");
        assert_eq!(ack, DataDown::Ack(Ack { offset: 7 }));
        // An older runner's open says nothing of acks.
        let open: DataUp = serde_json::from_str(
            r#"{"type":"open","payload":{"runner_id":"00000000-0000-0000-0000-000000000001","session_id":"00000000-0000-0000-0000-000000000002","start":0,"end":3}}"#,
        )
        .expect("old open");
        assert!(matches!(open, DataUp::Open(OpenData { acks: false, .. })));
    }

    #[test]
    fn policy_matches_argv_prefixes_and_env_patterns() {
        let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        let open = RunnerPolicy::default();
        assert!(open.allows_command(&argv(&["anything"])) && open.allows_env("BASH_ENV"));
        let policy = RunnerPolicy {
            locked: false,
            allow: vec![argv(&["bash"]), argv(&["npm", "test"])],
            env: Some(vec!["TERM".into(), "LC_*".into()]),
        };
        assert!(policy.allows_command(&argv(&["bash", "-c", "true"])));
        assert!(policy.allows_command(&argv(&["npm", "test"])));
        assert!(policy.allows_command(&argv(&["npm", "test", "--", "--grep", "x"])));
        assert!(!policy.allows_command(&argv(&["npm", "install"])));
        assert!(!policy.allows_command(&argv(&["npm"])), "a prefix is not shortened");
        assert!(!policy.allows_command(&argv(&["/bin/bash"])), "program names match exactly");
        assert!(policy.allows_env("TERM") && policy.allows_env("LC_ALL"));
        assert!(!policy.allows_env("TERMINFO") && !policy.allows_env("LANG") && !policy.allows_env("LC"));
        // A hello from a runner before policies parses as the open policy.
        let hello: Hello = serde_json::from_str(
            r#"{"id":"01a20ab4-30e7-741c-b522-a3f85b1a350a","name":"n","labels":{},"hostname":"h",
                "os":"linux","version":"0","protocol_version":2}"#,
        )
        .expect("an older hello parses");
        assert_eq!(hello.policy, RunnerPolicy::default());
    }

    #[test]
    fn refusal_codes_read_as_on_the_wire() {
        for code in [RefusalCode::ProtocolVersion, RefusalCode::NameTaken, RefusalCode::BadHello] {
            let json = serde_json::to_string(&code).expect("serializable");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        let refused: Refused =
            serde_json::from_str(r#"{"code":"name_taken","message":"m"}"#).expect("refusal parses");
        assert_eq!(refused.code, RefusalCode::NameTaken);
        let newer: Refused = serde_json::from_str(r#"{"code":"later","message":"m"}"#).expect("parses");
        assert_eq!(newer.code, RefusalCode::Unknown);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::viewer::ClientFrame;
    use proptest::prelude::*;

    fn decode_all(text: &str) {
        let _ = serde_json::from_str::<RunnerMessage>(text);
        let _ = serde_json::from_str::<HqMessage>(text);
        let _ = serde_json::from_str::<DataUp>(text);
        let _ = serde_json::from_str::<DataDown>(text);
        let _ = serde_json::from_str::<ClientFrame>(text);
    }

    proptest! {
        /// Every decoder of network input returns an error, never panics, on arbitrary text.
        #[test]
        fn decoders_never_panic_on_arbitrary_text(text in ".{0,400}") {
            decode_all(&text);
        }

        /// …nor on near-misses of real frames: right shape, wrong types and values.
        #[test]
        fn decoders_never_panic_on_near_misses(
            kind in prop::sample::select(vec!["hello", "heartbeat", "start", "open", "exit", "gap", "resize", "kill", "resume", "refused"]),
            payload in prop::sample::select(vec![
                "null", "{}", "[]", "1e999", "-1", "\"x\"", "{\"rows\":70000,\"cols\":-3}",
                "{\"id\":\"not-a-uuid\",\"name\":1}", "{\"from\":18446744073709551616}",
                "{\"session_id\":\"00000000-0000-0000-0000-000000000000\",\"command\":[],\"size\":{}}",
            ]),
        ) {
            decode_all(&format!("{{\"type\":\"{kind}\",\"payload\":{payload}}}"));
        }
    }
}
