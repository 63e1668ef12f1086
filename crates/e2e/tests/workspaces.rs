//! Workspaces (issue 20): a git worktree per session on the runner's own repositories, in real
//! git repositories in temporary folders, with a bare repository standing in for the remote.

use std::path::{Path, PathBuf};
use std::process::Command;

use agentrelay_e2e::*;
use agentrelay_protocol::RunnerStatus;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Runs git in `dir`; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A repository on `main` with one commit (`app.txt` of five lines, `gone.txt`), and a bare one
/// as its `origin`.
struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    remote: PathBuf,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        let remote = dir.path().join("remote.git");
        std::fs::create_dir(&path).unwrap();
        git(&path, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(path.join("app.txt"), "line 1\nline 2\nline 3\nline 4\nline 5\n").unwrap();
        std::fs::write(path.join("gone.txt"), "to be deleted\n").unwrap();
        git(&path, &["add", "."]);
        git(&path, &["commit", "--quiet", "-m", "first"]);
        git(dir.path(), &["init", "--quiet", "--bare", remote.to_str().unwrap()]);
        git(&path, &["remote", "add", "origin", remote.to_str().unwrap()]);
        Self { _dir: dir, path, remote }
    }

    fn flag(&self, name: &str) -> String {
        format!("{name}={}", self.path.display())
    }
}

/// Starts `script` (sh) in a workspace of `repo` on `runner`.
async fn start_in_workspace(hq: &HqClient, runner: uuid::Uuid, repo: &str, script: &str) -> Value {
    let (status, body) = hq
        .post_session(
            json!({"runner_id": runner, "command": ["sh", "-c", script], "workspace": {"repo": repo}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn changes(hq: &HqClient, id: &str) -> Value {
    let response = hq.request(Method::GET, &format!("/api/sessions/{id}/changes")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn diff(hq: &HqClient, id: &str, path: Option<&str>) -> (StatusCode, Value) {
    let mut request = hq.request(Method::GET, &format!("/api/sessions/{id}/diff"));
    if let Some(path) = path {
        request = request.query(&[("path", path)]);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

fn file<'a>(changes: &'a Value, path: &str) -> &'a Value {
    changes["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} in {changes}"))
}

/// What an agent does in these tests: edit, say so, then echo each line it is sent.
const ECHO: &str = "while read -r line; do echo \"got: $line\"; done";

#[tokio::test]
async fn two_sessions_edit_the_same_file_each_in_its_own_worktree_and_get_their_own_review() {
    let hq = TestHq::start().await;
    let repo = Repo::new();
    let runner = TestRunner::start_with(&hq, "box", &["--repo", &repo.flag("app")]).await;
    let listed = hq.get_json("/api/runners").await;
    assert_eq!(listed[0]["repos"], json!([{"name": "app", "default_branch": "main"}]));

    let a = start_in_workspace(
        &hq,
        runner.id,
        "app",
        &format!(
            "sed -i 's/^line 2$/line two, by A/' app.txt && echo notes > notes.txt && echo ready; {ECHO}"
        ),
    )
    .await;
    let b = start_in_workspace(
        &hq,
        runner.id,
        "app",
        &format!("sed -i 's/^line 2$/line 2 (B was here)/' app.txt && rm gone.txt && echo ready; {ECHO}"),
    )
    .await;
    let (a_id, b_id) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    let workspace = &a["workspace"];
    assert_eq!(workspace["repo"], "app");
    assert_eq!(workspace["base"], "main");
    assert_eq!(workspace["branch"], format!("agentrelay/{}", &a_id[a_id.len() - 8..]));
    assert_eq!(workspace["base_commit"], git(&repo.path, &["rev-parse", "HEAD"]).trim());
    assert_ne!(workspace["path"], b["workspace"]["path"]);
    let mut viewer_a = hq.attach(a_id.parse().unwrap(), None).await;
    let mut viewer_b = hq.attach(b_id.parse().unwrap(), None).await;
    viewer_a.read_until("ready").await.unwrap();
    viewer_b.read_until("ready").await.unwrap();

    // Each sees only its own edits; the repository's own working tree is untouched.
    let changes_a = changes(&hq, &a_id).await;
    assert_eq!(changes_a["files"].as_array().unwrap().len(), 2, "{changes_a}");
    assert_eq!(file(&changes_a, "app.txt")["status"], "modified");
    assert_eq!(
        (
            file(&changes_a, "app.txt")["additions"].as_u64(),
            file(&changes_a, "app.txt")["deletions"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(file(&changes_a, "notes.txt")["status"], "untracked");
    assert_eq!(changes_a["summary"], json!({"files": 2, "additions": 2, "deletions": 1}));
    let changes_b = changes(&hq, &b_id).await;
    assert_eq!(changes_b["files"].as_array().unwrap().len(), 2, "{changes_b}");
    assert_eq!(file(&changes_b, "gone.txt")["status"], "deleted");
    assert_eq!(
        std::fs::read_to_string(repo.path.join("app.txt")).unwrap(),
        "line 1\nline 2\nline 3\nline 4\nline 5\n"
    );
    assert_eq!(git(&repo.path, &["status", "--porcelain"]), "");

    let (status, diff_a) = diff(&hq, &a_id, Some("app.txt")).await;
    assert_eq!(status, StatusCode::OK);
    let text = diff_a["diff"].as_str().unwrap();
    assert!(
        text.contains("+line two, by A") && text.contains("-line 2") && !text.contains("B was here"),
        "{text}"
    );
    assert_eq!(diff_a["truncated"], false);
    let (_, all_a) = diff(&hq, &a_id, None).await;
    assert!(all_a["diff"].as_str().unwrap().contains("+notes"), "untracked files show as new: {all_a}");
    let (_, diff_b) = diff(&hq, &b_id, None).await;
    let text = diff_b["diff"].as_str().unwrap();
    assert!(text.contains("B was here") && text.contains("deleted file") && !text.contains("by A"), "{text}");

    // A review reaches the right session's input, with file:line and the line quoted.
    let response = hq
        .request(Method::POST, &format!("/api/sessions/{a_id}/review"))
        .json(&json!({"summary": "Nearly there.", "comments": [{"path": "app.txt", "line": 2, "body": "Why a comma?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    viewer_a.read_until("got: Why a comma?").await.unwrap();
    let seen = viewer_a.text();
    for line in ["got: Nearly there.", "got: app.txt:2", "got: > line two, by A"] {
        assert!(seen.contains(line), "{line} in {seen}");
    }
    // B had none of it: its next line is the one B is sent itself.
    viewer_b.type_text("marker\r").await;
    viewer_b.read_until("got: marker").await.unwrap();
    assert!(!viewer_b.text().contains("Why a comma"), "{}", viewer_b.text());

    // A message git would take as empty, or one too long, is refused before anything is committed.
    let before = git(&repo.path, &["rev-parse", workspace["branch"].as_str().unwrap()]);
    for message in ["\u{c} \n".to_owned(), "x".repeat(65537)] {
        let response = hq
            .request(Method::POST, &format!("/api/sessions/{a_id}/workspace/commit"))
            .json(&json!({ "message": message }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], "message", "{error}");
    }
    assert_eq!(git(&repo.path, &["rev-parse", workspace["branch"].as_str().unwrap()]), before);

    // Commit, then push to the bare repository standing in for the remote.
    let response = hq
        .request(Method::POST, &format!("/api/sessions/{a_id}/workspace/commit"))
        .json(&json!({"message": "A's edit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let committed: Value = response.json().await.unwrap();
    let branch = workspace["branch"].as_str().unwrap();
    assert_eq!(committed["branch"], branch);
    assert_eq!(git(&repo.path, &["rev-parse", branch]).trim(), committed["commit"]);
    assert_eq!(git(&repo.path, &["log", "-1", "--format=%s", branch]).trim(), "A's edit");
    // Committed changes still count against the base.
    assert_eq!(changes(&hq, &a_id).await["summary"]["files"], 2);
    let response = hq
        .request(Method::POST, &format!("/api/sessions/{a_id}/workspace/commit"))
        .json(&json!({"message": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let pushed: Value = hq
        .request(Method::POST, &format!("/api/sessions/{a_id}/workspace/push"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pushed["remote"], "origin");
    assert_eq!(git(&repo.remote, &["rev-parse", branch]).trim(), committed["commit"]);

    // Removal: not while it runs; after, the worktree goes and the branch stays.
    let remove = |id: String| hq.request(Method::DELETE, &format!("/api/sessions/{id}/workspace")).send();
    let response = remove(a_id.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    hq.request(Method::DELETE, &format!("/api/sessions/{a_id}")).send().await.unwrap();
    hq.wait_for_end(a_id.parse().unwrap()).await;
    assert_eq!(remove(a_id.clone()).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert!(!Path::new(workspace["path"].as_str().unwrap()).exists());
    assert_eq!(git(&repo.path, &["rev-parse", branch]).trim(), committed["commit"]);
    assert_eq!(hq.get_json(&format!("/api/sessions/{a_id}")).await["workspace"]["removed"], true);
    let response = hq.request(Method::GET, &format!("/api/sessions/{a_id}/changes")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    drop(runner);
}

#[tokio::test]
async fn a_bad_workspace_request_says_what_is_wrong_and_leaves_nothing_behind() {
    let hq = TestHq::start().await;
    let repo = Repo::new();
    let missing = repo.path.with_file_name("not-there");
    let runner = TestRunner::start_with(
        &hq,
        "box",
        &["--repo", &repo.flag("app"), "--repo", &format!("lost={}", missing.display())],
    )
    .await;
    let start = |workspace: Value| {
        hq.post_session(json!({"runner_id": runner.id, "command": ["sh"], "workspace": workspace}))
    };
    let expect = |reply: (StatusCode, Value), status: StatusCode, code: &str, says: &str| {
        assert_eq!(reply.0, status, "{}", reply.1);
        assert_eq!(reply.1["error"]["code"], code, "{}", reply.1);
        assert!(reply.1["error"]["message"].as_str().unwrap().contains(says), "{}", reply.1);
    };
    expect(
        start(json!({"repo": "nope"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "no repository 'nope'",
    );
    expect(start(json!({"repo": "lost"})).await, StatusCode::CONFLICT, "repo_missing", "lost");
    expect(
        start(json!({"repo": "app", "branch": "main"})).await,
        StatusCode::CONFLICT,
        "branch_exists",
        "'main'",
    );
    expect(
        start(json!({"repo": "app", "branch": "bad..name"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "bad..name",
    );
    expect(
        start(json!({"repo": "app", "base": "no-such-thing"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "no-such-thing",
    );
    expect(
        start(json!({"repo": "app", "base": "--output=/tmp/x"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "--output",
    );
    expect(
        start(json!({"repo": "app", "path": "/tmp"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "workspace.path",
    );
    let (status, reply) = hq
        .post_session(
            json!({"runner_id": runner.id, "command": ["sh"], "cwd": "/tmp", "workspace": {"repo": "app"}}),
        )
        .await;
    assert_eq!((status, reply["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("cwd")));
    std::fs::write(repo.path.join("app.txt"), "changed\n").unwrap();
    expect(start(json!({"repo": "app"})).await, StatusCode::CONFLICT, "repo_dirty", "uncommitted changes");
    git(&repo.path, &["checkout", "--quiet", "--", "app.txt"]);

    // Nothing was made: no session, no worktree, no branch.
    assert_eq!(hq.get_json("/api/sessions").await, json!([]));
    assert_eq!(git(&repo.path, &["worktree", "list", "--porcelain"]).matches("worktree ").count(), 1);
    assert_eq!(git(&repo.path, &["branch", "--list", "agentrelay/*"]), "");

    // A good one, from another base, on a branch of its own choosing.
    git(&repo.path, &["branch", "release"]);
    let session = hq
        .start_session_with(
            json!({"runner_id": runner.id, "command": ["sh", "-c", "pwd; git rev-parse --abbrev-ref HEAD"],
            "workspace": {"repo": "app", "branch": "fix/login", "base": "release"}}),
        )
        .await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_to_exit().await.unwrap();
    let workspace = session.workspace.unwrap();
    assert_eq!((workspace.branch.as_str(), workspace.base.as_str()), ("fix/login", "release"));
    assert!(
        viewer.text().contains(&workspace.path) && viewer.text().contains("fix/login"),
        "{}",
        viewer.text()
    );
}

#[tokio::test]
async fn paths_never_leave_the_worktree() {
    let hq = TestHq::start().await;
    let repo = Repo::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret\n").unwrap();
    let runner = TestRunner::start_with(&hq, "box", &["--repo", &repo.flag("app")]).await;
    let script = format!(
        "ln -s {} escape && ln -s {}/secret.txt link.txt && echo ready; {ECHO}",
        outside.path().display(),
        outside.path().display()
    );
    let session = start_in_workspace(&hq, runner.id, "app", &script).await;
    let id = session["id"].as_str().unwrap().to_owned();
    hq.attach(id.parse().unwrap(), None).await.read_until("ready").await.unwrap();
    for escape in
        ["../app/app.txt", "../../../etc/passwd", "/etc/passwd", "escape/secret.txt", "escape/new/x", "", "."]
    {
        let (status, reply) = diff(&hq, &id, Some(escape)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{escape}: {reply}");
        assert_eq!(reply["error"]["field"], "path", "{escape}: {reply}");
    }
    // A link is shown as what it says, never read through.
    let (status, reply) = diff(&hq, &id, Some("link.txt")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!reply["diff"].as_str().unwrap().contains("+secret"), "{reply}");
    // Pathspec magic is a file name like any other.
    let (status, reply) = diff(&hq, &id, Some(":(top)")).await;
    assert_eq!((status, reply["diff"].as_str()), (StatusCode::OK, Some("")));
}

#[tokio::test]
async fn changes_are_announced_live_and_retention_removes_ended_worktrees() {
    let hq = TestHq::start_with(&["--retention", "2s"]).await;
    let repo = Repo::new();
    let runner = TestRunner::start_with(&hq, "box", &["--repo", &repo.flag("app")]).await;
    let mut events = hq.request(Method::GET, "/api/events").send().await.unwrap();
    // Edits only when told to, then stays until told to end.
    let session = start_in_workspace(
        &hq,
        runner.id,
        "app",
        "echo ready; read -r go; echo 'line 6' >> app.txt; echo more > more.txt; echo edited; read -r end",
    )
    .await;
    let id = session["id"].as_str().unwrap().to_owned();
    let path = PathBuf::from(session["workspace"]["path"].as_str().unwrap());
    let mut viewer = hq.attach(id.parse().unwrap(), None).await;
    viewer.read_until("ready").await.unwrap();
    viewer.type_text("go\r").await;
    let seen = read_events(&mut events, |seen| {
        seen.iter()
            .any(|(name, data)| name == "changes" && data["session_id"] == id.as_str() && data["files"] == 2)
    })
    .await;
    let last = seen.iter().rev().find(|(name, _)| name == "changes").unwrap();
    assert_eq!(last.1, json!({"session_id": id, "files": 2, "additions": 2, "deletions": 0}));
    assert_eq!(hq.get_json(&format!("/api/sessions/{id}")).await["workspace"]["changes"]["files"], 2);

    // Never while it runs: retention passes over it, then takes it once it has ended.
    assert!(path.is_dir());
    viewer.type_text("end\r").await;
    viewer.read_to_exit().await.unwrap();
    eventually("the ended session's worktree to be pruned", || async { (!path.exists()).then_some(()) })
        .await;
    // The worktree goes first, then the session.
    eventually("the pruned session to be gone", || async {
        let response = hq.request(Method::GET, &format!("/api/sessions/{id}")).send().await.unwrap();
        (response.status() == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(git(&repo.path, &["branch", "--list", "agentrelay/*"]).contains(&id[id.len() - 8..]));
}

#[tokio::test]
async fn a_runner_without_workspaces_gets_a_clear_501() {
    let hq = TestHq::start().await;
    // A runner from before workspaces: its hello has neither `repos` nor `workspaces`.
    let mut socket = hq.ws("/api/v1/ws/register", Some(RUNNER_TOKEN), None).await.unwrap();
    let id = uuid::Uuid::now_v7();
    let hello = json!({"type": "hello", "payload": {"id": id, "name": "old", "labels": {}, "hostname": "h",
        "os": "linux", "version": "0.0.9", "protocol_version": 2, "presets": [], "sessions": []}});
    socket.send(Message::text(hello.to_string())).await.unwrap();
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"));
    let (status, reply) =
        hq.post_session(json!({"runner_id": id, "command": ["sh"], "workspace": {"repo": "app"}})).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("upgrade"), "{reply}");
    assert_eq!(hq.get_json("/api/sessions").await, json!([]));
}

#[tokio::test]
async fn a_runner_stops_under_a_live_workspace_session_and_the_next_one_watches_it_again() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let repo = Repo::new();
    let state = tempfile::tempdir().unwrap();
    let repo_flag = repo.flag("app");
    let spawn = || runner_command(&hq, "box", state.path()).args(["--repo", &repo_flag]).spawn().unwrap();
    let mut first = spawn();
    let runner = hq.wait_for_runner("box", RunnerStatus::Online).await;
    let session = start_in_workspace(
        &hq,
        runner.id,
        "app",
        "echo ready; read -r go; echo 'line 6' >> app.txt; echo edited; read -r end",
    )
    .await;
    let id = session["id"].as_str().unwrap().to_owned();
    let mut viewer = hq.attach(id.parse().unwrap(), None).await;
    viewer.read_until("ready").await.unwrap();

    // SIGTERM: the runner ends (its worktree watcher with it), the session does not.
    let pid = nix::unistd::Pid::from_raw(first.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status =
        tokio::time::timeout(TIMEOUT, first.wait()).await.expect("the runner did not stop on SIGTERM");
    assert!(status.unwrap().success());

    // The next runner adopts the session and reports its edits as the first one would have.
    let _second = spawn();
    hq.wait_for_runner("box", RunnerStatus::Online).await;
    let mut events = hq.request(Method::GET, "/api/events").send().await.unwrap();
    let mut viewer = hq.attach(id.parse().unwrap(), None).await;
    viewer.type_text("go\r").await;
    viewer.read_until("edited").await.unwrap();
    read_events(&mut events, |seen| {
        seen.iter()
            .any(|(name, data)| name == "changes" && data["session_id"] == id.as_str() && data["files"] == 1)
    })
    .await;
    viewer.type_text("end\r").await;
    viewer.read_to_exit().await.unwrap();
}
