// Finding files and text in the sandbox: glob find, fzf-style fuzzy path search, and content search
// (ripgrep run inside the sandbox when it has one, otherwise a walk through the agent).

import type { AgentClient } from "@hangar/sandbox-agent";
import { HangarError } from "@hangar/common";
import { agentCall } from "../util/agent-errors.js";
import { fuzzyMatch } from "../util/fuzzy.js";
import { globMatch, globToRegExp } from "../util/glob.js";
import type { AgentEventRouter } from "../managers/agent-router.js";
import type { SandboxImage } from "../types.js";
import { runSandboxCommand } from "./sandbox-command.js";
import { walk } from "./walker.js";

export interface FindOptions {
  type: "file" | "directory";
  patterns: string[];
  /** 0 = no limit. */
  maxResults: number;
  excludeDirs: string[];
  excludeHidden: boolean;
}

export interface FindMatch {
  path: string;
  type: "file" | "directory";
}

export interface FuzzyOptions {
  maxResults: number;
  patterns: string[];
  excludeDirs: string[];
  excludeHidden: boolean;
}

export interface FuzzyMatch {
  path: string;
  score: number;
  type: "file" | "directory";
}

export interface ContentSearchOptions {
  query: string;
  /** Treat `query` as a regular expression (ripgrep syntax) instead of a literal. */
  regex: boolean;
  caseSensitive: boolean;
  contextLines: number;
  maxResults: number;
  /** Base-name glob of files to search (e.g. "*.ts"). */
  filePattern?: string;
  /** Base-name glob of files to skip. */
  excludePattern?: string;
  excludeDirs: string[];
  /** Also search hidden files (default true, like Blaxel's walk). */
  includeHidden?: boolean;
  signal?: AbortSignal;
}

export interface ContentMatch {
  path: string;
  line: number;
  column: number;
  text: string;
  context?: string;
}

export interface ContentSearchResult {
  query: string;
  matches: ContentMatch[];
  total: number;
  /** "ripgrep" or "walk": how the search ran. */
  engine: "ripgrep" | "walk";
}

const MAX_FUZZY_CANDIDATES = 200_000;
const MAX_FALLBACK_FILE = 4 * 1024 * 1024;
const RG_RECHECK_MS = 30_000;

export class SearchService {
  private rg: { path: string | null; at: number } | null = null;

  constructor(
    private readonly agent: AgentClient,
    private readonly router: AgentEventRouter,
    private readonly image: SandboxImage,
    private readonly env: () => Record<string, string>,
  ) {}

  private async assertDirectory(root: string): Promise<void> {
    const st = await agentCall(() => this.agent.stat(root), root);
    if (st.type !== "directory") throw new HangarError("not_a_directory", `${root} is not a directory`);
  }

  /** Files or directories under `root` whose base name matches one of `patterns`, in walk order. */
  async find(root: string, opts: FindOptions): Promise<{ matches: FindMatch[]; total: number }> {
    await this.assertDirectory(root);
    const matches: FindMatch[] = [];
    const limit = opts.maxResults > 0 ? opts.maxResults : Number.POSITIVE_INFINITY;
    for await (const e of walk(this.agent, root, { excludeDirs: new Set(opts.excludeDirs), excludeHidden: opts.excludeHidden })) {
      const isDir = e.type === "directory";
      if ((opts.type === "directory") !== isDir) continue;
      if (!isDir && opts.patterns.length > 0 && !opts.patterns.some((p) => globMatch(p, e.name))) continue;
      matches.push({ path: e.rel, type: isDir ? "directory" : "file" });
      if (matches.length >= limit) break;
    }
    return { matches, total: matches.length };
  }

  /** Paths under `root` ranked by fzf's fuzzy score against `term`. */
  async fuzzy(root: string, term: string, opts: FuzzyOptions): Promise<{ matches: FuzzyMatch[]; total: number }> {
    const st = await this.agent.stat(root).catch(() => null);
    if (!st || st.type !== "directory") return { matches: [], total: 0 };
    const scored: FuzzyMatch[] = [];
    for await (const e of walk(this.agent, root, {
      excludeDirs: new Set(opts.excludeDirs),
      excludeHidden: opts.excludeHidden,
      maxEntries: MAX_FUZZY_CANDIDATES,
    })) {
      const isDir = e.type === "directory";
      if (!isDir && opts.patterns.length > 0 && !opts.patterns.some((p) => globMatch(p, e.name))) continue;
      const m = fuzzyMatch(e.rel, term);
      if (m) scored.push({ path: e.rel, score: m.score, type: isDir ? "directory" : "file" });
    }
    scored.sort((a, b) => b.score - a.score || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const matches = opts.maxResults > 0 ? scored.slice(0, opts.maxResults) : scored;
    return { matches, total: matches.length };
  }

  /** Where ripgrep lives in the sandbox (looked up in its PATH), or null. */
  async ripgrepPath(): Promise<string | null> {
    const now = Date.now();
    if (this.rg && now - this.rg.at < RG_RECHECK_MS) return this.rg.path;
    const path = (this.env().PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":").filter((d) => d.startsWith("/"));
    let found: string | null = null;
    for (const dir of path) {
      const candidate = `${dir.replace(/\/+$/, "")}/rg`;
      const st = await this.agent.stat(candidate).catch(() => null);
      if (st && st.type === "file" && st.mode & 0o111) {
        found = candidate;
        break;
      }
    }
    this.rg = { path: found, at: now };
    return found;
  }

  async content(root: string, opts: ContentSearchOptions): Promise<ContentSearchResult> {
    if (!opts.query) throw new HangarError("validation_failed", "query is required");
    await this.assertDirectory(root);
    if (opts.regex) {
      try {
        new RegExp(opts.query, "u");
      } catch (e) {
        throw new HangarError("validation_failed", `invalid regular expression: ${(e as Error).message}`);
      }
    }
    const rg = await this.ripgrepPath();
    const matches = rg ? await this.ripgrep(rg, root, opts) : await this.walkSearch(root, opts);
    return { query: opts.query, matches, total: matches.length, engine: rg ? "ripgrep" : "walk" };
  }

  private async ripgrep(rg: string, root: string, opts: ContentSearchOptions): Promise<ContentMatch[]> {
    const argv = [rg, "--json", "--no-config", "--no-ignore", "--no-messages", opts.caseSensitive ? "-s" : "-i"];
    if (opts.includeHidden !== false) argv.push("--hidden");
    if (!opts.regex) argv.push("--fixed-strings");
    if (opts.contextLines > 0) argv.push("-C", String(opts.contextLines));
    if (opts.filePattern) argv.push("-g", opts.filePattern);
    if (opts.excludePattern) argv.push("-g", `!${opts.excludePattern}`);
    for (const d of opts.excludeDirs) argv.push("-g", `!${d}/`);
    argv.push("-e", opts.query, "--", ".");

    const matches: ContentMatch[] = [];
    // Per file: match order and every line seen (match and context), to build each match's context.
    let fileMatches: ContentMatch[] = [];
    let fileLines = new Map<number, string>();
    let full = false;
    const finishFile = () => {
      if (opts.contextLines > 0) {
        for (const m of fileMatches) {
          const lines: string[] = [];
          for (let n = m.line - opts.contextLines; n <= m.line + opts.contextLines; n++) {
            const t = fileLines.get(n);
            if (t !== undefined) lines.push(t);
          }
          m.context = lines.join("\n");
        }
      }
      fileMatches = [];
      fileLines = new Map();
    };
    const text = (v: { text?: string; bytes?: string } | undefined): string =>
      v?.text ?? (v?.bytes ? Buffer.from(v.bytes, "base64").toString("utf8") : "");
    await runSandboxCommand(this.agent, this.router, {
      argv,
      cwd: root,
      env: this.env(),
      uid: this.image.uid,
      gid: this.image.gid,
      timeoutMs: 120_000,
      signal: opts.signal,
      onLine: (line) => {
        if (!line) return true;
        let msg: { type: string; data: Record<string, unknown> };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return true;
        }
        if (msg.type === "match") {
          if (full) {
            finishFile();
            return false;
          }
          const d = msg.data as { path?: { text?: string; bytes?: string }; lines?: { text?: string; bytes?: string }; line_number?: number; submatches?: Array<{ start: number }> };
          const lineText = text(d.lines).replace(/\r?\n$/, "");
          const lineNo = d.line_number ?? 0;
          const m: ContentMatch = { path: text(d.path).replace(/^\.\//, ""), line: lineNo, column: (d.submatches?.[0]?.start ?? 0) + 1, text: lineText };
          matches.push(m);
          fileMatches.push(m);
          fileLines.set(lineNo, lineText);
          if (matches.length >= opts.maxResults) full = true;
        } else if (msg.type === "context") {
          const d = msg.data as { lines?: { text?: string; bytes?: string }; line_number?: number };
          fileLines.set(d.line_number ?? 0, text(d.lines).replace(/\r?\n$/, ""));
        } else if (msg.type === "end") {
          finishFile();
          if (full) return false;
        }
        return true;
      },
    });
    finishFile();
    return matches.slice(0, opts.maxResults);
  }

  /** Content search without ripgrep: walk, read each regular file through the agent, match lines. */
  private async walkSearch(root: string, opts: ContentSearchOptions): Promise<ContentMatch[]> {
    const flags = opts.caseSensitive ? "u" : "iu";
    const re = opts.regex ? new RegExp(opts.query, flags) : null;
    const needle = opts.caseSensitive ? opts.query : opts.query.toLowerCase();
    const fileRe = opts.filePattern ? globToRegExp(opts.filePattern) : null;
    const excludeRe = opts.excludePattern ? globToRegExp(opts.excludePattern) : null;
    const matches: ContentMatch[] = [];
    const searchFile = (rel: string, data: Buffer): ContentMatch[] => {
      const head = data.subarray(0, 8192);
      if (head.includes(0)) return [];
      const lines = data.toString("utf8").split("\n");
      const found: ContentMatch[] = [];
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!.replace(/\r$/, "");
        let col = -1;
        if (re) {
          const m = re.exec(line);
          if (m) col = Buffer.byteLength(line.slice(0, m.index));
        } else {
          const idx = (opts.caseSensitive ? line : line.toLowerCase()).indexOf(needle);
          if (idx >= 0) col = Buffer.byteLength(line.slice(0, idx));
        }
        if (col < 0) continue;
        const m: ContentMatch = { path: rel, line: i + 1, column: col + 1, text: line };
        if (opts.contextLines > 0) {
          const from = Math.max(0, i - opts.contextLines);
          m.context = lines.slice(from, i + opts.contextLines + 1).map((l) => l.replace(/\r$/, "")).join("\n");
        }
        found.push(m);
      }
      return found;
    };
    // Reads run ahead of the in-order matching, a few files at a time.
    const queue: Array<{ rel: string; data: Promise<Buffer | null> }> = [];
    const drainOne = async () => {
      const next = queue.shift()!;
      const data = await next.data;
      if (data) matches.push(...searchFile(next.rel, data));
    };
    for await (const e of walk(this.agent, root, { excludeDirs: new Set(opts.excludeDirs), excludeHidden: opts.includeHidden === false, signal: opts.signal })) {
      if (matches.length >= opts.maxResults) break;
      if (e.type !== "file" || e.size > MAX_FALLBACK_FILE) continue;
      if (fileRe && !fileRe.test(e.name)) continue;
      if (excludeRe && excludeRe.test(e.name)) continue;
      queue.push({ rel: e.rel, data: this.agent.readFile(e.path).catch(() => null) });
      if (queue.length >= 16) await drainOne();
    }
    while (queue.length > 0 && matches.length < opts.maxResults) await drainOne();
    return matches.slice(0, opts.maxResults);
  }
}
