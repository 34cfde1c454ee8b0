import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LogStore, type LogChunk } from "./log-store.js";

const dir = mkdtempSync(join(tmpdir(), "hangar-logstore-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const store = (memoryLimit: number, fileLimit: number) => new LogStore(join(dir, `${n++}.log`), { memoryLimit, fileLimit });

describe("LogStore", () => {
  it("keeps small output in memory, interleaved and split by stream", async () => {
    const s = store(1024, 4096);
    s.append(1, Buffer.from("out1\n"));
    s.append(2, Buffer.from("err1\n"));
    s.append(1, Buffer.from("out2\n"));
    expect(await s.text()).toEqual({ logs: "out1\nerr1\nout2\n", stdout: "out1\nout2\n", stderr: "err1\n" });
    expect(s.tail()).toEqual(await s.text());
  });

  it("spills older output to a file and reads everything back in order", async () => {
    const s = store(100, 1 << 20);
    let all = "";
    for (let i = 0; i < 200; i++) {
      const line = `line ${i} ${"x".repeat(i % 13)}\n`;
      all += line;
      s.append(i % 5 === 0 ? 2 : 1, Buffer.from(line));
    }
    const t = await s.text();
    expect(t.logs).toBe(all);
    expect(statSync(s.file).size).toBeGreaterThan(0);
    expect(Buffer.byteLength(s.tail().logs)).toBeLessThanOrEqual(100);
    s.end();
  });

  it("bounds the file and marks what was dropped, keeping head and tail", async () => {
    const s = store(50, 200);
    for (let i = 0; i < 1000; i++) s.append(1, Buffer.from(`${String(i).padStart(4, "0")}\n`));
    const t = await s.text();
    expect(t.logs.startsWith("0000\n0001\n")).toBe(true);
    expect(t.logs).toContain("bytes of output omitted");
    expect(t.logs.endsWith("0999\n")).toBe(true);
    expect(statSync(s.file).size).toBeLessThan(200 + 5 * 60);
    const m = /\[hangar: (\d+) bytes/.exec(t.logs);
    expect(Number(m![1])).toBe(5000 - 200 - 50);
  });

  it("writes output through, so a new server process reads it all back after a crash", async () => {
    const file = join(dir, `${n++}.log`);
    const s = new LogStore(file, { memoryLimit: 64, fileLimit: 1 << 20 });
    let all = "";
    for (let i = 0; i < 30; i++) {
      all += `line ${i}\n`;
      s.append(i % 3 ? 1 : 2, Buffer.from(`line ${i}\n`));
    }
    await s.text(); // the writes have landed (a crash does not lose what reached the kernel)
    const again = new LogStore(file, { memoryLimit: 64, fileLimit: 1 << 20 });
    await again.adoptExisting();
    again.append(1, Buffer.from("after\n"));
    expect((await again.text()).logs).toBe(`${all}after\n`);
    expect(again.tail().logs.endsWith("line 29\nafter\n")).toBe(true);
    expect(Buffer.byteLength(again.tail().logs)).toBeLessThanOrEqual(64);
  });

  it("follow() delivers backfill then live chunks without gaps or duplicates", async () => {
    const s = store(64, 1 << 20);
    for (let i = 0; i < 50; i++) s.append(1, Buffer.from(`a${i}\n`));
    const got: LogChunk[] = [];
    let ended = false;
    const f = s.follow(
      (c) => got.push(c),
      () => (ended = true),
    );
    // Live output while the backfill is still being read from disk.
    for (let i = 0; i < 50; i++) s.append(2, Buffer.from(`b${i}\n`));
    s.end();
    await new Promise((r) => setTimeout(r, 50));
    expect(ended).toBe(true);
    const text = Buffer.concat(got.map((c) => c.data)).toString();
    let want = "";
    for (let i = 0; i < 50; i++) want += `a${i}\n`;
    for (let i = 0; i < 50; i++) want += `b${i}\n`;
    expect(text).toBe(want);
    f.close();
  });

  it("follow() on a finished store replays and ends", async () => {
    const s = store(1024, 4096);
    s.append(1, Buffer.from("done\n"));
    s.end();
    const got: string[] = [];
    await new Promise<void>((resolve) => s.follow((c) => got.push(c.data.toString()), resolve));
    expect(got.join("")).toBe("done\n");
  });

  it("tail(maxBytes) returns the last bytes", () => {
    const s = store(1024, 4096);
    s.append(1, Buffer.from("0123456789"));
    s.append(2, Buffer.from("abcdef"));
    expect(s.tail(8).logs).toBe("89abcdef");
  });

  it("dispose removes the spill file", async () => {
    const s = store(10, 1000);
    s.append(1, Buffer.from("x".repeat(100)));
    await s.chunks();
    await s.dispose();
    expect(() => statSync(s.file)).toThrow();
  });
});
