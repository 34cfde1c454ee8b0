import { createServer, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { describe, expect, it } from "vitest";
import { parseClientHello } from "./sni.js";

/** The first bytes a TLS client sends for `servername`. */
async function clientHello(servername?: string): Promise<Buffer> {
  let sock!: Socket;
  const got = new Promise<Buffer>((resolve) => {
    const server = createServer((s) => {
      sock = s;
      s.once("data", (d: Buffer) => {
        resolve(d);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const c = tlsConnect({ host: "127.0.0.1", port: (server.address() as { port: number }).port, ...(servername ? { servername } : {}) });
      c.on("error", () => undefined);
    });
  });
  const b = await got;
  sock?.destroy();
  return b;
}

describe("ClientHello parsing", () => {
  it("finds the server name, asks for more bytes when cut, refuses what is not TLS", async () => {
    const hello = await clientHello("API.Stripe.com");
    expect(parseClientHello(hello)).toEqual({ kind: "hello", serverName: "api.stripe.com" });
    expect(parseClientHello(hello.subarray(0, 3))).toEqual({ kind: "incomplete" });
    expect(parseClientHello(hello.subarray(0, hello.length - 1))).toEqual({ kind: "incomplete" });
    expect(parseClientHello(Buffer.from("GET / HTTP/1.1\r\n\r\n"))).toEqual({ kind: "invalid" });
    // split across two records
    const body = hello.subarray(5);
    const split = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0, 10]), body.subarray(0, 10), Buffer.from([0x16, 0x03, 0x01, (body.length - 10) >> 8, (body.length - 10) & 255]), body.subarray(10)]);
    expect(parseClientHello(split)).toEqual({ kind: "hello", serverName: "api.stripe.com" });
  });

  it("reports a hello without a name (an IP literal)", async () => {
    expect(parseClientHello(await clientHello())).toEqual({ kind: "hello", serverName: null });
  });
});
