//! Who is attached to a session: a seat per viewer, taken at attach and given back on drop, and
//! the list every viewer is shown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use agentrelay_protocol::ViewerInfo;
use tokio::sync::watch;

use super::Session;
use crate::lock;

/// A viewer's place in a session; dropping it leaves.
pub struct ViewerSeat {
    session: Arc<Session>,
    seat: u64,
}

impl Drop for ViewerSeat {
    fn drop(&mut self) {
        self.session.leave(self.seat);
    }
}

impl Session {
    /// A seat for one more viewer, unless `max` are attached already.
    pub fn take_viewer_seat(self: &Arc<Self>, max: usize, viewer: ViewerInfo) -> Option<ViewerSeat> {
        let seat = {
            let mut viewers = lock(&self.viewers);
            if viewers.len() >= max {
                return None;
            }
            let seat = self.next_seat.fetch_add(1, Ordering::Relaxed);
            viewers.push((seat, viewer));
            seat
        };
        self.presence_changed();
        Some(ViewerSeat { session: self.clone(), seat })
    }

    fn leave(&self, seat: u64) {
        lock(&self.viewers).retain(|(s, _)| *s != seat);
        self.presence_changed();
    }

    fn presence_changed(&self) {
        let now: Vec<ViewerInfo> = lock(&self.viewers).iter().map(|(_, v)| v.clone()).collect();
        self.presence.send_replace(now);
        self.publish();
    }

    /// A receiver of who is attached.
    pub fn subscribe_presence(&self) -> watch::Receiver<Vec<ViewerInfo>> {
        self.presence.subscribe()
    }
}
