// Sandbox networking: every sandbox gets its own network namespace joined to the host by a veth
// pair, routed point-to-point (a /30 per sandbox, no bridge), so all of its traffic crosses the
// host's netfilter hooks. One nftables table owned by Hangar (`inet <table>`) says what a sandbox
// may reach: nothing new on the host itself (except listed ports), no other sandbox, no
// loopback/link-local/private ranges, only the host's upstream nameservers on port 53, anything
// else outbound through masquerade. Netns+veth "slots" are pre-built in a small pool.

import { promises as fs, existsSync } from "node:fs";
import { HangarError, type Logger } from "@hangar/common";
import { run, runRaw, sleep } from "./proc.js";

export interface NetworkOptions {
  /** IPv4 range the sandboxes' /30 links are carved from. Default 10.219.0.0/16 (not podman's or docker's). */
  cidr?: string;
  /** Prefix of host-side names: veths "<prefix>v<n>", netns "<prefix>n<n>". Default "hg". */
  prefix?: string;
  /** nftables table (family inet) owned by this driver. Default "hangar". */
  table?: string;
  /** Pre-built slots kept ready. 0 disables the pool. Default 4. */
  poolSize?: number;
  /** TCP ports on the host a sandbox may open connections to (edge, egress proxy). Default none. */
  hostPorts?: number[];
  /**
   * Port of the node's egress proxy (listening on the host): every sandbox may connect to it, and
   * the TCP 80/443 of sandboxes under an egress policy is redirected to it. Default none.
   */
  egressPort?: number;
  /** Nameservers given to sandboxes and allowed on port 53. Default: the host's /etc/resolv.conf. */
  dns?: string[];
  /** Also allow private ranges (RFC 1918, CGNAT) outside the sandbox range. Default false. */
  allowPrivate?: boolean;
  /** ping_group_range written in every sandbox netns (host gids), e.g. the userns range. */
  pingGroupRange?: [number, number];
  /** Delay before the pool is refilled after a slot was taken. Default 50 ms. */
  refillDelayMs?: number;
  /**
   * Creates the slot's netns file at `netnsPath` instead of `ip netns add` (the linux driver: a
   * netns owned by a user namespace of the sandbox range, which CRIU needs to checkpoint it).
   */
  createNetns?: (s: NetSlot) => Promise<void>;
}

/** "proxy": TCP 80/443 to the egress proxy; "enforced": that, DNS to the proxy too, nothing else. */
export type EgressMode = "proxy" | "enforced";

export interface NetSlot {
  index: number;
  /** Name under /run/netns. */
  netns: string;
  netnsPath: string;
  hostIf: string;
  /** Host side of the link; the sandbox's gateway. */
  hostIp: string;
  /** The sandbox's address (SandboxHandle.address). */
  sandboxIp: string;
}

const NETNS_DIR = "/run/netns";

function ipToInt(ip: string): number {
  const p = ip.split(".").map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) throw new Error(`bad IPv4 address ${ip}`);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}
function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}
export function parseCidr(cidr: string): { base: number; bits: number } {
  const [ip, b] = cidr.split("/");
  const bits = Number(b);
  if (!ip || !Number.isInteger(bits) || bits < 8 || bits > 30) throw new HangarError("validation_failed", `bad network range ${cidr}`);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (ipToInt(ip) & mask) >>> 0, bits };
}

/** The host's upstream nameservers from a resolv.conf; loopback ones are left out (unreachable from a netns). */
export async function hostNameservers(file = "/etc/resolv.conf"): Promise<{ usable: string[]; loopback: string[] }> {
  const usable: string[] = [];
  const loopback: string[] = [];
  let text = "";
  try {
    text = await fs.readFile(file, "utf8");
  } catch {
    return { usable, loopback };
  }
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (!m) continue;
    (m[1]!.startsWith("127.") ? loopback : usable).push(m[1]!);
  }
  return { usable, loopback };
}

/** Deny list for traffic a sandbox forwards through the host. */
function deniedRanges(sandboxCidr: string, allowPrivate: boolean): string[] {
  const always = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32", sandboxCidr];
  const priv = ["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "192.0.0.0/24", "198.18.0.0/15"];
  return allowPrivate ? always : [...always, ...priv];
}

/** Egress modes of sandboxes (by address) to load with the ruleset. */
export interface EgressElements {
  /** Sandboxes whose TCP 80/443 goes to the egress proxy. */
  proxied: string[];
  /** Sandboxes that may reach nothing but DNS and the egress proxy (a subset of proxied). */
  enforced: string[];
}

/**
 * The whole `inet <table>` ruleset; loaded atomically (add+delete+define in one transaction).
 * Only root's sockets on the host (Hangar's edge) may open connections to sandboxes: other host
 * users reach no sandbox port. Egress (with `egressPort`): set egress_proxy4 redirects a sandbox's TCP 80/443 to the proxy;
 * set egress_enforce4 also sends its DNS there (names outside the policy get NXDOMAIN) and drops
 * everything else it forwards, established flows included, so a policy applied to a running
 * sandbox cuts its open direct connections too.
 */
export function nftRuleset(o: {
  table: string;
  prefix: string;
  cidr: string;
  dns: string[];
  hostPorts: number[];
  allowPrivate: boolean;
  egressPort?: number | null;
  egress?: EgressElements;
}): string {
  const ifs = `"${o.prefix}v*"`;
  const dns = o.dns.length ? `{ ${o.dns.join(", ")} }` : null;
  const egressPort = o.egressPort ?? null;
  const open = [...o.hostPorts, ...(egressPort ? [egressPort] : [])];
  const ports = open.length ? `{ ${open.join(", ")} }` : null;
  const elements = (l: string[] | undefined) => (l?.length ? `\n    elements = { ${l.join(", ")} }` : "");
  // interval sets reject overlapping elements: the sandbox range may sit inside a private range
  const denied = mergeCidrs(deniedRanges(o.cidr, o.allowPrivate));
  return `add table inet ${o.table}
delete table inet ${o.table}
table inet ${o.table} {
  set denied4 {
    type ipv4_addr
    flags interval
    elements = { ${denied.join(", ")} }
  }
  set egress_proxy4 {
    type ipv4_addr${elements(o.egress?.proxied)}
  }
  set egress_enforce4 {
    type ipv4_addr${elements(o.egress?.enforced)}
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    iifname ${ifs} jump sandbox_to_host
    ${egressPort ? `iifname != "lo" meta l4proto { tcp, udp } th dport ${egressPort} counter drop` : "# no egress proxy"}
  }
  chain sandbox_to_host {
    ct state established,related accept
    ${ports ? `meta l4proto tcp th dport ${ports} accept` : "# no host ports open to sandboxes"}
    ${egressPort ? `udp dport ${egressPort} accept` : "# no egress DNS"}
    counter drop
  }
  chain output {
    type filter hook output priority filter - 10; policy accept;
    oifname ${ifs} ct state new meta skuid != 0 counter drop
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    oifname ${ifs} ct state established,related accept
    oifname ${ifs} counter drop
    iifname ${ifs} jump sandbox_out
  }
  chain sandbox_out {
    ip saddr @egress_enforce4 jump sandbox_enforced
    ct state established,related accept
    meta nfproto ipv6 counter drop
    ${dns ? `ip daddr ${dns} meta l4proto { tcp, udp } th dport 53 accept` : "# no nameservers"}
    ip daddr @denied4 counter drop
    accept
  }
  chain sandbox_enforced {
    counter drop
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ${egressPort ? `iifname ${ifs} ip saddr @egress_proxy4 tcp dport { 80, 443 } redirect to :${egressPort}` : "# no egress proxy"}
    ${egressPort ? `iifname ${ifs} ip saddr @egress_enforce4 meta l4proto { tcp, udp } th dport 53 redirect to :${egressPort}` : ""}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${o.cidr} oifname != ${ifs} masquerade
  }
}
`;
}

/** Removes CIDRs contained in another one of the list. */
function mergeCidrs(list: string[]): string[] {
  const parsed = list.map((c) => {
    const [ip, b] = c.split("/");
    const bits = Number(b);
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return { c, start: (ipToInt(ip!) & mask) >>> 0, end: ((ipToInt(ip!) & mask) | (~mask >>> 0)) >>> 0 };
  });
  return parsed
    .filter((a, i) => !parsed.some((b, j) => j !== i && b.start <= a.start && a.end <= b.end && (b.start !== a.start || b.end !== a.end || j < i)))
    .map((a) => a.c);
}

export const DEFAULT_SANDBOX_CIDR = "10.219.0.0/16";

export class SandboxNetwork {
  readonly prefix: string;
  readonly table: string;
  readonly cidr: string;
  private readonly base: number;
  private readonly maxSlots: number;
  private readonly poolSize: number;
  private readonly hostPorts: number[];
  private readonly egressPort: number | null;
  private readonly allowPrivate: boolean;
  private readonly pingRange: [number, number];
  private dnsServers: string[] = [];
  private readonly inUse = new Set<number>();
  private readonly pool: NetSlot[] = [];
  private refilling: Promise<void> | null = null;
  private closed = false;
  private dnsOverride: string[] | undefined;
  private refillTimer: NodeJS.Timeout | null = null;
  private readonly refillDelayMs: number;
  private readonly createNetns: ((s: NetSlot) => Promise<void>) | undefined;

  constructor(
    opts: NetworkOptions,
    private readonly log: Logger,
  ) {
    this.prefix = opts.prefix ?? "hg";
    if (!/^[a-z][a-z0-9]{0,5}$/.test(this.prefix)) throw new HangarError("validation_failed", `bad network prefix ${this.prefix}`);
    this.table = opts.table ?? "hangar";
    this.cidr = opts.cidr ?? DEFAULT_SANDBOX_CIDR;
    const { base, bits } = parseCidr(this.cidr);
    this.base = base;
    this.maxSlots = 2 ** (32 - bits) / 4;
    this.poolSize = opts.poolSize ?? 4;
    this.hostPorts = opts.hostPorts ?? [];
    this.egressPort = opts.egressPort ?? null;
    this.allowPrivate = opts.allowPrivate ?? false;
    this.pingRange = opts.pingGroupRange ?? [0, 2147483647];
    this.dnsOverride = opts.dns;
    this.refillDelayMs = opts.refillDelayMs ?? 50;
    this.createNetns = opts.createNetns;
  }

  get nameservers(): string[] {
    return this.dnsServers;
  }

  slot(index: number): NetSlot {
    const net = this.base + index * 4;
    return {
      index,
      netns: `${this.prefix}n${index}`,
      netnsPath: `${NETNS_DIR}/${this.prefix}n${index}`,
      hostIf: `${this.prefix}v${index}`,
      hostIp: intToIp(net + 1),
      sandboxIp: intToIp(net + 2),
    };
  }

  /**
   * Turns forwarding on, loads the nft table, deletes slots of this prefix that no sandbox holds
   * (`keep`: slot indices of adopted sandboxes), then fills the pool in the background. `egress`:
   * the egress modes of kept slots, loaded with the table (no window without them).
   */
  async init(keep: Iterable<number>, egress: { slot: number; mode: EgressMode }[] = []): Promise<void> {
    for (const i of keep) this.inUse.add(i);
    if (this.dnsOverride) this.dnsServers = this.dnsOverride;
    else {
      const ns = await hostNameservers();
      this.dnsServers = ns.usable;
      if (ns.loopback.length) {
        this.log.warn({ loopback: ns.loopback }, "host resolver is on loopback; sandboxes cannot use it (set network.dns)");
      }
    }
    await this.checkRouteConflicts();
    await ensureNetnsDir();
    await fs.writeFile("/proc/sys/net/ipv4/ip_forward", "1");
    await run("nft", ["-f", "-"], {
      input: nftRuleset({
        table: this.table,
        prefix: this.prefix,
        cidr: this.cidr,
        dns: this.dnsServers,
        hostPorts: this.hostPorts,
        allowPrivate: this.allowPrivate,
        egressPort: this.egressPort,
        egress: {
          proxied: egress.map((e) => this.slot(e.slot).sandboxIp),
          enforced: egress.filter((e) => e.mode === "enforced").map((e) => this.slot(e.slot).sandboxIp),
        },
      }),
    });
    await this.sweep();
    this.refill();
  }

  /** Refuses a range another network of the host already routes (e.g. podman's 10.88.0.0/16). */
  private async checkRouteConflicts(): Promise<void> {
    const routes = JSON.parse((await run("ip", ["-4", "-j", "route", "show"])) || "[]") as { dst: string; dev?: string }[];
    const ours = parseCidr(this.cidr);
    const size = 2 ** (32 - ours.bits);
    for (const r of routes) {
      if (!r.dst || r.dst === "default" || r.dev?.startsWith(`${this.prefix}v`)) continue;
      const [ip, b] = r.dst.split("/");
      const bits = b === undefined ? 32 : Number(b);
      const theirSize = 2 ** (32 - bits);
      const theirBase = (ipToInt(ip!) & (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0)) >>> 0;
      if (theirBase < ours.base + size && ours.base < theirBase + theirSize) {
        throw new HangarError("runtime_failed", `the sandbox range ${this.cidr} overlaps the host route ${r.dst} on ${r.dev ?? "?"}; choose another range (HANGAR_SANDBOX_CIDR)`);
      }
    }
  }

  /** Deletes every netns and veth of this prefix not in use (left over from a crash or the pool). */
  private async sweep(): Promise<void> {
    const batch: string[] = [];
    let names: string[] = [];
    try {
      names = await fs.readdir(NETNS_DIR);
    } catch {}
    const re = new RegExp(`^${this.prefix}n(\\d+)$`);
    for (const n of names) {
      const m = re.exec(n);
      if (m && !this.inUse.has(Number(m[1]))) batch.push(`netns del ${n}`);
    }
    const lre = new RegExp(`^${this.prefix}v(\\d+)$`);
    for (const n of await fs.readdir("/sys/class/net")) {
      const m = lre.exec(n);
      if (m && !this.inUse.has(Number(m[1]))) batch.push(`link del ${n}`);
    }
    if (batch.length) await runRaw("ip", ["-force", "-batch", "-"], { input: batch.join("\n") + "\n" });
  }

  private nextFreeIndex(): number {
    for (let i = 0; i < this.maxSlots; i++) {
      if (this.inUse.has(i)) continue;
      const s = this.slot(i);
      // a released slot's host veth disappears asynchronously with its netns
      if (existsSync(`/sys/class/net/${s.hostIf}`) || existsSync(s.netnsPath)) continue;
      return i;
    }
    throw new HangarError("runtime_failed", `no free network slot in ${this.cidr}`);
  }

  /**
   * Replaces a held slot's netns and veth with fresh ones at the same index (same addresses), e.g.
   * for a sandbox that could not be restored into the netns its checkpoint left behind.
   */
  async rebuild(old: NetSlot): Promise<NetSlot> {
    await runRaw("ip", ["netns", "del", old.netns]);
    await runRaw("ip", ["link", "del", old.hostIf]);
    // the kernel removes the veth ends with the netns, asynchronously
    for (let i = 0; i < 200 && (existsSync(`/sys/class/net/${old.hostIf}`) || existsSync(old.netnsPath)); i++) await sleep(10);
    this.inUse.delete(old.index);
    return this.build(old.index);
  }

  /** Creates netns + veth + addresses + routes for one slot (two `ip -batch` runs). */
  private async build(index = this.nextFreeIndex()): Promise<NetSlot> {
    this.inUse.add(index);
    const s = this.slot(index);
    try {
      // (criu.ts rebuilds this link in the netns of a restored sandbox: keep both in step)
      if (this.createNetns) await this.createNetns(s);
      await run("ip", ["-batch", "-"], {
        input: [
          ...(this.createNetns ? [] : [`netns add ${s.netns}`]),
          `link add ${s.hostIf} type veth peer name eth0 netns ${s.netns}`,
          `addr add ${s.hostIp}/30 dev ${s.hostIf}`,
          `link set ${s.hostIf} up`,
          "",
        ].join("\n"),
      });
      // host side: no IPv6, strict reverse-path filter (no spoofed sources)
      await fs.writeFile(`/proc/sys/net/ipv6/conf/${s.hostIf}/disable_ipv6`, "1").catch(() => {});
      await fs.writeFile(`/proc/sys/net/ipv4/conf/${s.hostIf}/rp_filter`, "1");
      // sandbox side: sysctls of the netns (its owner is the host's user namespace), then links
      const sysctls = [
        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
        "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        `echo "${this.pingRange[0]} ${this.pingRange[1]}" > /proc/sys/net/ipv4/ping_group_range`,
        "echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start",
        "exec ip -batch -",
      ].join(" && ");
      await run("nsenter", [`--net=${s.netnsPath}`, "sh", "-c", sysctls], {
        input: ["link set lo up", `addr add ${s.sandboxIp}/30 dev eth0`, "link set eth0 up", `route add default via ${s.hostIp}`, ""].join("\n"),
      });
      return s;
    } catch (e) {
      await runRaw("ip", ["netns", "del", s.netns]);
      this.inUse.delete(index);
      throw e;
    }
  }

  private refill(): void {
    if (this.closed || this.refilling || this.pool.length >= this.poolSize) return;
    this.refilling = (async () => {
      try {
        while (!this.closed && this.pool.length < this.poolSize) this.pool.push(await this.build());
      } catch (e) {
        this.log.warn({ err: e }, "network pool refill failed");
      } finally {
        this.refilling = null;
      }
    })();
  }

  /**
   * A ready slot: from the pool when it has one, else built now. The pool is refilled a little
   * later, so its `ip` processes do not compete with the create that took the slot.
   */
  async acquire(): Promise<NetSlot> {
    const s = this.pool.shift() ?? (await this.build());
    this.refillTimer ??= setTimeout(() => {
      this.refillTimer = null;
      this.refill();
    }, this.refillDelayMs);
    this.refillTimer.unref?.();
    return s;
  }

  /** True when this network can send sandboxes' traffic to an egress proxy. */
  get egress(): boolean {
    return this.egressPort !== null;
  }

  /** The proxy URL a sandbox on this slot uses (its gateway, the egress port). */
  proxyUrl(s: NetSlot): string {
    return `http://${s.hostIp}:${this.egressPort ?? 0}`;
  }

  /** Puts the slot's sandbox under an egress mode (null: direct) at once, in one nft transaction. */
  async setEgress(s: NetSlot, mode: EgressMode | null): Promise<void> {
    if (mode && !this.egressPort) throw new HangarError("not_configured", "this node has no egress proxy; spec.network policies need one");
    const lines: string[] = [];
    for (const [set, on] of [["egress_proxy4", mode !== null], ["egress_enforce4", mode === "enforced"]] as const) {
      // adding first makes the delete idempotent
      lines.push(`add element inet ${this.table} ${set} { ${s.sandboxIp} }`);
      if (!on) lines.push(`delete element inet ${this.table} ${set} { ${s.sandboxIp} }`);
    }
    await run("nft", ["-f", "-"], { input: `${lines.join("\n")}\n` });
  }

  /** Marks a slot as held by an adopted sandbox. */
  hold(index: number): void {
    this.inUse.add(index);
  }

  /** True when the slot's netns and host veth still exist. */
  intact(s: NetSlot): boolean {
    return existsSync(s.netnsPath) && existsSync(`/sys/class/net/${s.hostIf}`);
  }

  /** Deletes the slot's netns; the kernel then removes both veth ends. */
  async release(s: NetSlot): Promise<void> {
    await runRaw("ip", ["netns", "del", s.netns]);
    this.inUse.delete(s.index);
  }

  /**
   * hangar-launch operations equal to `ip netns del` (lazy unmount + unlink of the netns file);
   * the slot is free once they ran. The kernel removes both veth ends with the netns.
   */
  releaseOps(s: NetSlot): string[] {
    this.inUse.delete(s.index);
    return ["--umount", s.netnsPath, "--unlink", s.netnsPath];
  }

  /** Waits for an ongoing pool refill (tests, shutdown). */
  async idle(): Promise<void> {
    if (this.refillTimer) {
      clearTimeout(this.refillTimer);
      this.refillTimer = null;
      this.refill();
    }
    while (this.refilling) await this.refilling;
  }

  /** Stops refilling and deletes the pool's unused slots. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refillTimer) clearTimeout(this.refillTimer);
    this.refillTimer = null;
    await this.idle();
    const slots = this.pool.splice(0);
    if (slots.length) await runRaw("ip", ["-force", "-batch", "-"], { input: slots.map((s) => `netns del ${s.netns}`).join("\n") + "\n" });
    for (const s of slots) this.inUse.delete(s.index);
  }

  /** Removes the nft table and every slot of this prefix (explicit network shutdown, tests). */
  async shutdown(): Promise<void> {
    await this.close();
    this.inUse.clear();
    await this.sweep();
    await runRaw("nft", ["delete", "table", "inet", this.table]);
  }
}

/** /run/netns must be a shared mount before the crun mount namespace is made, so netns files propagate into it. */
export async function ensureNetnsDir(): Promise<void> {
  await fs.mkdir(NETNS_DIR, { recursive: true });
  const info = await fs.readFile("/proc/self/mountinfo", "utf8");
  const line = info.split("\n").find((l) => l.split(" ")[4] === NETNS_DIR);
  if (!line) await run("mount", ["--bind", NETNS_DIR, NETNS_DIR]);
  if (!line || !/ shared:\d+/.test(line)) await run("mount", ["--make-shared", NETNS_DIR]);
}
