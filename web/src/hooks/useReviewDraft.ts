// The review being written on one session, kept in sessionStorage (lib/reviewDraft.ts).

import { useCallback, useEffect, useState } from "react";
import { addComment, EMPTY_DRAFT, loadDraft, removeComment, saveDraft, type ReviewDraft } from "../lib/reviewDraft";

export function useReviewDraft(sessionId: string) {
  const [draft, setDraft] = useState<ReviewDraft>(() => loadDraft(sessionStorage, sessionId));
  useEffect(() => saveDraft(sessionStorage, sessionId, draft), [sessionId, draft]);
  return {
    draft,
    add: useCallback((path: string, line: number, body: string) => setDraft((d) => addComment(d, path, line, body)), []),
    remove: useCallback((id: string) => setDraft((d) => removeComment(d, id)), []),
    setSummary: useCallback((summary: string) => setDraft((d) => ({ ...d, summary })), []),
    clear: useCallback(() => setDraft(EMPTY_DRAFT), []),
  };
}
