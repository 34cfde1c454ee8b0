// Files the host binds into sandboxes are installed into a Hangar-owned place first, never bound
// from wherever the source checkout or the data dir happens to be: a restore (CRIU) reopens bind
// sources from inside the sandbox's user namespace, which cannot pass a 0700 parent such as /root.

import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import { dirname, join } from "node:path";
import { randomToken } from "@hangar/common";

/** Where installed host files live: root-owned, world-traversable (default /opt/hangar/agent). */
export const DEFAULT_AGENT_INSTALL_DIR = "/opt/hangar/agent";

/** Makes `dir` and each parent up to `/` exist and be traversable by everyone (0755 when made). */
async function traversableDir(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    const st = await fs.stat(d);
    if ((st.mode & 0o001) === 0) await fs.chmod(d, (st.mode & 0o7777) | 0o111);
  }
}

/**
 * Copies the binary at `src` to `<dir>/<sha256[:16]>/<name>` (0755, root-owned) unless that copy
 * exists, and returns its path. Keyed by content, so a sandbox started (or checkpointed) with one
 * build keeps finding that exact build after an upgrade installs another beside it.
 */
export async function installHostBinary(src: string, dir: string, name = "hangar-agent"): Promise<string> {
  const bytes = await fs.readFile(src);
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const target = join(dir, hash, name);
  const ok = await fs.stat(target).then((st) => st.size === bytes.length && (st.mode & 0o777) === 0o755, () => false);
  if (ok) return target;
  await traversableDir(join(dir, hash));
  const tmp = `${target}.${randomToken(6)}.tmp`;
  await fs.writeFile(tmp, bytes, { mode: 0o755 });
  await fs.chmod(tmp, 0o755);
  await fs.rename(tmp, target);
  return target;
}
