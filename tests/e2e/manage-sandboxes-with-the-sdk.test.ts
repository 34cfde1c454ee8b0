// A user manages sandboxes with the unmodified official SDK: create, get, list, update, delete.

import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningHangar, api, startHangar, useSdkAgainst } from "./harness.js";

let h: RunningHangar;
let SandboxInstance: typeof import("@blaxel/core").SandboxInstance;

beforeAll(async () => {
  h = await startHangar();
  useSdkAgainst(h);
  ({ SandboxInstance } = await import("@blaxel/core"));
});

afterAll(async () => {
  await h?.dispose();
});

describe("managing sandboxes with @blaxel/core", () => {
  it("creates a sandbox that is DEPLOYED with a data-plane URL on this server", async () => {
    const sb = await SandboxInstance.create({ name: "sdk-create", memory: 512, labels: { team: "a" }, ports: [{ target: 3000 }], envs: [{ name: "GREETING", value: "hi" }] });
    expect(sb.metadata.name).toBe("sdk-create");
    expect(sb.status).toBe("DEPLOYED");
    expect(sb.metadata.url).toBe(`${h.url}/run/default/sandboxes/sdk-create`);
    expect(sb.spec.runtime?.memory).toBe(512);
    expect(sb.spec.runtime?.ports).toEqual([{ target: 3000, protocol: "HTTP" }]);
    const got = await SandboxInstance.get("sdk-create");
    expect(got.metadata.labels).toEqual({ team: "a" });
    expect(["RUNNING", "STANDBY"]).toContain((got.sandbox as { state?: string }).state);
    const r = await got.process.exec({ command: "echo $GREETING; hostname", waitForCompletion: true });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("hi\nsdk-create\n");
  });

  it("generates a name when none is given", async () => {
    const sb = await SandboxInstance.create({ memory: 256 });
    expect(sb.metadata.name).toMatch(/^sandbox-[a-z0-9]{8}$/);
    await SandboxInstance.delete(sb.metadata.name);
  });

  it("answers 404 with the body the SDK recognises, and 409 on a duplicate name", async () => {
    await expect(SandboxInstance.get("does-not-exist")).rejects.toMatchObject({ code: 404 });
    await expect(SandboxInstance.create({ name: "sdk-create", memory: 256 })).rejects.toMatchObject({ code: 409 });
  });

  it("converges concurrent createIfNotExists calls on one sandbox", async () => {
    const all = await Promise.all(Array.from({ length: 6 }, () => SandboxInstance.createIfNotExists({ name: "sdk-race", memory: 256 })));
    const created = new Set(all.map((s) => s.metadata.createdAt));
    expect(created.size).toBe(1);
    expect(all.every((s) => s.status === "DEPLOYED")).toBe(true);
    const list = await SandboxInstance.list({ q: "sdk-race" } as never);
    expect(list.data.filter((s) => s.metadata.name === "sdk-race")).toHaveLength(1);
  });

  it("pages through a listing with the SDK's cursor walk", async () => {
    await Promise.all(Array.from({ length: 5 }, (_, i) => SandboxInstance.create({ name: `sdk-page-${i}`, memory: 256, labels: { page: "yes" } })));
    const first = await SandboxInstance.list({ limit: 2, sort: "name:asc" } as never);
    expect(first.data).toHaveLength(2);
    expect(first.hasMore).toBe(true);
    const names: string[] = [];
    for await (const sb of first) names.push(sb.metadata.name);
    expect(names).toEqual([...names].sort());
    expect(names.filter((n) => n.startsWith("sdk-page-"))).toHaveLength(5);
    expect(new Set(names).size).toBe(names.length);
  });

  it("finds a sandbox by external id", async () => {
    await SandboxInstance.create({ name: "sdk-ext", memory: 256, externalId: "session-42" } as never);
    const sb = await SandboxInstance.getByExternalId("session-42");
    expect(sb.metadata.name).toBe("sdk-ext");
  });

  it("updates labels, TTL and lifecycle in place: files and processes survive", async () => {
    const sb = await SandboxInstance.get("sdk-create");
    await sb.fs.write("/tmp/keep.txt", "still here");
    await sb.process.exec({ name: "sleeper", command: "sleep 600" });
    await SandboxInstance.updateMetadata("sdk-create", { labels: { team: "b" } });
    const withTtl = await SandboxInstance.updateTtl("sdk-create", "2h");
    expect(withTtl.spec.runtime?.ttl).toBe("2h");
    expect(withTtl.expiresIn).toBeGreaterThan(7000);
    const withLifecycle = await SandboxInstance.updateLifecycle("sdk-create", { expirationPolicies: [{ type: "ttl-idle", value: "1h", action: "delete" }] });
    expect(withLifecycle.spec.lifecycle?.expirationPolicies?.[0]?.type).toBe("ttl-idle");
    const cleared = await SandboxInstance.updateTtl("sdk-create", "");
    expect(cleared.spec.runtime?.ttl).toBeUndefined();
    const after = await SandboxInstance.get("sdk-create");
    expect(after.metadata.labels).toEqual({ team: "b" });
    expect(await after.fs.read("/tmp/keep.txt")).toBe("still here");
    expect((await after.process.get("sleeper")).status).toBe("running");
  });

  it("reboots onto a fresh filesystem when the environment changes, as Blaxel does", async () => {
    const sb = await SandboxInstance.get("sdk-create");
    const body = { ...sb.sandbox, spec: { ...sb.spec, runtime: { ...sb.spec.runtime, envs: [{ name: "GREETING", value: "hello again" }] } } };
    const res = await api(h, "PUT", "/v0/sandboxes/sdk-create", body);
    expect(res.status).toBe(200);
    const after = await SandboxInstance.get("sdk-create");
    await expect(after.fs.read("/tmp/keep.txt")).rejects.toBeDefined();
    const r = await after.process.exec({ command: "echo $GREETING", waitForCompletion: true });
    expect(r.stdout).toBe("hello again\n");
    await expect(after.process.get("sleeper")).rejects.toBeDefined();
  });

  it("deletes: DELETING, then gone, with no output left on the host", async () => {
    const marker = `zero-retention-${Date.now()}`;
    await (await SandboxInstance.get("sdk-ext")).process.exec({ command: `echo ${marker}`, waitForCompletion: true });
    const logged = () => execFileSync("sh", ["-c", `grep -rl ${marker} ${h.dataDir} || true`], { encoding: "utf8" }).trim();
    expect(logged()).not.toBe("");
    const del = (await SandboxInstance.delete("sdk-ext")) as { status?: string };
    expect(del.status).toBe("DELETING");
    const deadline = Date.now() + 30_000;
    let gone = false;
    while (!gone && Date.now() < deadline) {
      gone = (await api(h, "GET", "/v0/sandboxes/sdk-ext")).status === 404;
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    expect(gone).toBe(true);
    expect(logged()).toBe("");
  });
});
