//! Viewer resume by offset, as a property: whatever points a viewer disconnects at, reconnecting
//! with `?from=<what it has>` yields exactly the stream: no gap, no duplicate.

use agentrelay_e2e::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner as PropRunner};

const LINES: u32 = 30_000;

async fn expected_stream(hq: &TestHq, runner: &TestRunner) -> Vec<u8> {
    let session = hq.start_session(runner.id, &["seq", "1", &LINES.to_string()]).await;
    // From offset 0: without `from`, a viewer arriving after 16 KiB of output gets a screen
    // snapshot instead of the byte stream.
    let mut viewer = hq.attach(session.id, Some(0)).await;
    viewer.read_to_exit().await.unwrap();
    viewer.output
}

#[test]
fn resuming_at_random_points_yields_exactly_the_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (hq, runner, expected) = rt.block_on(async {
        // A small ring, so resumes are served from the on-disk log as well as from memory.
        let hq = TestHq::start_with(&["--ring-size", "16KiB"]).await;
        let runner = TestRunner::start(&hq, "prop").await;
        let expected = expected_stream(&hq, &runner).await;
        (hq, runner, expected)
    });
    assert_eq!(expected.len(), (1..=LINES).map(|n| n.to_string().len() + 2).sum::<usize>());

    let mut props = PropRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    let cuts = prop::collection::vec(1usize..60_000, 1..6);
    let starts = prop::collection::vec(0usize..expected.len(), 1..4);
    props
        .run(&(cuts, starts), |(cuts, starts)| {
            rt.block_on(async {
                // A live session: disconnect after each cut's worth of bytes, resume from the offset.
                let session = hq.start_session(runner.id, &["seq", "1", &LINES.to_string()]).await;
                let mut received = Vec::new();
                for cut in cuts {
                    let mut viewer = hq.attach(session.id, Some(received.len() as u64)).await;
                    prop_assert_eq!(viewer.attached.offset, received.len() as u64);
                    let goal = received.len() + cut;
                    let mut ended = false;
                    while received.len() + viewer.output.len() < goal && !ended {
                        match viewer.next_frame().await.unwrap() {
                            Frame::Output(bytes) => viewer.output.extend_from_slice(&bytes),
                            Frame::Control(_) | Frame::Closed => ended = true,
                        }
                    }
                    received.extend_from_slice(&viewer.output);
                    drop(viewer); // an abrupt disconnect, mid-stream
                    if ended {
                        break;
                    }
                }
                let mut last = hq.attach(session.id, Some(received.len() as u64)).await;
                last.read_to_exit().await.unwrap();
                received.extend_from_slice(&last.output);
                prop_assert!(
                    received == expected,
                    "live resume differs ({} vs {} bytes)",
                    received.len(),
                    expected.len()
                );

                // A finished session from any offset.
                for start in starts {
                    let mut viewer = hq.attach(session.id, Some(start as u64)).await;
                    viewer.read_to_exit().await.unwrap();
                    prop_assert!(viewer.output == expected[start..], "replay from {} differs", start);
                }
                Ok(())
            })
        })
        .unwrap();
    drop(runner);
    drop(hq);
}
