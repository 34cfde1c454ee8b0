// Go's path/filepath.Match semantics for base-name patterns ("*.ts", "file?.go", "[a-c]*"): `*` and
// `?` never match "/", character classes support ranges and negation with `^`, `\` escapes.

const cache = new Map<string, RegExp | null>();

function escapeRegex(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(ch) ? `\\${ch}` : ch;
}

/** Compiles a glob; null when the pattern is malformed (Go returns ErrBadPattern: no match). */
export function globToRegExp(pattern: string): RegExp | null {
  const hit = cache.get(pattern);
  if (hit !== undefined) return hit;
  let re = "^";
  let ok = true;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "\\") {
      i++;
      if (i >= pattern.length) {
        ok = false;
        break;
      }
      re += escapeRegex(pattern[i]!);
    } else if (ch === "[") {
      let j = i + 1;
      let cls = "";
      if (pattern[j] === "^") {
        cls += "^";
        j++;
      }
      let closed = false;
      let first = true;
      for (; j < pattern.length; j++) {
        const c = pattern[j]!;
        if (c === "]" && !first) {
          closed = true;
          break;
        }
        first = false;
        if (c === "\\") {
          j++;
          if (j >= pattern.length) break;
          cls += escapeRegex(pattern[j]!);
        } else if (c === "-") cls += "-";
        else cls += c === "^" || c === "[" || c === "]" ? `\\${c}` : c;
      }
      if (!closed) {
        ok = false;
        break;
      }
      re += `[${cls}]`;
      i = j;
    } else re += escapeRegex(ch);
  }
  const out = ok ? new RegExp(`${re}$`, "u") : null;
  cache.set(pattern, out);
  if (cache.size > 1000) cache.clear();
  return out;
}

/** filepath.Match(pattern, name). */
export function globMatch(pattern: string, name: string): boolean {
  const re = globToRegExp(pattern);
  return re !== null && re.test(name);
}

/** Splits a comma-separated query value into trimmed, non-empty items. */
export function splitList(value: string | undefined): string[] {
  if (!value) return [];
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}
