//! Short-lived processes lose no tail bytes: every byte written before exit reaches the viewer,
//! and the exit comes after it. (ttyd loses the tail of most such sessions.)

use agentrelay_e2e::*;
use futures_util::StreamExt;

const SESSIONS: usize = 2000;
const CONCURRENCY: usize = 16;
const BODY: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_short_sessions_each_deliver_every_byte() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "tails").await;
    let hq = &hq;
    let failures: Vec<String> = futures_util::stream::iter(0..SESSIONS)
        .map(|i| async move {
            // One process, no newlines (so no CRLF translation), the tail written just before exit.
            let script = format!("printf '%0{BODY}d' 0; printf 'tail-{i}'; exit {}", i % 7);
            let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
            let mut viewer = hq.attach(session.id, None).await;
            let exit = viewer.read_to_exit().await.map_err(|e| format!("session {i}: {e:#}"))?;
            let expected = format!("{}tail-{i}", "0".repeat(BODY));
            if viewer.output != expected.as_bytes() {
                return Err(format!(
                    "session {i}: got {} bytes ending {:?}",
                    viewer.output.len(),
                    String::from_utf8_lossy(&viewer.output[viewer.output.len().saturating_sub(12)..])
                ));
            }
            if exit.code != Some((i % 7) as i32) {
                return Err(format!("session {i}: exit {exit:?}"));
            }
            Ok(())
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|result| async move { result.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {SESSIONS} sessions lost bytes: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}
