// StorageService over a real store and real ext4 images on loop devices (root only).

import { promises as fs } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { zipFiles } from "@hangar/testkit";
import { type TestStore, openTestStore } from "@hangar/store/testing";
import { LocalDriveBackend, StorageService, checkMountPath } from "./storage-service.js";
import { VolumeHost, hostMounts, sh } from "./host.js";
import { drivePathOf } from "./drive-mounts.js";

let t: TestStore;
let storage: StorageService;
let mountDir: string;
const q = { sort: "name:asc" as const, limit: 50 };

beforeAll(async () => {
  t = await openTestStore();
  mountDir = join(t.dir, "mnt");
  storage = new StorageService({
    store: t.store,
    volumes: new VolumeHost({ imagesDir: join(t.dir, "volumes"), mountDir, rootUid: 1_000_000_000 }),
    drives: new LocalDriveBackend(join(t.dir, "drives")),
    templatesDir: join(t.dir, "templates"),
    rootUid: 1_000_000_000,
    defaultRegion: "local-1",
  });
});

afterAll(async () => {
  for (const [m] of await hostMounts()) if (m.startsWith(`${mountDir}/`)) await sh("umount", ["-l", m]);
  await t.close();
});

describe("volumes", () => {
  it("creates a sparse ext4 image whose root is owned by a sandbox's root", async () => {
    const v = await storage.createVolume(t.workspace, { metadata: { name: "v1" }, spec: { size: 32 } });
    expect(v).toMatchObject({ name: "v1", status: "DEPLOYED", spec: { size: 32, region: "local-1" } });
    const img = storage.volumeHost.image(v.id);
    const st = await fs.stat(img);
    expect(st.size).toBe(32 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(8 * 1024 * 1024);
    const mnt = await storage.volumeHost.mount(v.id);
    expect((await fs.stat(mnt)).uid).toBe(1_000_000_000);
    await storage.volumeHost.unmount(v.id);
    await expect(storage.createVolume(t.workspace, { metadata: { name: "v1" }, spec: { size: 32 } })).rejects.toMatchObject({ code: "already_exists" });
    await expect(storage.createVolume(t.workspace, { metadata: { name: "v2" }, spec: { size: 3 } })).rejects.toMatchObject({ code: "validation_failed" });
  });

  it("lets one sandbox at a time hold a volume, frees it on release, and refuses deleting it meanwhile", async () => {
    const binds = await storage.attach("default", "sbx1", [{ name: "v1", mountPath: "/data" }]);
    expect(binds).toEqual([{ source: storage.volumeHost.mountPoint((await storage.get(t.workspace, "volumes", "v1")).id), destination: "/data", readOnly: false }]);
    // the same sandbox again (restart, adoption) is fine; another is a 409
    await storage.attach("default", "sbx1", [{ name: "v1", mountPath: "/data" }]);
    await expect(storage.attach("default", "sbx2", [{ name: "v1", mountPath: "/data" }])).rejects.toMatchObject({ code: "volume_in_use" });
    await expect(storage.deleteVolume(t.workspace, "v1")).rejects.toMatchObject({ code: "volume_in_use" });
    await expect(storage.attach("default", "sbx2", [{ name: "nope", mountPath: "/data" }])).rejects.toMatchObject({ code: "volume_not_found" });
    await expect(storage.attach("default", "sbx2", [{ name: "v1", mountPath: "/proc/x" }])).rejects.toMatchObject({ code: "invalid_path" });
    await storage.release("sbx1");
    expect((await storage.get(t.workspace, "volumes", "v1")).attachedTo).toBeNull();
    await storage.attach("default", "sbx2", [{ name: "v1", mountPath: "/data" }]);
    await storage.release("sbx2");
  });

  it("grows a volume offline, or at its next mount when mounted, keeping the data", async () => {
    const v = await storage.get(t.workspace, "volumes", "v1");
    const mnt = await storage.volumeHost.mount(v.id);
    await fs.writeFile(`${mnt}/keep.txt`, "kept");
    await storage.updateVolume(t.workspace, "v1", { spec: { size: 64 } });
    await storage.volumeHost.unmount(v.id);
    const again = await storage.volumeHost.mount(v.id);
    expect(await fs.readFile(`${again}/keep.txt`, "utf8")).toBe("kept");
    expect((await storage.volumeHost.usage(v.id))!.total).toBeGreaterThan(50 * 1024 * 1024);
    await storage.volumeHost.unmount(v.id);
    await expect(storage.updateVolume(t.workspace, "v1", { spec: { size: 32 } })).rejects.toMatchObject({ code: "validation_failed" });
    await storage.deleteVolume(t.workspace, "v1");
    expect(storage.volumeHost.exists(v.id)).toBe(false);
  });

  it("pages through volumes", async () => {
    for (const n of ["p1", "p2", "p3"]) await storage.createVolume(t.workspace, { metadata: { name: n }, spec: { size: 16 } });
    const first = await storage.list(t.workspace, "volumes", { ...q, limit: 2 });
    expect(first.items.map((r) => r.name)).toEqual(["p1", "p2"]);
    const next = await storage.list(t.workspace, "volumes", { ...q, limit: 2, cursor: first.nextCursor! });
    expect(next.items.map((r) => r.name)).toEqual(["p3"]);
    expect(next.nextCursor).toBeNull();
  });

  it("starts a volume from a template version, files owned by a sandbox's root", async () => {
    await storage.createTemplate(t.workspace, { metadata: { name: "tpl" }, spec: { defaultSize: 24 } });
    await storage.uploadTemplateVersion(t.workspace, "tpl", "v1", zipFiles({ "a/b.txt": "seeded" }), 1 << 20);
    await expect(storage.uploadTemplateVersion(t.workspace, "tpl", "v2", Buffer.from("nope"), 1 << 20)).rejects.toMatchObject({ code: "invalid_archive" });
    const v = await storage.createVolume(t.workspace, { metadata: { name: "from-tpl" }, spec: { template: "tpl:v1" } });
    expect(v.spec).toMatchObject({ size: 24, template: "tpl:v1" });
    const mnt = await storage.volumeHost.mount(v.id);
    expect(await fs.readFile(`${mnt}/a/b.txt`, "utf8")).toBe("seeded");
    expect((await fs.stat(`${mnt}/a/b.txt`)).uid).toBe(1_000_000_000);
    await storage.volumeHost.unmount(v.id);
  });
});

describe("recovery after a restart", () => {
  it("removes half-made volumes and releases claims of sandboxes that are gone", async () => {
    await storage.createVolume(t.workspace, { metadata: { name: "held" }, spec: { size: 16 } });
    await storage.createVolume(t.workspace, { metadata: { name: "kept" }, spec: { size: 16 } });
    await storage.attach("default", "gone", [{ name: "held", mountPath: "/a" }]);
    await storage.attach("default", "alive", [{ name: "kept", mountPath: "/a" }]);
    const half = await storage.createVolume(t.workspace, { metadata: { name: "half" }, spec: { size: 16 } });
    await t.store.storage.update(half.id, { status: "DEPLOYING" });
    const r = await storage.recover(new Set(["alive"]));
    expect(r).toEqual({ removed: ["half"], released: ["held"] });
    expect((await storage.get(t.workspace, "volumes", "held")).attachedTo).toBeNull();
    expect((await storage.get(t.workspace, "volumes", "kept")).attachedTo).toBe("alive");
    expect(storage.volumeHost.exists(half.id)).toBe(false);
    await storage.release("alive");
  });
});

describe("paths", () => {
  it("accepts ordinary mount paths and refuses the root, system paths and '..'", () => {
    expect(checkMountPath("/mnt/data/", "p")).toBe("/mnt/data");
    for (const bad of ["/", "relative", "/proc", "/proc/sys", "/sys/x", "/dev/shm", "/.hangar/run", "/a/../proc", "/etc/hosts", "", 3]) {
      expect(() => checkMountPath(bad, "p"), String(bad)).toThrow();
    }
  });

  it("keeps a drivePath inside the drive", () => {
    expect(drivePathOf(undefined)).toBe("/");
    expect(drivePathOf("/projects/alpha/")).toBe("/projects/alpha");
    expect(drivePathOf("projects//./alpha")).toBe("/projects/alpha");
    for (const bad of ["../x", "/a/../../b", "/a/..", 5]) expect(() => drivePathOf(bad), String(bad)).toThrow();
  });
});
