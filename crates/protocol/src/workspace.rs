//! Workspaces: a git worktree per session on the runner's own repositories, what changed in it,
//! and the review sent back to the agent. The REST objects; the runner frames that carry them
//! are in [`crate::runner`]. See `docs/workspaces.md`.

use serde::{Deserialize, Serialize};

/// A repository a runner offers for workspaces (`--repo NAME=PATH`, or `[[repo]]` in its
/// presets file). Its path never leaves the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoInfo {
    /// The name HQ asks for it by.
    pub name: String,
    /// The branch its working tree is on (the default `base`), or `HEAD` when detached.
    pub default_branch: String,
}

/// What `POST /api/sessions` asks for in `"workspace"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceSpec {
    /// One of the runner's repositories, by name.
    pub repo: String,
    /// The new branch (default `agentrelay/<last 8 hex digits of the session id>`); it must not
    /// exist yet.
    #[serde(default)]
    pub branch: Option<String>,
    /// What the branch starts from: a branch, tag or commit of the repository (default: the
    /// branch the repository's own working tree is on).
    #[serde(default)]
    pub base: Option<String>,
}

/// A session's workspace: a git worktree on the runner, on its own branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    /// The runner's repository it was made from.
    pub repo: String,
    /// The session's branch.
    pub branch: String,
    /// What the branch started from, as asked (or the repository's branch then).
    pub base: String,
    /// The commit `base` named when the worktree was made: changes are counted against it.
    pub base_commit: String,
    /// The worktree's directory on the runner.
    pub path: String,
    /// What changed so far, as the runner last reported it.
    #[serde(default)]
    pub changes: Option<ChangeSummary>,
    /// The worktree was removed (`DELETE /api/sessions/{id}/workspace`, or retention); the
    /// branch stays in the repository.
    #[serde(default)]
    pub removed: bool,
}

/// The size of a workspace's changes against its base commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeSummary {
    /// Files changed, untracked ones included.
    pub files: u32,
    /// Lines added (binary files count none).
    pub additions: u64,
    /// Lines deleted.
    pub deletions: u64,
}

/// How a file changed against the base commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// New, and known to git (committed or staged).
    Added,
    /// Changed.
    Modified,
    /// Gone.
    Deleted,
    /// Moved (`old_path` says from where), maybe changed too.
    Renamed,
    /// New, and not yet known to git (nor ignored).
    Untracked,
    /// Anything else git reports (a type change, say).
    #[serde(other)]
    Other,
}

/// One changed file of `GET /api/sessions/{id}/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangedFile {
    /// Its path in the repository.
    pub path: String,
    /// For a rename: where it was.
    #[serde(default)]
    pub old_path: Option<String>,
    /// How it changed.
    pub status: FileStatus,
    /// Lines added.
    pub additions: u64,
    /// Lines deleted.
    pub deletions: u64,
    /// Whether git takes it for binary (no line counts then).
    pub binary: bool,
}

/// `GET /api/sessions/{id}/changes`: every file changed against the base commit, committed or
/// not, untracked ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Changes {
    /// What they are counted against.
    pub base_commit: String,
    /// The files, by path.
    pub files: Vec<ChangedFile>,
    /// Their sum.
    pub summary: ChangeSummary,
}

/// `GET /api/sessions/{id}/diff`: a unified diff against the base commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Diff {
    /// The diff (`git diff` format, untracked files as new files).
    pub diff: String,
    /// The diff was longer than `limit_bytes`: whole files past the limit were left out (or,
    /// for one file that is larger alone, its hunks).
    pub truncated: bool,
    /// The size cap.
    pub limit_bytes: u64,
}

/// One comment of a review: a line of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewComment {
    /// The file, as `changes` lists it.
    pub path: String,
    /// The line number in the file as the agent has it now (1-based).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub line: u32,
    /// What to say about it.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub body: String,
}

/// `POST /api/sessions/{id}/review`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    /// A word on the whole change.
    #[serde(default)]
    pub summary: Option<String>,
    /// Comments on lines.
    #[serde(default)]
    pub comments: Vec<ReviewComment>,
    /// `now` (the default) types it at once; `waiting` queues it until the agent next waits
    /// for input.
    #[serde(default)]
    pub when: Option<crate::requests::InputWhen>,
}

/// `POST /api/sessions/{id}/workspace/commit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitRequest {
    /// The commit message: 1 to 65,536 characters, not all white space.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 65536))]
    pub message: String,
}

/// The longest commit message taken, in characters.
pub const MAX_COMMIT_MESSAGE: usize = 65536;

/// What a workspace commit made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Committed {
    /// The new commit.
    pub commit: String,
    /// The branch it is on.
    pub branch: String,
}

/// Where a workspace push went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pushed {
    /// The remote (the repository's `origin`, or its only remote).
    pub remote: String,
    /// The branch pushed, under the same name.
    pub branch: String,
    /// The commit the remote branch now points at.
    pub commit: String,
}
