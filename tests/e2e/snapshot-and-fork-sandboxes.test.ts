// A user snapshots a sandbox and restores it, forks a running sandbox whose counter keeps counting
// in the fork (processes and memory captured with CRIU), forks a snapshot, archives a sandbox and
// brings it back with its files — all through the unmodified @blaxel/core; bad input gets 4xx; a
// snapshot a crashed server left half-taken reads failed after the restart.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSqliteStore } from "@hangar/store";
import { CLI, type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

const criuInstalled = existsSync("/opt/hangar/criu/tools.json");
if (!criuInstalled) console.warn("[snapshot-and-fork] forks with processes skipped: CRIU is not installed (packages/runtime/src/linux/criu-install.sh)");

let h: RunningHangar;
let sdk: typeof import("@blaxel/core");
let origin: import("@blaxel/core").SandboxInstance;

const COUNTER = "sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'";

async function count(sb: import("@blaxel/core").SandboxInstance): Promise<number> {
  return Number((await sb.fs.read("/tmp/count")).trim());
}

async function events(name: string): Promise<string[]> {
  const s = (await (await api(h, "GET", `/v0/sandboxes/${name}`)).json()) as { events: { message: string }[] };
  return s.events.map((e) => e.message);
}

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  sdk = await import("@blaxel/core");
  origin = await sdk.SandboxInstance.create({ name: "origin", memory: 512 });
  await origin.fs.write("/data/a.txt", "v1");
  await origin.process.exec({ name: "counter", command: COUNTER });
}, 180_000);

afterAll(async () => {
  if (process.env.HANGAR_TEST_OUTPUT) writeFileSync(process.env.HANGAR_TEST_OUTPUT, h?.output() ?? "");
  await h?.dispose();
});

describe("snapshots, forks and archives", () => {
  it("takes a snapshot, lists it, and restores the sandbox's files to it", async () => {
    const snap = await origin.snapshots.create("snap-one");
    expect(snap.status).toBe("ready");
    expect(snap.source).toMatchObject({ name: "origin", kind: "sandbox", deleted: false });
    expect((await origin.snapshots.list()).map((s) => s.name)).toEqual(["snap-one"]);
    const page = await sdk.Snapshot.list();
    expect(page.data.map((s) => s.name)).toContain("snap-one");
    expect((await sdk.Snapshot.get(snap.id)).name).toBe("snap-one");

    await origin.fs.write("/data/a.txt", "v2");
    await origin.fs.write("/data/later.txt", "written after the snapshot");
    const r = await origin.snapshots.restore("snap-one");
    expect(r).toMatchObject({ name: "origin", snapshotId: snap.id });
    const back = await sdk.SandboxInstance.get("origin");
    expect(back.status).toBe("DEPLOYED");
    expect(await back.fs.read("/data/a.txt")).toBe("v1");
    await expect(back.fs.read("/data/later.txt")).rejects.toThrow();
    origin = back;
  });

  it.skipIf(!criuInstalled)("forks a running sandbox: the fork's counter keeps counting, with the files, its own name and address", async () => {
    const before = await count(origin);
    const res = await origin.fork("forked");
    expect(res).toMatchObject({ name: "forked", type: "sandbox" });
    const fork = await sdk.SandboxInstance.get("forked");
    expect(fork.status).toBe("DEPLOYED");
    const c1 = await count(fork);
    expect(c1).toBeGreaterThanOrEqual(before);
    await new Promise((r) => setTimeout(r, 300));
    expect(await count(fork)).toBeGreaterThan(c1);
    expect((await fork.process.get("counter")).status).toBe("running");
    expect(await fork.fs.read("/data/a.txt")).toBe("v1");
    const host = await fork.process.exec({ command: "hostname", waitForCompletion: true });
    expect(host.stdout?.trim()).toBe("forked");
    expect((await events("forked")).join("\n")).toMatch(/with its processes and memory/);
    // the source carries on, apart from the fork
    await fork.fs.write("/data/only-fork.txt", "x");
    await expect(origin.fs.read("/data/only-fork.txt")).rejects.toThrow();
    const o1 = await count(origin);
    await new Promise((r) => setTimeout(r, 200));
    expect(await count(origin)).toBeGreaterThan(o1);
  });

  it("forks a snapshot into a new sandbox, also after its source is gone", async () => {
    const snap = (await origin.snapshots.list()).find((s) => s.name === "snap-one")!;
    const res = await snap.fork("from-snap");
    expect(res).toMatchObject({ name: "from-snap", type: "sandbox", snapshotId: snap.id });
    const sb = await sdk.SandboxInstance.get("from-snap");
    expect(await sb.fs.read("/data/a.txt")).toBe("v1");
  });

  it("archives a sandbox (files on disk, nothing running) and unarchives it with its files intact", async () => {
    const sb = await sdk.SandboxInstance.get("from-snap");
    await sb.fs.write("/data/archived.txt", "keep me");
    const archived = await sdk.SandboxInstance.archive("from-snap", { interval: 100 });
    expect(archived.status).toBe("ARCHIVED");
    // nothing runs: the sandbox API answers 503
    const r = await fetch(`${h.url}/v0/sandboxes/from-snap`, { headers: { authorization: `Bearer ${h.apiKey}` } });
    expect(((await r.json()) as { status: string }).status).toBe("ARCHIVED");
    await expect(sb.fs.read("/data/archived.txt")).rejects.toThrow();
    const back = await sdk.SandboxInstance.unarchive("from-snap", { interval: 100 });
    expect(back.status).toBe("DEPLOYED");
    expect(await back.fs.read("/data/archived.txt")).toBe("keep me");
    expect(await back.fs.read("/data/a.txt")).toBe("v1");
  });

  it("answers bad input with 4xx problems and changes nothing", async () => {
    const post = (path: string, body: unknown) => api(h, "POST", `/v0${path}`, body);
    expect((await post("/sandboxes/origin/fork", { targetName: "forked", targetType: "sandbox" })).status).toBe(409);
    expect((await post("/sandboxes/nope/fork", { targetName: "x1", targetType: "sandbox" })).status).toBe(404);
    expect((await post("/sandboxes/origin/fork", { targetName: "Bad_Name", targetType: "sandbox" })).status).toBe(400);
    expect((await post("/sandboxes/origin/fork", { targetType: "sandbox" })).status).toBe(400);
    expect((await post("/sandboxes/origin/fork", { targetName: "x2", targetType: "application" })).status).toBe(400);
    expect((await post("/snapshots/nope/fork", { targetName: "x3", targetType: "sandbox" })).status).toBe(404);
    expect((await post("/snapshots", { source: { name: "nope" } })).status).toBe(404);
    expect((await post("/snapshots", {})).status).toBe(400);
    expect((await post("/snapshots", { name: "snap-one", source: { name: "origin" } })).status).toBe(409);
    expect((await post("/sandboxes/origin/snapshots/nope/restore", {})).status).toBe(404);
    expect((await api(h, "GET", "/v0/snapshots/nope")).status).toBe(404);
    expect((await api(h, "DELETE", "/v0/snapshots/nope")).status).toBe(404);
    expect((await post("/sandboxes/nope/archive", {})).status).toBe(404);
    expect((await post("/sandboxes/nope/unarchive", {})).status).toBe(404);
    const body = (await (await api(h, "GET", "/v0/snapshots/nope")).json()) as { code: number; error: string };
    expect(body).toMatchObject({ code: 404, error: expect.stringMatching(/snapshot 'nope' not found/) });
    await expect(sdk.Snapshot.get("nope")).rejects.toMatchObject({ code: 404 });
    // nothing was created or lost
    const names = (await sdk.SandboxInstance.list()).data.map((s) => s.metadata.name).sort();
    expect(names).toEqual(criuInstalled ? ["forked", "from-snap", "origin"] : ["from-snap", "origin"]);
    expect(await origin.fs.read("/data/a.txt")).toBe("v1");
  });

  it("deletes a snapshot; one a crashed server left half-taken reads failed after the restart", async () => {
    await origin.snapshots.delete("snap-one");
    expect(await origin.snapshots.list()).toEqual([]);

    await h.kill9();
    if (process.env.HANGAR_TEST_OUTPUT) writeFileSync(`${process.env.HANGAR_TEST_OUTPUT}.first`, h.output());
    // what a server killed mid-capture leaves: a pending record holding a lease, a partial capture
    const store = await openSqliteStore(h.dataDir);
    const ws = (await store.workspaces.list())[0]!;
    const sb = (await store.sandboxes.get(ws.id, "origin"))!;
    const now = new Date().toISOString();
    await store.snapshots.insert({
      id: "halftaken000",
      workspaceId: ws.id,
      name: "half",
      displayName: "half",
      labels: {},
      kind: "snapshot",
      sourceName: "origin",
      sourceId: sb.id,
      status: "pending",
      spec: sb.spec,
      processes: false,
      sizeBytes: null,
      error: null,
      leaseOwner: "snap-deadserver",
      leaseExpiresAt: new Date(Date.now() + 600_000).toISOString(),
      createdAt: now,
      updatedAt: now,
    });
    await store.close();
    mkdirSync(join(h.dataDir, "snapshots", "halftaken000"), { recursive: true });
    writeFileSync(join(h.dataDir, "snapshots", "halftaken000", "files.tar"), "partial");

    h = await h.restart();
    const half = (await (await api(h, "GET", "/v0/snapshots/half")).json()) as { status: string; error: string };
    expect(half).toMatchObject({ status: "failed", error: expect.stringMatching(/server stopped/) });
    expect(existsSync(join(h.dataDir, "snapshots", "halftaken000"))).toBe(false);
    // the sandboxes came back, the fork with its counter still counting
    const o = await sdk.SandboxInstance.get("origin");
    expect(await o.fs.read("/data/a.txt")).toBe("v1");
    if (criuInstalled) {
      const f = await sdk.SandboxInstance.get("forked");
      const c = await count(f);
      await new Promise((r) => setTimeout(r, 300));
      expect(await count(f)).toBeGreaterThan(c);
    }
  }, 120_000);

  it("lists snapshots and forks with the hangar CLI", async () => {
    const cli = (args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, HANGAR_URL: h.url, HANGAR_API_KEY: h.apiKey, HANGAR_WORKSPACE: "default", HANGAR_CONFIG: join(h.dataDir, "cli.json") }, timeout: 60_000 });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    await origin.snapshots.create("cli-snap").catch(async () => (await sdk.SandboxInstance.get("origin")).snapshots.create("cli-snap"));
    const got = cli(["get", "snapshots"]);
    expect(got.code, got.err).toBe(0);
    expect(got.out).toMatch(/^NAME\s+ID\s+SOURCE\s+STATUS/);
    expect(got.out).toMatch(/cli-snap\s+\S+\s+origin\s+ready/);
    expect(got.out).toMatch(/half\s+\S+\s+origin\s+failed/);
    const f = cli(["fork", "origin", "cli-fork"]);
    expect(f.code, f.err).toBe(0);
    expect(f.out).toMatch(/cli-fork\s+sandbox\/origin/);
    expect(await (await sdk.SandboxInstance.get("cli-fork")).fs.read("/data/a.txt")).toBe("v1");
    const bad = cli(["fork", "origin", "cli-fork"]);
    expect(bad.code).not.toBe(0);
  });
});
