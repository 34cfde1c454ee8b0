// A stand-in internet for tests and benchmarks: a network namespace joined to the host by a veth
// pair, holding one address per stand-in host (HTTPS with a test CA of its own, HTTP, raw TCP) and
// a DNS server that resolves their names. Everything it makes is removed by stop(), and leftovers
// of a crashed run with the same name by start().

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "../ca.js";
import type { InternetConfig, RecordedRequest } from "./internet-server.js";

export type { RecordedRequest } from "./internet-server.js";

export interface StandInHost {
  /** DNS names it answers to; "*.x.com" also resolves every subdomain of x.com to it. */
  names: string[];
  /** Offer HTTP/1.1 only (default: HTTP/2 and HTTP/1.1). */
  h1only?: boolean;
  /** Documents served as is at these paths (e.g. an OpenAPI document), instead of the echo. */
  files?: Record<string, { contentType: string; body: string }>;
}

export interface FakeInternetOptions {
  /** Names the netns "<name>" and host veth "<name>h"; [a-z0-9], at most 12 characters. */
  name: string;
  /** Its IPv4 range, e.g. "203.0.113.0/25": the host side is the first address, DNS and control the second, hosts from the tenth. */
  subnet: string;
  hosts: StandInHost[];
}

function sh(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

function purge(name: string): void {
  spawnSync("ip", ["netns", "del", name], { stdio: "ignore" });
  spawnSync("ip", ["link", "del", `${name}h`], { stdio: "ignore" });
}

export class FakeInternet {
  /** Root of the stand-ins' certificates: what the proxy's upstream trust store must hold. */
  readonly ca: CertificateAuthority;
  /** The stand-ins' DNS server. */
  readonly dns: string;
  readonly hostIp: string;
  private readonly ips = new Map<string, string>();
  private readonly addr: (n: number) => string;
  private readonly bits: number;
  private child: ChildProcess | null = null;
  private readonly dir: string;
  private readonly onExit = () => this.stopSync();

  private constructor(private readonly opts: FakeInternetOptions) {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(opts.name)) throw new Error(`bad fake internet name ${opts.name}`);
    this.ca = CertificateAuthority.create("Hangar test internet CA");
    const m = /^(\d+\.\d+\.\d+)\.(\d+)\/(\d+)$/.exec(opts.subnet);
    if (!m || Number(m[3]) < 24 || Number(m[3]) > 28) throw new Error(`bad fake internet range ${opts.subnet} (a /24 to /28)`);
    const at = (n: number) => `${m[1]}.${Number(m[2]) + n}`;
    this.addr = at;
    this.bits = Number(m[3]);
    this.dns = at(2);
    this.hostIp = at(1);
    opts.hosts.forEach((h, i) => {
      for (const n of h.names) this.ips.set(n, at(10 + i));
    });
    this.dir = mkdtempSync(join(tmpdir(), "hangar-internet-"));
  }

  static async start(opts: FakeInternetOptions): Promise<FakeInternet> {
    const net = new FakeInternet(opts);
    try {
      await net.setup();
    } catch (e) {
      net.stopSync();
      throw e;
    }
    return net;
  }

  /** The address a stand-in name resolves to. */
  ipOf(name: string): string {
    const ip = this.ips.get(name);
    if (!ip) throw new Error(`no stand-in host ${name}`);
    return ip;
  }

  private async setup(): Promise<void> {
    const { name } = this.opts;
    const at = this.addr;
    const len = this.bits;
    purge(name);
    process.once("exit", this.onExit);
    sh("ip", ["-batch", "-"], [`netns add ${name}`, `link add ${name}h type veth peer name eth0 netns ${name}`, `addr add ${at(1)}/${len} dev ${name}h`, `link set ${name}h up`, ""].join("\n"));
    const inside = ["link set lo up", `addr add ${at(2)}/${len} dev eth0`, ...this.opts.hosts.map((_, i) => `addr add ${at(10 + i)}/${len} dev eth0`), "link set eth0 up", `route add default via ${at(1)}`, ""];
    sh("ip", ["-n", name, "-batch", "-"], inside.join("\n"));
    const config: InternetConfig = {
      dnsIp: this.dns,
      controlIp: this.dns,
      hosts: this.opts.hosts.map((h, i) => {
        const leaf = this.ca.issue(h.names, 30);
        return { names: h.names, ip: at(10 + i), certPem: leaf.certPem, keyPem: leaf.keyPem, h2: !h.h1only, ...(h.files ? { files: h.files } : {}) };
      }),
    };
    const file = join(this.dir, "config.json");
    writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
    const self = fileURLToPath(import.meta.url);
    const ts = self.endsWith(".ts");
    const script = join(self, "..", ts ? "internet-server.ts" : "internet-server.js");
    this.child = spawn("ip", ["netns", "exec", name, process.execPath, ...(ts ? ["--import", "tsx"] : []), script, file], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    this.child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the fake internet did not start: ${err}`)), 20_000);
      this.child!.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.child!.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the fake internet exited (${code}): ${err}`));
      });
    });
  }

  private control(method: "GET" | "DELETE"): Promise<RecordedRequest[]> {
    // the control endpoint lives in the namespace; the host reaches it over the veth
    return fetch(`http://${this.dns}:8080/requests`, { method }).then((r) => r.json() as Promise<RecordedRequest[]>);
  }

  /** What the stand-ins received, oldest first (at most 1,000). */
  requests(): Promise<RecordedRequest[]> {
    return this.control("GET");
  }

  clearRequests(): Promise<void> {
    return this.control("DELETE").then(() => undefined);
  }

  private stopSync(): void {
    if (this.child && this.child.exitCode === null) this.child.kill("SIGKILL");
    purge(this.opts.name);
    rmSync(this.dir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    process.off("exit", this.onExit);
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    this.stopSync();
  }
}
