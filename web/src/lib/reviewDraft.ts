// A review being written: comments on lines of a workspace session's files, and a word on the
// whole, until "Send review to agent" types it into the session (POST …/review). Kept per session
// in sessionStorage, so a reload or another tab in front loses nothing.

import type { Review } from "./protocol";

/** One comment on a line of the file as the agent has it now (the diff's new side). */
export interface DraftComment {
  id: string;
  path: string;
  line: number;
  body: string;
}

export interface ReviewDraft {
  summary: string;
  comments: DraftComment[];
}

export const EMPTY_DRAFT: ReviewDraft = Object.freeze({ summary: "", comments: [] }) as ReviewDraft;

let counter = 0;

/** The draft with one more comment, in file and line order; a blank one changes nothing. */
export function addComment(draft: ReviewDraft, path: string, line: number, body: string): ReviewDraft {
  if (body.trim() === "" || !Number.isInteger(line) || line < 1 || path === "") return draft;
  counter += 1;
  const comment = { id: `${Date.now().toString(36)}-${counter}`, path, line, body: body.trim() };
  const comments = [...draft.comments, comment].sort((a, b) => a.path.localeCompare(b.path) || a.line - b.line);
  return { ...draft, comments };
}

export function removeComment(draft: ReviewDraft, id: string): ReviewDraft {
  return { ...draft, comments: draft.comments.filter((c) => c.id !== id) };
}

/** The comments on one file, by line. */
export function commentsByLine(draft: ReviewDraft, path: string): Map<number, DraftComment[]> {
  const lines = new Map<number, DraftComment[]>();
  for (const comment of draft.comments) {
    if (comment.path !== path) continue;
    lines.set(comment.line, [...(lines.get(comment.line) ?? []), comment]);
  }
  return lines;
}

/** Whether there is anything to send (HQ wants a summary, some comments, or both). */
export function canSend(draft: ReviewDraft): boolean {
  return draft.comments.length > 0 || draft.summary.trim() !== "";
}

/** The body of POST /api/sessions/{id}/review. */
export function toReview(draft: ReviewDraft, waitForAgent: boolean): Review {
  const summary = draft.summary.trim();
  return {
    ...(summary ? { summary } : {}),
    comments: draft.comments.map(({ path, line, body }) => ({ path, line, body })),
    ...(waitForAgent ? { when: "waiting" as const } : {}),
  };
}

const key = (sessionId: string) => `agentrelay.review.${sessionId}`;

export function loadDraft(storage: Pick<Storage, "getItem">, sessionId: string): ReviewDraft {
  try {
    const value = JSON.parse(storage.getItem(key(sessionId)) ?? "null") as Partial<ReviewDraft> | null;
    if (!value || typeof value !== "object") return EMPTY_DRAFT;
    const comments = Array.isArray(value.comments)
      ? value.comments.filter(
          (c): c is DraftComment =>
            typeof c?.id === "string" && typeof c.path === "string" && Number.isInteger(c.line) && typeof c.body === "string",
        )
      : [];
    return { summary: typeof value.summary === "string" ? value.summary : "", comments };
  } catch {
    return EMPTY_DRAFT;
  }
}

export function saveDraft(storage: Pick<Storage, "setItem" | "removeItem">, sessionId: string, draft: ReviewDraft): void {
  try {
    if (canSend(draft)) storage.setItem(key(sessionId), JSON.stringify(draft));
    else storage.removeItem(key(sessionId));
  } catch {
    // Storage full or disabled: the draft lasts until the reload.
  }
}
