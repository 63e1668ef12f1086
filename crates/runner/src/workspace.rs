//! Workspaces: a git worktree per session, made from one of the runner's own repositories
//! (`--repo NAME=PATH`, `[repos]` in the presets file) under the state dir, on a new branch; what
//! changed in it against its base commit; its diff, commit, push and removal; and the watcher
//! that reports a session's change summary when it moves.
//!
//! HQ names a repository and a branch, never a path: the worktree is always
//! `<state dir>/workspaces/<session id>`. Git runs as a program with an argument list (never a
//! shell), without a terminal prompt, with a timeout, and its output read up to a cap.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentrelay_protocol::runner::{
    ChangesReport, RunnerMessage, WorkspaceError, WorkspaceFailure, WorkspaceOp, WorkspaceOutcome,
};
use agentrelay_protocol::workspace::{
    ChangeSummary, ChangedFile, Changes, Committed, Diff, FileStatus, MAX_COMMIT_MESSAGE, Pushed, RepoInfo,
    Workspace, WorkspaceSpec,
};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::presets::expand_home;
use crate::session::Session;

/// Most git commands: status, diff, commit.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Making a worktree (a checkout) and pushing (the network).
const GIT_SLOW_TIMEOUT: Duration = Duration::from_secs(120);
/// Output of a git command read for parsing (lists, numstat); past it the command fails.
const GIT_OUTPUT_CAP: usize = 16 * 1024 * 1024;
/// A change in the worktree is reported after this long without another.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// …but no later than this after the first, while changes keep coming.
const DEBOUNCE_MAX: Duration = Duration::from_secs(2);
/// Without inotify (no watches left), how often the watcher looks.
const POLL_EVERY: Duration = Duration::from_secs(3);

/// A failed workspace operation, as sent to HQ.
type Failure = WorkspaceFailure;

fn fail(code: WorkspaceError, message: impl Into<String>) -> Failure {
    WorkspaceFailure { code, message: message.into() }
}

/// The repositories this runner offers and the worktrees it made from them.
#[derive(Debug)]
pub struct Workspaces {
    /// By name: the directory as configured (`~/` expanded).
    repos: BTreeMap<String, PathBuf>,
    /// `<state dir>/workspaces`: one worktree directory and one `<id>.json` per session.
    root: PathBuf,
    /// Numbers the scratch index files of concurrent change reads.
    scratch: AtomicU64,
}

/// Parses a `--repo NAME=PATH` flag.
pub fn parse_repo(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if valid_name(name.trim()) && !path.trim().is_empty() => {
            Ok((name.trim().to_owned(), PathBuf::from(expand_home(path.trim()))))
        }
        _ => Err(format!(
            "--repo '{text}' must look like NAME=PATH (a name of letters, digits, '.', '_' or '-')"
        )),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Workspaces {
    /// The repositories from the flags and the presets file (a flag wins over the file's entry
    /// of the same name); worktrees live under `state_dir`.
    pub fn new(
        flags: &[(String, PathBuf)],
        file: &BTreeMap<String, String>,
        state_dir: &Path,
    ) -> Result<Self, String> {
        let mut repos = BTreeMap::new();
        for (name, path) in file {
            if !valid_name(name) {
                return Err(format!(
                    "repos: '{name}' is not a repository name (letters, digits, '.', '_', '-')"
                ));
            }
            repos.insert(name.clone(), PathBuf::from(expand_home(path)));
        }
        for (name, path) in flags {
            repos.insert(name.clone(), path.clone());
        }
        Ok(Self { repos, root: state_dir.join("workspaces"), scratch: AtomicU64::new(0) })
    }

    /// What HQ is told: each repository's name and the branch it is on now.
    pub async fn advertised(&self) -> Vec<RepoInfo> {
        let mut list = Vec::with_capacity(self.repos.len());
        for (name, path) in &self.repos {
            let branch = current_branch(path).await.unwrap_or_else(|_| "HEAD".to_owned());
            list.push(RepoInfo { name: name.clone(), default_branch: branch });
        }
        list
    }

    /// The worktree of a session, if this runner made one that still exists.
    pub fn worktree(&self, session: Uuid) -> Option<PathBuf> {
        let dir = self.root.join(session.to_string());
        (dir.is_dir() && self.meta_path(session).is_file()).then_some(dir)
    }

    fn meta_path(&self, session: Uuid) -> PathBuf {
        self.root.join(format!("{session}.json"))
    }

    /// Carries out one request from HQ.
    pub async fn handle(&self, session: Uuid, op: WorkspaceOp) -> WorkspaceOutcome {
        let result = match op {
            WorkspaceOp::Create(spec) => self.create(session, &spec).await.map(WorkspaceOutcome::Created),
            WorkspaceOp::Changes => self.changes(session).await.map(WorkspaceOutcome::Changes),
            WorkspaceOp::Diff { path, max_bytes } => {
                self.diff(session, path.as_deref(), max_bytes).await.map(WorkspaceOutcome::Diff)
            }
            WorkspaceOp::Commit { message } => {
                self.commit(session, &message).await.map(WorkspaceOutcome::Committed)
            }
            WorkspaceOp::Push => self.push(session).await.map(WorkspaceOutcome::Pushed),
            WorkspaceOp::Remove => self.remove(session).await.map(|()| WorkspaceOutcome::Removed),
        };
        result.unwrap_or_else(|failure| {
            tracing::info!(session = %session, code = ?failure.code, error = %failure.message, "workspace request failed");
            WorkspaceOutcome::Failed(failure)
        })
    }

    /// Makes the session's worktree on a new branch; on any failure, nothing of it is left.
    async fn create(&self, session: Uuid, spec: &WorkspaceSpec) -> Result<Workspace, Failure> {
        let configured = self.repos.get(&spec.repo).ok_or_else(|| {
            let offered: Vec<&str> = self.repos.keys().map(String::as_str).collect();
            fail(
                WorkspaceError::UnknownRepo,
                format!("this runner has no repository '{}' (it offers: {})", spec.repo, offered.join(", ")),
            )
        })?;
        let missing = |why: String| {
            fail(
                WorkspaceError::RepoMissing,
                format!("repository '{}' ({}) {why}", spec.repo, configured.display()),
            )
        };
        if !configured.is_dir() {
            return Err(missing("is not there".to_owned()));
        }
        let top = git(configured, &["rev-parse", "--show-toplevel"], GIT_TIMEOUT)
            .await
            .map_err(|_| missing("is not a git repository".to_owned()))?;
        let repo = PathBuf::from(top.trim_end());
        let dirty = git(&repo, &["status", "--porcelain", "--untracked-files=no"], GIT_TIMEOUT).await?;
        if !dirty.trim().is_empty() {
            return Err(fail(
                WorkspaceError::RepoDirty,
                format!(
                    "repository '{}' has uncommitted changes, which a worktree would not have: commit or stash them first",
                    spec.repo
                ),
            ));
        }
        let branch = match &spec.branch {
            Some(branch) => branch.clone(),
            // The id's random end: its start is a timestamp, the same for sessions made together.
            None => format!("agentrelay/{}", &session.simple().to_string()[24..]),
        };
        if branch.starts_with('-')
            || git(&repo, &["check-ref-format", "--branch", &branch], GIT_TIMEOUT).await.is_err()
        {
            return Err(fail(WorkspaceError::BadBranch, format!("'{branch}' is not a valid branch name")));
        }
        let exists =
            git(&repo, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")], GIT_TIMEOUT)
                .await;
        if exists.is_ok() {
            return Err(fail(
                WorkspaceError::BranchExists,
                format!("branch '{branch}' already exists in repository '{}'", spec.repo),
            ));
        }
        let base = match &spec.base {
            Some(base) => base.clone(),
            None => current_branch(&repo).await?,
        };
        let bad_base = || {
            fail(WorkspaceError::BadBase, format!("'{base}' names no commit in repository '{}'", spec.repo))
        };
        if base.starts_with('-') || base.is_empty() {
            return Err(bad_base());
        }
        let base_commit = git(
            &repo,
            &["rev-parse", "--verify", "--quiet", "--end-of-options", &format!("{base}^{{commit}}")],
            GIT_TIMEOUT,
        )
        .await
        .map_err(|_| bad_base())?
        .trim()
        .to_owned();
        create_private_dir(&self.root).map_err(|e| {
            fail(WorkspaceError::GitFailed, format!("cannot create {}: {e}", self.root.display()))
        })?;
        let path = self.root.join(session.to_string());
        if path.exists() {
            return Err(fail(WorkspaceError::GitFailed, format!("{} exists already", path.display())));
        }
        let path_text = path.to_string_lossy().into_owned();
        let add = git(
            &repo,
            &["worktree", "add", "--quiet", "-b", &branch, &path_text, &base_commit],
            GIT_SLOW_TIMEOUT,
        )
        .await;
        let workspace = Workspace {
            repo: spec.repo.clone(),
            branch: branch.clone(),
            base,
            base_commit,
            path: path_text.clone(),
            changes: Some(ChangeSummary::default()),
            removed: false,
        };
        let saved = match add {
            Ok(_) => serde_json::to_vec_pretty(&workspace)
                .map_err(|e| e.to_string())
                .and_then(|json| std::fs::write(self.meta_path(session), json).map_err(|e| e.to_string()))
                .map_err(|e| {
                    fail(WorkspaceError::GitFailed, format!("cannot save the workspace's record: {e}"))
                }),
            Err(failure) => Err(failure),
        };
        if let Err(failure) = saved {
            // Nothing half-made: the worktree and the branch go again.
            let _ = git(&repo, &["worktree", "remove", "--force", &path_text], GIT_TIMEOUT).await;
            let _ = std::fs::remove_dir_all(&path);
            let _ = git(&repo, &["branch", "-D", &branch], GIT_TIMEOUT).await;
            let _ = std::fs::remove_file(self.meta_path(session));
            return Err(failure);
        }
        tracing::info!(session = %session, repo = %spec.repo, branch = %branch, path = %path_text, "workspace created");
        Ok(workspace)
    }

    /// The session's workspace record and its worktree.
    fn open(&self, session: Uuid) -> Result<(Workspace, PathBuf), Failure> {
        let none = || {
            fail(WorkspaceError::NoWorkspace, format!("session {session} has no workspace on this runner"))
        };
        let dir = self.worktree(session).ok_or_else(none)?;
        let text = std::fs::read(self.meta_path(session)).map_err(|_| none())?;
        let workspace: Workspace = serde_json::from_slice(&text).map_err(|_| none())?;
        Ok((workspace, dir))
    }

    /// Every file changed against the base commit, committed or not, untracked included.
    async fn changes(&self, session: Uuid) -> Result<Changes, Failure> {
        let (workspace, dir) = self.open(session)?;
        let scratch = self.scratch_index(&dir).await?;
        let env = [("GIT_INDEX_FILE", scratch.path())];
        let base = workspace.base_commit.as_str();
        let numstat =
            git_env(&dir, &["diff", "-M", "--numstat", "-z", "--no-ext-diff", "--no-textconv", base], &env)
                .await?;
        let statuses = git_env(&dir, &["diff", "-M", "--name-status", "-z", base], &env).await?;
        let mut files = parse_name_status(&statuses);
        apply_numstat(&mut files, &numstat);
        for file in &mut files {
            if scratch.untracked.contains(&file.path) {
                file.status = FileStatus::Untracked;
            }
        }
        let summary = summarize(&files);
        Ok(Changes { base_commit: workspace.base_commit, files, summary })
    }

    /// A unified diff against the base commit: of `path`, or of everything.
    async fn diff(&self, session: Uuid, path: Option<&str>, max_bytes: u64) -> Result<Diff, Failure> {
        let (workspace, dir) = self.open(session)?;
        let path = path.map(|p| safe_path(&dir, p)).transpose()?;
        let scratch = self.scratch_index(&dir).await?;
        let mut args = vec![
            "diff",
            "-M",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            workspace.base_commit.as_str(),
        ];
        if let Some(path) = &path {
            args.extend(["--", path.as_str()]);
        }
        let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX).min(GIT_OUTPUT_CAP);
        let (out, over) =
            run_git(&dir, &args, &[("GIT_INDEX_FILE", scratch.path())], GIT_TIMEOUT, cap).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (diff, truncated) = if over { (cut_diff(&text, cap), true) } else { (text, false) };
        Ok(Diff { diff, truncated, limit_bytes: max_bytes })
    }

    /// Commits everything in the worktree on the session's branch.
    async fn commit(&self, session: Uuid, message: &str) -> Result<Committed, Failure> {
        let (workspace, dir) = self.open(session)?;
        if message.trim().is_empty() || message.chars().count() > MAX_COMMIT_MESSAGE {
            let why = format!(
                "the commit message must have 1 to {MAX_COMMIT_MESSAGE} characters, not all white space"
            );
            return Err(fail(WorkspaceError::BadMessage, why));
        }
        git(&dir, &["add", "--all"], GIT_TIMEOUT).await?;
        let staged = git(&dir, &["diff", "--cached", "--name-only", "-z"], GIT_TIMEOUT).await?;
        if staged.is_empty() {
            return Err(fail(
                WorkspaceError::NothingToCommit,
                "nothing to commit: the worktree is as its last commit",
            ));
        }
        // A runner account without a git identity still commits, as AgentRelay.
        let mut args: Vec<&str> = Vec::new();
        if git(&dir, &["config", "user.email"], GIT_TIMEOUT).await.is_err() {
            args.extend(["-c", "user.email=agentrelay@localhost"]);
        }
        if git(&dir, &["config", "user.name"], GIT_TIMEOUT).await.is_err() {
            args.extend(["-c", "user.name=AgentRelay"]);
        }
        args.extend(["commit", "--quiet", "--file=-"]);
        run_git_input(&dir, &args, message.as_bytes(), GIT_SLOW_TIMEOUT).await?;
        let commit = git(&dir, &["rev-parse", "HEAD"], GIT_TIMEOUT).await?.trim().to_owned();
        tracing::info!(session = %session, commit = %commit, "workspace committed");
        Ok(Committed { commit, branch: workspace.branch })
    }

    /// Pushes the branch to the repository's remote under its own name, with the runner's own
    /// git credentials.
    async fn push(&self, session: Uuid) -> Result<Pushed, Failure> {
        let (workspace, dir) = self.open(session)?;
        let remotes = git(&dir, &["remote"], GIT_TIMEOUT).await?;
        let remotes: Vec<&str> = remotes.lines().filter(|l| !l.is_empty()).collect();
        let remote = match remotes.as_slice() {
            [] => {
                return Err(fail(
                    WorkspaceError::NoRemote,
                    format!("repository '{}' has no remote to push to", workspace.repo),
                ));
            }
            [only] => (*only).to_owned(),
            many if many.contains(&"origin") => "origin".to_owned(),
            many => {
                return Err(fail(
                    WorkspaceError::NoRemote,
                    format!(
                        "repository '{}' has several remotes and none is 'origin': {}",
                        workspace.repo,
                        many.join(", ")
                    ),
                ));
            }
        };
        let refspec = format!("HEAD:refs/heads/{}", workspace.branch);
        git(&dir, &["push", "--quiet", "--porcelain", &remote, &refspec], GIT_SLOW_TIMEOUT).await?;
        let commit = git(&dir, &["rev-parse", "HEAD"], GIT_TIMEOUT).await?.trim().to_owned();
        tracing::info!(session = %session, remote = %remote, branch = %workspace.branch, "workspace pushed");
        Ok(Pushed { remote, branch: workspace.branch, commit })
    }

    /// Removes the worktree (uncommitted changes with it); the branch stays.
    async fn remove(&self, session: Uuid) -> Result<(), Failure> {
        let (workspace, dir) = self.open(session)?;
        let path = dir.to_string_lossy().into_owned();
        let repo = self.repos.get(&workspace.repo);
        let removed = match repo {
            Some(repo) => git(repo, &["worktree", "remove", "--force", &path], GIT_TIMEOUT).await.is_ok(),
            None => false,
        };
        if !removed {
            // The repository moved or went: the directory goes anyway, git prunes its record later.
            std::fs::remove_dir_all(&dir)
                .map_err(|e| fail(WorkspaceError::GitFailed, format!("cannot remove {path}: {e}")))?;
            if let Some(repo) = repo {
                let _ = git(repo, &["worktree", "prune"], GIT_TIMEOUT).await;
            }
        }
        let _ = std::fs::remove_file(self.meta_path(session));
        tracing::info!(session = %session, path = %path, "workspace removed");
        Ok(())
    }

    /// A copy of the worktree's index with its untracked files added as intent-to-add, so that
    /// `git diff <base>` shows them as new files; the worktree's own index is never touched.
    async fn scratch_index(&self, dir: &Path) -> Result<Scratch, Failure> {
        let untracked = git(dir, &["ls-files", "-z", "--others", "--exclude-standard"], GIT_TIMEOUT).await?;
        let untracked: Vec<String> =
            untracked.split('\0').filter(|p| !p.is_empty()).map(str::to_owned).collect();
        let index =
            git(dir, &["rev-parse", "--path-format=absolute", "--git-path", "index"], GIT_TIMEOUT).await?;
        let number = self.scratch.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join(format!(".index-{}-{number}", std::process::id()));
        let scratch = Scratch { path, untracked };
        std::fs::copy(index.trim_end(), &scratch.path)
            .map_err(|e| fail(WorkspaceError::GitFailed, format!("cannot copy the worktree's index: {e}")))?;
        if !scratch.untracked.is_empty() {
            let list = scratch.untracked.join("\0");
            let args = ["add", "--intent-to-add", "--pathspec-from-file=-", "--pathspec-file-nul"];
            run_git_env_input(
                dir,
                &args,
                &[("GIT_INDEX_FILE", scratch.path())],
                list.as_bytes(),
                GIT_TIMEOUT,
            )
            .await?;
        }
        Ok(scratch)
    }

    /// The session's change summary now, if it has a worktree.
    pub async fn summary(&self, session: Uuid) -> Option<ChangeSummary> {
        match self.changes(session).await {
            Ok(changes) => Some(changes.summary),
            Err(failure) => {
                tracing::debug!(session = %session, error = %failure.message, "no change summary");
                None
            }
        }
    }
}

/// A scratch index file, deleted when dropped.
struct Scratch {
    path: PathBuf,
    untracked: Vec<String>,
}

impl Scratch {
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The branch a repository's working tree is on, or `HEAD` when detached.
async fn current_branch(repo: &Path) -> Result<String, Failure> {
    match git(repo, &["symbolic-ref", "--quiet", "--short", "HEAD"], GIT_TIMEOUT).await {
        Ok(branch) => Ok(branch.trim().to_owned()),
        Err(_) => git(repo, &["rev-parse", "--verify", "--quiet", "HEAD"], GIT_TIMEOUT)
            .await
            .map(|_| "HEAD".to_owned()),
    }
}

/// A path inside the worktree, as git names it: relative, no `..`, and not through a symbolic
/// link that leads out of the worktree.
pub fn safe_path(worktree: &Path, path: &str) -> Result<String, Failure> {
    let bad = |why: &str| fail(WorkspaceError::BadPath, format!("path '{path}' {why}"));
    if path.is_empty() || path.contains('\0') {
        return Err(bad("is not a path"));
    }
    let relative = Path::new(path);
    let mut normal = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(bad("must stay inside the workspace (relative, without '..')"));
            }
        }
    }
    if normal.as_os_str().is_empty() {
        return Err(bad("is not a file"));
    }
    let root = worktree.canonicalize().map_err(|_| bad("has no workspace to be in"))?;
    // The deepest directory of the path that exists, with every link resolved, must be inside.
    let mut probe = root.join(&normal);
    probe.pop();
    let mut resolved = None;
    while probe.starts_with(&root) {
        if let Ok(real) = probe.canonicalize() {
            resolved = Some(real);
            break;
        }
        if !probe.pop() {
            break;
        }
    }
    match resolved {
        Some(real) if real.starts_with(&root) => Ok(normal.to_string_lossy().into_owned()),
        _ => Err(bad("leads out of the workspace through a symbolic link")),
    }
}

/// Files from `git diff --name-status -z`: `S\0path\0` or, for renames and copies, `R100\0old\0new\0`.
fn parse_name_status(text: &str) -> Vec<ChangedFile> {
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    let mut files = Vec::new();
    while let Some(code) = fields.next() {
        let kind = code.chars().next().unwrap_or('M');
        let (old_path, path) = if matches!(kind, 'R' | 'C') {
            (fields.next().map(str::to_owned), fields.next())
        } else {
            (None, fields.next())
        };
        let Some(path) = path else { break };
        let status = match kind {
            'A' => FileStatus::Added,
            'M' => FileStatus::Modified,
            'D' => FileStatus::Deleted,
            'R' => FileStatus::Renamed,
            'C' => FileStatus::Added,
            _ => FileStatus::Other,
        };
        let old_path = if kind == 'R' { old_path } else { None };
        files.push(ChangedFile {
            path: path.to_owned(),
            old_path,
            status,
            additions: 0,
            deletions: 0,
            binary: false,
        });
    }
    files
}

/// Line counts from `git diff --numstat -z`: `add\tdel\tpath\0`, or for a rename
/// `add\tdel\t\0old\0new\0`; binary files show `-\t-`.
fn apply_numstat(files: &mut [ChangedFile], text: &str) {
    let mut fields = text.split('\0');
    while let Some(head) = fields.next() {
        if head.is_empty() {
            continue;
        }
        let mut parts = head.splitn(3, '\t');
        let (Some(added), Some(deleted), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let path = if path.is_empty() {
            let _old = fields.next();
            fields.next().unwrap_or_default().to_owned()
        } else {
            path.to_owned()
        };
        if let Some(file) = files.iter_mut().find(|f| f.path == path) {
            file.binary = added == "-" && deleted == "-";
            file.additions = added.parse().unwrap_or(0);
            file.deletions = deleted.parse().unwrap_or(0);
        }
    }
}

fn summarize(files: &[ChangedFile]) -> ChangeSummary {
    ChangeSummary {
        files: u32::try_from(files.len()).unwrap_or(u32::MAX),
        additions: files.iter().map(|f| f.additions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
    }
}

/// A diff longer than `cap`, cut to whole files; when the first file alone is longer, to its
/// header (its hunks left out).
fn cut_diff(text: &str, cap: usize) -> String {
    let mut end = cap.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    if let Some(last_file) = head.rfind("\ndiff --git ") {
        return text[..=last_file].to_owned();
    }
    match head.find("\n@@") {
        Some(hunks) => text[..=hunks].to_owned(),
        None => String::new(),
    }
}

/// Runs git in `dir`; its stdout as text, or a failure with the last lines of its stderr.
async fn git(dir: &Path, args: &[&str], timeout: Duration) -> Result<String, Failure> {
    let (out, over) = run_git(dir, args, &[], timeout, GIT_OUTPUT_CAP).await?;
    if over {
        return Err(fail(WorkspaceError::GitFailed, format!("git {} printed too much", args.join(" "))));
    }
    String::from_utf8(out)
        .map_err(|_| fail(WorkspaceError::GitFailed, "git printed something that is not UTF-8"))
}

async fn git_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Result<String, Failure> {
    let (out, over) = run_git(dir, args, env, GIT_TIMEOUT, GIT_OUTPUT_CAP).await?;
    if over {
        return Err(fail(WorkspaceError::GitFailed, format!("git {} printed too much", args.join(" "))));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

async fn run_git_input(dir: &Path, args: &[&str], input: &[u8], timeout: Duration) -> Result<(), Failure> {
    run_git_env_input(dir, args, &[], input, timeout).await
}

async fn run_git_env_input(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
    input: &[u8],
    timeout: Duration,
) -> Result<(), Failure> {
    use tokio::io::AsyncWriteExt;
    let mut child = command(dir, args, env).stdin(Stdio::piped()).spawn().map_err(spawn_failed)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input).await;
    }
    finish(child, args, timeout, 0).await.map(|_| ())
}

/// Runs git with `env` set, reading at most `cap` bytes of stdout: `(stdout, whether it was
/// longer)`. A longer output stops the command (it is killed).
async fn run_git(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
    timeout: Duration,
    cap: usize,
) -> Result<(Vec<u8>, bool), Failure> {
    let child = command(dir, args, env).stdin(Stdio::null()).spawn().map_err(spawn_failed)?;
    finish(child, args, timeout, cap).await
}

fn spawn_failed(e: std::io::Error) -> Failure {
    fail(WorkspaceError::GitFailed, format!("cannot run git: {e}"))
}

fn command(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        // Paths are paths, never pathspec magic; no pager, no prompt for credentials.
        .args(["--literal-pathspecs", "--no-pager", "-c", "core.quotepath=off"])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("LC_ALL", "C")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn finish(
    mut child: tokio::process::Child,
    args: &[&str],
    timeout: Duration,
    cap: usize,
) -> Result<(Vec<u8>, bool), Failure> {
    let what = || format!("git {}", args.first().copied().unwrap_or_default());
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        let mut out = Vec::new();
        let mut over = false;
        if let Some(stdout) = stdout.as_mut() {
            let mut limited = stdout.take(cap as u64 + 1);
            let _ = limited.read_to_end(&mut out).await;
            if out.len() > cap {
                out.truncate(cap);
                over = true;
            }
        }
        if over {
            let _ = child.start_kill();
        }
        let mut err = Vec::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.take(64 * 1024).read_to_end(&mut err).await;
        }
        let status = child.wait().await;
        (out, over, err, status)
    };
    let (out, over, err, status) = tokio::time::timeout(timeout, work).await.map_err(|_| {
        fail(WorkspaceError::GitFailed, format!("{} did not finish within {timeout:?}", what()))
    })?;
    let status = status.map_err(|e| fail(WorkspaceError::GitFailed, format!("{}: {e}", what())))?;
    if over || status.success() {
        return Ok((out, over));
    }
    let err = String::from_utf8_lossy(&err);
    let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
    Err(fail(WorkspaceError::GitFailed, format!("{} failed: {tail}", what())))
}

/// Reports a session's change summary to HQ whenever it moves, until the session has ended
/// (one last look then) or its worktree is gone. Changes are noticed from inotify events under
/// the worktree (git's own files aside), debounced; nothing runs while nothing changes. Without
/// inotify it looks every few seconds.
/// Ends with the session, or when the runner shuts down (its session goes on under its host, and
/// the next runner to adopt it watches again).
pub async fn watch(
    workspaces: Arc<Workspaces>,
    session: Arc<Session>,
    outbox: mpsc::Sender<RunnerMessage>,
    shutdown: CancellationToken,
) {
    use notify::Watcher;
    let Some(dir) = workspaces.worktree(session.id) else { return };
    let (tx, mut events) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = event.is_ok_and(|e| {
            !e.kind.is_access() && e.paths.iter().any(|p| !p.components().any(|c| c.as_os_str() == ".git"))
        });
        if relevant {
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::Recursive).map(|()| w));
    let _watcher = match watcher {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(session = %session.id, %error, "cannot watch the worktree; looking every few seconds");
            None
        }
    };
    let polling = _watcher.is_none();
    let mut progress = session.subscribe();
    // HQ was told "nothing yet" when the worktree was made: the first look reports any edit since.
    let mut last = Some(ChangeSummary::default());
    let mut first = true;
    loop {
        let ended = if std::mem::take(&mut first) {
            false
        } else {
            tokio::select! {
                got = events.recv(), if !polling => got.is_none(),
                () = tokio::time::sleep(POLL_EVERY), if polling => false,
                _ = progress.wait_for(|p| p.exit.is_some()) => true,
                () = shutdown.cancelled() => return,
            }
        };
        if !ended && !polling {
            // Debounce: until DEBOUNCE passes without an event, or DEBOUNCE_MAX since the first.
            let deadline = tokio::time::Instant::now() + DEBOUNCE_MAX;
            while let Ok(Some(())) =
                tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + DEBOUNCE), events.recv())
                    .await
            {}
        }
        if workspaces.worktree(session.id).is_none() {
            return;
        }
        let now = workspaces.summary(session.id).await;
        if now.is_some() && now != last {
            last = now;
            if let Some(summary) = now {
                let report = RunnerMessage::Changes(ChangesReport { session_id: session.id, summary });
                // A full outbox (HQ away for long) drops this one; a later change is sent again.
                let _ = outbox.try_send(report);
            }
        }
        if ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_and_name_status_make_one_list() {
        let mut files = parse_name_status("M\0a.txt\0R087\0old name.rs\0new name.rs\0A\0img.png\0D\0gone\0");
        apply_numstat(&mut files, "3\t1\ta.txt\0".to_owned().as_str());
        apply_numstat(&mut files, "2\t2\t\0old name.rs\0new name.rs\0-\t-\timg.png\0");
        let by = |p: &str| files.iter().find(|f| f.path == p).expect(p).clone();
        assert_eq!((by("a.txt").additions, by("a.txt").deletions), (3, 1));
        let renamed = by("new name.rs");
        assert_eq!(renamed.status, FileStatus::Renamed);
        assert_eq!(renamed.old_path.as_deref(), Some("old name.rs"));
        assert_eq!(renamed.additions, 2);
        assert!(by("img.png").binary);
        assert_eq!(by("gone").status, FileStatus::Deleted);
        assert_eq!(summarize(&files), ChangeSummary { files: 4, additions: 5, deletions: 3 });
    }

    #[test]
    fn paths_stay_inside_the_worktree() {
        let root = std::env::temp_dir().join(format!("ar-safe-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let worktree = root.join("wt");
        std::fs::create_dir_all(worktree.join("src")).expect("dirs");
        std::fs::create_dir_all(root.join("outside")).expect("dirs");
        std::os::unix::fs::symlink(root.join("outside"), worktree.join("out")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", worktree.join("passwd")).expect("symlink");
        assert_eq!(safe_path(&worktree, "src/lib.rs").expect("inside"), "src/lib.rs");
        assert_eq!(safe_path(&worktree, "./src/new/deep.rs").expect("inside"), "src/new/deep.rs");
        // A link itself is a file git shows as its target's name, never read through.
        assert_eq!(safe_path(&worktree, "passwd").expect("a link"), "passwd");
        for escape in ["../outside/x", "/etc/passwd", "src/../../outside/x", "out/x", "out/deeper/x", "", "."]
        {
            let refused = safe_path(&worktree, escape);
            assert!(matches!(&refused, Err(f) if f.code == WorkspaceError::BadPath), "{escape}: {refused:?}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_long_diff_is_cut_at_a_file() {
        let diff = "diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b\ndiff --git a/y b/y\n@@ -1 +1 @@\n-c\n+d\n";
        let cut = cut_diff(diff, diff.len() - 3);
        assert_eq!(cut, "diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b\n");
        assert_eq!(cut_diff(diff, 25), "diff --git a/x b/x\n");
    }

    #[test]
    fn repo_flags_name_a_directory() {
        let (name, path) = parse_repo("app=/srv/app").expect("parses");
        assert_eq!((name.as_str(), path), ("app", PathBuf::from("/srv/app")));
        for bad in ["app", "=/x", "a b=/x", "../x=/y", "app="] {
            assert!(parse_repo(bad).is_err(), "{bad}");
        }
    }
}
