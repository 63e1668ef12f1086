//! Selection menus on any program, without the real agents: a stand-in draws a boxed menu whose
//! marker blinks (as Claude Code's dialogs do), so its output never goes quiet. HQ still reads
//! it as `waiting_for_input`, `/screen` and the webhook carry the menu, the blinking does not
//! flip it back to `working`, and answering with the menu's key does.

use agentrelay_e2e::{TestHq, TestRunner, WebhookReceiver};
use agentrelay_protocol::{Activity, ActivitySource, Menu, Screen};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Draws the dialog, then blinks its left edge every 300 ms until a key comes; then, as agents
/// do, draws the dialog away.
const DIALOG: &str = r#"
printf '╭──────────────────────────╮\n'
printf '│ Deploy to production?    │\n'
printf '│                          │\n'
printf '│ ● 1. Yes                 │\n'
printf '│   2. No, keep it staged  │\n'
printf '╰──────────────────────────╯\n'
stty -echo -icanon min 0 time 3
blink=' '
while :; do
  key=$(dd bs=1 count=1 2>/dev/null)
  if [ -n "$key" ]; then printf '\033[2J\033[H'; echo "picked-$key"; exec sleep 60; fi
  printf '\0337\033[4;2H%s\0338' "$blink"
  if [ "$blink" = ' ' ]; then blink='│'; else blink=' '; fi
done
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_blinking_boxed_menu_waits_with_its_options_until_answered() {
    let mut hooks = WebhookReceiver::start().await;
    let hq = TestHq::start_with(&["--idle-after", "400ms", "--webhook-url", &hooks.url]).await;
    let runner = TestRunner::start_with(&hq, "menus", &["--allow", "sh,stty,dd,printf,sleep"]).await;
    let session = hq.start_session(runner.id, &["sh", "-c", DIALOG]).await;

    let mut delivery = hooks.next_event("session.activity").await;
    while delivery["session"]["activity"] != "waiting_for_input" {
        delivery = hooks.next_event("session.activity").await;
    }
    let menu: Menu = serde_json::from_value(delivery["menu"].clone()).unwrap();
    assert_eq!(menu.prompt, "Deploy to production?");
    assert_eq!(menu.options.len(), 2);
    assert_eq!((menu.options[1].key.as_str(), menu.options[1].label.as_str()), ("2", "No, keep it staged"));
    assert_eq!(delivery["session"]["activity_source"], "screen");

    // The blinking goes on; the session keeps waiting, and /screen shows the same menu.
    let before = hq.session(session.id).await.output_bytes;
    let screen: Screen = loop {
        let screen: Screen = serde_json::from_value(
            hq.get_json(&format!("/api/sessions/{}/screen?format=json", session.id)).await,
        )
        .unwrap();
        let now = hq.session(session.id).await;
        if now.output_bytes > before + 40 {
            assert_eq!(now.activity, Some(Activity::WaitingForInput), "the blinking turned it back");
            assert_eq!(now.activity_source, Some(ActivitySource::Screen));
            break screen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(screen.menu.as_ref(), Some(&menu));

    let typed = hq
        .request(Method::POST, &format!("/api/sessions/{}/input", session.id))
        .json(&json!({ "text": menu.options[1].key }))
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), StatusCode::NO_CONTENT);
    let next = hooks.next_event("session.activity").await;
    assert_eq!(next["session"]["activity"], "working", "{next}");
    assert!(next.get("menu").is_none());
    // Quiet again with the dialog gone: idle, and no menu.
    let next = hooks.next_event("session.activity").await;
    assert_eq!(next["session"]["activity"], "idle", "{next}");
    let screen: Screen = serde_json::from_value(
        hq.get_json(&format!("/api/sessions/{}/screen?format=json", session.id)).await,
    )
    .unwrap();
    assert!(screen.lines.iter().any(|l| l.contains("picked-2")), "{:?}", screen.lines);
    assert_eq!(screen.menu, None);
}
