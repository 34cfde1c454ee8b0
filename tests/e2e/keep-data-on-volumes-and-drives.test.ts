// A user keeps data between sandboxes: volumes (size-enforced, one writer, attached at creation)
// and drives (shared, mounted into running sandboxes), through the unmodified @blaxel/core; data
// survives sandbox deletion, standby on disk and a server crash; hostile mount requests get a 4xx
// and mount nothing.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type RunningHangar, api, startHangar, useSdkAgainst, zipFiles } from "./harness.js";

let h: RunningHangar;
let sdk: typeof import("@blaxel/core");
type Sbx = import("@blaxel/core").SandboxInstance;

const criuInstalled = existsSync("/opt/hangar/criu/tools.json");

beforeAll(async () => {
  h = await startHangar({ env: { HANGAR_STANDBY_IDLE: "60s", HANGAR_STANDBY_CHECKPOINT_AFTER: "1s" } });
  useSdkAgainst(h);
  sdk = await import("@blaxel/core");
}, 180_000);

afterAll(async () => {
  if (process.env.HANGAR_E2E_DEBUG) console.log(h?.output().slice(-8000));
  await h?.dispose();
  // nothing of this server is left mounted on the host
  const left = readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(h.instance.env.HANGAR_RUN_DIR ?? "/nonexistent") && l.includes("/volumes/"));
  expect(left).toEqual([]);
});

async function sh(sb: Sbx, command: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await sb.process.exec({ command, waitForCompletion: true });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Parks a sandbox and waits until the linux driver has checkpointed it to disk (CRIU). */
async function checkpoint(name: string): Promise<void> {
  expect((await api(h, "POST", `/v0/sandboxes/${name}/standby`)).status).toBe(200);
  const dir = join(h.dataDir, "runtime", "sandboxes");
  const t0 = Date.now();
  for (;;) {
    for (const f of readdirSync(dir).filter((x) => x.endsWith(".json"))) {
      const rec = JSON.parse(readFileSync(join(dir, f), "utf8")) as { spec: { name: string }; checkpoint?: unknown };
      if (rec.spec.name === name && rec.checkpoint) return;
    }
    if (Date.now() - t0 > 20_000) throw new Error(`${name} not checkpointed:\n${h.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("volumes", () => {
  it("creates, gets, lists page by page, finds by external id and updates volumes", async () => {
    const { VolumeInstance } = sdk;
    const v = await VolumeInstance.create({ name: "vol-a", size: 64, labels: { team: "x" } });
    expect(v.name).toBe("vol-a");
    expect(v.size).toBe(64);
    expect(v.status).toBe("DEPLOYED");
    await VolumeInstance.create({ name: "vol-b", size: 32 });
    await VolumeInstance.create({ metadata: { name: "vol-c", externalId: "ext-c-1" }, spec: { size: 32 } } as never);
    await expect(VolumeInstance.create({ name: "vol-a", size: 64 })).rejects.toMatchObject({ code: 409 });
    expect((await VolumeInstance.createIfNotExists({ name: "vol-a", size: 64 })).metadata.createdAt).toBe(v.metadata.createdAt);
    const first = await VolumeInstance.list({ limit: 2, sort: "name:asc" } as never);
    expect(first.data.map((x) => x.name)).toEqual(["vol-a", "vol-b"]);
    expect(first.hasMore).toBe(true);
    const all = await first.autoPagingToArray({ limit: 100 });
    expect(all.map((x) => x.name)).toEqual(["vol-a", "vol-b", "vol-c"]);
    const byExt = await api(h, "GET", "/v0/volumes/by-external-id/ext-c-1");
    expect(((await byExt.json()) as { metadata: { name: string } }).metadata.name).toBe("vol-c");
    const up = await VolumeInstance.update("vol-b", { labels: { k: "v" } });
    expect(up.metadata.labels).toEqual({ k: "v" });
    await VolumeInstance.delete("vol-c");
    await expect(VolumeInstance.get("vol-c")).rejects.toMatchObject({ code: 404 });
    // bad sizes and names are 400s
    expect((await api(h, "POST", "/v0/volumes", { metadata: { name: "vol-bad" }, spec: { size: -5 } })).status).toBe(400);
    expect((await api(h, "POST", "/v0/volumes", { metadata: { name: "Bad_Name" }, spec: { size: 32 } })).status).toBe(400);
  });

  let holder: Sbx;

  it("attaches a volume at creation, owned by the sandbox's root, and names its holder", async () => {
    holder = await sdk.SandboxInstance.create({ name: "vol-holder", memory: 512, volumes: [{ name: "vol-a", mountPath: "/data", readOnly: false }] });
    await holder.fs.write("/data/notes.txt", "kept on the volume");
    const r = await sh(holder, "stat -c '%u:%g' /data /data/notes.txt && df -m /data | tail -1");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^0:0\n0:0\n/);
    const v = await sdk.VolumeInstance.get("vol-a");
    expect((v.volume as { state?: { attachedTo?: string } }).state?.attachedTo).toBe("sandbox:vol-holder");
  });

  it("refuses a second sandbox on a volume in use, and deleting an attached volume", async () => {
    await expect(sdk.SandboxInstance.create({ name: "vol-second", memory: 256, volumes: [{ name: "vol-a", mountPath: "/data" }] })).rejects.toMatchObject({ code: 409 });
    // refused before anything is stored; createIfNotExists of the holder itself still returns it
    expect((await api(h, "GET", "/v0/sandboxes/vol-second")).status).toBe(404);
    const same = await sdk.SandboxInstance.createIfNotExists({ name: "vol-holder", memory: 512, volumes: [{ name: "vol-a", mountPath: "/data" }] });
    expect(same.metadata.createdAt).toBe(holder.metadata.createdAt);
    await expect(sdk.VolumeInstance.delete("vol-a")).rejects.toMatchObject({ code: 409 });
    await expect(sdk.SandboxInstance.create({ name: "vol-unknown", memory: 256, volumes: [{ name: "no-such-volume", mountPath: "/data" }] })).rejects.toMatchObject({ code: 404 });
    expect((await api(h, "GET", "/v0/sandboxes/vol-unknown")).status).toBe(404);
    expect((await api(h, "POST", "/v0/sandboxes", { metadata: { name: "vol-proc" }, spec: { runtime: { memory: 256 }, volumes: [{ name: "vol-b", mountPath: "/proc/x" }] } })).status).toBe(400);
    // the volume is untouched
    expect(await holder.fs.read("/data/notes.txt")).toBe("kept on the volume");
  });

  it("gives a sandbox an ephemeral volume of its own, removed with it; bad attachments create nothing", async () => {
    const sb = await sdk.SandboxInstance.create({ name: "vol-eph", memory: 256, volumes: [{ name: "scratch", mountPath: "/scratch", type: "ephemeral", sizeMb: 32 } as never] });
    await sb.fs.write("/scratch/tmp.txt", "scratch");
    const size = Number((await sh(sb, "df -m --output=size /scratch | tail -1")).stdout.trim());
    expect(size).toBeGreaterThan(20);
    expect(size).toBeLessThan(40);
    const images = () => readdirSync(join(h.dataDir, "volumes")).filter((f) => f.startsWith("eph-"));
    expect(images()).toHaveLength(1);
    await sdk.SandboxInstance.delete("vol-eph");
    for (let i = 0; i < 100 && images().length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(images()).toEqual([]);
    for (const volumes of [[{ name: "vol-b", mountPath: "relative" }], [{ mountPath: "/x" }], [{ name: "s", mountPath: "/s", type: "ephemeral" }], "nope"]) {
      const r = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "vol-badspec" }, spec: { runtime: { memory: 256 }, volumes } });
      expect(r.status, JSON.stringify(volumes)).toBe(400);
      expect((await api(h, "GET", "/v0/sandboxes/vol-badspec")).status).toBe(404);
    }
  });

  it("fails a write past the volume's size with ENOSPC inside, the sandbox unharmed", async () => {
    const r = await sh(holder, "dd if=/dev/zero of=/data/big bs=1M count=100 2>&1; echo rc=$?");
    expect(r.stdout).toMatch(/No space left on device/);
    expect(r.stdout).not.toMatch(/rc=0/);
    expect((await sh(holder, "rm /data/big && echo fine")).stdout).toBe("fine\n");
    expect(await holder.fs.read("/data/notes.txt")).toBe("kept on the volume");
  });

  it("grows a volume (grow-only), its filesystem following by its next attachment, data kept", async () => {
    const v = await sdk.VolumeInstance.update("vol-a", { size: 128 });
    expect(v.size).toBe(128);
    expect(await holder.fs.read("/data/notes.txt")).toBe("kept on the volume");
    await expect(sdk.VolumeInstance.update("vol-a", { size: 64 })).rejects.toMatchObject({ code: 400 });
  });

  it("keeps the data when the sandbox is deleted and another attaches the volume", async () => {
    await sdk.SandboxInstance.delete("vol-holder");
    for (let i = 0; i < 100; i++) {
      const s = (await (await api(h, "GET", "/v0/volumes/vol-a")).json()) as { state: { attachedTo?: string } };
      if (!s.state.attachedTo) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    holder = await sdk.SandboxInstance.create({ name: "vol-holder2", memory: 512, volumes: [{ name: "vol-a", mountPath: "/srv/data" }, { name: "vol-b", mountPath: "/ro", readOnly: true }] });
    expect(await holder.fs.read("/srv/data/notes.txt")).toBe("kept on the volume");
    const size = Number((await sh(holder, "df -m --output=size /srv/data | tail -1")).stdout.trim());
    expect(size).toBeGreaterThan(100);
    const ro = await sh(holder, "touch /ro/x 2>&1; echo rc=$?");
    expect(ro.stdout).toMatch(/Read-only file system/);
  });

  it.skipIf(!criuInstalled)("comes back from a checkpoint to disk with its volume mounted", async () => {
    await holder.fs.write("/srv/data/before-checkpoint.txt", "1");
    await checkpoint("vol-holder2");
    expect(await holder.fs.read("/srv/data/before-checkpoint.txt")).toBe("1");
    await holder.fs.write("/srv/data/after-checkpoint.txt", "2");
    expect((await sh(holder, "cat /srv/data/after-checkpoint.txt")).stdout).toBe("2");
  });

  it("forks a sandbox with a volume without the volume (one writer): the fork gets the files only", async () => {
    await holder.fs.write("/root/layer.txt", "in the writable layer");
    await holder.fork("vol-fork");
    const fork = await sdk.SandboxInstance.get("vol-fork");
    expect(fork.status).toBe("DEPLOYED");
    expect(await fork.fs.read("/root/layer.txt")).toBe("in the writable layer");
    await expect(fork.fs.read("/srv/data/notes.txt")).rejects.toThrow();
    expect(await holder.fs.read("/srv/data/notes.txt")).toBe("kept on the volume");
    expect(((await (await api(h, "GET", "/v0/volumes/vol-a")).json()) as { state: { attachedTo?: string } }).state.attachedTo).toBe("sandbox:vol-holder2");
    await sdk.SandboxInstance.delete("vol-fork");
  });

  it.skipIf(!existsSync("/usr/bin/runsc"))("attaches a volume to a gVisor sandbox too", async () => {
    await sdk.VolumeInstance.create({ name: "vol-gv", size: 32 });
    const r = await api(h, "POST", "/v0/sandboxes", { metadata: { name: "vol-gvisor" }, spec: { runtime: { memory: 512, runtimeClass: "gvisor" }, volumes: [{ name: "vol-gv", mountPath: "/data" }] } });
    expect(r.status, await r.clone().text()).toBe(200);
    const sb = await sdk.SandboxInstance.get("vol-gvisor");
    await sb.fs.write("/data/g.txt", "from gVisor");
    expect(await sb.fs.read("/data/g.txt")).toBe("from gVisor");
    const big = await sh(sb, "dd if=/dev/zero of=/data/big bs=1M count=64 2>&1; echo rc=$?");
    expect(big.stdout).toMatch(/No space left on device/);
    await sdk.SandboxInstance.delete("vol-gvisor");
  });

  it("starts a volume from a template version", async () => {
    expect((await api(h, "POST", "/v0/volume_templates", { metadata: { name: "tpl" }, spec: { defaultSize: 48, description: "seed files" } })).status).toBe(200);
    const up = await fetch(`${h.url}/v0/volume_templates/tpl/versions/v1`, {
      method: "PUT",
      headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/zip" },
      body: zipFiles({ "seed/hello.txt": "from the template", "README.md": "# tpl" }),
    });
    expect(up.status, await up.clone().text()).toBe(200);
    const tpl = (await up.json()) as { state: { latestVersion: string; versionCount: number } };
    expect(tpl.state).toMatchObject({ latestVersion: "v1", versionCount: 1 });
    const bad = await fetch(`${h.url}/v0/volume_templates/tpl/versions/v2`, { method: "PUT", headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/zip" }, body: "not a zip" });
    expect(bad.status).toBe(400);
    // bl's flow: ?upload=true answers with an upload URL (single use) that takes the zip
    const put = await api(h, "PUT", "/v0/volume_templates/tpl?upload=true&version=v2", { metadata: { name: "tpl" }, spec: { defaultSize: 48 } });
    const uploadUrl = put.headers.get("x-blaxel-upload-url");
    expect(uploadUrl).toMatch(/\/upload\/volume-templates\//);
    expect((await fetch(uploadUrl!, { method: "PUT", body: zipFiles({ "v2.txt": "second" }) })).status).toBe(200);
    expect((await fetch(uploadUrl!, { method: "PUT", body: zipFiles({ "v2.txt": "again" }) })).status).toBe(401);
    const t2 = (await (await api(h, "GET", "/v0/volume_templates/tpl")).json()) as { state: { latestVersion: string }; versions: Array<{ name: string }> };
    expect(t2.state.latestVersion).toBe("v2");
    expect(t2.versions.map((x) => x.name)).toEqual(["v1", "v2"]);
    const v = await sdk.VolumeInstance.create({ name: "vol-tpl", template: "tpl:v1", size: 32 });
    expect(v.spec.template).toBe("tpl:v1");
    // without a size (the SDK always sends one), the template's defaultSize
    const raw = await api(h, "POST", "/v0/volumes", { metadata: { name: "vol-tpl-default" }, spec: { template: "tpl" } });
    expect(((await raw.json()) as { spec: { size: number; template: string } }).spec).toMatchObject({ size: 48, template: "tpl:v2" });
    const sb = await sdk.SandboxInstance.create({ name: "vol-tpl-user", memory: 256, volumes: [{ name: "vol-tpl", mountPath: "/seeded" }] });
    expect(await sb.fs.read("/seeded/seed/hello.txt")).toBe("from the template");
    expect((await sh(sb, "stat -c %u /seeded/seed/hello.txt")).stdout).toBe("0\n");
    expect((await api(h, "POST", "/v0/volumes", { metadata: { name: "vol-tpl-x" }, spec: { template: "tpl:v9" } })).status).toBe(404);
  });
});

describe("drives", () => {
  let a: Sbx;
  let b: Sbx;

  beforeAll(async () => {
    [a, b] = await Promise.all([sdk.SandboxInstance.create({ name: "drv-a", memory: 256 }), sdk.SandboxInstance.create({ name: "drv-b", memory: 256 })]);
  });

  it("creates, lists and gets drives, with createIfNotExists and labels", async () => {
    const { DriveInstance } = sdk;
    const d = await DriveInstance.createIfNotExists({ name: "shared", labels: { env: "dev" } });
    expect(d.name).toBe("shared");
    expect((await DriveInstance.createIfNotExists({ name: "shared" })).metadata.createdAt).toBe(d.metadata.createdAt);
    await DriveInstance.create({ name: "second" });
    await DriveInstance.create({ name: "third" });
    const page = await DriveInstance.list({ limit: 2, sort: "name:asc" } as never);
    expect(page.hasMore).toBe(true);
    expect((await page.autoPagingToArray({ limit: 10 })).map((x) => x.name)).toEqual(["second", "shared", "third"]);
    expect((await DriveInstance.get("shared")).metadata.labels).toEqual({ env: "dev" });
    await DriveInstance.delete("third");
    await expect(DriveInstance.get("third")).rejects.toMatchObject({ code: 404 });
  });

  it("mounts a drive into a running sandbox and a subdirectory into another, sharing files both ways", async () => {
    const t0 = performance.now();
    const m = await a.drives.mount({ driveName: "shared", mountPath: "/mnt/shared" });
    const ms = performance.now() - t0;
    expect(m).toMatchObject({ success: true, driveName: "shared", drivePath: "/", mountPath: "/mnt/shared", readOnly: false });
    await a.fs.write("/mnt/shared/projects/alpha/x.txt", "from a");
    expect((await sh(a, "stat -c %u /mnt/shared/projects/alpha/x.txt")).stdout).toBe("0\n");
    await b.drives.mount({ driveName: "shared", mountPath: "/app/project", drivePath: "/projects/alpha" });
    expect(await b.fs.read("/app/project/x.txt")).toBe("from a");
    await b.fs.write("/app/project/y.txt", "from b");
    expect(await a.fs.read("/mnt/shared/projects/alpha/y.txt")).toBe("from b");
    // the same mount again is idempotent; another drive at the same path is a conflict
    expect((await a.drives.mount({ driveName: "shared", mountPath: "/mnt/shared" })).success).toBe(true);
    await expect(a.drives.mount({ driveName: "second", mountPath: "/mnt/shared" })).rejects.toThrow();
    expect(await a.drives.list()).toEqual([{ driveName: "shared", drivePath: "/", mountPath: "/mnt/shared", readOnly: false }]);
    console.log(`[drives] first mount into a running sandbox: ${ms.toFixed(1)} ms`);
  });

  it("mounts several drives, read-only when asked, and unmounts", async () => {
    await a.drives.mount({ driveName: "second", mountPath: "/mnt/second", readOnly: true });
    const w = await sh(a, "touch /mnt/second/x 2>&1; echo rc=$?");
    expect(w.stdout).toMatch(/Read-only file system/);
    expect((await a.drives.list()).map((x) => x.mountPath).sort()).toEqual(["/mnt/second", "/mnt/shared"]);
    const u = await a.drives.unmount("/mnt/second");
    expect(u).toMatchObject({ success: true, mountPath: "/mnt/second" });
    expect((await sh(a, "grep -c ' /mnt/second ' /proc/self/mountinfo")).stdout).toBe("0\n");
    expect((await a.drives.list()).map((x) => x.mountPath)).toEqual(["/mnt/shared"]);
  });

  it("refuses hostile mount requests with a 4xx and mounts nothing", async () => {
    const mountsBefore = await sh(a, "cat /proc/self/mountinfo | wc -l");
    await sh(a, "ln -sfn /proc /tmp/to-proc; ln -sfn / /tmp/to-root; ln -sfn /var/lib/hangar-evil /tmp/to-host; mkdir -p /tmp/real");
    const bad: Array<[Record<string, unknown>, number]> = [
      [{ driveName: "shared", mountPath: "/" }, 400],
      [{ driveName: "shared", mountPath: "/proc/sys" }, 400],
      [{ driveName: "shared", mountPath: "/tmp/../proc" }, 400],
      [{ driveName: "shared", mountPath: "/tmp/to-proc/x" }, 400],
      [{ driveName: "shared", mountPath: "/tmp/to-root" }, 400],
      [{ driveName: "shared", mountPath: "/tmp/to-host" }, 400],
      [{ driveName: "shared", mountPath: "/.hangar/run" }, 400],
      [{ driveName: "shared", mountPath: "relative/path" }, 400],
      [{ driveName: "shared", mountPath: "/tmp/real", drivePath: "../../etc" }, 400],
      [{ driveName: "shared", mountPath: "/tmp/real", drivePath: "/projects/../../x" }, 400],
      [{ driveName: "no-such-drive", mountPath: "/tmp/real" }, 404],
      [{ mountPath: "/tmp/real" }, 400],
    ];
    for (const [body, status] of bad) {
      const r = await fetch(`${h.url}/run/default/sandboxes/drv-a/drives/mount`, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      expect(r.status, JSON.stringify(body)).toBe(status);
    }
    // a symlink planted in the drive never leads a mount out of it
    await sh(a, "ln -sfn /etc /mnt/shared/evil-link");
    const r = await fetch(`${h.url}/run/default/sandboxes/drv-b/drives/mount`, { method: "POST", headers: { authorization: `Bearer ${h.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ driveName: "shared", mountPath: "/tmp/evil", drivePath: "/evil-link" }) });
    expect(r.status).toBe(400);
    expect((await sh(a, "cat /proc/self/mountinfo | wc -l")).stdout).toBe(mountsBefore.stdout);
    expect(existsSync("/var/lib/hangar-evil")).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("hangar-evil");
    expect((await a.drives.list()).map((x) => x.mountPath)).toEqual(["/mnt/shared"]);
    await expect(a.drives.unmount("/not/mounted")).rejects.toThrow();
    // a setuid file written through a drive is no setuid file inside: nosuid
    const suid = await sh(a, "cp /bin/true /mnt/shared/suid && chmod u+s /mnt/shared/suid && grep ' /mnt/shared ' /proc/self/mountinfo");
    expect(suid.stdout).toMatch(/nosuid/);
    const root = join(h.dataDir, "drives");
    expect((await import("node:fs")).statSync(root).mode & 0o777).toBe(0o700);
  });

  it("keeps drive mounts across a checkpoint to disk", async () => {
    if (!criuInstalled) return;
    await checkpoint("drv-a");
    expect(await a.fs.read("/mnt/shared/projects/alpha/y.txt")).toBe("from b");
    await a.fs.write("/mnt/shared/after-restore.txt", "ok");
    expect(await b.fs.read("/app/project/x.txt")).toBe("from a");
  });

  it("keeps volumes and drive mounts across a server crash", async () => {
    await h.kill9();
    h = await h.restart();
    useSdkAgainst(h);
    a = await sdk.SandboxInstance.get("drv-a");
    b = await sdk.SandboxInstance.get("drv-b");
    expect(await a.fs.read("/mnt/shared/projects/alpha/x.txt")).toBe("from a");
    expect((await a.drives.list()).map((x) => x.mountPath)).toEqual(["/mnt/shared"]);
    const holder = await sdk.SandboxInstance.get("vol-holder2");
    expect(await holder.fs.read("/srv/data/notes.txt")).toBe("kept on the volume");
    expect(((await (await api(h, "GET", "/v0/volumes/vol-a")).json()) as { state: { attachedTo?: string } }).state.attachedTo).toBe("sandbox:vol-holder2");
  });

  it("keeps a drive's files after every sandbox using it is gone", async () => {
    await Promise.all([sdk.SandboxInstance.delete("drv-a"), sdk.SandboxInstance.delete("drv-b")]);
    const c = await sdk.SandboxInstance.create({ name: "drv-c", memory: 256 });
    await c.drives.mount({ driveName: "shared", mountPath: "/data/shared" });
    expect(await c.fs.read("/data/shared/projects/alpha/y.txt")).toBe("from b");
    expect(await c.fs.read("/data/shared/after-restore.txt").catch(() => "ok")).toBe("ok");
  });
});

describe("the hangar CLI", () => {
  function hangar(args: string[], input?: string) {
    const r = spawnSync(process.execPath, [CLI, ...args], {
      encoding: "utf8",
      input,
      env: { ...process.env, HANGAR_CONFIG: "/nonexistent/config.json", HANGAR_URL: h.url, HANGAR_API_KEY: h.apiKey, HANGAR_WORKSPACE: "default" },
      timeout: 60_000,
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  it("applies Volume, VolumeTemplate and Drive manifests, lists them, and mounts a drive", async () => {
    const manifest = [
      "kind: Volume\nmetadata:\n  name: cli-vol\nspec:\n  size: 32",
      "kind: VolumeTemplate\nmetadata:\n  name: cli-tpl\nspec:\n  defaultSize: 64",
      "kind: Drive\nmetadata:\n  name: cli-drive\n  labels:\n    team: a",
    ].join("\n---\n");
    const a = hangar(["apply", "-f", "-"], manifest);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toBe("volume/cli-vol created\nvolumetemplate/cli-tpl created\ndrive/cli-drive created\n");
    expect(hangar(["apply", "-f", "-"], "kind: Volume\nmetadata:\n  name: cli-vol\nspec:\n  size: 48").out).toBe("volume/cli-vol configured\n");
    const vols = hangar(["get", "volumes"]);
    expect(vols.out).toMatch(/cli-vol\s+DEPLOYED\s+48MB/);
    expect(hangar(["get", "drives", "-o", "json"]).out).toContain('"cli-drive"');
    expect(hangar(["get", "volume-templates"]).out).toMatch(/cli-tpl/);
    const m = hangar(["drive", "mount", "drv-c", "cli-drive", "/mnt/cli"]);
    expect(m.code, m.err).toBe(0);
    expect(m.out).toBe("drive/cli-drive mounted at /mnt/cli in sandbox/drv-c\n");
    expect(hangar(["drive", "list", "drv-c"]).out).toMatch(/cli-drive\s+\/\s+\/mnt\/cli\s+rw/);
    expect(hangar(["drive", "mount", "drv-c", "cli-drive", "/proc/x"]).err).toMatch(/400/);
    expect(hangar(["drive", "unmount", "drv-c", "/mnt/cli"]).code).toBe(0);
    expect(hangar(["delete", "volume", "cli-vol"]).out).toBe("volume/cli-vol deleted\n");
  });
});
