// Measurements (printed; loose bounds only): exec round trip of `true` through the HTTP API vs a raw
// spawn, 1 MiB write+read round trips, and content search over 10,000 files vs running rg directly.

import { execFile, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSandbox, type SandboxHarness } from "../test/harness.js";

const run = promisify(execFile);
let h: SandboxHarness;
let fallback: SandboxHarness;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function http(method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: h.port, method, path, agent, headers: body ? { ...headers, "content-length": String(body.length) } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

function stats(samples: number[]): { p50: number; p90: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { p50: round(q(0.5)), p90: round(q(0.9)), mean: round(s.reduce((a, b) => a + b, 0) / s.length) };
}
const round = (v: number) => Math.round(v * 1000) / 1000;

async function time(n: number, fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

const FILES = 10_000;

beforeAll(async () => {
  h = await startSandbox({ limits: { maxFinishedProcesses: 100 } });
  fallback = await startSandbox({ hideRipgrep: true });
  // A 10,000-file tree (100 directories × 100 files), written straight into both roots.
  for (const root of [h.root, fallback.root]) {
    for (let d = 0; d < 100; d++) {
      const dir = join(root, "tmp/tree", `dir${d}`);
      await mkdir(dir, { recursive: true });
      await Promise.all(
        Array.from({ length: FILES / 100 }, (_, f) =>
          writeFile(join(dir, `file${f}.txt`), `file ${d}/${f}\n${"lorem ipsum dolor sit amet\n".repeat(20)}${(d * 100 + f) % 997 === 0 ? "needle-in-haystack\n" : ""}`),
        ),
      );
    }
  }
}, 120_000);

afterAll(async () => {
  agent.destroy();
  await h?.stop();
  await fallback?.stop();
});

describe("performance", () => {
  it("exec round trip of `true` through the API vs a raw spawn", { timeout: 120_000 }, async () => {
    const body = Buffer.from(JSON.stringify({ command: "true", waitForCompletion: true }));
    const headers = { "content-type": "application/json" };
    await time(50, async () => void (await http("POST", "/process", body, headers)));
    const api = await time(300, async () => {
      const r = await http("POST", "/process", body, headers);
      if (r.status !== 200) throw new Error(r.body.toString());
    });
    const direct = await time(300, () => new Promise<void>((resolve, reject) => spawn("true").on("exit", () => resolve()).on("error", reject)));
    const viaShell = await time(300, () => new Promise<void>((resolve, reject) => spawn("/bin/sh", ["-c", "true"]).on("exit", () => resolve()).on("error", reject)));
    const a = stats(api);
    console.log(`exec true via API (ms): ${JSON.stringify(a)}; raw spawn('true'): ${JSON.stringify(stats(direct))}; raw spawn('sh -c true'): ${JSON.stringify(stats(viaShell))}`);
    expect(a.p50).toBeLessThan(10);
  });

  it("1 MiB write + read round trip", { timeout: 120_000 }, async () => {
    const text = "x".repeat(1024 * 1024);
    const jsonBody = Buffer.from(JSON.stringify({ content: text }));
    const bin = Buffer.alloc(1024 * 1024, 7);
    const boundary = "----hangarbench";
    const mp = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      bin,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const jsonRt = await time(40, async () => {
      await http("PUT", "/filesystem/%2Ftmp%2Fmib.txt", jsonBody, { "content-type": "application/json" });
      const r = await http("GET", "/filesystem/%2Ftmp%2Fmib.txt");
      if (r.body.length < text.length) throw new Error("short read");
    });
    const binRt = await time(40, async () => {
      await http("PUT", "/filesystem//tmp/mib.bin", mp, { "content-type": `multipart/form-data; boundary=${boundary}` });
      const r = await http("GET", "/filesystem/%2Ftmp%2Fmib.bin", undefined, { accept: "application/octet-stream" });
      if (!r.body.equals(bin)) throw new Error("bad read");
    });
    console.log(`1 MiB write+read (ms): JSON text ${JSON.stringify(stats(jsonRt))}; multipart binary + octet-stream ${JSON.stringify(stats(binRt))}`);
    expect(stats(binRt).p50).toBeLessThan(200);
  });

  it("content search over 10,000 files vs rg directly", { timeout: 180_000 }, async () => {
    const q = "/filesystem-content-search/%2Ftmp%2Ftree?query=needle-in-haystack&maxResults=100";
    const first = JSON.parse((await http("GET", q)).body.toString()) as { total: number };
    const expected = Array.from({ length: FILES }, (_, i) => i).filter((i) => i % 997 === 0).length;
    expect(first.total).toBe(expected);
    const api = await time(10, async () => void (await http("GET", q)));
    const direct = await time(10, async () => {
      await run("rg", ["--json", "--no-config", "--no-ignore", "--hidden", "-i", "--fixed-strings", "-e", "needle-in-haystack", "--", "."], { cwd: join(h.root, "tmp/tree"), maxBuffer: 64 * 1024 * 1024 });
    });
    const fb = await time(2, async () => {
      const r = await new Promise<{ total: number }>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: fallback.port, path: q }, (res) => {
          let b = "";
          res.on("data", (c: Buffer) => (b += c));
          res.on("end", () => resolve(JSON.parse(b) as { total: number }));
        });
        req.on("error", reject);
        req.end();
      });
      if (r.total !== expected) throw new Error(`fallback found ${r.total}`);
    });
    console.log(`search 10,000 files (ms): API with rg in the sandbox ${JSON.stringify(stats(api))}; rg directly ${JSON.stringify(stats(direct))}; API walk fallback (no rg) ${JSON.stringify(stats(fb))}`);
    expect(stats(api).p50).toBeLessThan(2000);
  });
});
