import { HangarError } from "@hangar/common";
import type { SecretBox, SqlStore, WorkspaceRecord } from "@hangar/store";
import { type TestStore, openTestStore } from "@hangar/store/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { NodeSandboxSpec, SandboxNodePort } from "../node-port.js";
import { SandboxService } from "./sandbox-service.js";
import type { SandboxSpecDoc } from "./sandbox-spec.js";
import { ENV_MASK, redactSpec } from "./secrets.js";

/**
 * A node that records what it was asked to do, in order; `fail` makes start throw; `activity`
 * holds the last activity it reports per sandbox id.
 */
function fakeNode(fail?: (spec: NodeSandboxSpec) => Error | undefined) {
  const started: NodeSandboxSpec[] = [];
  const calls: string[] = [];
  const activity = new Map<string, number>();
  const node: SandboxNodePort = {
    nodeName: "test",
    ensureImage: async () => undefined,
    start: async (spec) => {
      const e = fail?.(spec);
      if (e) throw e;
      started.push(spec);
      calls.push(`start ${spec.id}`);
    },
    restart: async (spec) => void calls.push(`restart ${spec.id}`),
    updateNetwork: async (spec) => void calls.push(`network ${spec.id}`),
    destroy: async (id) => void calls.push(`destroy ${id}`),
    state: () => "RUNNING",
    lastActivity: (id) => activity.get(id) ?? null,
    standby: async () => undefined,
  };
  return { node, started, calls, activity };
}

describe("SandboxService runtime class", () => {
  let t: TestStore;
  let store: SqlStore;
  let secrets: SecretBox;
  let ws: WorkspaceRecord;

  beforeEach(async () => {
    t = await openTestStore();
    ({ store, secrets, workspace: ws } = t);
  });

  afterEach(() => t.close());

  it("applies the node's default class where the spec has none and states it in the spec", async () => {
    const { node, started } = fakeNode();
    const svc = new SandboxService({ store, node, secrets, defaultRuntimeClass: "gvisor" });
    const rec = await svc.create(ws, { metadata: { name: "g" }, spec: { runtime: { memory: 256 } } });
    expect((rec.spec as { runtime: { runtimeClass?: string } }).runtime.runtimeClass).toBe("gvisor");
    expect(started[0]!.runtimeClass).toBe("gvisor");

    // an explicit class wins over the node's default
    const d = await svc.create(ws, { metadata: { name: "d" }, spec: { runtime: { memory: 256, runtimeClass: "default" } } });
    expect((d.spec as { runtime: { runtimeClass?: string } }).runtime.runtimeClass).toBe("default");
    expect(started[1]!.runtimeClass).toBe("default");

    // a PUT that leaves the class out keeps it; one that changes it is refused
    const put = await svc.update(ws, "g", { spec: { runtime: { memory: 256, envs: [{ name: "A", value: "1" }] } } });
    expect((put.spec as { runtime: { runtimeClass?: string } }).runtime.runtimeClass).toBe("gvisor");
    await expect(svc.update(ws, "g", { spec: { runtime: { memory: 256, runtimeClass: "default" } } })).rejects.toThrow(/cannot change/);
  });

  it("without a node default, leaves the spec as given (the runtime's default applies)", async () => {
    const { node, started } = fakeNode();
    const svc = new SandboxService({ store, node, secrets });
    const rec = await svc.create(ws, { metadata: { name: "x" }, spec: { runtime: { memory: 256 } } });
    expect((rec.spec as { runtime: { runtimeClass?: string } }).runtime.runtimeClass).toBeUndefined();
    expect(started[0]!.runtimeClass).toBeUndefined();
  });

  it("a gvisor sandbox on a node without runsc fails with the node's problem and is marked FAILED", async () => {
    const { node } = fakeNode((spec) =>
      spec.runtimeClass === "gvisor" ? new HangarError("not_configured", "runtime class gvisor needs runsc (Debian package runsc)") : undefined,
    );
    const svc = new SandboxService({ store, node, secrets, defaultRuntimeClass: "gvisor" });
    const err = await svc.create(ws, { metadata: { name: "nogv" }, spec: { runtime: { memory: 256 } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HangarError);
    expect((err as HangarError).code).toBe("not_configured");
    expect((err as HangarError).status).toBe(503);
    expect((await svc.get(ws, "nogv")).status).toBe("FAILED");
  });
});

describe("SandboxService with Blaxel's semantics", () => {
  let t: TestStore;
  let store: SqlStore;
  let secrets: SecretBox;
  let ws: WorkspaceRecord;

  beforeEach(async () => {
    t = await openTestStore();
    ({ store, secrets, workspace: ws } = t);
  });

  afterEach(() => t.close());

  /** Moves a stored sandbox's clock back: created, last used and due `ago` ms earlier. */
  async function age(id: string, agoMs: number) {
    const rec = (await store.sandboxes.getById(id))!;
    const past = (iso: string) => new Date(Date.parse(iso) - agoMs).toISOString();
    const spec = rec.spec as unknown as SandboxSpecDoc;
    await store.sandboxes.update(id, {
      spec: { ...spec, runtime: { ...spec.runtime, ...(spec.runtime.expires ? { expires: past(spec.runtime.expires) } : {}) } } as unknown as Record<string, unknown>,
      lastUsedAt: past(rec.lastUsedAt),
      expiresAt: rec.expiresAt ? past(rec.expiresAt) : null,
    });
  }

  it("a sandbox past its expiry reads TERMINATED everywhere before the reaper runs, and its name makes a fresh sandbox", async () => {
    const { node, calls } = fakeNode();
    const svc = new SandboxService({ store, node, secrets });
    const first = await svc.create(ws, { metadata: { name: "short", externalId: "job-1" }, spec: { runtime: { memory: 256, expires: new Date(Date.now() + 60_000).toISOString() } } });
    await svc.create(ws, { metadata: { name: "other" }, spec: { runtime: { memory: 256 } } });
    expect((await svc.get(ws, "short")).status).toBe("DEPLOYED");
    await age(first.id, 61_000);

    expect((await svc.get(ws, "short")).status).toBe("TERMINATED");
    expect((await svc.getForRequest(ws, "short")).status).toBe("TERMINATED");
    expect((await svc.getByIdForRequest(first.id))?.terminatedAt).not.toBeNull();
    expect((await store.sandboxes.getById(first.id))?.status).toBe("DEPLOYED"); // the reaper's to end
    await expect(svc.getByExternalId(ws, "job-1")).rejects.toMatchObject({ code: "sandbox_not_found" });
    const listed = (q = {}) => svc.list(ws, { sort: "name:asc", limit: 50, ...q }).then((p) => p.items.map((r) => `${r.name}:${r.status}`));
    expect(await listed()).toEqual(["other:DEPLOYED"]);
    expect(await listed({ showTerminated: true })).toEqual(["other:DEPLOYED", "short:TERMINATED"]);
    expect(await listed({ statuses: ["DEPLOYED"] })).toEqual(["other:DEPLOYED"]);
    await expect(svc.update(ws, "short", { metadata: { labels: { a: "b" } } })).rejects.toMatchObject({ status: 409 });

    // the same name again: the old runtime (files) is destroyed first, a new sandbox starts
    const again = await svc.create(ws, { metadata: { name: "short" }, spec: { runtime: { memory: 256 } } });
    expect(again.id).not.toBe(first.id);
    expect(again.status).toBe("DEPLOYED");
    expect(calls.slice(-2)).toEqual([`destroy ${first.id}`, `start ${again.id}`]);
    expect(await store.sandboxes.getById(first.id)).toBeNull();
  });

  it("ttl-idle: a sandbox the node saw in use is neither reported TERMINATED nor replaced early", async () => {
    const { node, calls, activity } = fakeNode();
    const svc = new SandboxService({ store, node, secrets });
    const rec = await svc.create(ws, { metadata: { name: "idler" }, spec: { runtime: { memory: 256 }, lifecycle: { expirationPolicies: [{ type: "ttl-idle", value: "5s", action: "delete" }] } } });
    await age(rec.id, 10_000); // the store thinks it has been idle for 10 s
    activity.set(rec.id, Date.now() - 1_000); // the node saw it used a second ago
    expect((await svc.get(ws, "idler")).status).toBe("DEPLOYED");
    await expect(svc.create(ws, { metadata: { name: "idler" }, spec: { runtime: { memory: 256 } } })).rejects.toMatchObject({ status: 409 });
    expect(calls).not.toContain(`destroy ${rec.id}`);
    // once even the node's last use is older than the idle TTL, it reads TERMINATED
    activity.set(rec.id, Date.now() - 6_000);
    expect((await svc.get(ws, "idler")).status).toBe("TERMINATED");
  });

  it("an env change reboots the sandbox on a fresh runtime with the new env; labels, TTL and network keep it; memory restarts it", async () => {
    const { node, calls, started } = fakeNode();
    const svc = new SandboxService({ store, node, secrets });
    const rec = await svc.create(ws, { metadata: { name: "box" }, spec: { runtime: { memory: 256, envs: [{ name: "A", value: "1" }, { name: "S", value: "s3cret", secret: true }] } } });
    const shown = () => svc.get(ws, "box").then((r) => ({ metadata: { name: r.name, labels: r.labels }, spec: redactSpec(r.spec as unknown as SandboxSpecDoc) }));
    calls.length = 0;

    // read-modify-write of labels and TTL: the masked values go back and change nothing
    let body = await shown();
    expect(body.spec.runtime.envs?.map((e) => e.value)).toEqual([ENV_MASK, ENV_MASK]);
    await svc.update(ws, "box", { metadata: { ...body.metadata, labels: { team: "b" } }, spec: { ...body.spec, runtime: { ...body.spec.runtime, ttl: "2h" } } });
    body = await shown();
    await svc.update(ws, "box", { ...body, spec: { ...body.spec, network: { allowedDomains: ["example.com"] } } });
    expect(calls).toEqual([`network ${rec.id}`]);
    expect(svc.nodeSpec(await svc.get(ws, "box"), ws).envs).toEqual({ A: "1", S: "s3cret" });

    // memory: processes restart on the same files
    body = await shown();
    await svc.update(ws, "box", { ...body, spec: { ...body.spec, runtime: { ...body.spec.runtime, memory: 512 } } });
    expect(calls.at(-1)).toBe(`restart ${rec.id}`);

    // an env value: destroy, then start again under the same id with the new env; masked ones kept
    body = await shown();
    const after = await svc.update(ws, "box", { ...body, spec: { ...body.spec, runtime: { ...body.spec.runtime, envs: [{ name: "A", value: "2" }, { name: "S", value: ENV_MASK, secret: true }] } } });
    expect(calls.slice(-2)).toEqual([`destroy ${rec.id}`, `start ${rec.id}`]);
    expect(started.at(-1)?.envs).toEqual({ A: "2", S: "s3cret" });
    expect(after.status).toBe("DEPLOYED");
    expect(after.id).toBe(rec.id);
    expect(after.labels).toEqual({ team: "b" });
    expect(after.events.map((e) => e.message)).toContain("environment changed: rebooting on a fresh filesystem");
  });

  it("a reboot that fails to start leaves the sandbox FAILED with the node's reason", async () => {
    let failNext = false;
    const { node } = fakeNode(() => (failNext ? new HangarError("runtime_failed", "no room") : undefined));
    const svc = new SandboxService({ store, node, secrets });
    await svc.create(ws, { metadata: { name: "box" }, spec: { runtime: { memory: 256, envs: [{ name: "A", value: "1" }] } } });
    failNext = true;
    await expect(svc.update(ws, "box", { spec: { runtime: { memory: 256, envs: [{ name: "A", value: "2" }] } } })).rejects.toThrow(/no room/);
    expect((await svc.get(ws, "box")).status).toBe("FAILED");
  });

  it("places sandboxes in the node's regions: the default when none is given, never elsewhere, never moved", async () => {
    const { node } = fakeNode();
    const svc = new SandboxService({ store, node, secrets, regions: ["eu-par-1", "us-was-1"] });
    expect(svc.regions).toEqual(["eu-par-1", "us-was-1"]);
    const region = (r: { spec: Record<string, unknown> }) => (r.spec as unknown as SandboxSpecDoc).region;
    expect(region(await svc.create(ws, { metadata: { name: "a" }, spec: { runtime: { memory: 256 } } }))).toBe("eu-par-1");
    expect(region(await svc.create(ws, { metadata: { name: "b" }, spec: { region: "us-was-1", runtime: { memory: 256 } } }))).toBe("us-was-1");
    const err = (await svc.create(ws, { metadata: { name: "c" }, spec: { region: "us-pdx-1", runtime: { memory: 256 } } }).catch((e: unknown) => e)) as HangarError;
    expect(err.code).toBe("validation_failed");
    expect(err.message).toBe('spec.region: unknown region "us-pdx-1"; this server offers eu-par-1, us-was-1');
    expect(err.extras).toEqual({ field: "spec.region", allowed: ["eu-par-1", "us-was-1"] });
    expect(await store.sandboxes.get(ws.id, "c")).toBeNull();
    // a PUT without a region keeps it; one with another is refused
    expect(region(await svc.update(ws, "b", { spec: { runtime: { memory: 256 } } }))).toBe("us-was-1");
    await expect(svc.update(ws, "b", { spec: { region: "eu-par-1", runtime: { memory: 256 } } })).rejects.toThrow(/cannot move from us-was-1 to eu-par-1/);
    // without HANGAR_REGIONS: one region, local-1
    expect(new SandboxService({ store, node, secrets }).regions).toEqual(["local-1"]);
  });
});
