// Depth-first, name-ordered walk of a sandbox directory through the agent (the order of Go's
// filepath.WalkDir), with the next few subdirectories read ahead in parallel. Never follows symlinks.

import type { AgentClient, AgentDirEntry } from "@hangar/sandbox-agent";
import { joinPath, relativeTo } from "../paths.js";

export interface WalkOptions {
  /** Directory base names not entered. */
  excludeDirs?: Set<string>;
  /** Skip names starting with "." (and do not enter such directories). */
  excludeHidden?: boolean;
  /** Stop after this many entries. */
  maxEntries?: number;
  signal?: AbortSignal;
}

export interface WalkEntry extends AgentDirEntry {
  /** Absolute path in the sandbox. */
  path: string;
  /** Path relative to the walk root. */
  rel: string;
}

export const DEFAULT_EXCLUDE_DIRS = ["node_modules", "vendor", ".git", "dist", "build", "target", "__pycache__", ".venv", ".next", "coverage"];

const READ_AHEAD = 8;

export async function* walk(agent: AgentClient, root: string, opts: WalkOptions = {}): AsyncGenerator<WalkEntry> {
  const exclude = opts.excludeDirs ?? new Set<string>();
  const max = opts.maxEntries ?? Number.POSITIVE_INFINITY;
  let count = 0;
  const read = (dir: string): Promise<AgentDirEntry[]> =>
    agent.readdir(dir).then(
      (entries) => entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      () => [],
    );
  // Hidden entries and excluded directories are skipped whole (neither listed nor entered).
  const keep = (e: AgentDirEntry): boolean =>
    !(opts.excludeHidden && e.name.startsWith(".")) && !(e.type === "directory" && exclude.has(e.name));
  const descend = (e: AgentDirEntry): boolean => e.type === "directory";

  async function* visit(dir: string, entriesP: Promise<AgentDirEntry[]>): AsyncGenerator<WalkEntry> {
    const entries = (await entriesP).filter(keep);
    const subdirs = entries.filter(descend);
    const ahead = new Map<string, Promise<AgentDirEntry[]>>();
    let nextAhead = 0;
    const fill = () => {
      while (ahead.size < READ_AHEAD && nextAhead < subdirs.length) {
        const d = joinPath(dir, subdirs[nextAhead++]!.name);
        ahead.set(d, read(d));
      }
    };
    fill();
    for (const e of entries) {
      if (opts.signal?.aborted || count >= max) return;
      const path = joinPath(dir, e.name);
      count++;
      yield { ...e, path, rel: relativeTo(root, path) };
      if (descend(e)) {
        const p = ahead.get(path) ?? read(path);
        ahead.delete(path);
        fill();
        yield* visit(path, p);
      }
    }
  }

  yield* visit(root, read(root));
}
