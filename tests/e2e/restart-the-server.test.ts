// An operator restarts Hangar, gracefully or with kill -9: no record is lost and running
// sandboxes are found again with their files and processes.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { CLI, IMAGE_DIR, type RunningHangar, api, startHangar } from "./harness.js";

let h: RunningHangar;

beforeAll(async () => {
  h = await startHangar();
});

afterAll(async () => {
  await h?.dispose();
});

async function exec(h: RunningHangar, name: string, command: string): Promise<{ stdout: string; exitCode: number }> {
  const res = await api(h, "POST", `/run/default/sandboxes/${name}/process`, { command, waitForCompletion: true });
  expect(res.status).toBe(200);
  return (await res.json()) as { stdout: string; exitCode: number };
}

describe("restart and crash", () => {
  it("keeps every record and re-adopts running sandboxes after kill -9", async () => {
    const names = ["keep-1", "keep-2", "keep-3"];
    for (const name of names) {
      expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name, labels: { n: name } }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
      await exec(h, name, `echo ${name} > /tmp/who`);
      const bg = await api(h, "POST", `/run/default/sandboxes/${name}/process`, { command: "sleep 3600", name: "long" });
      expect(bg.status).toBe(200);
    }
    await h.kill9();
    h = await h.restart();
    const list = (await (await api(h, "GET", "/v0/sandboxes?sort=name:asc")).json()) as { data: { metadata: { name: string; labels: Record<string, string> }; status: string }[] };
    expect(list.data.map((s) => s.metadata.name)).toEqual(names);
    for (const s of list.data) {
      expect(s.status).toBe("DEPLOYED");
      expect(s.metadata.labels.n).toBe(s.metadata.name);
      expect((await exec(h, s.metadata.name, "cat /tmp/who")).stdout).toBe(`${s.metadata.name}\n`);
      const p = (await (await api(h, "GET", `/run/default/sandboxes/${s.metadata.name}/process/long`)).json()) as { status: string };
      expect(p.status).toBe("running");
    }
  });

  it("keeps the output a process printed while the server was down, once and in order", async () => {
    expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "chatty" }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
    const start = await api(h, "POST", "/run/default/sandboxes/chatty/process", { name: "ticker", command: "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo tick $i; sleep 0.1; done" });
    expect(start.status).toBe(200);
    await new Promise((r) => setTimeout(r, 800));
    await h.kill9();
    // down long enough for the process to finish meanwhile: its output and exit are replayed
    await new Promise((r) => setTimeout(r, 4_500));
    h = await h.restart();
    let logs = "";
    for (let i = 0; i < 100; i++) {
      const p = (await (await api(h, "GET", "/run/default/sandboxes/chatty/process/ticker")).json()) as { status: string };
      logs = ((await (await api(h, "GET", "/run/default/sandboxes/chatty/process/ticker/logs")).json()) as { stdout: string }).stdout;
      if (p.status !== "running") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(logs.trim().split("\n")).toEqual(Array.from({ length: 40 }, (_, i) => `tick ${i + 1}`));
  });

  it("refuses a second server on the same data dir and leaves the first one untouched", async () => {
    const second = spawnSync(process.execPath, [CLI, "serve", "--port", "0", "--data-dir", h.dataDir], { env: { ...process.env, ...h.instance.env, HANGAR_IMAGE_DIR: IMAGE_DIR }, encoding: "utf8", timeout: 60_000 });
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/another Hangar process \(pid \d+\) is using/);
    const uninstall = spawnSync(process.execPath, [CLI, "uninstall", "--data-dir", h.dataDir], { env: { ...process.env, ...h.instance.env, HANGAR_IMAGE_DIR: IMAGE_DIR }, encoding: "utf8", timeout: 60_000 });
    expect(uninstall.status).toBe(1);
    expect((await exec(h, "keep-1", "cat /tmp/who")).stdout).toBe("keep-1\n");
  });

  it("starts a sandbox whose container died again, with its files", async () => {
    expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "phoenix" }, spec: { runtime: { memory: 256 } } })).status).toBe(200);
    await exec(h, "phoenix", "echo survived > /tmp/f");
    // its cgroup: the one whose processes see /etc/hostname "phoenix" in their root
    const cg = readdirSync(`/sys/fs/cgroup/pids/${h.instance.cgroupParent}`).find((d) => {
      try {
        const pid = readFileSync(`/sys/fs/cgroup/pids/${h.instance.cgroupParent}/${d}/cgroup.procs`, "utf8").trim().split("\n")[0];
        return readFileSync(`/proc/${pid}/root/etc/hostname`, "utf8").trim() === "phoenix";
      } catch {
        return false;
      }
    });
    expect(cg).toBeDefined();
    for (const p of readFileSync(`/sys/fs/cgroup/pids/${h.instance.cgroupParent}/${cg}/cgroup.procs`, "utf8").trim().split("\n").filter(Boolean)) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {}
    }
    let out = "";
    const t0 = Date.now();
    while (Date.now() - t0 < 30_000) {
      const r = await api(h, "POST", "/run/default/sandboxes/phoenix/process", { command: "cat /tmp/f", waitForCompletion: true });
      if (r.status === 200) {
        out = ((await r.json()) as { stdout: string }).stdout;
        if (out === "survived\n") break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(out).toBe("survived\n");
    expect(h.output()).toContain("sandbox stopped on its own; starting it again with its files");
    // the others were not touched
    const p = (await (await api(h, "GET", "/run/default/sandboxes/keep-1/process/long")).json()) as { status: string };
    expect(p.status).toBe("running");
  });

  it("stops gracefully within seconds while a client holds a stream open", async () => {
    const ac = new AbortController();
    const res = await fetch(`${h.url}/run/default/sandboxes/keep-1/watch/filesystem/%2Ftmp`, { headers: { authorization: `Bearer ${h.apiKey}`, "x-blaxel-workspace": "default" }, signal: ac.signal });
    expect(res.status).toBe(200);
    const reading = res.body!.getReader().read().catch(() => undefined);
    const t0 = Date.now();
    await h.stop();
    expect(Date.now() - t0).toBeLessThan(10_000);
    ac.abort();
    await reading;
    h = await h.restart();
    expect((await exec(h, "keep-1", "cat /tmp/who")).stdout).toBe("keep-1\n");
  });

  it("keeps the bootstrap key and created keys across a graceful restart", async () => {
    const k = (await (await api(h, "POST", "/v0/api-keys", { name: "survivor" })).json()) as { apiKey: string };
    await h.stop();
    h = await h.restart();
    const res = await fetch(`${h.url}/v0/sandboxes`, { headers: { authorization: `Bearer ${k.apiKey}`, "x-blaxel-workspace": "default" } });
    expect(res.status).toBe(200);
  });
});
