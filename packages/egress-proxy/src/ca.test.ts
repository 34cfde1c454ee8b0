import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer as createTlsServer, connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CertificateAuthority } from "./ca.js";

describe("Hangar CA", () => {
  it("is created once in its directory with a 0600 key and loaded again", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "hangar-ca-")), "egress");
    try {
      const a = await CertificateAuthority.loadOrCreate(dir);
      expect(statSync(join(dir, "ca.key")).mode & 0o777).toBe(0o600);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      const b = await CertificateAuthority.loadOrCreate(dir);
      expect(b.certPem).toBe(a.certPem);
      const ca = new X509Certificate(a.certPem);
      expect(ca.ca).toBe(true);
      expect(ca.subject).toContain("CN=Hangar egress CA");
    } finally {
      rmSync(join(dir, ".."), { recursive: true, force: true });
    }
  });

  it("mints server certificates that verify against it, for names, wildcards and IPs, and caches them", async () => {
    const ca = CertificateAuthority.create();
    const root = new X509Certificate(ca.certPem);
    for (const names of [["api.stripe.com"], ["x.example.com", "*.example.com"], ["203.0.113.7"]]) {
      const leaf = new X509Certificate(ca.issue(names).certPem);
      expect(leaf.checkIssued(root)).toBe(true);
      expect(leaf.verify(root.publicKey)).toBe(true);
      for (const n of names) expect(n.startsWith("*") || leaf.checkHost(n) !== undefined || leaf.checkIP(n) !== undefined).toBe(true);
    }
    const t0 = performance.now();
    ca.contextFor("a.test");
    const mint = performance.now() - t0;
    const t1 = performance.now();
    expect(ca.contextFor("a.test")).toBe(ca.contextFor("a.test"));
    expect(performance.now() - t1).toBeLessThan(mint + 1);
    expect(ca.cached).toBe(1);
  });

  it("completes a TLS handshake a client that trusts only the CA accepts", async () => {
    const ca = CertificateAuthority.create();
    const server = createTlsServer({ SNICallback: (name, cb) => cb(null, ca.contextFor(name)) }, (s) => s.end("ok"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const got = await new Promise<string>((resolve, reject) => {
        const c = tlsConnect({ host: "127.0.0.1", port, servername: "api.example.com", ca: ca.certPem }, () => undefined);
        let b = "";
        c.on("data", (d: Buffer) => (b += d));
        c.on("end", () => resolve(b));
        c.on("error", reject);
      });
      expect(got).toBe("ok");
    } finally {
      server.close();
    }
  });
});
