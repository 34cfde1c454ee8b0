import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, type Socket, connect, createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "@hangar/common";
import { ChunkedBody, FrontDoor, ResponseFraming, type SpliceDecider, parseHead, previewPortOf, readCookie, rewriteHead, withoutCookie } from "./front-door.js";

describe("request heads", () => {
  it("parses a head, waits for the rest, refuses what is not HTTP/1.x", () => {
    const raw = Buffer.from("GET /a?b=1 HTTP/1.1\r\nHost: x.preview.localhost\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody");
    const h = parseHead(raw);
    expect(h).not.toBeNull();
    if (!h || h === "bad") throw new Error("unreachable");
    expect([h.method, h.target, h.version, h.headers.get("host"), h.headers.get("x-a")]).toEqual(["GET", "/a?b=1", "HTTP/1.1", "x.preview.localhost", "1"]);
    expect(raw.subarray(h.headLength).toString()).toBe("body");
    expect(parseHead(Buffer.from("GET / HTTP/1.1\r\nHost: x"))).toBeNull();
    expect(parseHead(Buffer.from("PRI * HTTP/2.0\r\n\r\n"))).toBe("bad");
    expect(parseHead(Buffer.from("GET / HTTP/1.1\r\nno colon\r\n\r\n"))).toBe("bad");
    expect(parseHead(Buffer.alloc(40 * 1024, "a"))).toBe("bad");
  });

  it("rewrites the target and drops credentials", () => {
    const raw = Buffer.from("GET /x?bl_preview_token=t HTTP/1.1\r\nHost: h\r\nX-Blaxel-Preview-Token: t\r\nAccept: */*\r\n\r\n");
    const h = parseHead(raw);
    if (!h || h === "bad") throw new Error("unreachable");
    const out = rewriteHead(raw, h, "/x", new Set(["x-blaxel-preview-token"])).toString();
    expect(out).toBe("GET /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n");
  });

  it("reads and strips one cookie, leaving the others as they were", () => {
    expect(readCookie("a=1; hpt=x%20y; b=2", "hpt")).toBe("x y");
    expect(readCookie("ahpt=1", "hpt")).toBeUndefined();
    expect(readCookie(undefined, "hpt")).toBeUndefined();
    expect(withoutCookie(" a=1; hpt=x; b=2", "hpt")).toBe("a=1; b=2");
    expect(withoutCookie("hpt=x", "hpt")).toBeUndefined();
    // its per-port variants go too
    expect(withoutCookie("hpt_20001=x; a=1; hptx=2", "hpt")).toBe("a=1; hptx=2");
    const raw = Buffer.from("GET / HTTP/1.1\r\nHost: h\r\nCookie: hpt=x; theme=dark\r\nCookie: hpt=y\r\n\r\n");
    const h = parseHead(raw);
    if (!h || h === "bad") throw new Error("unreachable");
    expect(rewriteHead(raw, h, "/", new Set(), "hpt").toString()).toBe("GET / HTTP/1.1\r\nHost: h\r\nCookie: theme=dark\r\n\r\n");
  });

  it("finds the end of a chunked body split anywhere", () => {
    const body = Buffer.from("4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nGET /next");
    for (let cut = 1; cut < body.length - 9; cut++) {
      const c = new ChunkedBody();
      const a = c.scan(body.subarray(0, cut));
      expect(a).toBe(cut);
      const b = c.scan(body.subarray(cut));
      expect(c.done).toBe(true);
      expect(body.subarray(cut + b).toString()).toBe("GET /next");
    }
    expect(() => new ChunkedBody().scan(Buffer.from("zz\r\n"))).toThrow(/chunk size/);
  });
});

describe("response framing", () => {
  it("counts responses owed across interim, HEAD, 204, chunked and sized bodies, split anywhere", () => {
    const stream = Buffer.from(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" +
        "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n" + // answer to HEAD: no body
        "HTTP/1.1 204 No Content\r\n\r\n" +
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    );
    for (let cut = 1; cut < stream.length; cut += 7) {
      const f = new ResponseFraming();
      for (const head of [false, true, false, false]) f.request(head);
      f.scan(stream.subarray(0, cut));
      f.scan(stream.subarray(cut));
      expect(f.owed).toBe(0);
    }
    const f = new ResponseFraming();
    f.request(false);
    f.scan(Buffer.from("HTTP/1.0 200 OK\r\n\r\nuntil close"));
    expect(f.owed).toBe(-1);
    expect(() => new ResponseFraming().scan(Buffer.from("garbage\r\n\r\n"))).toThrow(/HTTP/);
  });

  it("rewrites the heads of the responses asked for, wherever the stream is split, and forwards the rest as it comes", () => {
    const a = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    const b = "HTTP/1.1 200 OK\r\nMcp-Session-Id: s1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    const c = "HTTP/1.1 202 Accepted\r\nmcp-session-id: s2\r\nContent-Length: 0\r\n\r\n";
    const stream = Buffer.from(a + b + c);
    const pin = (h: string) => h.replace(/\r\nmcp-session-id: */i, "$&r1.");
    const expected = a + b.replace("s1", "r1.s1") + c.replace("s2", "r1.s2");
    for (let cut = 1; cut < stream.length; cut++) {
      for (let cut2 = cut; cut2 < stream.length; cut2 += 11) {
        const f = new ResponseFraming();
        f.request(false);
        f.request(false, pin);
        f.request(false, pin);
        const out = [f.scan(stream.subarray(0, cut)), f.scan(stream.subarray(cut, cut2)), f.scan(stream.subarray(cut2))];
        expect(Buffer.concat(out).toString("latin1")).toBe(expected);
        expect(f.owed).toBe(0);
      }
    }
    // without rewrites, the chunk itself goes on
    const f = new ResponseFraming();
    f.request(false);
    const chunk = Buffer.from(a);
    expect(f.scan(chunk)).toBe(chunk);
  });
});

describe("front door", () => {
  const closers: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  /** An upstream that answers each request with its method, path and body length; counts connections. */
  async function upstream(): Promise<{ port: number; connections: () => number }> {
    let n = 0;
    const srv = createHttpServer((req, res) => {
      let len = 0;
      req.on("data", (d: Buffer) => (len += d.length));
      req.on("end", () => res.end(`up ${req.method} ${req.url} ${len}`));
    });
    srv.on("connection", () => n++);
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => srv.close(() => r())));
    return { port: (srv.address() as AddressInfo).port, connections: () => n };
  }

  /** A front door whose fast path takes Host "fast" and hands everything else to an HTTP server. */
  async function door(upPort: number, leases: { acquired: number; released: number }): Promise<number> {
    const http = createHttpServer((req, res) => res.end(`http ${req.method} ${req.url}`));
    const decide: SpliceDecider = async (head, raw) =>
      head.headers.get("host") !== "fast"
        ? null
        : {
            key: "k",
            host: "127.0.0.1",
            port: upPort,
            head: rewriteHead(raw, head, head.target, new Set()),
            acquire: async () => {
              leases.acquired++;
              return { touch: () => {}, release: () => void leases.released++ };
            },
            idleMs: 5_000,
          };
    const fd = new FrontDoor(http, decide, silentLogger);
    const port = await fd.listen(0, "127.0.0.1");
    closers.push(() => fd.close());
    closers.push(() => void http.closeAllConnections());
    return port;
  }

  /** Sends raw bytes on one connection and collects what comes back until `until` matches. */
  function exchange(port: number, data: string[], until: RegExp): Promise<{ text: string; sock: Socket }> {
    return new Promise((resolve, reject) => {
      const sock = connect(port, "127.0.0.1");
      let text = "";
      sock.on("data", (d) => {
        text += d.toString();
        if (until.test(text)) resolve({ text, sock });
      });
      sock.on("error", reject);
      sock.on("connect", async () => {
        for (const d of data) {
          sock.write(d);
          await new Promise((r) => setTimeout(r, 5));
        }
      });
      setTimeout(() => reject(new Error(`timed out; got: ${text}`)), 5_000);
    });
  }

  it("keeps requests with bodies framed on one upstream connection, then hands off at a request boundary", async () => {
    const up = await upstream();
    const leases = { acquired: 0, released: 0 };
    const port = await door(up.port, leases);
    const { text, sock } = await exchange(
      port,
      [
        "POST /one HTTP/1.1\r\nHost: fast\r\nContent-Length: 5\r\n\r\nhel",
        "lo",
        "POST /two HTTP/1.1\r\nHost: fast\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        "0\r\n\r\nGET /three HTTP/1.1\r\nHost: fast\r\n\r\n",
        "GET /four HTTP/1.1\r\nHost: other\r\n\r\n",
      ],
      /http GET \/four/,
    );
    const bodies = [...text.matchAll(/(up|http) [A-Z]+ \/\w+(?: \d+)?/g)].map((m) => m[0]);
    expect(bodies).toEqual(["up POST /one 5", "up POST /two 3", "up GET /three 0", "http GET /four"]);
    expect(up.connections()).toBe(1);
    sock.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(leases).toEqual({ acquired: 1, released: 1 });
  });

  it("reports each request's end once its answer is through, and answers 502 (with the route's error headers) when the app closes without answering", async () => {
    const srv = createHttpServer((req, res) => (req.url === "/die" ? req.socket.destroy() : res.end(`up ${req.url}`)));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => srv.close(() => r())));
    const http = createHttpServer((_req, res) => res.end("http"));
    let done = 0;
    const decide: SpliceDecider = async (head, raw) => ({
      key: "k",
      host: "127.0.0.1",
      port: (srv.address() as AddressInfo).port,
      head: rewriteHead(raw, head, head.target, new Set()),
      acquire: async () => ({ touch: () => {}, release: () => {} }),
      idleMs: 5_000,
      done: () => void done++,
      errorHeaders: "x-blaxel-source: platform\r\n",
    });
    const fd = new FrontDoor(http, decide, silentLogger);
    const port = await fd.listen(0, "127.0.0.1");
    closers.push(() => fd.close());
    const a = await exchange(port, ["GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"], /up \/b/);
    expect(done).toBe(2);
    a.sock.destroy();
    const b = await exchange(port, ["GET /die HTTP/1.1\r\nHost: x\r\n\r\n"], /without answering/);
    expect(b.text).toMatch(/^HTTP\/1.1 502[^]*x-blaxel-source: platform/);
    b.sock.destroy();
    expect(done).toBe(3);
  });

  it("answers 502 when nothing listens on the port, and hands garbage to the HTTP server", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const leases = { acquired: 0, released: 0 };
    const port = await door(deadPort, leases);
    const a = await exchange(port, ["GET / HTTP/1.1\r\nHost: fast\r\n\r\n"], /nothing is listening/);
    expect(a.text).toMatch(/^HTTP\/1.1 502/);
    a.sock.destroy();
    expect(leases).toEqual({ acquired: 1, released: 1 });
    const b = await exchange(port, ["NOT HTTP AT ALL\r\n\r\n"], /HTTP\/1.1 400/);
    b.sock.destroy();
  });

  it("serves preview ports: their requests carry the port on both paths, and a closed port stops accepting", async () => {
    const up = await upstream();
    const seen: Array<number | undefined> = [];
    const http = createHttpServer((req, res) => res.end(`http ${req.url} via ${previewPortOf(req.socket)}`));
    const decide: SpliceDecider = async (head, raw) => {
      seen.push(head.previewPort);
      return head.target !== "/fast"
        ? null
        : { key: "k", host: "127.0.0.1", port: up.port, head: rewriteHead(raw, head, head.target, new Set()), acquire: async () => ({ touch: () => {}, release: () => {} }), idleMs: 5_000 };
    };
    const fd = new FrontDoor(http, decide, silentLogger);
    const main = await fd.listen(0, "127.0.0.1");
    closers.push(() => fd.close());
    closers.push(() => void http.closeAllConnections());
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, "127.0.0.1", r));
    const port = (free.address() as AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    await fd.openPort(port, "127.0.0.1");
    expect(fd.openPorts()).toEqual([port]);
    // a port something holds cannot be opened
    await expect(fd.openPort(main, "127.0.0.1")).rejects.toThrow(/EADDRINUSE/);
    const a = await exchange(port, ["GET /fast HTTP/1.1\r\nHost: x\r\n\r\n", "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"], /http \/slow via \d+/);
    expect(a.text).toContain("up GET /fast 0");
    expect(a.text).toContain(`http /slow via ${port}`);
    a.sock.destroy();
    const b = await exchange(main, ["GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"], /http \/slow via/);
    expect(b.text).toContain("via undefined");
    b.sock.destroy();
    expect(seen).toEqual([port, port, undefined]);
    fd.closePort(port);
    await new Promise((r) => setTimeout(r, 20));
    await expect(exchange(port, ["GET / HTTP/1.1\r\n\r\n"], /x/)).rejects.toThrow(/ECONNREFUSED/);
  });
});
