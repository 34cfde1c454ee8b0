// Filesystem API over raw HTTP against a real agent in a chroot.

import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { type IncomingMessage, type ServerResponse, request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writingKeepalive } from "@hangar/common";
import { raw, startSandbox, waitFor, type SandboxHarness } from "../test/harness.js";

let h: SandboxHarness;
const enc = encodeURIComponent;

beforeAll(async () => {
  h = await startSandbox();
});
afterAll(async () => {
  await h?.stop();
});

function multipart(fields: Array<{ name: string; value: string | Buffer; filename?: string }>): { body: Buffer; type: string } {
  const boundary = `----hangar${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const f of fields) {
    const disp = `form-data; name="${f.name}"${f.filename ? `; filename="${f.filename}"` : ""}`;
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disp}\r\n${f.filename ? "Content-Type: application/octet-stream\r\n" : ""}\r\n`));
    parts.push(Buffer.isBuffer(f.value) ? f.value : Buffer.from(f.value));
    parts.push(Buffer.from("\r\n"));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

describe("read and write", () => {
  it("writes and reads text with unicode, as FileWithContent", async () => {
    const text = "héllo wörld ✓ 日本語 🚀\nline 2\n";
    const w = await raw(h.port, "PUT", `/filesystem/${enc("/tmp/uni.txt")}`, { content: text });
    expect(w.status).toBe(200);
    expect(w.json()).toEqual({ path: "/tmp/uni.txt", message: "File created/updated successfully" });
    const r = await raw(h.port, "GET", `/filesystem/${enc("/tmp/uni.txt")}`);
    expect(r.status).toBe(200);
    const f = r.json<Record<string, unknown>>();
    expect(f).toMatchObject({ path: "/tmp/uni.txt", name: "uni.txt", content: text, size: Buffer.byteLength(text), permissions: "644", owner: "root", group: "root" });
    expect(f.lastModified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(await readFile(join(h.root, "tmp/uni.txt"), "utf8")).toBe(text);
  });

  it("overwrites (shorter content truncates) and honours permissions", async () => {
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/ow.txt")}`, { content: "long long content" });
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/ow.txt")}`, { content: "short" });
    expect((await raw(h.port, "GET", `/filesystem/${enc("/tmp/ow.txt")}`)).json<{ content: string }>().content).toBe("short");
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/exec.sh")}`, { content: "#!/bin/sh\necho ok\n", permissions: "0755" });
    expect((await stat(join(h.root, "tmp/exec.sh"))).mode & 0o777).toBe(0o755);
    const bad = await raw(h.port, "PUT", `/filesystem/${enc("/tmp/x.txt")}`, { content: "x", permissions: "rwx" });
    expect(bad.status).toBe(400);
  });

  it("resolves relative, double-slash and ~ paths per the wire spec", async () => {
    await raw(h.port, "PUT", "/filesystem/rel/dir/a.txt", { content: "relative" });
    expect(await readFile(join(h.root, "blaxel/rel/dir/a.txt"), "utf8")).toBe("relative");
    await raw(h.port, "PUT", "/filesystem//tmp/dbl.txt", { content: "double" });
    expect(await readFile(join(h.root, "tmp/dbl.txt"), "utf8")).toBe("double");
    await raw(h.port, "PUT", `/filesystem/${enc("~/home.txt")}`, { content: "home" });
    expect(await readFile(join(h.root, "root/home.txt"), "utf8")).toBe("home");
    // An encoded slash makes the path absolute (Blaxel's sandbox-api does the same).
    await raw(h.port, "PUT", `/filesystem/${enc("abs/x.txt")}`, { content: "abs" });
    expect(await readFile(join(h.root, "abs/x.txt"), "utf8")).toBe("abs");
    const wd = await raw(h.port, "GET", "/filesystem/");
    expect(wd.json<{ path: string }>().path).toBe("/blaxel");
  });

  it("downloads raw bytes with Accept: application/octet-stream or download=true, with ranges", async () => {
    const bin = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
    const mp = multipart([
      { name: "file", value: bin, filename: "b.bin" },
      { name: "permissions", value: "0600" },
    ]);
    const up = await raw(h.port, "PUT", "/filesystem//tmp/b.bin", mp.body, { "content-type": mp.type });
    expect(up.status).toBe(200);
    expect(up.json()).toEqual({ path: "/tmp/b.bin", message: "Binary file uploaded successfully" });
    expect((await stat(join(h.root, "tmp/b.bin"))).mode & 0o777).toBe(0o600);
    const dl = await raw(h.port, "GET", `/filesystem/${enc("/tmp/b.bin")}`, undefined, { accept: "application/octet-stream" });
    expect(dl.status).toBe(200);
    expect(dl.headers["content-type"]).toBe("application/octet-stream");
    expect(dl.headers["content-disposition"]).toBe('attachment; filename="b.bin"');
    expect(dl.body.equals(bin)).toBe(true);
    const q = await raw(h.port, "GET", `/filesystem/${enc("/tmp/b.bin")}?download=true`);
    expect(q.body.equals(bin)).toBe(true);
    const part = await raw(h.port, "GET", `/filesystem/${enc("/tmp/b.bin")}`, undefined, { accept: "application/octet-stream", range: "bytes=100-199" });
    expect(part.status).toBe(206);
    expect(part.headers["content-range"]).toBe("bytes 100-199/3000");
    expect(part.body.equals(bin.subarray(100, 200))).toBe(true);
    const suffix = await raw(h.port, "GET", `/filesystem/${enc("/tmp/b.bin")}`, undefined, { accept: "application/octet-stream", range: "bytes=-10" });
    expect(suffix.body.equals(bin.subarray(2990))).toBe(true);
    const bad = await raw(h.port, "GET", `/filesystem/${enc("/tmp/b.bin")}`, undefined, { accept: "application/octet-stream", range: "bytes=5000-" });
    expect(bad.status).toBe(416);
    const head = await raw(h.port, "HEAD", `/filesystem/${enc("/tmp/b.bin")}?download=true`);
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe("3000");
    // text/plain Accept (a specific non-JSON type) also gets the raw bytes
    const txt = await raw(h.port, "GET", `/filesystem/${enc("/tmp/uni.txt")}`, undefined, { accept: "text/plain" });
    expect(txt.headers["content-type"]).toBe("text/plain");
  });

  it("streams a large binary upload and download intact", async () => {
    const big = Buffer.alloc(7 * 1024 * 1024 + 123);
    for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
    const mp = multipart([{ name: "file", value: big, filename: "big.bin" }]);
    const up = await raw(h.port, "PUT", "/filesystem//tmp/big.bin", mp.body, { "content-type": mp.type });
    expect(up.status).toBe(200);
    const dl = await raw(h.port, "GET", "/filesystem//tmp/big.bin", undefined, { accept: "application/octet-stream" });
    expect(createHash("sha256").update(dl.body).digest("hex")).toBe(createHash("sha256").update(big).digest("hex"));
  });

  it("rejects a multipart body without a file part", async () => {
    const mp = multipart([{ name: "permissions", value: "0644" }]);
    const r = await raw(h.port, "PUT", "/filesystem//tmp/none.bin", mp.body, { "content-type": mp.type });
    expect(r.status).toBe(400);
    expect(r.json<{ error: string }>().error).toContain("file");
  });

  it("reads and writes only regular files (FIFOs and devices are refused, never opened)", async () => {
    expect((await raw(h.port, "POST", "/process", { command: "mkfifo /tmp/fifo", waitForCompletion: true })).json<{ exitCode: number }>().exitCode).toBe(0);
    for (const [m, p, b, hd] of [
      ["GET", "/filesystem/%2Ftmp%2Ffifo", undefined, {}],
      ["GET", "/filesystem/%2Ftmp%2Ffifo", undefined, { accept: "application/octet-stream" }],
      ["PUT", "/filesystem/%2Ftmp%2Ffifo", { content: "x" }, {}],
      ["GET", "/filesystem/%2Fdev%2Fzero", undefined, {}],
    ] as const) {
      const r = await raw(h.port, m, p, b, hd);
      expect(r.status, `${m} ${p}`).toBe(422);
      expect(r.json<{ error: string }>().error).toContain("not a regular file");
    }
  });

  it("answers 404 problems with the SDK's fields", async () => {
    const r = await raw(h.port, "GET", `/filesystem/${enc("/tmp/nope.txt")}`);
    expect(r.status).toBe(404);
    expect(r.headers["content-type"]).toContain("application/problem+json");
    expect(r.json()).toMatchObject({ status: 404, code: 404, error: expect.stringContaining("/tmp/nope.txt"), type: "urn:hangar:problem:file_not_found" });
    const bad = await raw(h.port, "PUT", `/filesystem/${enc("/tmp/j.txt")}`, "{not json", { "content-type": "application/json" });
    expect(bad.status).toBe(400);
    expect(bad.json<{ error: string }>().error).toContain("JSON");
  });
});

describe("directories", () => {
  it("lists with metadata: Go permissions, owner and group names, RFC 3339 times", async () => {
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/ls/a.txt")}`, { content: "aaa" });
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/ls/sub")}`, { isDirectory: true });
    const chown = await raw(h.port, "POST", "/process", { command: "chown 4242:4242 /tmp/ls/a.txt", waitForCompletion: true });
    expect(chown.json<{ exitCode: number }>().exitCode).toBe(0);
    const r = await raw(h.port, "GET", `/filesystem/${enc("/tmp/ls")}`);
    const d = r.json<{ path: string; name: string; files: Array<Record<string, unknown>>; subdirectories: Array<Record<string, unknown>> }>();
    expect(d.path).toBe("/tmp/ls");
    expect(d.name).toBe("ls");
    expect(d.files).toEqual([expect.objectContaining({ path: "/tmp/ls/a.txt", name: "a.txt", size: 3, permissions: "644", owner: "sandboxuser", group: "sandboxgroup" })]);
    expect(d.subdirectories).toEqual([{ path: "/tmp/ls/sub", name: "sub" }]);
  });

  it("creates nested directories with permissions, idempotently", async () => {
    const r = await raw(h.port, "PUT", `/filesystem/${enc("/tmp/n1/n2/n3")}`, { isDirectory: true, permissions: "0700" });
    expect(r.json()).toEqual({ path: "/tmp/n1/n2/n3", message: "Directory created successfully" });
    expect((await stat(join(h.root, "tmp/n1/n2/n3"))).mode & 0o777).toBe(0o700);
    expect((await raw(h.port, "PUT", `/filesystem/${enc("/tmp/n1/n2/n3")}`, { isDirectory: true })).status).toBe(200);
    const parent = await raw(h.port, "GET", `/filesystem/${enc("/tmp/n1")}`);
    expect(parent.json<{ subdirectories: unknown[] }>().subdirectories).toHaveLength(1);
  });

  it("refuses to delete a non-empty directory without recursive (422), deletes with it", async () => {
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/rmme/x/y.txt")}`, { content: "y" });
    const no = await raw(h.port, "DELETE", `/filesystem/${enc("/tmp/rmme")}?recursive=false`);
    expect(no.status).toBe(422);
    expect(no.json<{ error: string }>().error).toContain("not empty");
    const yes = await raw(h.port, "DELETE", `/filesystem/${enc("/tmp/rmme")}?recursive=true`);
    expect(yes.json()).toEqual({ path: "/tmp/rmme", message: "Directory deleted successfully" });
    await expect(stat(join(h.root, "tmp/rmme"))).rejects.toThrow();
    const file = await raw(h.port, "DELETE", `/filesystem/${enc("/tmp/ow.txt")}`);
    expect(file.json()).toEqual({ path: "/tmp/ow.txt", message: "File deleted successfully" });
    expect((await raw(h.port, "DELETE", `/filesystem/${enc("/tmp/ow.txt")}`)).status).toBe(404);
  });

  it("reads, writes and deletes trees", async () => {
    const put = await raw(h.port, "PUT", "/filesystem/tree//tmp/tree", { files: { "a.txt": "A", "src/b.ts": "B", "src/deep/c.md": "C" } });
    expect(put.status).toBe(200);
    const t = put.json<{ path: string; files: Array<{ name: string }>; subdirectories: Array<{ name: string; files?: Array<{ name: string }>; subdirectories?: unknown[] }> }>();
    expect(t.path).toBe("/tmp/tree");
    expect(t.files.map((f) => f.name)).toEqual(["a.txt"]);
    expect(t.subdirectories[0]).toMatchObject({ name: "src", files: [expect.objectContaining({ name: "b.ts" })] });
    expect(await readFile(join(h.root, "tmp/tree/src/deep/c.md"), "utf8")).toBe("C");
    const get = await raw(h.port, "GET", `/filesystem/tree/${enc("/tmp/tree")}`);
    expect(get.json()).toEqual(put.json());
    expect((await raw(h.port, "GET", `/filesystem/tree/${enc("/tmp/tree/a.txt")}`)).status).toBe(400);
    const del = await raw(h.port, "DELETE", `/filesystem/tree/${enc("/tmp/tree")}?recursive=true`);
    expect(del.status).toBe(200);
    await expect(stat(join(h.root, "tmp/tree"))).rejects.toThrow();
  });
});

describe("find and search", () => {
  beforeAll(async () => {
    await raw(h.port, "PUT", "/filesystem/tree//tmp/proj", {
      files: {
        "src/main.go": "package main\n// TODO: wire the server\nfunc main() {}\n",
        "src/util/helpers.go": "package util\nfunc Helper() {} // todo later\n",
        "src/app.ts": "export const answer = 42;\nconsole.log('Searchable Text');\n",
        "README.md": "# Project\nSearchable text lives here\n",
        "node_modules/dep/index.js": "// TODO inside node_modules\n",
        ".hidden/secret.go": "package hidden // TODO hidden\n",
      },
    });
  });

  it("finds files by glob with type, exclusions and limits", async () => {
    const go = await raw(h.port, "GET", `/filesystem-find/${enc("/tmp/proj")}?patterns=*.go`);
    expect(go.json()).toEqual({ matches: [{ path: "src/main.go", type: "file" }, { path: "src/util/helpers.go", type: "file" }], total: 2 });
    const all = await raw(h.port, "GET", `/filesystem-find/${enc("/tmp/proj")}?patterns=*.go,*.js&excludeHidden=false&excludeDirs=`);
    expect(all.json<{ total: number }>().total).toBe(4);
    const dirs = await raw(h.port, "GET", `/filesystem-find/${enc("/tmp/proj")}?type=directory`);
    expect(dirs.json<{ matches: Array<{ path: string }> }>().matches.map((m) => m.path)).toEqual(["src", "src/util"]);
    const one = await raw(h.port, "GET", `/filesystem-find/${enc("/tmp/proj")}?maxResults=1`);
    expect(one.json<{ total: number }>().total).toBe(1);
    expect((await raw(h.port, "GET", `/filesystem-find/${enc("/tmp/proj")}?type=socket`)).status).toBe(400);
  });

  it("fuzzy-searches paths like Blaxel (the path is both directory and term), or with an explicit query", async () => {
    const r = await raw(h.port, "GET", `/filesystem-search/${enc("/tmp/proj")}?query=hlpr`);
    expect(r.json<{ matches: Array<{ path: string; score: number }> }>().matches[0]).toMatchObject({ path: "src/util/helpers.go" });
    const self = await raw(h.port, "GET", `/filesystem-search/${enc("/tmp/proj")}`);
    expect(self.status).toBe(200);
    expect(self.json<{ matches: unknown[]; total: number }>()).toHaveProperty("total");
    expect((await raw(h.port, "GET", `/filesystem-search/${enc("/")}`)).status).toBe(400);
  });

  it("searches content with ripgrep in the sandbox: case, context, file pattern, exclusions", async () => {
    const r = await raw(h.port, "GET", `/filesystem-content-search/${enc("/tmp/proj")}?query=todo`);
    const body = r.json<{ query: string; matches: Array<{ path: string; line: number; column: number; text: string }>; total: number }>();
    expect(body.query).toBe("todo");
    expect(body.matches.map((m) => m.path).sort()).toEqual([".hidden/secret.go", "src/main.go", "src/util/helpers.go"]);
    expect(body.matches.find((m) => m.path === "src/main.go")).toMatchObject({ line: 2, column: 4, text: "// TODO: wire the server" });
    const cs = await raw(h.port, "GET", `/filesystem-content-search/${enc("/tmp/proj")}?query=TODO&caseSensitive=true&filePattern=*.go&excludeDirs=.hidden`);
    expect(cs.json<{ matches: Array<{ path: string }> }>().matches.map((m) => m.path)).toEqual(["src/main.go"]);
    const ctx = await raw(h.port, "GET", `/filesystem-content-search/${enc("/tmp/proj")}?query=answer&contextLines=1`);
    expect(ctx.json<{ matches: Array<{ context: string }> }>().matches[0]!.context).toBe("export const answer = 42;\nconsole.log('Searchable Text');");
    const lim = await raw(h.port, "GET", `/filesystem-content-search/${enc("/tmp/proj")}?query=e&maxResults=2`);
    expect(lim.json<{ total: number }>().total).toBe(2);
    expect((await raw(h.port, "GET", `/filesystem-content-search/${enc("/tmp/proj")}`)).status).toBe(400);
  });

  it("falls back to a walk through the agent when the sandbox has no ripgrep", async () => {
    const h2 = await startSandbox({ hideRipgrep: true });
    try {
      await raw(h2.port, "PUT", "/filesystem/tree//tmp/p", { files: { "a.go": "x\n// TODO one\n", "b/c.go": "TODO two\n", "node_modules/x.go": "TODO no\n" } });
      const r = await raw(h2.port, "GET", `/filesystem-content-search/${enc("/tmp/p")}?query=todo&contextLines=1`);
      const m = r.json<{ matches: Array<{ path: string; line: number; column: number; context: string }> }>().matches;
      expect(m.map((x) => [x.path, x.line, x.column])).toEqual([
        ["a.go", 2, 4],
        ["b/c.go", 1, 1],
      ]);
      expect(m[0]!.context).toBe("x\n// TODO one\n");
    } finally {
      await h2.stop();
    }
  });
});

describe("multipart uploads", () => {
  it("assembles out-of-order parts, lists them, checks etags, and aborts", async () => {
    const init = await raw(h.port, "POST", `/filesystem-multipart/initiate/${enc("/tmp/mp/out.bin")}`, { permissions: "0640" });
    const { uploadId, path } = init.json<{ uploadId: string; path: string }>();
    expect(path).toBe("/tmp/mp/out.bin");
    const parts = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2), Buffer.alloc(10, 3)];
    const got: Array<{ partNumber: number; etag: string; size: number }> = [];
    for (const n of [3, 1, 2]) {
      const mp = multipart([{ name: "file", value: parts[n - 1]!, filename: "blob" }]);
      const r = await raw(h.port, "PUT", `/filesystem-multipart/${uploadId}/part?partNumber=${n}`, mp.body, { "content-type": mp.type });
      expect(r.status).toBe(200);
      got.push(r.json());
    }
    expect(got.find((p) => p.partNumber === 3)).toEqual({ partNumber: 3, etag: createHash("md5").update(parts[2]!).digest("hex"), size: 10 });
    const listed = await raw(h.port, "GET", `/filesystem-multipart/${uploadId}/parts`);
    expect(listed.json<{ parts: Array<{ partNumber: number }> }>().parts.map((p) => p.partNumber)).toEqual([1, 2, 3]);
    expect((await raw(h.port, "GET", "/filesystem-multipart")).json<{ uploads: Array<{ uploadId: string }> }>().uploads.map((u) => u.uploadId)).toContain(uploadId);
    const wrong = await raw(h.port, "POST", `/filesystem-multipart/${uploadId}/complete`, { parts: [{ partNumber: 1, etag: "nope" }] });
    expect(wrong.status).toBe(400);
    const done = await raw(h.port, "POST", `/filesystem-multipart/${uploadId}/complete`, { parts: got });
    expect(done.json()).toEqual({ path: "/tmp/mp/out.bin", message: "Multipart upload completed successfully" });
    expect((await readFile(join(h.root, "tmp/mp/out.bin"))).equals(Buffer.concat(parts))).toBe(true);
    expect((await stat(join(h.root, "tmp/mp/out.bin"))).mode & 0o777).toBe(0o640);
    expect((await raw(h.port, "GET", `/filesystem-multipart/${uploadId}/parts`)).status).toBe(404);

    const second = (await raw(h.port, "POST", `/filesystem-multipart/initiate/${enc("/tmp/mp/ab.bin")}`, {})).json<{ uploadId: string }>().uploadId;
    expect((await raw(h.port, "DELETE", `/filesystem-multipart/${second}/abort`)).json()).toEqual({ message: "Multipart upload aborted successfully" });
    expect((await raw(h.port, "DELETE", `/filesystem-multipart/${second}/abort`)).status).toBe(404);
    await expect(stat(join(h.root, "tmp/.hangar-multipart", second))).rejects.toThrow();
  });
});

describe("watch", () => {
  function watch(path: string, onLine: (l: string) => void): { close(): void; status: Promise<number> } {
    let close = () => {};
    const status = new Promise<number>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: h.port, path }, (res) => {
        resolve(res.statusCode ?? 0);
        let buf = "";
        res.on("data", (c: Buffer) => {
          buf += c.toString();
          const lines = buf.split("\n");
          buf = lines.pop()!;
          for (const l of lines) if (l) onLine(l);
        });
        res.on("error", () => {});
      });
      req.on("error", reject);
      req.end();
      close = () => req.destroy();
    });
    return { close: () => close(), status };
  }

  it("streams NDJSON events, recursively with /** and new subdirectories, honouring ignore", async () => {
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/w")}`, { isDirectory: true });
    const events: Array<{ op: string; path: string; name: string; error: null }> = [];
    const w = watch(`/watch/filesystem/${enc("/tmp/w/**")}?ignore=ignored`, (l) => events.push(JSON.parse(l)));
    expect(await w.status).toBe(200);
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/w/a.txt")}`, { content: "1" });
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/w/ignored.txt")}`, { content: "1" });
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/w/newdir/deeper/b.txt")}`, { content: "2" });
    await waitFor(() => events.some((e) => e.name === "b.txt"), 5000, "event in a new subdirectory");
    await raw(h.port, "PUT", `/filesystem/${enc("/tmp/w/newdir/c.txt")}`, { content: "3" });
    await waitFor(() => events.some((e) => e.name === "c.txt"), 5000, "event in the new directory");
    w.close();
    expect(events.find((e) => e.name === "a.txt")).toMatchObject({ op: "CREATE", path: "/tmp/w", error: null });
    expect(events.some((e) => e.name.includes("ignored"))).toBe(false);
  });

  it("watches only the directory itself without /**, and sends keepalives (flagged: not activity)", async () => {
    const k = await startSandbox({ limits: { streamKeepaliveMs: 100 } });
    // what the edge counts as sandbox activity: every write of a response except keepalives
    const counted: string[] = [];
    k.server.removeAllListeners("request");
    k.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const write = res.write.bind(res) as (...a: unknown[]) => boolean;
      res.write = ((...a: unknown[]) => {
        if (!writingKeepalive(res)) counted.push(String(a[0]));
        return write(...a);
      }) as typeof res.write;
      k.api.handle(req, res, k.services);
    });
    try {
      await raw(k.port, "PUT", `/filesystem/${enc("/tmp/w2/sub/x")}`, { content: "" });
      const lines: string[] = [];
      const req = request({ host: "127.0.0.1", port: k.port, path: `/watch/filesystem/${enc("/tmp/w2")}` }, (res) => res.on("data", (c: Buffer) => lines.push(...c.toString().split("\n").filter(Boolean))));
      req.end();
      await waitFor(() => lines.includes("[keepalive]"), 3000, "keepalive");
      await raw(k.port, "PUT", `/filesystem/${enc("/tmp/w2/sub/deep.txt")}`, { content: "x" });
      await raw(k.port, "PUT", `/filesystem/${enc("/tmp/w2/top.txt")}`, { content: "x" });
      await waitFor(() => lines.some((l) => l.includes("top.txt")), 3000, "top-level event");
      req.destroy();
      expect(lines.some((l) => l.includes("deep.txt"))).toBe(false);
      expect(counted.some((c) => c.includes("top.txt"))).toBe(true);
      expect(counted.some((c) => c.includes("keepalive"))).toBe(false);
    } finally {
      await k.stop();
    }
  });

  it("refuses to watch a file", async () => {
    expect((await raw(h.port, "GET", `/watch/filesystem/${enc("/tmp/uni.txt")}`)).status).toBe(400);
  });
});
