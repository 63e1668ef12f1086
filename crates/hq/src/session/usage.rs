//! A session's tokens and cost, as its agent reports them through the runner (`usage` frames on
//! the data connection, totals each time). What a report adds to the previous total goes to the
//! metrics and to the day's figures per runner and user (`GET /api/usage`); the totals themselves
//! are the session's `usage`.

use agentrelay_protocol::{Usage, UsageRow};

use super::Session;
use crate::lock;
use crate::state::AppState;

/// Takes a report of the session's totals: the session's `usage`, and what it adds to the
/// metrics and to today's sums for its runner and its user.
pub fn record(state: &AppState, session: &Session, total: Usage) {
    let growth = session.report_usage(total);
    let runner =
        state.registry.get(session.runner_id).map_or_else(|| session.runner_id.to_string(), |r| r.name);
    for (kind, tokens) in [
        ("input", growth.input_tokens),
        ("output", growth.output_tokens),
        ("cache_read", growth.cache_read_tokens),
        ("cache_creation", growth.cache_creation_tokens),
    ] {
        if tokens > 0 {
            metrics::counter!("agentrelay_agent_tokens_total", "kind" => kind, "runner" => runner.clone())
                .increment(tokens);
        }
    }
    if let Some(cost) = growth.cost_usd.filter(|c| *c > 0.0) {
        // The `metrics` facade has no float counter: a gauge that only ever goes up.
        metrics::gauge!("agentrelay_agent_cost_usd", "runner" => runner).increment(cost);
    }
    let nothing =
        growth.input_tokens + growth.output_tokens + growth.cache_read_tokens + growth.cache_creation_tokens
            == 0
            && growth.cost_usd.is_none_or(|c| c == 0.0);
    if !nothing {
        state.store.add_usage(UsageRow {
            day: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            runner_id: session.runner_id,
            runner: None,
            user: session.created_by.clone(),
            usage: growth,
        });
    }
}

impl Session {
    /// The agent's totals so far; returns what they add to the previous ones.
    pub fn report_usage(&self, total: Usage) -> Usage {
        let growth = {
            let mut usage = lock(&self.usage);
            let growth = usage.as_ref().map_or_else(|| total.clone(), |old| old.growth_to(&total));
            *usage = Some(total);
            growth
        };
        self.publish();
        growth
    }

    /// The totals a stored session had, put back at start without counting them again.
    pub(super) fn restore_usage(&self, total: Option<Usage>) {
        *lock(&self.usage) = total;
    }

    /// The totals so far, if the agent reports any.
    pub fn usage(&self) -> Option<Usage> {
        lock(&self.usage).clone()
    }
}
