// Splits a command line the way a POSIX shell would for simple cases: whitespace separates words,
// single quotes are literal, double quotes allow \" and \\, a backslash escapes the next character.
// No expansion happens: the runner execs the argv directly.

export type SplitResult = { ok: true; argv: string[] } | { ok: false; error: string };

export function splitCommand(line: string): SplitResult {
  const argv: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && (line[i + 1] === '"' || line[i + 1] === "\\")) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\") {
      if (i + 1 < line.length) word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) argv.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) return { ok: false, error: `unclosed ${quote === "'" ? "single" : "double"} quote` };
  if (inWord) argv.push(word);
  if (argv.length === 0) return { ok: false, error: "enter a command" };
  return { ok: true, argv };
}

/** The inverse of splitCommand: a line that splits back into exactly `argv`. */
export function joinCommand(argv: readonly string[]): string {
  return argv.map((arg) => (/^[A-Za-z0-9_\-.,/:@%+=]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(" ");
}
