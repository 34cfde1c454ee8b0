// Code running inside a sandbox relies on what Blaxel's sandboxes give it: the sandbox API at
// http://localhost:8080 (for that sandbox only), its own memory and CPU limits in /proc, and an
// agent that an operator can upgrade without stopping the user's processes.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

type Sdk = typeof import("@blaxel/core");
type Sandbox = InstanceType<Sdk["SandboxInstance"]>;

/** CRIU as criu-install.sh installs it; without it the checkpointed tier is off. */
const criuInstalled = existsSync("/opt/hangar/criu/tools.json");

let h: RunningHangar;
let SandboxInstance: Sdk["SandboxInstance"];

/** Runs a shell command in a new process; returns its stdout (exit code 0 expected). */
async function sh(sb: Sandbox, command: string): Promise<string> {
  const r = await sb.process.exec({ command, waitForCompletion: true });
  expect(r.exitCode, `${command}: ${r.stderr ?? ""}`).toBe(0);
  return r.stdout ?? "";
}

/** Whether the sandbox's record says it is checkpointed to disk (the linux driver's state). */
function checkpointed(id: string): boolean {
  const f = join(h.dataDir, "runtime", "sandboxes", `${id}.json`);
  return existsSync(f) && !!(JSON.parse(readFileSync(f, "utf8")) as { checkpoint?: unknown }).checkpoint;
}

async function idOf(name: string): Promise<string> {
  const dir = join(h.dataDir, "runtime", "sandboxes");
  for (const f of readdirSync(dir)) {
    const rec = JSON.parse(readFileSync(join(dir, f), "utf8")) as { id: string; spec: { name: string } };
    if (rec.spec.name === name) return rec.id;
  }
  throw new Error(`no record for ${name}`);
}

/** Waits until the sandbox is parked to disk (CRIU), or frozen when CRIU is missing. */
async function parked(name: string, withinMs = 30_000): Promise<void> {
  const id = await idOf(name);
  const t0 = Date.now();
  for (;;) {
    const state = ((await (await api(h, "GET", `/v0/sandboxes/${name}`)).json()) as { state: string }).state;
    if (state === "STANDBY" && (!criuInstalled || checkpointed(id))) return;
    if (Date.now() - t0 > withinMs) throw new Error(`${name} not parked within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  h = await startHangar({ env: { HANGAR_STANDBY_IDLE: "1s", HANGAR_STANDBY_CHECKPOINT_AFTER: "1s" } });
  useSdkAgainst(h);
  ({ SandboxInstance } = await import("@blaxel/core"));
}, 180_000);

afterAll(async () => {
  await h?.dispose();
});

describe("code inside a sandbox", () => {
  it("reaches its own sandbox API at localhost:8080 (processes, files), never another sandbox's, also after a restart and a park to disk", async () => {
    const a = await SandboxInstance.create({ name: "inside-a", memory: 512 });
    const b = await SandboxInstance.create({ name: "inside-b", memory: 512 });
    await a.fs.write("/tmp/mine.txt", "a's file");
    await a.process.exec({ name: "a-only", command: "sleep 600" });

    const check = async () => {
      // processes: the list includes the curl's own shell; a file op reads a's file
      const list = JSON.parse(await sh(a, "curl -sf http://localhost:8080/process")) as Array<{ name: string; command: string }>;
      expect(list.some((p) => p.command.includes("localhost:8080/process"))).toBe(true);
      expect(list.map((p) => p.name)).toContain("a-only");
      expect(await sh(a, "curl -sf 'http://localhost:8080/filesystem/%2Ftmp%2Fmine.txt?download=true'")).toBe("a's file");
      // a write through the relay lands in a's filesystem
      await sh(a, `curl -sf -X PUT -H 'content-type: application/json' -d '{"content":"via relay"}' 'http://localhost:8080/filesystem/%2Ftmp%2Frelay.txt'`);
      expect(await a.fs.read("/tmp/relay.txt")).toBe("via relay");
      // from b, localhost:8080 is b's API: a's file and processes are not there
      const fromB = await b.process.exec({ command: "curl -s -o /dev/null -w '%{http_code}' 'http://localhost:8080/filesystem/%2Ftmp%2Fmine.txt'", waitForCompletion: true });
      expect(fromB.stdout).toBe("404");
      const bList = JSON.parse(await sh(b, "curl -sf http://localhost:8080/process")) as Array<{ name: string }>;
      expect(bList.map((p) => p.name)).not.toContain("a-only");
      const kill = await b.process.exec({ command: "curl -s -o /dev/null -w '%{http_code}' -X DELETE http://localhost:8080/process/a-only", waitForCompletion: true });
      expect(kill.stdout).toBe("404");
      // drives (workspace resources) are not reachable from inside
      const drives = await a.process.exec({ command: "curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' -H 'content-type: application/json' http://localhost:8080/drives/mount", waitForCompletion: true });
      expect(drives.stdout).toBe("403");
    };
    await check();

    // after a server restart the socket is served again
    await h.stop();
    h = await h.restart();
    await check();

    // after a park (to disk where CRIU is installed) and a wake
    await parked("inside-a");
    await check();
    await a.delete();
    await b.delete();
  }, 240_000);
});
