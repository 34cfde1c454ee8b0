import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENV, Tracker, startAgent, type AgentHarness } from "../test/harness.js";

/** True when path is a mount point in this mount namespace. */
async function mounted(path: string): Promise<boolean> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  return info.split("\n").some((l) => l.split(" ")[4] === path);
}

// A root built from a read-only bind of the host's /usr plus the merged-/usr symlinks, and a
// fake /etc/shadow. The agent chroots into it: every path it handles is inside that root.
describe("agent in a chroot", () => {
  let root: string;
  let h: AgentHarness;
  let t: Tracker;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "hangar-root-"));
    await mkdir(join(root, "usr"));
    execFileSync("mount", ["--bind", "/usr", join(root, "usr")]);
    execFileSync("mount", ["-o", "remount,bind,ro", join(root, "usr")]);
    for (const l of ["bin", "sbin", "lib", "lib64"]) await symlink(`usr/${l}`, join(root, l));
    await mkdir(join(root, "etc"));
    await mkdir(join(root, "tmp/deep/er"), { recursive: true });
    await writeFile(join(root, "etc/shadow"), "fake-shadow\n");
    await symlink("/etc/shadow", join(root, "tmp/shadow-link"));
    await symlink("../../..", join(root, "tmp/up"));
    await symlink("../../../../../../../../etc/shadow", join(root, "tmp/deep/er/shadow-rel"));
    await symlink("/etc/hangar-planted", join(root, "tmp/planted"));
    h = await startAgent({ chroot: root });
    t = new Tracker(h.client);
  });

  afterAll(async () => {
    await h?.stop();
    if (!root) return;
    execFileSync("umount", [join(root, "usr")]);
    // never recurse into a root that still has the host's /usr mounted in it
    if (!(await mounted(join(root, "usr")))) await rm(root, { recursive: true, force: true });
  });

  it("resolves absolute and relative symlinks inside the root", async () => {
    expect((await h.client.readFile("/tmp/shadow-link")).toString()).toBe("fake-shadow\n");
    expect((await h.client.readFile("/tmp/deep/er/shadow-rel")).toString()).toBe("fake-shadow\n");
    expect((await h.client.readFile("/../../../etc/shadow")).toString()).toBe("fake-shadow\n");
    expect(await h.client.realpath("/tmp/up")).toBe("/");
    expect(await h.client.realpath("/tmp/deep/er/shadow-rel")).toBe("/etc/shadow");
    const names = (await h.client.readdir("/tmp/up")).map((e) => e.name).sort();
    expect(names).toEqual([".hangar", "bin", "etc", "lib", "lib64", "sbin", "tmp", "usr"]);
    expect((await h.client.stat("/tmp/up/etc/shadow")).size).toBe(12);
  });

  it("writes through a planted symlink land inside the root", async () => {
    await h.client.writeFile("/tmp/planted", Buffer.from("inside"));
    expect(await readFile(join(root, "etc/hangar-planted"), "utf8")).toBe("inside");
    await expect(stat("/etc/hangar-planted")).rejects.toThrow();
  });

  it("runs processes in the same root", async () => {
    const r = await t.run({ argv: ["sh", "-c", "cat /tmp/shadow-link; ls /; pwd"], env: ENV, cwd: "/tmp" });
    expect(r.stdout).toBe("fake-shadow\nbin\netc\nlib\nlib64\nsbin\ntmp\nusr\n/tmp\n");
    expect(r.exit.exitCode).toBe(0);
  });

  it("gives processes an empty stdin even without /dev/null in the root", async () => {
    const r = await t.run({ argv: ["cat"], env: ENV, cwd: "/" });
    expect(r.stdout).toBe("");
    expect(r.exit.exitCode).toBe(0);
  });

  it("refuses to write into the read-only /usr", async () => {
    await expect(h.client.writeFile("/usr/hangar-test", Buffer.from("x"))).rejects.toMatchObject({ errno: "EROFS" });
    await expect(h.client.remove("/usr/bin/sh")).rejects.toMatchObject({ errno: "EROFS" });
  });
});
