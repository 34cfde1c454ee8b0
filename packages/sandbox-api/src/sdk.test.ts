// The unmodified @blaxel/core 0.3.21 driving the sandbox API (BL_SANDBOX_<NAME>_URL points it here).

import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep, startSandbox, waitFor, type SandboxHarness } from "../test/harness.js";

type Sdk = typeof import("@blaxel/core");
type Sandbox = InstanceType<Sdk["SandboxInstance"]>;

let h: SandboxHarness;
let sandbox: Sandbox;
let local: string;

beforeAll(async () => {
  h = await startSandbox({ name: "sdk-box", limits: { restartDelayMs: 50 } });
  Object.assign(process.env, {
    BL_WORKSPACE: "x",
    BL_API_KEY: "x",
    BL_DISABLE_H2: "true",
    BL_ENV: "local",
    DO_NOT_TRACK: "1",
    BL_SANDBOX_SDK_BOX_URL: h.url,
  });
  const { SandboxInstance } = await import("@blaxel/core");
  sandbox = new SandboxInstance({ metadata: { name: "sdk-box" } } as never);
  local = await mkdtemp(join(tmpdir(), "hangar-sdk-local-"));
});
afterAll(async () => {
  await h?.stop();
  if (local) await rm(local, { recursive: true, force: true });
});

describe("sandbox.fs", () => {
  it("writes and reads text (unicode, overwrite)", async () => {
    const text = "Grüße, 世界! 🎉\n\ttabs and \"quotes\"\n";
    await sandbox.fs.write("/tmp/sdk/hello.txt", text);
    expect(await sandbox.fs.read("/tmp/sdk/hello.txt")).toBe(text);
    await sandbox.fs.write("/tmp/sdk/hello.txt", "short");
    expect(await sandbox.fs.read("/tmp/sdk/hello.txt")).toBe("short");
    await sandbox.fs.write("relative.txt", "in the working directory");
    expect(await readFile(join(h.root, "blaxel/relative.txt"), "utf8")).toBe("in the working directory");
    await expect(sandbox.fs.read("/tmp/sdk/missing.txt")).rejects.toThrow(/404/);
  });

  it("writes binary from a Buffer and from a local path; reads and downloads it", async () => {
    const bin = randomBytes(100_000);
    await sandbox.fs.writeBinary("/tmp/sdk/bin/a.bin", bin);
    const blob = await sandbox.fs.readBinary("/tmp/sdk/bin/a.bin");
    expect(Buffer.from(await blob.arrayBuffer()).equals(bin)).toBe(true);
    const src = join(local, "src.bin");
    const bin2 = randomBytes(50_000);
    await writeFile(src, bin2);
    await sandbox.fs.writeBinary("/tmp/sdk/bin/b.bin", src);
    const dst = join(local, "downloaded.bin");
    await sandbox.fs.download("/tmp/sdk/bin/b.bin", dst);
    expect((await readFile(dst)).equals(bin2)).toBe(true);
  });

  it("uploads 6 MiB of text and of binary through multipart parts", async () => {
    const text = "0123456789abcdef\n".repeat(Math.ceil((6 * 1024 * 1024) / 17));
    await sandbox.fs.write("/tmp/sdk/big.txt", text);
    expect(await sandbox.fs.read("/tmp/sdk/big.txt")).toBe(text);
    const bin = randomBytes(6 * 1024 * 1024 + 17);
    await sandbox.fs.writeBinary("/tmp/sdk/big.bin", bin);
    const back = Buffer.from(await (await sandbox.fs.readBinary("/tmp/sdk/big.bin")).arrayBuffer());
    expect(back.equals(bin)).toBe(true);
    expect((await readFile(join(h.root, "tmp/sdk/big.bin"))).equals(bin)).toBe(true);
    expect(h.services.uploads.list()).toEqual([]);
  });

  it("lists with metadata, makes nested directories, copies and removes", async () => {
    await sandbox.fs.mkdir("/tmp/sdk/a/b/c");
    await sandbox.fs.write("/tmp/sdk/a/file.txt", "12345");
    const ls = await sandbox.fs.ls("/tmp/sdk/a");
    expect(ls.subdirectories.map((d) => d.name)).toEqual(["b"]);
    expect(ls.files).toEqual([expect.objectContaining({ name: "file.txt", path: "/tmp/sdk/a/file.txt", size: 5, permissions: "644", owner: "root", group: "root" })]);
    await sandbox.fs.cp("/tmp/sdk/a", "/tmp/sdk/a-copy");
    expect(await sandbox.fs.read("/tmp/sdk/a-copy/file.txt")).toBe("12345");
    await expect(sandbox.fs.rm("/tmp/sdk/a-copy")).rejects.toThrow(/422/);
    await sandbox.fs.rm("/tmp/sdk/a-copy", true);
    await expect(sandbox.fs.ls("/tmp/sdk/a-copy")).rejects.toThrow();
    await expect(sandbox.fs.cp("/tmp/sdk/nope", "/tmp/sdk/x")).rejects.toThrow(/Could not copy/);
  });

  it("writes trees and finds and searches files", async () => {
    await sandbox.fs.writeTree(
      [
        { path: "src/app.js", content: "console.log('Hello');" },
        { path: "src/utils.js", content: "export const helper = () => {};" },
        { path: "docs/README.md", content: "# My agentic App" },
      ],
      "/tmp/sdk/app",
    );
    expect(await sandbox.fs.read("/tmp/sdk/app/src/utils.js")).toBe("export const helper = () => {};");
    const found = await sandbox.fs.find("/tmp/sdk/app", { type: "file", patterns: ["*.js"], maxResults: 100 });
    expect(found.matches.map((m) => m.path).sort()).toEqual(["src/app.js", "src/utils.js"]);
    const grep = await sandbox.fs.grep("AGENTIC", "/tmp/sdk/app", { caseSensitive: false, contextLines: 1, maxResults: 5, filePattern: "*.md" });
    expect(grep.matches).toEqual([expect.objectContaining({ path: "docs/README.md", line: 1, text: "# My agentic App" })]);
    const fuzzy = await sandbox.fs.search("ignored", "/tmp/sdk/app");
    expect(fuzzy).toHaveProperty("matches");
  });

  it("serves 100 parallel reads", async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => sandbox.fs.write(`/tmp/sdk/par/${i}.txt`, `content ${i}`)));
    const reads = await Promise.all(Array.from({ length: 100 }, (_, i) => sandbox.fs.read(`/tmp/sdk/par/${i % 20}.txt`)));
    expect(reads).toEqual(Array.from({ length: 100 }, (_, i) => `content ${i % 20}`));
  });

  it("watches a directory with and without content, recursively with /**", async () => {
    await sandbox.fs.mkdir("/tmp/sdk/watched/sub");
    const plain: Array<{ op: string; name: string; path: string }> = [];
    const rich: Array<{ op: string; name: string; content?: string }> = [];
    const a = sandbox.fs.watch("/tmp/sdk/watched", (e) => void plain.push(e));
    const b = sandbox.fs.watch("/tmp/sdk/watched/**", (e) => void rich.push(e), { withContent: true });
    await sleep(300);
    await sandbox.fs.write("/tmp/sdk/watched/top.txt", "top content");
    await sandbox.fs.write("/tmp/sdk/watched/sub/deep.txt", "deep content");
    await waitFor(() => rich.some((e) => e.name === "deep.txt" && e.content === "deep content"), 5000, "recursive event with content");
    await waitFor(() => plain.some((e) => e.name === "top.txt"), 5000, "plain event");
    expect(rich.find((e) => e.name === "top.txt" && e.content !== undefined)?.content).toBe("top content");
    expect(plain.some((e) => e.name === "deep.txt")).toBe(false);
    expect(plain.find((e) => e.name === "top.txt")).toMatchObject({ path: "/tmp/sdk/watched" });
    a.close();
    b.close();
    await waitFor(() => h.services.watches.active === 0, 3000, "watches released");
  });
});

describe("sandbox.process", () => {
  it("exec with waitForCompletion returns logs; onLog streams every chunk exactly once", async () => {
    const r = await sandbox.process.exec({ command: "echo hello; echo oops >&2; exit 3", waitForCompletion: true });
    expect(r).toMatchObject({ status: "failed", exitCode: 3, stdout: "hello\n", stderr: "oops\n" });
    const logs: string[] = [];
    const out: string[] = [];
    const streamed = await sandbox.process.exec({
      command: "for i in $(seq 1 20); do echo line$i; done; echo err >&2",
      waitForCompletion: true,
      onLog: (l: string) => logs.push(l),
      onStdout: (l: string) => out.push(l),
    } as never);
    expect(streamed.status).toBe("completed");
    expect(out.join("")).toBe(Array.from({ length: 20 }, (_, i) => `line${i + 1}\n`).join(""));
    expect(logs.join("").split("\n").filter(Boolean).sort()).toEqual([...Array.from({ length: 20 }, (_, i) => `line${i + 1}`), "err"].sort());
  });

  it("exec with onLog but without waiting streams the logs (backfill, no duplicates)", async () => {
    const lines: string[] = [];
    const p = await sandbox.process.exec({ command: "echo a; sleep 0.3; echo b; sleep 0.3; echo c", name: "bg-sdk", onLog: (l: string) => lines.push(l) } as never);
    await sandbox.process.wait("bg-sdk", { maxWait: 5000, interval: 100 });
    await waitFor(() => lines.length >= 3, 2000, "all lines");
    (p as unknown as { close(): void }).close();
    expect(lines).toEqual(["a", "b", "c"]);
  });

  it("streamLogs can be closed early", async () => {
    await sandbox.process.exec({ command: "for i in $(seq 1 100); do echo tick$i; sleep 0.05; done", name: "ticker" });
    const seen: string[] = [];
    const s = sandbox.process.streamLogs("ticker", { onStdout: (l: string) => seen.push(l) });
    await waitFor(() => seen.length >= 3, 3000, "some ticks");
    s.close();
    await s.wait();
    const count = seen.length;
    await sleep(300);
    expect(seen.length).toBe(count);
    expect(seen.slice(0, 3)).toEqual(["tick1", "tick2", "tick3"]);
    await sandbox.process.kill("ticker");
  });

  it("wait honours maxWait; kill, logs by type, get, list", async () => {
    const p = await sandbox.process.exec({ command: "echo to-out; echo to-err >&2; sleep 30", name: "long" });
    await expect(sandbox.process.wait("long", { maxWait: 400, interval: 100 })).rejects.toThrow("Process did not finish in time");
    await sandbox.process.kill("long");
    const done = await sandbox.process.wait(p.pid, { maxWait: 3000, interval: 100 });
    expect(done.status).toBe("killed");
    expect(await sandbox.process.logs("long", "stdout")).toBe("to-out\n");
    expect(await sandbox.process.logs("long", "stderr")).toBe("to-err\n");
    expect(await sandbox.process.logs("long")).toContain("to-err\n");
    expect((await sandbox.process.list()).some((x) => x.name === "long" && x.status === "killed")).toBe(true);
    await sandbox.process.exec({ command: "sleep 30", name: "polite" });
    await sandbox.process.stop("polite");
    expect((await sandbox.process.wait("polite", { maxWait: 3000, interval: 100 })).status).toBe("stopped");
  });

  it("restarts on failure and keeps the sandbox alive with keepAlive", async () => {
    const r = await sandbox.process.exec({
      command: "if [ -f /tmp/sdk-restarted ]; then echo recovered; else touch /tmp/sdk-restarted; exit 1; fi",
      restartOnFailure: true,
      maxRestarts: 3,
      waitForCompletion: true,
    });
    expect(r).toMatchObject({ status: "completed", restartCount: 1 });
    expect(r.logs).toContain("recovered");
    await sandbox.process.exec({ command: "sleep 30", name: "keeper", keepAlive: true });
    expect(h.services.keepAliveActive()).toBe(true);
    await sandbox.process.kill("keeper");
    await waitFor(() => !h.services.keepAliveActive(), 3000, "keep-alive released");
  });

  it("writes to and closes stdin", async () => {
    await sandbox.process.exec({ command: "read a; read b; echo \"got $a and $b\"; cat", name: "reader", stdin: true } as never);
    await sandbox.process.writeStdin("reader", "one\ntwo\n");
    await sandbox.process.writeStdin("reader", "rest\n");
    await sandbox.process.closeStdin("reader");
    const done = await sandbox.process.wait("reader", { maxWait: 3000, interval: 50 });
    expect(done.stdout).toBe("got one and two\nrest\n");
  });

  it("surfaces errors with the server's message", async () => {
    await expect(sandbox.process.get("no-such-process")).rejects.toThrow(/404.*not found/);
    await expect(sandbox.system.upgrade({})).rejects.toThrow(/503/);
  });
});
