//! Who may see and do what with a runner or a session: the one place the rules are written.
//! REST handlers, the viewer socket, `/api/events`, listings, recordings and logs all ask here.
//!
//! * A runner enrolled with a member's own runner token is personal: only its owner sees it
//!   (admins see it listed too), starts sessions on it or picks it by labels. A runner enrolled
//!   with the static runner token or a shared runner token is shared: every member uses it.
//! * A session belongs to whoever started it. Its owner and the users it is granted to see it;
//!   admins see every session's metadata and may end any session, and use (attach, read, type,
//!   grant) sessions on shared runners, never those on someone's personal runner.
//! * A share token sees its one session, read-only.
//!
//! What a caller may not see answers 404, exactly as an unknown id would; what it sees but may
//! not do answers 403. Decisions are made when a request or connection arrives; changes (a
//! revoked grant, a disabled user) close what is open through their cancellation signals.

use std::sync::Arc;

use agentrelay_protocol::{Access, Runner, Scope};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::AppError;
use crate::session::Session;
use crate::state::AppState;

/// What a caller may do with one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionRights {
    /// See it: listed, its metadata, its events (else 404).
    pub see: bool,
    /// Watch its output: attach read-only, `/screen`, logs, recording, diffs.
    pub watch: bool,
    /// Type into it: attach as a full viewer, `/input`, queued input, reviews, commits.
    pub drive: bool,
    /// End it (kill, delete once finished).
    pub end: bool,
    /// Manage it: rename, share links, grants, workspace removal.
    pub manage: bool,
}

/// What a request needs of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Its metadata.
    See,
    /// Its output.
    Watch,
    /// Its input.
    Drive,
    /// To end it.
    End,
    /// To manage it.
    Manage,
}

impl SessionRights {
    fn allows(self, need: Need) -> bool {
        match need {
            Need::See => self.see,
            Need::Watch => self.watch,
            Need::Drive => self.drive,
            Need::End => self.end,
            Need::Manage => self.manage,
        }
    }
}

/// The facts about a session the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts {
    /// The session.
    pub id: Uuid,
    /// Who started it.
    pub owner: Option<Uuid>,
    /// Whose personal runner it runs on; `None` for a shared runner.
    pub runner_owner: Option<Uuid>,
    /// The caller's grant on it.
    pub grant: Option<Access>,
}

/// The rules for sessions.
pub fn session_rights(principal: &Principal, facts: SessionFacts) -> SessionRights {
    match principal.scope {
        Scope::Share => {
            let mine = principal.session == Some(facts.id);
            return SessionRights { see: mine, watch: mine, ..SessionRights::default() };
        }
        Scope::Runner => return SessionRights::default(),
        Scope::Admin | Scope::User => {}
    }
    let me = principal.user_id();
    let owns = me.is_some() && facts.owner == me;
    let admin = principal.is_admin();
    // An admin uses sessions on shared runners; a personal runner is its owner's alone.
    let console = owns || (admin && facts.runner_owner.is_none());
    SessionRights {
        see: owns || admin || facts.grant.is_some(),
        watch: console || facts.grant.is_some(),
        drive: console || facts.grant == Some(Access::Drive),
        end: owns || admin,
        manage: console,
    }
}

/// The facts of a live session, for `principal`.
pub fn facts(state: &AppState, principal: &Principal, session: &Session) -> SessionFacts {
    SessionFacts {
        id: session.id,
        owner: session.owner.as_ref().map(|o| o.id),
        // A runner HQ forgot counts as personal: nobody but the session's owner uses it.
        runner_owner: state.registry.owner_of(session.runner_id).unwrap_or(Some(Uuid::nil())),
        grant: principal.user_id().and_then(|user| session.grants.access(user)),
    }
}

/// What `principal` may do with `session`.
pub fn rights(state: &AppState, principal: &Principal, session: &Session) -> SessionRights {
    session_rights(principal, facts(state, principal, session))
}

/// The session a path names, if `principal` may do `need` with it: 404 when it may not see it
/// (as for an unknown id), 403 when it sees it but may not do this.
pub fn session(
    state: &AppState,
    principal: &Principal,
    id: &str,
    need: Need,
) -> Result<Arc<Session>, AppError> {
    let not_found = || AppError::NotFound(format!("no session with id '{id}'"));
    let session = Uuid::parse_str(id).ok().and_then(|id| state.sessions.get(id)).ok_or_else(not_found)?;
    let rights = rights(state, principal, &session);
    if !rights.see {
        return Err(not_found());
    }
    if !rights.allows(need) {
        return Err(AppError::Forbidden(refusal(need).to_owned()));
    }
    Ok(session)
}

fn refusal(need: Need) -> &'static str {
    match need {
        Need::See => "you may not see this session",
        Need::Watch => {
            "only the session's owner, the users it is granted to and (on shared runners) admins may \
             watch it"
        }
        Need::Drive => {
            "only the session's owner, users granted drive and (on shared runners) admins may type into it"
        }
        Need::End => "only the session's owner and admins may end it",
        Need::Manage => {
            "only the session's owner and (on shared runners) admins may rename, share or grant it"
        }
    }
}

/// What a caller may do with one runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunnerRights {
    /// See it listed (else 404).
    pub see: bool,
    /// Start sessions on it, pick it by labels.
    pub start: bool,
}

/// The rules for runners: `owner` is whose personal runner it is (`None`: shared).
pub fn runner_rights(principal: &Principal, owner: Option<Uuid>) -> RunnerRights {
    if !matches!(principal.scope, Scope::Admin | Scope::User) {
        return RunnerRights::default();
    }
    let usable = owner.is_none() || owner == principal.user_id();
    RunnerRights { see: usable || principal.is_admin(), start: usable }
}

/// [`runner_rights`] of a runner as listed.
pub fn runner(principal: &Principal, runner: &Runner) -> RunnerRights {
    runner_rights(principal, runner.owner.as_ref().map(|o| o.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentrelay_protocol::Owner;
    use tokio_util::sync::CancellationToken;

    fn person(scope: Scope, id: Uuid) -> Principal {
        Principal {
            name: "p".into(),
            scope,
            token_id: None,
            revoked: CancellationToken::new(),
            address: None,
            session: None,
            user: Some(Owner { id, name: "p".into(), email: String::new() }),
            shared: false,
        }
    }

    #[test]
    fn the_rules_in_one_table() {
        let (ann, bob, boss) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let session = Uuid::now_v7();
        let on = |runner_owner, grant| SessionFacts { id: session, owner: Some(ann), runner_owner, grant };
        let all = SessionRights { see: true, watch: true, drive: true, end: true, manage: true };
        // The owner does everything, on her own runner or a shared one.
        assert_eq!(session_rights(&person(Scope::User, ann), on(Some(ann), None)), all);
        assert_eq!(session_rights(&person(Scope::User, ann), on(None, None)), all);
        // Another member sees nothing without a grant; with one, what it says.
        assert_eq!(session_rights(&person(Scope::User, bob), on(None, None)), SessionRights::default());
        let view = session_rights(&person(Scope::User, bob), on(Some(ann), Some(Access::View)));
        assert_eq!(view, SessionRights { see: true, watch: true, ..Default::default() });
        let drive = session_rights(&person(Scope::User, bob), on(Some(ann), Some(Access::Drive)));
        assert_eq!(drive, SessionRights { see: true, watch: true, drive: true, ..Default::default() });
        // An admin: everything on a shared runner; on a personal one, metadata and ending only.
        assert_eq!(session_rights(&person(Scope::Admin, boss), on(None, None)), all);
        let personal = session_rights(&person(Scope::Admin, boss), on(Some(ann), None));
        assert_eq!(personal, SessionRights { see: true, end: true, ..Default::default() });
        // A share sees its one session, read-only; a runner token nothing.
        let mut share = person(Scope::Share, bob);
        share.session = Some(session);
        assert_eq!(
            session_rights(&share, on(Some(ann), None)),
            SessionRights { see: true, watch: true, ..Default::default() }
        );
        share.session = Some(Uuid::now_v7());
        assert_eq!(session_rights(&share, on(None, None)), SessionRights::default());
        assert_eq!(session_rights(&person(Scope::Runner, ann), on(None, None)), SessionRights::default());
    }

    #[test]
    fn personal_runners_are_their_owners() {
        let (ann, bob, boss) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let both = RunnerRights { see: true, start: true };
        assert_eq!(runner_rights(&person(Scope::User, ann), Some(ann)), both);
        assert_eq!(runner_rights(&person(Scope::User, bob), Some(ann)), RunnerRights::default());
        assert_eq!(runner_rights(&person(Scope::User, bob), None), both);
        assert_eq!(
            runner_rights(&person(Scope::Admin, boss), Some(ann)),
            RunnerRights { see: true, start: false }
        );
        assert_eq!(runner_rights(&person(Scope::Runner, ann), None), RunnerRights::default());
    }
}
