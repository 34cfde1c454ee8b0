import { randomBytes } from "node:crypto";
import { lstat, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WatchEvent } from "./types.js";
import { sleep, startAgent, waitFor, type AgentHarness } from "../test/harness.js";

describe("agent files", () => {
  let h: AgentHarness;
  let d: string;
  let n = 0;
  /** A fresh directory per test. */
  const fresh = async () => {
    const p = join(d, `t${++n}`);
    await mkdir(p);
    return p;
  };

  beforeAll(async () => {
    h = await startAgent();
    d = join(h.dir, "fs");
    await mkdir(d);
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("writes, stats, reads ranges and appends", async () => {
    const p = join(await fresh(), "a.txt");
    await h.client.writeFile(p, Buffer.from("hello world"), { mode: 0o640 });
    const st = await h.client.stat(p);
    expect(st).toMatchObject({ type: "file", size: 11, uid: 0, gid: 0 });
    expect(st.mode & 0o7777).toBe(0o640);
    expect(Math.abs(st.mtimeMs - (await stat(p)).mtimeMs)).toBeLessThan(1);
    expect((await h.client.readFile(p)).toString()).toBe("hello world");
    expect((await h.client.readFile(p, { offset: 6, length: 3 })).toString()).toBe("wor");
    expect((await h.client.readFile(p, { offset: 100 })).length).toBe(0);
    await h.client.writeFile(p, Buffer.from("!"), { append: true });
    expect(await readFile(p, "utf8")).toBe("hello world!");
    await h.client.writeFile(p, Buffer.from("new"));
    expect(await readFile(p, "utf8")).toBe("new");
    expect((await h.client.stat(p)).mode & 0o777).toBe(0o640); // replace keeps the mode
    await h.client.writeFile(p, Buffer.alloc(0));
    expect((await h.client.readFile(p)).length).toBe(0);
  });

  it("creates missing parents only when asked", async () => {
    const base = await fresh();
    await expect(h.client.writeFile(join(base, "x/y/z.txt"), Buffer.from("z"))).rejects.toMatchObject({ errno: "ENOENT" });
    await h.client.writeFile(join(base, "x/y/z.txt"), Buffer.from("z"), { mkdirs: true });
    expect(await readFile(join(base, "x/y/z.txt"), "utf8")).toBe("z");
    expect((await lstat(join(base, "x"))).mode & 0o777).toBe(0o755);
    await writeFile(join(base, "file"), "");
    await expect(h.client.writeFile(join(base, "file/sub/z"), Buffer.from("z"), { mkdirs: true })).rejects.toMatchObject({ errno: "ENOTDIR" });
  });

  it("moves big files in chunks both ways", async () => {
    const p = join(await fresh(), "big.bin");
    const data = randomBytes(11 * 1024 * 1024 + 123);
    await h.client.writeFile(p, data);
    expect((await readFile(p)).equals(data)).toBe(true);
    const back = await h.client.readFile(p);
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
    const mid = await h.client.readFile(p, { offset: 5_000_000, length: 4_500_000 });
    expect(mid.equals(data.subarray(5_000_000, 9_500_000))).toBe(true);
  });

  it("reads files that report no size (procfs)", async () => {
    const s = (await h.client.readFile(`/proc/${h.child.pid}/status`)).toString();
    expect(s).toContain("Name:\thangar-agent");
  });

  it("streams writes through file handles", async () => {
    const p = join(await fresh(), "stream.txt");
    const fh = await h.client.openFile(p, { mode: 0o600 });
    await h.client.writeChunk(fh, Buffer.from("one,"));
    await h.client.writeChunk(fh, Buffer.from("two,"));
    await h.client.closeFile(fh);
    const fh2 = await h.client.openFile(p, { append: true });
    await h.client.writeChunk(fh2, Buffer.from("three"));
    await h.client.closeFile(fh2);
    expect(await readFile(p, "utf8")).toBe("one,two,three");
    expect((await stat(p)).mode & 0o777).toBe(0o600);
    await expect(h.client.writeChunk(fh2, Buffer.from("x"))).rejects.toMatchObject({ errno: "EBADF" });
    await expect(h.client.closeFile(fh2)).rejects.toMatchObject({ errno: "EBADF" });
    await expect(h.client.openFile(join(p, "nope"))).rejects.toMatchObject({ errno: "ENOTDIR" });
  });

  it("lists a directory with lstat info and symlink targets in one call", async () => {
    const base = await fresh();
    await writeFile(join(base, "f"), "12345");
    await mkdir(join(base, "sub"));
    await symlink("f", join(base, "link"));
    await symlink("/nowhere", join(base, "dangling"));
    const entries = await h.client.readdir(base);
    const byName = Object.fromEntries(entries.map((e) => [e.name, e]));
    expect(Object.keys(byName).sort()).toEqual(["dangling", "f", "link", "sub"]);
    expect(byName.f).toMatchObject({ type: "file", size: 5 });
    expect(byName.f!.linkTarget).toBeUndefined();
    expect(byName.sub).toMatchObject({ type: "directory" });
    expect(byName.link).toMatchObject({ type: "symlink", linkTarget: "f" });
    expect(byName.dangling).toMatchObject({ type: "symlink", linkTarget: "/nowhere" });
    await expect(h.client.readdir(join(base, "f"))).rejects.toMatchObject({ errno: "ENOTDIR" });
    await expect(h.client.readdir(join(base, "missing"))).rejects.toMatchObject({ errno: "ENOENT" });
  });

  it("lists a large directory across several reply frames", async () => {
    const base = await fresh();
    const names = Array.from({ length: 20_000 }, (_, i) => `entry-with-a-longish-name-${i}`);
    for (let i = 0; i < names.length; i += 500) await Promise.all(names.slice(i, i + 500).map((nm) => writeFile(join(base, nm), "")));
    const entries = await h.client.readdir(base);
    expect(entries.length).toBe(names.length);
    expect(new Set(entries.map((e) => e.name))).toEqual(new Set(names));
  });

  it("stats through symlinks unless told not to", async () => {
    const base = await fresh();
    await writeFile(join(base, "target"), "abc");
    await symlink("target", join(base, "l"));
    expect(await h.client.stat(join(base, "l"))).toMatchObject({ type: "file", size: 3 });
    expect(await h.client.stat(join(base, "l"), { follow: false })).toMatchObject({ type: "symlink", linkTarget: "target" });
    await expect(h.client.stat(join(base, "none"))).rejects.toMatchObject({ errno: "ENOENT" });
    expect((await h.client.stat("/dev/null")).type).toBe("other");
  });

  it("makes directories, recursively and with modes", async () => {
    const base = await fresh();
    await h.client.mkdir(join(base, "a"), { mode: 0o700 });
    expect((await stat(join(base, "a"))).mode & 0o777).toBe(0o700);
    await expect(h.client.mkdir(join(base, "a"))).rejects.toMatchObject({ errno: "EEXIST" });
    await expect(h.client.mkdir(join(base, "b/c"))).rejects.toMatchObject({ errno: "ENOENT" });
    await h.client.mkdir(join(base, "b/c/d"), { recursive: true });
    expect((await stat(join(base, "b/c/d"))).isDirectory()).toBe(true);
    await h.client.mkdir(join(base, "b/c/d"), { recursive: true }); // exists: fine
    await writeFile(join(base, "file"), "");
    await expect(h.client.mkdir(join(base, "file"), { recursive: true })).rejects.toMatchObject({ errno: "EEXIST" });
  });

  it("removes files, empty directories and whole trees without following symlinks", async () => {
    const base = await fresh();
    const outside = join(base, "outside");
    await mkdir(outside);
    await writeFile(join(outside, "keep"), "keep");
    await mkdir(join(base, "tree/a/b"), { recursive: true });
    await writeFile(join(base, "tree/a/b/f"), "x");
    await writeFile(join(base, "tree/top"), "x");
    await symlink(outside, join(base, "tree/a/link-to-outside"));
    await expect(h.client.remove(join(base, "tree"))).rejects.toMatchObject({ errno: "ENOTEMPTY" });
    await h.client.remove(join(base, "tree"), { recursive: true });
    await expect(lstat(join(base, "tree"))).rejects.toThrow();
    expect(await readFile(join(outside, "keep"), "utf8")).toBe("keep");
    await h.client.remove(join(outside, "keep"));
    await h.client.remove(outside);
    await expect(h.client.remove(outside)).rejects.toMatchObject({ errno: "ENOENT" });
    // removing a symlink removes the link, not its target
    await writeFile(join(base, "t"), "t");
    await symlink(join(base, "t"), join(base, "l"));
    await h.client.remove(join(base, "l"), { recursive: true });
    expect(await readFile(join(base, "t"), "utf8")).toBe("t");
  });

  it("renames, chmods and resolves real paths", async () => {
    const base = await fresh();
    await writeFile(join(base, "a"), "a");
    await h.client.rename(join(base, "a"), join(base, "b"));
    expect(await readFile(join(base, "b"), "utf8")).toBe("a");
    await expect(h.client.rename(join(base, "a"), join(base, "c"))).rejects.toMatchObject({ errno: "ENOENT" });
    await h.client.chmod(join(base, "b"), 0o4711);
    expect((await stat(join(base, "b"))).mode & 0o7777).toBe(0o4711);
    await expect(h.client.chmod(join(base, "zz"), 0o600)).rejects.toMatchObject({ errno: "ENOENT" });
    await mkdir(join(base, "real"));
    await symlink(join(base, "real"), join(base, "l1"));
    await symlink("l1/../real", join(base, "l2"));
    expect(await h.client.realpath(join(base, "l2"))).toBe(join(base, "real"));
    expect(await h.client.realpath(`${base}/./real//`)).toBe(join(base, "real"));
    await expect(h.client.realpath(join(base, "missing"))).rejects.toMatchObject({ errno: "ENOENT" });
  });

  it("rejects relative and malformed paths and maps errors to errno names", async () => {
    await expect(h.client.stat("relative/path")).rejects.toMatchObject({ errno: "EINVAL" });
    await expect(h.client.readFile("")).rejects.toMatchObject({ errno: "EINVAL" });
    await expect(h.client.readFile("/a\0b")).rejects.toMatchObject({ errno: "EINVAL" });
    await expect(h.client.readFile(d)).rejects.toMatchObject({ errno: "EISDIR", code: "EISDIR" });
    await expect(h.client.writeFile(d, Buffer.from("x"))).rejects.toMatchObject({ errno: "EISDIR" });
    await expect(h.client.readFile("/" + "x".repeat(5000))).rejects.toMatchObject({ errno: "ENAMETOOLONG" });
    await expect(h.client.unwatch(424242)).rejects.toMatchObject({ errno: "ENOENT" });
  });

  it("watches a tree recursively, including new subdirectories", async () => {
    const base = await fresh();
    await mkdir(join(base, "existing"));
    const events: WatchEvent[] = [];
    const wid = await h.client.watch(base, { recursive: true });
    const onWatch = (id: number, e: WatchEvent) => id === wid && events.push(e);
    h.client.on("watch", onWatch);
    const seen = (op: string, path: string, name: string) =>
      waitFor(() => events.find((e) => e.op === op && e.path === path && e.name === name), 3000, `${op} ${path}/${name}; got ${JSON.stringify(events)}`);

    await h.client.writeFile(join(base, "a.txt"), Buffer.from("1"));
    await seen("CREATE", base, "a.txt");
    await seen("WRITE", base, "a.txt");
    await writeFile(join(base, "existing/e.txt"), "e");
    await seen("CREATE", join(base, "existing"), "e.txt");

    await mkdir(join(base, "sub"));
    await seen("CREATE", base, "sub");
    await writeFile(join(base, "sub/b.txt"), "b");
    await seen("CREATE", join(base, "sub"), "b.txt");

    // a deep tree created at once: entries made before the watch arrives are reported too
    await mkdir(join(base, "deep/er/est"), { recursive: true });
    await writeFile(join(base, "deep/er/est/f"), "f");
    await seen("CREATE", join(base, "deep/er/est"), "f");
    await sleep(50);
    await writeFile(join(base, "deep/er/est/g"), "g");
    await seen("CREATE", join(base, "deep/er/est"), "g");

    await h.client.rename(join(base, "a.txt"), join(base, "c.txt"));
    await seen("RENAME", base, "a.txt");
    await seen("CREATE", base, "c.txt");
    await h.client.chmod(join(base, "c.txt"), 0o600);
    await seen("CHMOD", base, "c.txt");
    await h.client.remove(join(base, "c.txt"));
    await seen("REMOVE", base, "c.txt");

    // a directory moved away is no longer watched; one moved in is
    await mkdir(join(d, "elsewhere"), { recursive: true });
    await h.client.rename(join(base, "sub"), join(d, "elsewhere/sub"));
    await seen("RENAME", base, "sub");
    await h.client.rename(join(d, "elsewhere/sub"), join(base, "back"));
    await seen("CREATE", base, "back");
    await sleep(50);
    await writeFile(join(base, "back/new"), "n");
    await seen("CREATE", join(base, "back"), "new");

    await h.client.unwatch(wid);
    const count = events.length;
    await writeFile(join(base, "after-unwatch"), "x");
    await writeFile(join(base, "deep/after-unwatch"), "x");
    await sleep(200);
    expect(events.length).toBe(count);
    h.client.off("watch", onWatch);
  });

  it("watches a single file and a directory non-recursively", async () => {
    const base = await fresh();
    await writeFile(join(base, "f"), "1");
    await mkdir(join(base, "sub"));
    const fileEvents: WatchEvent[] = [];
    const dirEvents: WatchEvent[] = [];
    const fw = await h.client.watch(join(base, "f"));
    const dw = await h.client.watch(base);
    const on = (id: number, e: WatchEvent) => (id === fw ? fileEvents : id === dw ? dirEvents : []).push(e);
    h.client.on("watch", on);
    await writeFile(join(base, "f"), "2");
    await waitFor(() => fileEvents.find((e) => e.op === "WRITE" && e.path === base && e.name === "f"));
    await writeFile(join(base, "sub/inner"), "x");
    await writeFile(join(base, "top"), "x");
    await waitFor(() => dirEvents.find((e) => e.name === "top"));
    expect(dirEvents.some((e) => e.name === "inner")).toBe(false);
    await expect(h.client.watch(join(base, "missing"))).rejects.toMatchObject({ errno: "ENOENT" });
    await h.client.unwatch(fw);
    await h.client.unwatch(dw);
    h.client.off("watch", on);
  });
});
