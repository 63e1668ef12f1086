"""schemathesis hooks of scripts/check-openapi.sh: what only the live HQ knows.

The document says what a valid request looks like; some fields are valid only by what HQ has at
run time, which no schema can say: the runner named by `runner_id` or `runner` must exist, the
`preset` must be one that runner offers (one that takes a prompt when there is one), a
workspace's `repo` must be one of its repositories and its branch a new one git takes, `env` may
set only what the runner allows, and a duration must be in range. Before each request, such a
field that is already well formed takes a real value (most of the time for runners, so unknown
ones are still tried). schemathesis then re-checks the request against the schema, so a request
made valid this way is judged as a valid one. A `from` after `to` of /api/usage is put in order.
"""

import hashlib
import os
import re
import uuid

import schemathesis

RUNNER_ID = os.environ["AGENTRELAY_RUNNER_ID"]
RUNNER_NAME = os.environ["AGENTRELAY_RUNNER_NAME"]
PRESETS = os.environ["AGENTRELAY_PRESETS"].split(",")
PROMPT_PRESETS = os.environ["AGENTRELAY_PROMPT_PRESETS"].split(",")
REPO = os.environ["AGENTRELAY_REPO"]
# The runner's `policy.env`: names, or `PREFIX_*` patterns; empty when it takes any.
ENV_ALLOWED = [p for p in os.environ.get("AGENTRELAY_ENV_ALLOWED", "").split(",") if p]
ENV_NAMES = [p for p in ENV_ALLOWED if not p.endswith("*")]
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# Valid for tokens (up to 100y) and shares (up to 30d) alike.
DURATIONS = ["90m", "12h", "1h 30m", "7d"]


def pick(choices, seed):
    """One of `choices`, the same one for the same generated value (runs stay reproducible)."""
    return choices[sum(map(ord, seed)) % len(choices)]


def env_allowed(name):
    return not ENV_ALLOWED or any(
        name.startswith(p[:-1]) if p.endswith("*") else name == p for p in ENV_ALLOWED
    )


def is_uuid(value):
    try:
        uuid.UUID(value)
        return True
    except (TypeError, ValueError, AttributeError):
        return False


@schemathesis.hook
def before_call(context, case, kwargs):
    route = (case.method.upper(), case.operation.path)
    query = case.query
    if route == ("GET", "/api/usage") and isinstance(query, dict):
        # `from` after `to` is a 400 that no schema can state: such a pair is put in order.
        days = query.get("from"), query.get("to")
        if all(isinstance(d, str) and DAY.fullmatch(d) for d in days) and days[0] > days[1]:
            query["from"], query["to"] = days[1], days[0]
    body = case.body
    if not isinstance(body, dict):
        return
    if route == ("POST", "/api/sessions"):
        if is_uuid(body.get("runner_id")) and pick([True, True, True, False], body["runner_id"]):
            body["runner_id"] = RUNNER_ID
        if isinstance(body.get("runner"), str) and pick([True, True, True, False], body["runner"]):
            body["runner"] = RUNNER_NAME
        if isinstance(body.get("preset"), str):
            # Only some presets take a prompt (`takes_prompt`): a prompt goes to one of those.
            presets = PROMPT_PRESETS if isinstance(body.get("prompt"), str) else PRESETS
            body["preset"] = pick(presets, body["preset"])
        workspace = body.get("workspace")
        if isinstance(workspace, dict) and isinstance(workspace.get("repo"), str):
            # The runner's one repository; a new branch named after the one drawn (a name drawn
            # twice is a 409, as it should be), from the repository's own branch.
            workspace["repo"] = REPO
            if isinstance(workspace.get("branch"), str):
                workspace["branch"] = "check/" + hashlib.sha1(workspace["branch"].encode()).hexdigest()[:12]
            if isinstance(workspace.get("base"), str):
                workspace["base"] = "main"
        env = body.get("env")
        if isinstance(env, dict) and ENV_NAMES:
            body["env"] = {
                name if env_allowed(name) else pick(ENV_NAMES, name): value for name, value in env.items()
            }
    elif route in (("POST", "/api/tokens"), ("POST", "/api/sessions/{id}/shares")):
        # An empty string is not well formed (minLength 1): it stays, and must be refused.
        expires_in = body.get("expires_in")
        if isinstance(expires_in, str) and expires_in:
            body["expires_in"] = pick(DURATIONS, expires_in)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # DELETE /api/sessions/{id} ends a session; HQ keeps it, with its recording, until retention
    # removes it (documented on that route). Reading it afterwards is no use after free.
    return not (getattr(failure, "code", None) == "ST301" and failure.operation == "DELETE /api/sessions/{id}")
