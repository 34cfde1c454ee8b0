import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HangarError } from "@hangar/common";
import { type SqlStore, SecretBox, type WorkspaceRecord, openSqliteStore } from "@hangar/store";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { NodeSandboxSpec, SandboxNodePort } from "../node-port.js";
import { SandboxService } from "./sandbox-service.js";

/** A node that records what it was asked to start; `fail` makes start throw. */
function fakeNode(fail?: (spec: NodeSandboxSpec) => Error | undefined) {
  const started: NodeSandboxSpec[] = [];
  const node: SandboxNodePort = {
    nodeName: "test",
    ensureImage: async () => undefined,
    start: async (spec) => {
      const e = fail?.(spec);
      if (e) throw e;
      started.push(spec);
    },
    restart: async () => undefined,
    updateNetwork: async () => undefined,
    destroy: async () => undefined,
    state: () => "RUNNING",
    standby: async () => undefined,
  };
  return { node, started };
}

describe("SandboxService runtime class", () => {
  let dir: string;
  let store: SqlStore;
  let secrets: SecretBox;
  let ws: WorkspaceRecord;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "hangar-cp-"));
    store = await openSqliteStore(dir);
    secrets = SecretBox.open(dir);
    const now = new Date().toISOString();
    ws = await store.workspaces.create({ id: "ws1", name: "default", displayName: "", labels: {}, createdAt: now, updatedAt: now });
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

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
