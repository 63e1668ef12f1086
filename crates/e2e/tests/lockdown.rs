//! A locked-down runner holds against a stolen HQ: requested environments, command lines and
//! working directories are checked on the runner (through a [`RogueHq`] that skips every check
//! the real HQ makes), and the real HQ answers what the runner would refuse with a clear error.

use std::collections::BTreeMap;
use std::path::Path;

use agentrelay_e2e::*;
use agentrelay_protocol::runner::StartSession;
use agentrelay_protocol::{SessionStatus, TermSize};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// A start order as a stolen HQ would send it.
fn order(command: &[&str], env: &[(&str, &str)], cwd: Option<&Path>, preset: Option<&str>) -> StartSession {
    StartSession {
        session_id: Uuid::now_v7(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        cwd: cwd.map(|c| c.to_str().unwrap().to_owned()),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        size: TermSize::DEFAULT,
        preset: preset.map(str::to_owned),
        prompt: None,
        workspace: false,
    }
}

/// A script that leaves `marker` behind if anything runs it.
fn payload(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let marker = dir.join("payload-ran");
    let script = dir.join("payload.sh");
    std::fs::write(&script, format!("touch {}\n", marker.display())).unwrap();
    (script, marker)
}

fn refused(outcome: RogueOutcome) -> String {
    match outcome {
        RogueOutcome::Failed(failed) => {
            assert!(failed.refused, "a refusal, not a start failure: {failed:?}");
            failed.error
        }
        RogueOutcome::Ran { output, .. } => panic!("it ran: {output}"),
    }
}

fn ran(outcome: RogueOutcome) -> String {
    match outcome {
        RogueOutcome::Ran { output, exit } => {
            assert_eq!(exit.code, Some(0), "{output}");
            output
        }
        RogueOutcome::Failed(failed) => panic!("refused: {failed:?}"),
    }
}

async fn audit(hq: &HqClient) -> Vec<Value> {
    hq.get_json("/api/audit").await.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_requested_bash_env_is_refused_and_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (script, marker) = payload(dir.path());
    let script = script.to_str().unwrap();

    // Through the real HQ: a 400 naming the variable, and an audit entry.
    let hq = TestHq::start().await;
    let runner = TestRunner::start_with(&hq, "locked", &["--allow", "bash"]).await;
    let (status, body) = hq
        .post_session(
            json!({"runner_id": runner.id, "command": ["bash", "-c", "true"], "env": {"BASH_ENV": script}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "env");
    assert!(body["error"]["message"].as_str().unwrap().contains("'BASH_ENV'"), "{body}");
    let entries = audit(&hq).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "session.refused" && e["detail"].as_str().unwrap().contains("BASH_ENV")),
        "{entries:?}"
    );

    // Past HQ: the runner refuses it itself.
    let rogue = RogueHq::start().await;
    let _runner = TestRunner::spawn(&HqClient::new(rogue.addr()), "locked", &["--allow", "bash"]);
    let (mut control, hello) = rogue.accept_runner().await;
    assert_eq!(hello.policy.allow, vec![vec!["bash".to_owned()]]);
    let error = refused(
        rogue.run(&mut control, order(&["bash", "-c", "true"], &[("BASH_ENV", script)], None, None)).await,
    );
    assert!(error.contains("'BASH_ENV'") && error.contains("--allow-env"), "{error}");
    assert!(!marker.exists(), "the payload ran");
}

#[tokio::test]
async fn node_options_is_refused_with_an_allowlist_and_dropped_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.js");
    let marker = dir.path().join("node-payload-ran");
    std::fs::write(&evil, format!("require('fs').writeFileSync({:?}, 'x')\n", marker.to_str().unwrap()))
        .unwrap();
    let options = format!("--require {}", evil.display());
    let rogue = RogueHq::start().await;

    // `--allow node`: refused, whoever asks.
    let _locked = TestRunner::spawn(&HqClient::new(rogue.addr()), "node-box", &["--allow", "node"]);
    let (mut control, _) = rogue.accept_runner().await;
    let start = order(&["node", "-e", "console.log('plain')"], &[("NODE_OPTIONS", &options)], None, None);
    let error = refused(rogue.run(&mut control, start).await);
    assert!(error.contains("'NODE_OPTIONS'"), "{error}");
    assert!(!marker.exists(), "the payload ran");

    // No --allow: today's freedom, minus the hijacks (here both through bash, which would read
    // BASH_ENV, and node, which would read NODE_OPTIONS).
    let (script, bash_marker) = payload(dir.path());
    let state = tempfile::tempdir().unwrap();
    let _open = runner_command(&HqClient::new(rogue.addr()), "open-box", state.path()).spawn().unwrap();
    let (mut control, hello) = rogue.accept_runner().await;
    assert_eq!(hello.policy.env, None, "an open runner lets any other variable through");
    let show = "echo \"NO=[${NODE_OPTIONS-unset}] BE=[${BASH_ENV-unset}] G=[$GREETING]\"; node -e 'console.log(\"node ran\")'";
    let env =
        [("NODE_OPTIONS", options.as_str()), ("BASH_ENV", script.to_str().unwrap()), ("GREETING", "hi")];
    let output = ran(rogue.run(&mut control, order(&["bash", "-c", show], &env, None, None)).await);
    assert!(output.contains("NO=[unset] BE=[unset] G=[hi]"), "{output}");
    assert!(output.contains("node ran"), "{output}");
    assert!(!marker.exists() && !bash_marker.exists(), "a payload ran");
}

#[tokio::test]
async fn allow_env_lets_named_variables_through() {
    let hq = TestHq::start().await;
    let runner =
        TestRunner::start_with(&hq, "named", &["--allow", "sh", "--allow-env", "MY_TOKEN,APP_*"]).await;
    let listed = hq.runners().await.into_iter().find(|r| r.id == runner.id).unwrap();
    let patterns = listed.policy.env.expect("an allowlist lists its variables");
    assert!(
        patterns.contains(&"MY_TOKEN".to_owned()) && patterns.contains(&"APP_*".to_owned()),
        "{patterns:?}"
    );
    let session = hq
        .start_session_with(json!({
            "runner_id": runner.id,
            "command": ["sh", "-c", "echo \"[$MY_TOKEN] [$APP_MODE] [$LANG]\""],
            "env": {"MY_TOKEN": "t1", "APP_MODE": "fast", "LANG": "C.UTF-8"},
        }))
        .await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_to_exit().await.unwrap();
    assert!(viewer.text().contains("[t1] [fast] [C.UTF-8]"), "{}", viewer.text());
    let (status, body) = hq
        .post_session(json!({"runner_id": runner.id, "command": ["sh"], "env": {"OTHER_TOKEN": "x"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'OTHER_TOKEN'"), "{body}");
}

#[tokio::test]
async fn allow_entries_are_argv_prefixes_both_ways() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start_with(&hq, "prefixes", &["--allow", "echo allowed", "--allow", "sh"]).await;
    for command in [&["echo", "allowed", "and", "more"][..], &["echo", "allowed"], &["sh", "-c", "true"]] {
        let session = hq.start_session(runner.id, command).await;
        let done = hq.wait_for_end(session.id).await;
        assert_eq!((done.status, done.exit_code), (SessionStatus::Exited, Some(0)), "{command:?}: {done:?}");
    }
    for (command, named) in [
        (&["echo", "other"][..], "does not allow 'echo other'"),
        (&["echo"], "does not allow 'echo'"),
        (&["python3", "-c", "1"], "does not allow 'python3'"),
        (&["/bin/sh", "-c", "true"], "does not allow '/bin/sh'"),
    ] {
        let session = hq.start_session(runner.id, command).await;
        let failed = hq.wait_for_end(session.id).await;
        assert_eq!(failed.status, SessionStatus::Failed, "{command:?}");
        let error = failed.error.unwrap_or_default();
        assert!(error.contains(named) && error.contains("allowed: echo allowed, sh"), "{command:?}: {error}");
    }
    let entries = audit(&hq).await;
    let refusals = entries.iter().filter(|e| e["action"] == "session.refused").count();
    assert_eq!(refusals, 4, "each refusal is audited: {entries:?}");
}

#[tokio::test]
async fn presets_only_starts_its_presets_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let presets = dir.path().join("presets.toml");
    std::fs::write(
        &presets,
        format!(
            r#"
[[preset]]
name = "greet"
command = ["sh", "-c", "echo preset-ran in $PWD with $PRESET_VAR"]
cwd = "{}"
env = {{ PRESET_VAR = "from-runner" }}
"#,
            work.display()
        ),
    )
    .unwrap();
    let flags = ["--presets-only", "--presets", presets.to_str().unwrap()];

    let hq = TestHq::start().await;
    let runner = TestRunner::start_with(&hq, "kiosk", &flags).await;
    let listed = hq.get_json("/api/runners").await;
    let kiosk = listed.as_array().unwrap().iter().find(|r| r["name"] == "kiosk").unwrap().clone();
    assert_eq!(kiosk["policy"]["locked"], true, "{kiosk}");
    for (body, field) in [
        (json!({"runner_id": runner.id, "command": ["sh"]}), "command"),
        (json!({"runner_id": runner.id, "preset": "greet", "env": {"TERM": "dumb"}}), "env"),
        (json!({"runner_id": runner.id, "preset": "greet", "cwd": "/tmp"}), "cwd"),
    ] {
        let (status, reply) = hq.post_session(body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{field}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains("--presets-only") && message.contains(&format!("'{field}'")), "{message}");
    }
    let session = hq.start_session_with(json!({"runner_id": runner.id, "preset": "greet"})).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_to_exit().await.unwrap();
    let expected = format!("preset-ran in {} with from-runner", work.canonicalize().unwrap().display());
    assert!(viewer.text().contains(&expected), "{}", viewer.text());

    // Past HQ: a preset's name runs the preset's own command line, whatever command comes with it.
    let (_, marker) = payload(dir.path());
    let touch = format!("touch {}", marker.display());
    let rogue = RogueHq::start().await;
    let _runner = TestRunner::spawn(&HqClient::new(rogue.addr()), "kiosk", &flags);
    let (mut control, hello) = rogue.accept_runner().await;
    assert!(hello.policy.locked);
    let output = ran(rogue.run(&mut control, order(&["sh", "-c", &touch], &[], None, Some("greet"))).await);
    assert!(output.contains("preset-ran"), "{output}");
    for start in [
        order(&["sh", "-c", &touch], &[], None, None),
        order(&["sh"], &[("PRESET_VAR", "forged")], None, Some("greet")),
        order(&["sh"], &[], Some(dir.path()), Some("greet")),
    ] {
        let error = refused(rogue.run(&mut control, start).await);
        assert!(error.contains("--presets-only"), "{error}");
    }
    assert!(!marker.exists(), "HQ's command ran");
}

#[tokio::test]
async fn working_directories_resolve_before_they_are_checked() {
    let root = tempfile::tempdir().unwrap();
    let ok = root.path().join("ok");
    let secret = root.path().join("secret");
    std::fs::create_dir_all(ok.join("sub")).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::os::unix::fs::symlink(&secret, ok.join("link")).unwrap();

    let hq = TestHq::start().await;
    let runner =
        TestRunner::start_with(&hq, "dirs", &["--allow", "sh", "--allow-dir", ok.to_str().unwrap()]).await;
    let start_in = |cwd: std::path::PathBuf| {
        let hq = &hq;
        async move {
            let body =
                json!({"runner_id": runner.id, "command": ["sh", "-c", "pwd"], "cwd": cwd.to_str().unwrap()});
            let session = hq.start_session_with(body).await;
            (session.id, hq.wait_for_end(session.id).await)
        }
    };
    let (id, session) = start_in(ok.join("sub")).await;
    assert_eq!(session.status, SessionStatus::Exited, "{session:?}");
    let mut viewer = hq.attach(id, Some(0)).await;
    viewer.read_to_exit().await.unwrap();
    assert!(
        viewer.text().contains(ok.join("sub").canonicalize().unwrap().to_str().unwrap()),
        "{}",
        viewer.text()
    );
    for escape in [ok.join("..").join("secret"), ok.join("link"), ok.join("sub/../../secret")] {
        let (_, session) = start_in(escape.clone()).await;
        assert_eq!(session.status, SessionStatus::Failed, "{}", escape.display());
        let error = session.error.unwrap_or_default();
        assert!(error.contains("does not allow working directory") && error.contains("secret"), "{error}");
    }

    // An allowlist and no --allow-dir: only the runner's own directory (and its presets').
    let strict = TestRunner::start_with(&hq, "strict-dirs", &["--allow", "sh"]).await;
    let here = std::env::current_dir().unwrap();
    for (cwd, allowed) in [(here.clone(), true), (root.path().to_path_buf(), false), ("/".into(), false)] {
        let body = json!({"runner_id": strict.id, "command": ["sh", "-c", "true"], "cwd": cwd});
        let session = hq.start_session_with(body).await;
        let wanted = if allowed { SessionStatus::Exited } else { SessionStatus::Failed };
        let done = hq.wait_for_end(session.id).await;
        assert_eq!(done.status, wanted, "{}: {:?}", cwd.display(), done.error);
    }
}
