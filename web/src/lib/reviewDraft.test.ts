import { describe, expect, it } from "vitest";
import { addComment, canSend, commentsByLine, EMPTY_DRAFT, loadDraft, removeComment, saveDraft, toReview } from "./reviewDraft";

function memoryStorage() {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
    removeItem: (k: string) => void items.delete(k),
  };
}

describe("review drafts", () => {
  it("keeps comments in file and line order, and drops blank ones", () => {
    let draft = addComment(EMPTY_DRAFT, "src/b.ts", 3, "later file");
    draft = addComment(draft, "src/a.ts", 9, "  nine  ");
    draft = addComment(draft, "src/a.ts", 2, "two");
    expect(addComment(draft, "src/a.ts", 4, "   ")).toBe(draft);
    expect(addComment(draft, "src/a.ts", 0, "no line 0")).toBe(draft);
    expect(draft.comments.map((c) => `${c.path}:${c.line}:${c.body}`)).toEqual(["src/a.ts:2:two", "src/a.ts:9:nine", "src/b.ts:3:later file"]);
    expect(new Set(draft.comments.map((c) => c.id)).size).toBe(3);
    expect(EMPTY_DRAFT.comments).toEqual([]);
  });

  it("finds a file's comments by line, and removes one", () => {
    let draft = addComment(EMPTY_DRAFT, "a", 1, "x");
    draft = addComment(draft, "a", 1, "y");
    draft = addComment(draft, "b", 1, "z");
    const lines = commentsByLine(draft, "a");
    expect([...lines.keys()]).toEqual([1]);
    expect(lines.get(1)?.map((c) => c.body)).toEqual(["x", "y"]);
    const first = draft.comments[0];
    expect(removeComment(draft, first.id).comments.map((c) => c.body)).toEqual(["y", "z"]);
  });

  it("sends a summary, comments or both, as HQ reads them", () => {
    expect(canSend(EMPTY_DRAFT)).toBe(false);
    expect(canSend({ summary: "  ", comments: [] })).toBe(false);
    expect(canSend({ summary: "Nearly", comments: [] })).toBe(true);
    const draft = { ...addComment(EMPTY_DRAFT, "src/lib.rs", 12, "Use a constant"), summary: " Nearly " };
    expect(toReview(draft, false)).toEqual({ summary: "Nearly", comments: [{ path: "src/lib.rs", line: 12, body: "Use a constant" }] });
    expect(toReview({ ...draft, summary: "" }, true)).toEqual({
      comments: [{ path: "src/lib.rs", line: 12, body: "Use a constant" }],
      when: "waiting",
    });
  });

  it("is kept per session, and forgotten once empty", () => {
    const storage = memoryStorage();
    const draft = addComment(EMPTY_DRAFT, "a", 1, "x");
    saveDraft(storage, "s1", draft);
    expect(loadDraft(storage, "s1")).toEqual(draft);
    expect(loadDraft(storage, "s2")).toEqual(EMPTY_DRAFT);
    saveDraft(storage, "s1", EMPTY_DRAFT);
    expect(storage.items.size).toBe(0);
    storage.setItem("agentrelay.review.s3", "{not json");
    expect(loadDraft(storage, "s3")).toEqual(EMPTY_DRAFT);
    storage.setItem("agentrelay.review.s4", JSON.stringify({ summary: 3, comments: [{ id: "i", path: "a", line: "2", body: "b" }] }));
    expect(loadDraft(storage, "s4")).toEqual(EMPTY_DRAFT);
  });
});
