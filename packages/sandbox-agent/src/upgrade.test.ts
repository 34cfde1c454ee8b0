// UPGRADE: the agent execs a new binary and hands over its state (process table, pipes with
// CLOEXEC cleared, buffered output, watches) through an inherited memfd; its processes run on.

import { copyFile, mkdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { agentBinaryPath } from "./binary.js";
import type { AgentProcess } from "./types.js";
import { ENV, Tracker, sleep, startAgent, waitFor, type AgentHarness } from "../test/harness.js";

describe("agent upgrade in place", () => {
  const started: AgentHarness[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((h) => h.stop()));
  });

  for (const [label, wrap] of [["as a child subreaper", undefined], ["as PID 1", ["unshare", "--pid", "--fork", "--mount-proc"]]] as const) {
    it(`replaces itself ${label}: processes, their output, stdin, exits and watches carry on`, async () => {
      const h = await startAgent({ token: "tok-1", ...(wrap ? { wrap: [...wrap] } : {}) });
      started.push(h);
      const t = new Tracker(h.client);
      const info0 = await h.client.info();
      // a long process printing before and after, a reader of stdin, one that exits meanwhile
      const ticker = await h.client.spawn({ argv: ["sh", "-c", "i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo tick $i; sleep 0.05; done"], env: ENV, cwd: "/", tag: Buffer.from("ticker") });
      const cat = await h.client.spawn({ argv: ["cat"], env: ENV, cwd: "/", stdin: true });
      const quick = await h.client.spawn({ argv: ["sh", "-c", "sleep 0.3; echo bye; exit 3"], env: ENV, cwd: "/" });
      const tty = await h.client.spawn({ argv: ["sh", "-c", "read x; echo got $x"], env: ENV, cwd: "/", pty: true });
      await h.client.writeStdin(cat.id, Buffer.from("before "));
      const dir = join(h.dir, "watched");
      await mkdir(dir);
      const wid = await h.client.watch(dir);
      await t.until(ticker.id, (s) => s.includes("tick 3\n"));

      // the new build: a copy of the binary at another path
      const next = join(h.dir, "hangar-agent-next");
      await copyFile(agentBinaryPath(), next);
      let list: AgentProcess[] = [];
      h.client.on("connect", (_i, procs: AgentProcess[]) => (list = procs));
      const info1 = await h.client.upgrade(next);
      expect(info1.instance).toBe(info0.instance);
      expect(info1.pid).toBe(info0.pid);
      expect(await readlink(`/proc/${await agentPid(h)}/exe`)).toBe(next);

      expect(list.find((p) => p.id === ticker.id)).toMatchObject({ running: true });
      expect(Buffer.from(list.find((p) => p.id === ticker.id)!.tag).toString()).toBe("ticker");
      await h.client.writeStdin(cat.id, Buffer.from("after"));
      await h.client.closeStdin(cat.id);
      await h.client.writeStdin(tty.id, Buffer.from("hi\n"));
      const events: string[] = [];
      h.client.on("watch", (id, e) => id === wid && events.push(e.name));
      await writeFile(join(dir, "new.txt"), "x");

      const r = await t.wait(ticker.id);
      expect(r.stdout).toBe(Array.from({ length: 30 }, (_, i) => `tick ${i + 1}\n`).join(""));
      expect((await t.wait(cat.id)).stdout).toBe("before after");
      const q = await t.wait(quick.id);
      expect(q.stdout).toBe("bye\n");
      expect(q.exit.exitCode).toBe(3);
      expect((await t.wait(tty.id)).stdout).toContain("got hi");
      await waitFor(() => events.includes("new.txt"), 3000, "a watch event after the upgrade");
      // new processes still start; a second upgrade works as well
      const again = await h.client.spawn({ argv: ["echo", "fresh"], env: ENV, cwd: "/" });
      expect((await t.wait(again.id)).stdout).toBe("fresh\n");
      await h.client.upgrade(agentBinaryPath());
      expect(list.length).toBe(5);
    }, 20_000);
  }

  it("refuses a missing binary and carries on", async () => {
    const h = await startAgent();
    started.push(h);
    await expect(h.client.upgrade("/no/such/agent", 2000)).rejects.toMatchObject({ code: "ENOENT" });
    await h.client.ping();
    await sleep(10);
  });
});

/** Host pid of the agent (the first child of unshare, or the harness child itself). */
async function agentPid(h: AgentHarness): Promise<number> {
  const pid = h.child.pid!;
  const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8");
  if (!cmd.startsWith("unshare")) return pid;
  return Number((await readFile(`/proc/${pid}/task/${pid}/children`, "utf8")).trim().split(/\s+/)[0]);
}
