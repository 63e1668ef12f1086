//! Typing into a session, now or when it next waits for input (`POST /input` with
//! `"when": "waiting"`): queued items are typed one per wait, each time the session's activity
//! becomes `waiting_for_input` (at once if it waits now), so an agent gets its next task when it
//! asks for one, not in the middle of its work. The queue lives in memory: an HQ restart drops it.

use std::collections::VecDeque;
use std::sync::Arc;

use agentrelay_protocol::requests::QueuedInput;
use agentrelay_protocol::{Activity, ActivityState};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Session, ToRunner};
use crate::lock;

/// Between typed text and its Enter: agents that tell a paste from typing by timing (Claude
/// Code, Ink apps) would otherwise take the Enter as part of a paste, a newline, not a submit.
const ENTER_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// How long the Enter waits for the program to draw the text it was typed. A busy agent reads
/// its input late, and would then read text and Enter together, whatever pause HQ left between
/// them; a program that echoes nothing gets its Enter after this.
const ECHO_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Items waiting for the session to wait, and whether a task is delivering them.
#[derive(Debug, Default)]
pub(super) struct Queue {
    items: VecDeque<QueuedInput>,
    delivering: bool,
}

/// The session has ended: nothing more can be typed into it.
#[derive(Debug, thiserror::Error)]
#[error("the session has ended")]
pub struct Ended;

impl Session {
    /// Types `text`, then (once the program has drawn it, and a short pause) Enter, in order
    /// with every other input.
    pub async fn type_input(&self, text: &str, enter: bool) -> Result<(), Ended> {
        self.note_input();
        let mut progress = self.subscribe();
        let before = progress.borrow_and_update().end;
        if !text.is_empty() {
            self.to_runner.send(ToRunner::Input(text.to_owned().into())).await.map_err(|_| Ended)?;
        }
        if enter {
            if !text.is_empty() {
                let echoed = progress.wait_for(|now| now.end > before || now.status.is_final());
                let _ = tokio::time::timeout(ECHO_WAIT, echoed).await;
            }
            tokio::time::sleep(ENTER_DELAY).await;
            self.to_runner.send(ToRunner::Input("\r".into())).await.map_err(|_| Ended)?;
        }
        Ok(())
    }

    /// Queues `item` until the session waits for input; `true` when no task delivers the queue
    /// yet and the caller must start [`deliver`].
    pub fn queue_input(&self, item: QueuedInput) -> bool {
        let mut queue = lock(&self.input_queue);
        queue.items.push_back(item);
        !std::mem::replace(&mut queue.delivering, true)
    }

    /// What waits in the queue, oldest first.
    pub fn queued_input(&self) -> Vec<QueuedInput> {
        lock(&self.input_queue).items.iter().cloned().collect()
    }

    /// Takes a queued item out; whether it was there.
    pub fn cancel_queued(&self, id: Uuid) -> bool {
        let mut queue = lock(&self.input_queue);
        let before = queue.items.len();
        queue.items.retain(|item| item.id != id);
        queue.items.len() != before
    }

    /// The next item, or `None` (and the deliverer stops) when the queue is empty.
    fn next_queued(&self) -> Option<QueuedInput> {
        let mut queue = lock(&self.input_queue);
        let next = queue.items.pop_front();
        queue.delivering = next.is_some();
        next
    }

    /// The session ended: queued input is dropped.
    pub(super) fn clear_queue(&self) {
        lock(&self.input_queue).items.clear();
    }
}

fn waiting(activity: &Option<ActivityState>) -> bool {
    activity.is_some_and(|a| a.activity == Activity::WaitingForInput)
}

/// Types the queue one item per wait until it is empty, the session ends or HQ shuts down.
pub async fn deliver(session: Arc<Session>, shutdown: CancellationToken) {
    let mut activity = session.subscribe_activity();
    let mut progress = session.subscribe();
    loop {
        // Until the session waits (it may already), or ends.
        tokio::select! {
            waited = activity.wait_for(waiting) => if waited.is_err() { return },
            _ = progress.wait_for(|p| p.status.is_final()) => return,
            _ = shutdown.cancelled() => return,
        }
        if session.status().is_final() {
            return;
        }
        let Some(item) = session.next_queued() else { return };
        tracing::info!(session = %session.id, item = %item.id, "typing queued input");
        if session.type_input(&item.text, item.enter).await.is_err() {
            return;
        }
        // One item per wait: the next waits until the session has worked and waits again.
        tokio::select! {
            left = activity.wait_for(|a| !waiting(a)) => if left.is_err() { return },
            _ = progress.wait_for(|p| p.status.is_final()) => return,
            _ = shutdown.cancelled() => return,
        }
    }
}
