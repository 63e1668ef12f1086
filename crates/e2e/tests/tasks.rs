//! Giving an agent its work: a task passed as it starts (`"prompt"`, the preset's way) and input
//! queued until it next waits for input (`"when": "waiting"`), listed and cancellable.

use agentrelay_e2e::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A presets file in `dir` with `entries` (TOML tables), for `--presets`.
fn presets_file(dir: &std::path::Path, entries: &str) -> String {
    let path = dir.join("presets.toml");
    std::fs::write(&path, entries).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_prompt_reaches_the_agent_as_one_argument_the_presets_way() {
    let hq = TestHq::start().await;
    let dir = tempfile::tempdir().unwrap();
    let presets = presets_file(
        dir.path(),
        r#"
[[preset]]
name = "tasked"
command = ["sh", "-c", "printf 'task=[%s] args=%s\n' \"$1\" \"$#\"", "sh"]
prompt_args = ["{prompt}"]

[[preset]]
name = "plain"
command = ["sh", "-c", "echo plain"]
"#,
    );
    let runner = TestRunner::start_with(&hq, "agents", &["--presets", &presets]).await;
    let listed = hq.runners().await.into_iter().find(|r| r.id == runner.id).unwrap();
    let takes = |name: &str| listed.presets.iter().find(|p| p.name == name).unwrap().takes_prompt;
    assert!(takes("tasked") && !takes("plain"));

    // Never split, never read by a shell, flags and all.
    let task = "--fix it; rm -rf \"$HOME\" && echo $(whoami)";
    let session =
        hq.start_session_with(json!({"runner_id": runner.id, "preset": "tasked", "prompt": task})).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_to_exit().await.unwrap();
    assert!(viewer.text().contains(&format!("task=[{task}] args=1")), "{}", viewer.text());

    for (body, why) in [
        (json!({"runner_id": runner.id, "preset": "plain", "prompt": "x"}), "takes no prompt"),
        (json!({"runner_id": runner.id, "command": ["sh"], "prompt": "x"}), "not a 'command'"),
        (json!({"runner_id": runner.id, "preset": "tasked", "prompt": ""}), "must not be empty"),
    ] {
        let (status, reply) = hq.post_session(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["error"]["field"], "prompt");
        assert!(reply["error"]["message"].as_str().unwrap().contains(why), "{reply}");
    }
}

#[tokio::test]
async fn queued_input_waits_for_the_agent_to_wait_one_item_each_time() {
    let hq = TestHq::start_with(&["--idle-after", "200ms"]).await;
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // Asks twice, answering nothing until the test says go: the queue is set up meanwhile.
    let presets = presets_file(
        dir.path(),
        &format!(
            r#"
[[preset]]
name = "asker"
command = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.05; done; printf 'Approve? '; read a; echo \"got-$a\"; printf 'Approve? '; read b; echo \"got-$b\"; exec sleep 600"]
prompt_patterns = ['^Approve\?']
"#,
            go = go.display()
        ),
    );
    let runner = TestRunner::start_with(&hq, "agents", &["--presets", &presets]).await;
    let session = hq.start_session_with(json!({"runner_id": runner.id, "preset": "asker"})).await;
    let input = format!("/api/sessions/{}/input", session.id);
    let queue = format!("{input}/queue");
    let mut ids = Vec::new();
    for text in ["first", "second", "third"] {
        let response = hq
            .request(Method::POST, &input)
            .json(&json!({"text": text, "enter": true, "when": "waiting"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let item: Value = response.json().await.unwrap();
        assert_eq!((item["text"].as_str(), item["enter"].as_bool()), (Some(text), Some(true)));
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    let listed = hq.get_json(&queue).await;
    let texts: Vec<&str> = listed.as_array().unwrap().iter().map(|i| i["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["first", "second", "third"]);
    let cancel = format!("{queue}/{}", ids[2]);
    assert_eq!(hq.request(Method::DELETE, &cancel).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(hq.request(Method::DELETE, &cancel).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    let mut viewer = hq.attach(session.id, None).await;
    std::fs::write(&go, "").unwrap();
    viewer.read_until("got-second").await.unwrap();
    let text = viewer.text();
    // One item per wait: the second is typed only after the agent took the first and asked again
    // (typed together, the terminal would echo "second" before "got-first").
    let got_first = text.find("got-first").expect("first answered");
    assert!(text[..got_first].matches("second").count() == 0, "typed before the second wait: {text}");
    assert_eq!(hq.get_json(&queue).await, json!([]));
    hq.request(Method::DELETE, &format!("/api/sessions/{}", session.id)).send().await.unwrap();
    viewer.read_to_exit().await.unwrap();
    assert!(!viewer.text().contains("third"), "a cancelled item was typed: {}", viewer.text());

    // An ended session takes no more input, queued or not.
    let late =
        hq.request(Method::POST, &input).json(&json!({"text": "x", "when": "waiting"})).send().await.unwrap();
    assert_eq!(late.status(), StatusCode::CONFLICT);
}
