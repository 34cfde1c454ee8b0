// Owner and group names of the sandbox (its own /etc/passwd and /etc/group, read through the agent),
// cached and re-read when the files change.

import type { AgentClient } from "@hangar/sandbox-agent";

interface Table {
  names: Map<number, string>;
  mtimeMs: number;
  checkedAt: number;
}

const RECHECK_MS = 2_000;

function parseIds(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    const id = Number(f[2]);
    if (f[0] && Number.isInteger(id) && !out.has(id)) out.set(id, f[0]);
  }
  return out;
}

export class UserDirectory {
  private readonly tables = new Map<string, Table>();
  private readonly loading = new Map<string, Promise<Table>>();

  constructor(private readonly agent: AgentClient) {}

  private async load(file: string): Promise<Table> {
    const now = Date.now();
    const cached = this.tables.get(file);
    if (cached && now - cached.checkedAt < RECHECK_MS) return cached;
    const pending = this.loading.get(file);
    if (pending) return pending;
    const p = (async (): Promise<Table> => {
      try {
        const st = await this.agent.stat(file);
        if (cached && cached.mtimeMs === st.mtimeMs) {
          cached.checkedAt = now;
          return cached;
        }
        const text = (await this.agent.readFile(file, { length: 4 * 1024 * 1024 })).toString("utf8");
        const t = { names: parseIds(text), mtimeMs: st.mtimeMs, checkedAt: now };
        this.tables.set(file, t);
        return t;
      } catch {
        const t = { names: cached?.names ?? new Map<number, string>(), mtimeMs: -1, checkedAt: now };
        this.tables.set(file, t);
        return t;
      }
    })().finally(() => this.loading.delete(file));
    this.loading.set(file, p);
    return p;
  }

  /** Resolves uid and gid to names, falling back to the numbers (as Go's os/user does). */
  async names(uid: number, gid: number): Promise<{ owner: string; group: string }> {
    const [users, groups] = await Promise.all([this.load("/etc/passwd"), this.load("/etc/group")]);
    return { owner: users.names.get(uid) ?? String(uid), group: groups.names.get(gid) ?? String(gid) };
  }

  /** Name resolver for many entries at once (one table load). */
  async resolver(): Promise<(uid: number, gid: number) => { owner: string; group: string }> {
    const [users, groups] = await Promise.all([this.load("/etc/passwd"), this.load("/etc/group")]);
    return (uid, gid) => ({ owner: users.names.get(uid) ?? String(uid), group: groups.names.get(gid) ?? String(gid) });
  }
}
