// DNS for sandboxes under a domain policy (nftables redirects their port 53 here): a query for a
// name the policy allows is relayed to the node's nameservers, any other gets NXDOMAIN. So a
// forbidden name does not even resolve, and DNS cannot carry data to a domain outside the policy.

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { promises as dnsp } from "node:dns";
import type { Socket } from "node:net";
import * as dnsPacket from "dns-packet";

const NXDOMAIN = 3;
const SERVFAIL = 2;
const FORMERR = 1;

/** Nameservers as host + port ("ip" or "ip:port"; the system's resolv.conf when none). */
function parseServers(list: string[] | undefined): { host: string; port: number }[] {
  const raw = list?.length ? list : dnsp.getServers();
  return raw.map((s) => {
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(s);
    return { host: m?.[1] ?? s, port: m?.[2] ? Number(m[2]) : 53 };
  });
}

export class DnsFilter {
  private readonly servers: { host: string; port: number }[];
  private readonly timeoutMs: number;

  constructor(
    /** Whether the sandbox at `address` may resolve `name`; null: no sandbox there (no answer at all). */
    private readonly allowed: (address: string, name: string) => boolean | null,
    servers?: string[],
    timeoutMs = 2000,
  ) {
    this.servers = parseServers(servers);
    this.timeoutMs = timeoutMs;
  }

  /** The answer to one query from `address`, or null to stay silent (not a query). */
  async answer(msg: Buffer, address: string): Promise<Buffer | null> {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return null;
    }
    if (q.type !== "query") return null;
    const questions = q.questions ?? [];
    const refuse = (rcode: number) =>
      dnsPacket.encode({ type: "response", id: q.id ?? 0, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode, questions });
    const ok = this.allowed(address, questions[0]?.name ?? "");
    if (ok === null) return null;
    if (questions.length !== 1) return refuse(FORMERR);
    if (!ok) return refuse(NXDOMAIN);
    for (const s of this.servers) {
      const r = await this.relay(msg, s).catch(() => null);
      if (r) return r;
    }
    return refuse(SERVFAIL);
  }

  /** Sends the query as it came to one nameserver (UDP) and returns its answer. */
  private relay(msg: Buffer, s: { host: string; port: number }): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = createSocket(s.host.includes(":") ? "udp6" : "udp4");
      const timer = setTimeout(() => {
        sock.close();
        reject(new Error("timeout"));
      }, this.timeoutMs);
      sock.on("message", (m) => {
        clearTimeout(timer);
        sock.close();
        resolve(m);
      });
      sock.on("error", (e) => {
        clearTimeout(timer);
        sock.close();
        reject(e);
      });
      sock.send(msg, s.port, s.host);
    });
  }

  /** Serves queries arriving on a UDP socket. */
  serveUdp(sock: UdpSocket, address: (a: string) => string = (a) => a): void {
    sock.on("message", (msg, rinfo) => {
      void this.answer(msg, address(rinfo.address)).then((r) => {
        if (r) sock.send(r, rinfo.port, rinfo.address);
      });
    });
  }

  /** Serves length-prefixed queries on a TCP connection (RFC 1035 4.2.2). */
  serveTcp(sock: Socket, address: string): void {
    let buf = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.answer(Buffer.from(msg), address).then((r) => {
          if (!r || sock.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(r.length);
          sock.write(Buffer.concat([len, r]));
        });
      }
      if (buf.length > 70_000) sock.destroy();
    });
    sock.resume();
  }
}
