//! Where a session stands: `starting → running → exited/failed/lost`, only ever forward.

use agentrelay_protocol::{ExitStatus, Session as SessionView, SessionStatus};
use chrono::{DateTime, Utc};

/// The parts of a session that change after it is created.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub(super) status: SessionStatus,
    pub(super) exit: Option<ExitStatus>,
    pub(super) error: Option<String>,
    pub(super) ended_at: Option<DateTime<Utc>>,
    /// Why HQ stopped writing the output log, once it has.
    pub(super) log_error: Option<String>,
}

impl Lifecycle {
    /// A session just requested: `starting`, nothing ended.
    pub fn starting() -> Self {
        Self { status: SessionStatus::Starting, exit: None, error: None, ended_at: None, log_error: None }
    }

    /// A session as the store last saw it.
    pub fn stored(view: &SessionView) -> Self {
        let exit = (view.status == SessionStatus::Exited)
            .then(|| ExitStatus { code: view.exit_code, signal: view.signal.clone() });
        Self {
            status: view.status,
            exit,
            error: view.error.clone(),
            ended_at: view.ended_at,
            log_error: view.log_error.clone(),
        }
    }

    /// The one transition function: states only move forward, and an end state is final.
    pub(super) fn advance(&mut self, next: SessionStatus) -> bool {
        use SessionStatus::*;
        let allowed =
            matches!((self.status, next), (Starting, Running) | (Starting | Running, Exited | Failed | Lost));
        if allowed {
            self.status = next;
            if next.is_final() {
                self.ended_at = Some(Utc::now());
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward() {
        use SessionStatus::*;
        let mut life = Lifecycle::starting();
        assert!(!life.advance(Starting));
        assert!(life.advance(Running));
        assert!(!life.advance(Starting), "back to starting");
        assert!(life.ended_at.is_none());
        assert!(life.advance(Exited));
        assert!(life.ended_at.is_some());
        for later in [Running, Failed, Lost, Exited] {
            assert!(!life.advance(later), "{later:?} after exited");
        }
        assert_eq!(life.status, Exited);
    }
}
