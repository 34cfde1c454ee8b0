import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENV, Tracker, groupAlive, rssKiB, sleep, startAgent, waitFor, type AgentHarness } from "../test/harness.js";

describe("agent processes", () => {
  let h: AgentHarness;
  let t: Tracker;

  beforeAll(async () => {
    h = await startAgent();
    t = new Tracker(h.client);
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("streams stdout and stderr and reports the exit code", async () => {
    const r = await t.run({ argv: ["sh", "-c", "echo out; echo err >&2; exit 42"], env: ENV, cwd: "/" });
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    expect(r.exit).toEqual({ exitCode: 42, signal: null });
  });

  it("gives the process exactly the given environment and working directory", async () => {
    const r = await t.run({ argv: ["sh", "-c", "pwd; env | sort"], env: { PATH: ENV.PATH, FOO: "bar baz", EMPTY: "" }, cwd: h.dir });
    const [pwd, ...env] = r.stdout.trim().split("\n");
    expect(pwd).toBe(h.dir);
    // sh adds PWD (and may add SHLVL/_); everything else comes from us
    expect(env.filter((l) => !/^(PWD|SHLVL|_)=/.test(l))).toEqual(["EMPTY=", "FOO=bar baz", `PATH=${ENV.PATH}`]);
  });

  it("looks argv[0] up in the PATH of the given environment", async () => {
    const bin = join(h.dir, "bin");
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, "hello-hangar"), "#!/bin/sh\necho hi from $0 with $1\n");
    await chmod(join(bin, "hello-hangar"), 0o755);
    const r = await t.run({ argv: ["hello-hangar", "arg"], env: { PATH: `/nonexistent:${bin}:/usr/bin:/bin` }, cwd: "/" });
    expect(r.stdout).toBe(`hi from ${bin}/hello-hangar with arg\n`);
    // without PATH the default path finds system binaries
    expect((await t.run({ argv: ["echo", "x"], env: {}, cwd: "/" })).stdout).toBe("x\n");
  });

  it("reports exec and cwd failures as spawn errors with errno names", async () => {
    const before = (await h.client.listProcesses()).length;
    const spawnErr = (argv: string[], cwd = "/") => h.client.spawn({ argv, env: ENV, cwd }).then(() => null, (e: { errno: string; message: string }) => e);
    expect(await spawnErr(["definitely-not-a-command"])).toMatchObject({ errno: "ENOENT", message: expect.stringContaining("execve") });
    expect(await spawnErr(["/no/such/binary"])).toMatchObject({ errno: "ENOENT" });
    expect(await spawnErr(["true"], "/no/such/dir")).toMatchObject({ errno: "ENOENT", message: expect.stringContaining("chdir /no/such/dir") });
    await writeFile(join(h.dir, "plain"), "not executable");
    expect(await spawnErr(["true"], join(h.dir, "plain"))).toMatchObject({ errno: "ENOTDIR" });
    expect(await spawnErr([join(h.dir, "plain")])).toMatchObject({ errno: "EACCES" });
    await expect(h.client.spawn({ argv: ["true"], env: ENV, cwd: "relative" })).rejects.toMatchObject({ errno: "EINVAL" });
    // failed spawns leave nothing behind
    expect((await h.client.listProcesses()).length).toBe(before);
  });

  it("delivers signals and reports the terminating signal", async () => {
    const { id } = await h.client.spawn({ argv: ["sleep", "100"], env: ENV, cwd: "/" });
    await h.client.signal(id, 15);
    expect((await t.wait(id)).exit).toEqual({ exitCode: null, signal: 15 });
    await expect(h.client.signal(id, 15, false)).rejects.toMatchObject({ errno: "ESRCH" });
    await expect(h.client.signal(999999, 15)).rejects.toMatchObject({ errno: "ESRCH" });
  });

  it("kills a whole process group including its children", async () => {
    const { id, pid } = await h.client.spawn({ argv: ["sh", "-c", "sleep 100 & sleep 100 & echo started; wait"], env: ENV, cwd: "/" });
    await t.until(id, (s) => s.includes("started"));
    expect(groupAlive(pid)).toBe(true);
    await h.client.signal(id, "SIGKILL");
    expect((await t.wait(id)).exit).toEqual({ exitCode: null, signal: 9 });
    await waitFor(() => !groupAlive(pid), 3000, "process group to die");
  });

  it("signals only the leader when group is false", async () => {
    const { id, pid } = await h.client.spawn({ argv: ["sh", "-c", "sleep 100 & echo $!; wait"], env: ENV, cwd: "/" });
    const child = Number((await t.until(id, (s) => s.endsWith("\n"))).trim());
    await h.client.signal(id, 9, false);
    expect((await t.wait(id)).exit.signal).toBe(9);
    expect(() => process.kill(child, 0)).not.toThrow();
    // the group outlives its leader and can still be signalled
    await h.client.signal(id, 9, true);
    await waitFor(() => !groupAlive(pid), 3000, "orphaned child to die");
  });

  it("writes stdin and closes it", async () => {
    const { id } = await h.client.spawn({ argv: ["cat"], env: ENV, cwd: "/", stdin: true });
    await h.client.writeStdin(id, Buffer.from("hello "));
    await h.client.writeStdin(id, Buffer.from("world"));
    await h.client.closeStdin(id);
    const r = await t.wait(id);
    expect(r.stdout).toBe("hello world");
    expect(r.exit.exitCode).toBe(0);
  });

  it("pushes large stdin through a slow reader", async () => {
    const { id } = await h.client.spawn({ argv: ["sh", "-c", "sleep 0.2; wc -c"], env: ENV, cwd: "/", stdin: true });
    const data = Buffer.alloc(9_000_000, "x");
    await h.client.writeStdin(id, data);
    await h.client.closeStdin(id);
    expect((await t.wait(id)).stdout.trim()).toBe("9000000");
  });

  it("reports EPIPE for stdin of a finished process and of one without stdin", async () => {
    const { id } = await h.client.spawn({ argv: ["true"], env: ENV, cwd: "/", stdin: true });
    await t.wait(id);
    await expect(h.client.writeStdin(id, Buffer.from("late"))).rejects.toMatchObject({ errno: "EPIPE" });
    const r = await t.run({ argv: ["cat"], env: ENV, cwd: "/" });
    expect(r.stdout).toBe(""); // stdin is /dev/null
    await expect(h.client.writeStdin(r.id, Buffer.from("x"))).rejects.toMatchObject({ errno: "EPIPE" });
  });

  it("runs a process under a PTY with a size, and resizes it", async () => {
    const { id } = await h.client.spawn({
      argv: ["sh", "-c", "tty; stty size; read x; stty size; echo got:$x"],
      env: ENV,
      cwd: "/",
      pty: { cols: 100, rows: 30 },
    });
    await t.until(id, (s) => s.includes("30 100"));
    await h.client.resize(id, 120, 40);
    await h.client.writeStdin(id, Buffer.from("go\n"));
    const r = await t.wait(id);
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\n/);
    expect(r.stdout).toContain("40 120\r\n");
    expect(r.stdout).toContain("got:go");
    expect(r.stderr).toBe("");
    expect(r.exit.exitCode).toBe(0);
    const plain = await h.client.spawn({ argv: ["true"], env: ENV, cwd: "/" });
    await expect(h.client.resize(plain.id, 10, 10)).rejects.toMatchObject({ errno: "ENOTTY" });
  });

  it("keeps tags, lists processes and releases exited ones", async () => {
    const { id, pid } = await h.client.spawn({ argv: ["sleep", "100"], env: ENV, cwd: "/", tag: Buffer.from("my-tag") });
    let entry = (await h.client.listProcesses()).find((p) => p.id === id);
    expect(entry).toMatchObject({ id, pid, running: true, exitCode: null, signal: null });
    expect(entry!.tag.toString()).toBe("my-tag");
    await expect(h.client.release(id)).rejects.toMatchObject({ errno: "EBUSY" });
    await h.client.signal(id, 9);
    await t.wait(id);
    entry = (await h.client.listProcesses()).find((p) => p.id === id);
    expect(entry).toMatchObject({ running: false, exitCode: null, signal: 9 });
    await h.client.release(id);
    expect((await h.client.listProcesses()).some((p) => p.id === id)).toBe(false);
    await expect(h.client.release(id)).rejects.toMatchObject({ errno: "ESRCH" });
  });

  it("runs as another user and group", async () => {
    const r = await t.run({ argv: ["sh", "-c", "id -u; id -g; id -G"], env: ENV, cwd: "/", uid: 65534, gid: 65533 });
    expect(r.stdout).toBe("65534\n65533\n65533\n");
  });

  it("runs many processes concurrently", async () => {
    const n = 200;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => t.run({ argv: ["sh", "-c", "echo $0; exit $(($0 % 7))", String(i)], env: ENV, cwd: "/" })),
    );
    results.forEach((r, i) => {
      expect(r.stdout).toBe(`${i}\n`);
      expect(r.exit.exitCode).toBe(i % 7);
    });
    await Promise.all(results.map((r) => h.client.release(r.id)));
  });

  it("streams big output intact and in order", async () => {
    const r = await t.run({ argv: ["seq", "1", "1500000"], env: ENV, cwd: "/" }, 30_000);
    let expected = "";
    for (let i = 1; i <= 1_500_000; i++) expected += `${i}\n`;
    expect(r.out.length).toBe(Buffer.byteLength(expected));
    expect(r.stdout === expected).toBe(true);
  });

  it("stops reading a process when the host is slow, without growing", async () => {
    const agentPid = h.child.pid!;
    const total = 40_000_000;
    const { id } = await h.client.spawn({ argv: ["head", "-c", String(total), "/dev/zero"], env: ENV, cwd: "/" });
    let got = 0;
    let blocked = false;
    const onOut = (pid: number, _s: number, d: Buffer) => {
      if (pid !== id) return;
      got += d.length;
      if (!blocked) {
        // Block the host's event loop: its socket stops draining and the agent must hold back.
        blocked = true;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 700);
      }
    };
    h.client.on("output", onOut);
    const peak = await (async () => {
      let max = 0;
      while (!blocked) await sleep(1);
      for (let i = 0; i < 5; i++) {
        max = Math.max(max, await rssKiB(agentPid));
        await sleep(20);
      }
      return max;
    })();
    await t.wait(id, 30_000);
    h.client.off("output", onOut);
    expect(got).toBe(total);
    expect(peak).toBeLessThan(8 * 1024);
  });

  it("survives exec of a process that exits before the reply and one that never reads stdin", async () => {
    const quick = await Promise.all(Array.from({ length: 20 }, () => t.run({ argv: ["true"], env: ENV, cwd: "/" })));
    expect(quick.every((r) => r.exit.exitCode === 0)).toBe(true);
    const { id } = await h.client.spawn({ argv: ["sleep", "100"], env: ENV, cwd: "/", stdin: true });
    const pending = h.client.writeStdin(id, Buffer.alloc(200_000, "y")); // more than a pipe holds
    await sleep(50);
    await h.client.signal(id, 9);
    await expect(pending).rejects.toMatchObject({ errno: "EPIPE" });
  });

  it("stays small", async () => {
    const rss = await rssKiB(h.child.pid!);
    console.log(`agent RSS after the process tests: ${rss} KiB`);
    expect(rss).toBeLessThan(4 * 1024);
  });
});
