//! Who is attached to a session, and whose window the PTY is sized for: a seat per viewer, taken
//! at attach and given back on drop, the list every viewer is shown, and the size arbitration.
//!
//! The PTY follows the most recently active viewer: the one that attached, resized or typed
//! last. A viewer in watch mode (`?watch=true`: a phone, a preview) is not active until it types
//! (or sends `activate`); until then its resizes are only remembered. When the viewer whose size
//! the PTY has leaves, the PTY goes back to the size of the most recently active one still
//! attached. Read-only viewers never resize.

use std::sync::Arc;

use agentrelay_protocol::{TermSize, ViewerInfo};
use tokio::sync::{mpsc, watch};

use super::{Session, ToRunner};
use crate::lock;

/// A viewer's place in a session; dropping it leaves (and hands the PTY's size back).
pub struct ViewerSeat {
    session: Arc<Session>,
    seat: u64,
}

impl ViewerSeat {
    /// The seat's number, for [`Session::viewer_resized`] and [`Session::viewer_typed`].
    pub fn id(&self) -> u64 {
        self.seat
    }
}

impl Drop for ViewerSeat {
    fn drop(&mut self) {
        self.session.leave(self.seat);
    }
}

/// Everyone attached, with what the size arbitration needs to know of each.
#[derive(Default)]
pub(super) struct Seats {
    list: Vec<Seat>,
    /// The next seat number.
    next: u64,
    /// Counts activity, so the most recent is the largest.
    clock: u64,
    /// The seat whose size the PTY has, if a viewer set it.
    owner: Option<u64>,
}

struct Seat {
    id: u64,
    info: ViewerInfo,
    /// Attached in watch mode and has not typed yet: its resizes wait.
    watching: bool,
    /// Its window's size, as it last said.
    size: Option<TermSize>,
    /// When it was last active (0: never).
    active: u64,
}

impl Seats {
    /// Who is attached, in the order they came.
    pub(super) fn infos(&self) -> Vec<ViewerInfo> {
        self.list.iter().map(|s| s.info.clone()).collect()
    }

    /// Seats one more viewer, unless `max` are attached already.
    fn take(&mut self, max: usize, info: ViewerInfo, watching: bool) -> Option<u64> {
        if self.list.len() >= max {
            return None;
        }
        let id = self.next;
        self.next += 1;
        // Attaching is activity, except for a watcher or a read-only viewer.
        let active = if watching || info.read_only { 0 } else { self.tick() };
        self.list.push(Seat { id, info, watching, size: None, active });
        Some(id)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// A viewer's window is `size`: the size the PTY should take, if it should.
    fn resized(&mut self, id: u64, size: TermSize) -> Option<TermSize> {
        let now = self.clock + 1;
        let seat = self.list.iter_mut().find(|s| s.id == id)?;
        seat.size = Some(size);
        if seat.watching || seat.info.read_only {
            return None;
        }
        seat.active = now;
        self.clock = now;
        self.owner = Some(id);
        Some(size)
    }

    /// A viewer typed (or asked for its size): it is active now, and the PTY takes its size.
    fn typed(&mut self, id: u64) -> Option<TermSize> {
        let now = self.clock + 1;
        let seat = self.list.iter_mut().find(|s| s.id == id)?;
        if seat.info.read_only {
            return None;
        }
        seat.watching = false;
        seat.active = now;
        self.clock = now;
        let size = seat.size?;
        self.owner = Some(id);
        Some(size)
    }

    /// A viewer left: the size the PTY goes back to, when it had the leaver's.
    fn leave(&mut self, id: u64) -> Option<TermSize> {
        self.list.retain(|s| s.id != id);
        if self.owner != Some(id) {
            return None;
        }
        let next = self
            .list
            .iter()
            .filter(|s| s.active > 0 && !s.watching && !s.info.read_only && s.size.is_some())
            .max_by_key(|s| s.active);
        self.owner = next.map(|s| s.id);
        next.and_then(|s| s.size)
    }
}

impl Session {
    /// A seat for one more viewer, unless `max` are attached already. A `watching` viewer's
    /// resizes wait until it types.
    pub fn take_viewer_seat(
        self: &Arc<Self>,
        max: usize,
        viewer: ViewerInfo,
        watching: bool,
    ) -> Option<ViewerSeat> {
        let seat = lock(&self.viewers).take(max, viewer, watching)?;
        self.presence_changed();
        Some(ViewerSeat { session: self.clone(), seat })
    }

    /// A viewer's window is `size`: the resize to send the runner, if the PTY should change.
    pub fn viewer_resized(&self, seat: u64, size: TermSize) -> Option<TermSize> {
        let wanted = lock(&self.viewers).resized(seat, size)?;
        self.size_change(wanted)
    }

    /// A viewer typed, or asked for its size (`activate`): the resize to send the runner before
    /// its keystrokes, if the PTY should change.
    pub fn viewer_typed(&self, seat: u64) -> Option<TermSize> {
        let wanted = lock(&self.viewers).typed(seat)?;
        self.size_change(wanted)
    }

    /// `wanted`, recorded, unless the PTY already has it.
    fn size_change(&self, wanted: TermSize) -> Option<TermSize> {
        if *self.size.borrow() == wanted || self.status().is_final() {
            return None;
        }
        self.note_resize(wanted);
        Some(wanted)
    }

    fn leave(&self, seat: u64) {
        let back = lock(&self.viewers).leave(seat);
        self.presence_changed();
        if let Some(size) = back.and_then(|size| self.size_change(size)) {
            send_soon(&self.to_runner, ToRunner::Resize(size));
        }
    }

    fn presence_changed(&self) {
        let now = lock(&self.viewers).infos();
        self.presence.send_replace(now);
        self.publish();
    }

    /// A receiver of who is attached.
    pub fn subscribe_presence(&self) -> watch::Receiver<Vec<ViewerInfo>> {
        self.presence.subscribe()
    }

    /// A receiver of the PTY's size, as last requested.
    pub fn subscribe_size(&self) -> watch::Receiver<TermSize> {
        self.size.subscribe()
    }
}

/// Queues `order` without waiting: at once when there is room, else from a task (a seat is left
/// in `Drop`, which cannot wait).
fn send_soon(to_runner: &mpsc::Sender<ToRunner>, order: ToRunner) {
    if let Err(mpsc::error::TrySendError::Full(order)) = to_runner.try_send(order)
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        let to_runner = to_runner.clone();
        runtime.spawn(async move {
            let _ = to_runner.send(order).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESKTOP: TermSize = TermSize { rows: 40, cols: 151 };
    const PHONE: TermSize = TermSize { rows: 52, cols: 47 };
    const LAPTOP: TermSize = TermSize { rows: 30, cols: 100 };

    fn viewer(read_only: bool) -> ViewerInfo {
        ViewerInfo { name: "v".into(), read_only }
    }

    #[test]
    fn the_pty_follows_the_most_recently_active_viewer_and_returns_when_it_leaves() {
        let mut seats = Seats::default();
        let desktop = seats.take(10, viewer(false), false).expect("seat");
        assert_eq!(seats.resized(desktop, DESKTOP), Some(DESKTOP));

        // A phone watching: its size waits until it types.
        let phone = seats.take(10, viewer(false), true).expect("seat");
        assert_eq!(seats.resized(phone, PHONE), None);
        assert_eq!(seats.typed(phone), Some(PHONE));
        // Its later resizes count at once now.
        assert_eq!(
            seats.resized(phone, TermSize { rows: 20, cols: 47 }),
            Some(TermSize { rows: 20, cols: 47 })
        );

        // The desktop types: its size is back.
        assert_eq!(seats.typed(desktop), Some(DESKTOP));
        // The phone types again, then leaves: the desktop's size comes back.
        assert!(seats.typed(phone).is_some());
        assert_eq!(seats.leave(phone), Some(DESKTOP));
        // A viewer that does not have the PTY leaves: nothing changes.
        let laptop = seats.take(10, viewer(false), false).expect("seat");
        assert_eq!(seats.resized(laptop, LAPTOP), Some(LAPTOP));
        assert!(seats.typed(desktop).is_some());
        assert_eq!(seats.leave(laptop), None);
    }

    #[test]
    fn the_size_goes_to_the_most_recent_full_viewer_never_a_watcher_or_a_reader() {
        let mut seats = Seats::default();
        let older = seats.take(10, viewer(false), false).expect("seat");
        seats.resized(older, LAPTOP);
        let newer = seats.take(10, viewer(false), false).expect("seat");
        seats.resized(newer, DESKTOP);
        let watcher = seats.take(10, viewer(false), true).expect("seat");
        seats.resized(watcher, PHONE);
        let reader = seats.take(10, viewer(true), false).expect("seat");
        assert_eq!(seats.resized(reader, PHONE), None);
        assert_eq!(seats.typed(reader), None);
        // The owner leaves: the next most recent full viewer, not the watcher nor the reader.
        let owner = seats.take(10, viewer(false), false).expect("seat");
        seats.resized(owner, TermSize { rows: 10, cols: 10 });
        assert_eq!(seats.leave(owner), Some(DESKTOP));
        assert_eq!(seats.leave(newer), Some(LAPTOP));
        // The last full viewer leaves: nobody to follow, the PTY keeps its size.
        assert_eq!(seats.leave(older), None);
        assert_eq!(seats.infos().len(), 2);
    }

    #[test]
    fn a_watcher_that_has_not_said_its_size_takes_the_pty_when_it_does() {
        let mut seats = Seats::default();
        let watcher = seats.take(10, viewer(false), true).expect("seat");
        assert_eq!(seats.typed(watcher), None, "no size known yet");
        assert_eq!(seats.resized(watcher, PHONE), Some(PHONE), "typed: no longer watching");
        assert!(seats.take(1, viewer(false), false).is_none(), "full");
    }
}
