//! A headless terminal per live session (the `vt100` crate), fed off the data path by its own
//! task, so a viewer attaching to a long session gets the current screen (alternate screen,
//! cursor and input modes included) and its recent scrollback instead of megabytes of replay.
//! It is created when the first such viewer arrives and starts from the last MiB of output.
//!
//! A snapshot is taken at an exact output offset: the viewer draws it, then receives the bytes from
//! that offset on. The model may lag behind live output in a burst; it catches up from the ring or
//! the log and never slows forwarding.

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex, MutexGuard};

use agentrelay_protocol::TermSize;
use agentrelay_ring::Read;
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::lock;

/// Scrollback lines the model keeps (and a snapshot replays); bounds its memory per session.
const SCROLLBACK: usize = 500;
/// Chunks up to this size are parsed in place; larger ones on the blocking pool.
const INLINE_FEED: usize = 4 * 1024;
/// Largest read when catching up.
const FEED_CHUNK: usize = 64 * 1024;
/// How far the model may fall behind before it skips ahead: a burst larger than this has
/// redrawn the screen many times over, so only its last part matters for what is on screen
/// (a mode switch inside the skipped part is the price, and a bounded catch-up the gain).
const MAX_LAG: u64 = 1024 * 1024;

struct State {
    parser: vt100::Parser,
    /// Output offset the parser has processed up to.
    offset: u64,
    /// Resizes not yet applied, each at the output offset where it took effect.
    resizes: VecDeque<(u64, TermSize)>,
}

/// One session's terminal model.
pub struct TerminalModel {
    state: Mutex<State>,
    /// The offset processed so far, for viewers waiting on a fresh model to catch up.
    fed: tokio::sync::watch::Sender<u64>,
    /// When a viewer or `/screen` last used it; an activity check alone does not count.
    watched_at: Mutex<Option<std::time::Instant>>,
    /// Cancelled when the session lets the model go; its feeding task stops.
    retired: CancellationToken,
    /// Whether it keeps scrollback (for viewers' snapshots) or only the screen.
    history: bool,
}

/// A model nobody has watched for this long is dropped after an activity check (and made again
/// from the log when next needed): idle sessions then cost their ring, not a screen.
pub const KEEP_WATCHED: std::time::Duration = std::time::Duration::from_secs(60);

fn dims(size: TermSize) -> (NonZeroU16, NonZeroU16) {
    // Sizes are validated to 1–1000 before they get here; 0 would only mean "as small as possible".
    (
        NonZeroU16::new(size.rows).unwrap_or(NonZeroU16::MIN),
        NonZeroU16::new(size.cols).unwrap_or(NonZeroU16::MIN),
    )
}

impl TerminalModel {
    /// A blank terminal of `size` at output offset 0, with [`SCROLLBACK`] lines of history when
    /// `history` (a viewer's snapshot replays them), else only the screen: reading it for a
    /// prompt or a menu needs no more, and the history is most of a model's memory.
    pub fn new(size: TermSize, history: bool) -> Self {
        let (rows, cols) = dims(size);
        let parser = vt100::Parser::new(rows, cols, if history { SCROLLBACK } else { 0 });
        Self {
            state: Mutex::new(State { parser, offset: 0, resizes: VecDeque::new() }),
            fed: tokio::sync::watch::Sender::new(0),
            watched_at: Mutex::new(None),
            retired: CancellationToken::new(),
            history,
        }
    }

    /// Notes that a person (a viewer, `/screen`) uses the model.
    pub fn mark_watched(&self) {
        *self.watched_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
    }

    /// Whether a person used the model within `window`.
    pub fn watched_within(&self, window: std::time::Duration) -> bool {
        self.watched_at.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|at| at.elapsed() < window)
    }

    /// Stops the feeding task; the session no longer holds this model.
    pub fn retire(&self) {
        self.retired.cancel();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the PTY was resized once output reached `offset`.
    pub fn note_resize(&self, offset: u64, size: TermSize) {
        self.lock().resizes.push_back((offset, size));
    }

    /// The offset processed so far.
    pub fn offset(&self) -> u64 {
        self.lock().offset
    }

    /// Feeds output that starts at the model's offset.
    fn feed(&self, bytes: &[u8]) {
        let mut state = self.lock();
        let end = state.offset + bytes.len() as u64;
        let mut at = 0usize;
        // Apply each resize at its place in the stream.
        while let Some(&(offset, size)) = state.resizes.front() {
            if offset > end {
                break;
            }
            let split = (offset.saturating_sub(state.offset) as usize).clamp(at, bytes.len());
            state.parser.process(&bytes[at..split]);
            at = split;
            let (rows, cols) = dims(size);
            state.parser.set_size(rows, cols);
            state.resizes.pop_front();
        }
        state.parser.process(&bytes[at..]);
        state.offset = end;
        drop(state);
        self.fed.send_replace(end);
    }

    /// Moves on to `offset` without the bytes before it (they are gone, or too many to replay).
    fn skip_to(&self, offset: u64) {
        self.lock().offset = offset;
        self.fed.send_replace(offset);
    }

    /// Waits until the model has processed output up to `offset`, or `limit` passes.
    pub async fn caught_up(&self, offset: u64, limit: std::time::Duration) {
        let mut fed = self.fed.subscribe();
        let _ = tokio::time::timeout(limit, fed.wait_for(|done| *done >= offset)).await;
    }

    /// Escape codes that redraw the current screen on a fresh terminal, and the offset they
    /// stand for. Scrollback comes first (main screen only), then the screen, cursor and modes.
    pub fn snapshot(&self) -> (u64, Vec<u8>) {
        let state = self.lock();
        let screen = state.parser.screen();
        let mut out = String::new();
        if screen.alternate_screen() {
            out.push_str("\x1b[?1049h");
        } else {
            push_scrollback(screen, &mut out);
        }
        out.push_str(&screen.state_formatted());
        out.push_str(&screen.cursor_state_formatted_string());
        (state.offset, out.into_bytes())
    }

    /// The visible screen as plain text (for `/screen` and tests).
    pub fn text(&self) -> String {
        self.lock().parser.screen().contents()
    }

    /// The visible screen row by row, with the cursor.
    pub fn screen(&self) -> agentrelay_protocol::Screen {
        let state = self.lock();
        let screen = state.parser.screen();
        let (rows, cols) = screen.size();
        let (rows, cols) = (rows.get(), cols.get());
        let (row, col) = screen.cursor_position();
        let lines: Vec<String> = screen.rows(0, cols).map(|line| line.trim_end().to_owned()).collect();
        let menu = super::menu::find(&lines);
        agentrelay_protocol::Screen {
            rows,
            cols,
            cursor: agentrelay_protocol::Cursor { row, col },
            lines,
            menu,
        }
    }
}

impl Session {
    /// The terminal model of a live session, created on first use (the first viewer that needs
    /// a snapshot, or an activity check): `true` when it is new and needs a [`follow`] task to
    /// feed it. A session no viewer attaches to late never pays for one. One made without
    /// history is made again with it when a viewer needs that.
    fn start_model(&self, history: bool) -> Option<(Arc<TerminalModel>, bool)> {
        if self.status().is_final() {
            return None;
        }
        let mut model = lock(&self.model);
        if let Some(existing) = model.as_ref()
            && (existing.history || !history)
        {
            return Some((existing.clone(), false));
        }
        if let Some(screen_only) = model.take() {
            screen_only.retire();
        }
        let created = Arc::new(TerminalModel::new(*self.size.borrow(), history));
        *model = Some(created.clone());
        Some((created, true))
    }

    /// Lets the terminal model go unless a person used it within `window` (it is made again from
    /// the log when next needed).
    pub fn retire_model_unless_watched(&self, window: std::time::Duration) {
        let mut model = lock(&self.model);
        if model.as_ref().is_some_and(|m| !m.watched_within(window))
            && let Some(retired) = model.take()
        {
            retired.retire();
        }
    }

    /// The session ended: its model stops.
    pub(super) fn retire_model(&self) {
        if let Some(model) = lock(&self.model).take() {
            model.retire();
        }
    }
}

/// The live session's terminal model, caught up to `offset` (or as far as it got within `wait`):
/// created on first use, with its feeding task owned by HQ's task tracker; with history when
/// `watched` (a person's view), else perhaps only the screen. `None` once the session has ended.
pub async fn current(
    state: &crate::state::AppState,
    session: &Arc<Session>,
    offset: u64,
    wait: std::time::Duration,
    watched: bool,
) -> Option<Arc<TerminalModel>> {
    let (model, created) = session.start_model(watched)?;
    if watched {
        model.mark_watched();
    }
    if created {
        state.tasks.spawn(follow(session.clone(), model.clone(), state.shutdown.clone()));
    }
    model.caught_up(offset, wait).await;
    Some(model)
}

/// Writes the scrollback lines, oldest first, so they scroll into the viewer's own history.
fn push_scrollback(screen: &vt100::Screen, out: &mut String) {
    let mut view = screen.clone();
    let total = {
        view.set_scrollback(usize::MAX);
        view.scrollback()
    };
    if total == 0 {
        return;
    }
    let (rows, cols) = view.size();
    let rows = usize::from(rows.get());
    let mut remaining = total;
    while remaining > 0 {
        // Scrolled back by `remaining`, the top rows of the view are scrollback lines.
        view.set_scrollback(remaining);
        let take = remaining.min(rows);
        for line in view.rows_formatted(0, cols.get()).take(take) {
            out.push_str(&line);
            out.push_str("\x1b[0m\r\n");
        }
        remaining -= take;
    }
    // Push those lines off the visible screen before the screen itself is drawn.
    out.push_str(&"\r\n".repeat(rows));
}

/// Feeds the model from the session's output until the session ends or HQ shuts down.
async fn follow(session: Arc<Session>, model: Arc<TerminalModel>, shutdown: CancellationToken) {
    let mut progress = session.subscribe();
    loop {
        loop {
            let end = progress.borrow().end;
            if end.saturating_sub(model.offset()) > MAX_LAG {
                model.skip_to(end - MAX_LAG);
            }
            let offset = model.offset();
            match session.read_output(offset, FEED_CHUNK).await {
                // Big chunks are parsed off the runtime: HQ runs one thread, and forwarding
                // must not wait for the model.
                Read::Data(bytes) if bytes.len() > INLINE_FEED => {
                    let model = model.clone();
                    if tokio::task::spawn_blocking(move || model.feed(&bytes)).await.is_err() {
                        return;
                    }
                }
                Read::Data(bytes) => model.feed(&bytes),
                // The bytes are gone: the model goes on from what comes next.
                Read::Gap { to, .. } => model.skip_to(to),
                Read::CaughtUp => break,
            }
        }
        let now = *progress.borrow_and_update();
        if now.end > model.offset() {
            continue;
        }
        if now.status.is_final() {
            return;
        }
        tokio::select! {
            changed = progress.changed() => if changed.is_err() { return },
            () = model.retired.cancelled() => return,
            _ = shutdown.cancelled() => return,
        }
    }
}

trait CursorState {
    fn cursor_state_formatted_string(&self) -> String;
}

impl CursorState for vt100::Screen {
    /// Cursor position and visibility as escape codes.
    fn cursor_state_formatted_string(&self) -> String {
        let (row, col) = self.cursor_position();
        let visibility = if self.hide_cursor() { "\x1b[?25l" } else { "\x1b[?25h" };
        format!("\x1b[{};{}H{visibility}", row + 1, col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(snapshot: &[u8], size: TermSize) -> vt100::Parser {
        let (rows, cols) = dims(size);
        let mut parser = vt100::Parser::new(rows, cols, SCROLLBACK);
        parser.process(snapshot);
        parser
    }

    #[test]
    fn a_screen_read_keeps_no_history_and_a_viewer_gets_a_model_with_it() {
        let session = crate::session::tests::bare_session();
        let (screen_only, created) = session.start_model(false).expect("live");
        assert!(created && !screen_only.history);
        let (again, created) = session.start_model(false).expect("live");
        assert!(!created && Arc::ptr_eq(&again, &screen_only), "reused");
        let (viewed, created) = session.start_model(true).expect("live");
        assert!(created && viewed.history, "made again, with history");
        assert!(screen_only.retired.is_cancelled(), "the screen-only model stops");
        let (reused, created) = session.start_model(false).expect("live");
        assert!(!created && Arc::ptr_eq(&reused, &viewed), "a screen read uses the viewer's model");

        let lines: String = (0..100).map(|i| format!("line {i}\r\n")).collect();
        let kept = |history| {
            let model = TerminalModel::new(TermSize { rows: 10, cols: 40 }, history);
            model.feed(lines.as_bytes());
            let mut screen = model.lock().parser.screen().clone();
            screen.set_scrollback(usize::MAX);
            screen.scrollback()
        };
        assert_eq!((kept(false), kept(true)), (0, 91), "lines scrolled off the screen");
    }

    #[test]
    fn snapshot_redraws_screen_cursor_and_alternate_screen() {
        let size = TermSize { rows: 10, cols: 40 };
        let model = TerminalModel::new(size, true);
        let first = b"line one\r\n\x1b[31mred\x1b[0m\r\n";
        model.feed(first);
        let (offset, snapshot) = model.snapshot();
        assert_eq!(offset, first.len() as u64);
        let copy = replay(&snapshot, size);
        assert_eq!(copy.screen().contents(), model.text());
        assert_eq!(copy.screen().cursor_position(), (2, 0));

        model.feed(b"\x1b[?1049h\x1b[2J\x1b[5;10Hin-alt");
        let (_, snapshot) = model.snapshot();
        let copy = replay(&snapshot, size);
        assert!(copy.screen().alternate_screen());
        assert_eq!(copy.screen().contents(), model.text());
        assert_eq!(copy.screen().cursor_position(), (4, 15));
    }

    #[test]
    fn scrollback_comes_back_and_resizes_apply_at_their_offset() {
        let size = TermSize { rows: 5, cols: 20 };
        let model = TerminalModel::new(size, true);
        let text: String = (1..=12).map(|i| format!("row-{i}\r\n")).collect();
        model.feed(text.as_bytes());
        let (_, snapshot) = model.snapshot();
        let mut copy = replay(&snapshot, size);
        assert_eq!(copy.screen().contents(), model.text());
        copy.screen_mut().set_scrollback(usize::MAX);
        assert!(copy.screen().contents().contains("row-1\n"), "{}", copy.screen().contents());

        let at = model.offset() + 3;
        model.note_resize(at, TermSize { rows: 8, cols: 30 });
        model.feed(b"abcdef");
        let state = model.lock();
        assert_eq!(state.parser.screen().size(), dims(TermSize { rows: 8, cols: 30 }));
    }
}
