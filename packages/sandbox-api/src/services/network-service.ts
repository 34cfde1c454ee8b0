// Ports of sandbox processes, read from the sandbox's own /proc through the agent: listening checks
// for waitForPorts, per-process socket lists, and port monitors that POST a callback when a process
// opens a new port.

import type { AgentClient } from "@hangar/sandbox-agent";
import { HangarError, type Logger } from "@hangar/common";
import { sleep } from "../util/timers.js";

export interface TcpSocket {
  protocol: "tcp" | "tcp6";
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  state: string;
  inode: number;
}

export interface PortInfo {
  pid: number;
  protocol: string;
  localAddr: string;
  localPort: number;
  remoteAddr: string;
  remotePort: number;
  state: string;
  processName: string;
}

const TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
};

function ipv4(hex: string): string {
  // /proc prints the address as a host-order (little-endian) 32-bit word.
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join(".");
}

function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.slice(12).join(".")}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // Compress the longest run of zero groups.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** Parses /proc/net/tcp or /proc/net/tcp6. */
export function parseProcNetTcp(text: string, protocol: "tcp" | "tcp6"): TcpSocket[] {
  const out: TcpSocket[] = [];
  const lines = text.split("\n");
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [la, lp] = f[1]!.split(":");
    const [ra, rp] = f[2]!.split(":");
    if (!la || !lp || !ra || !rp) continue;
    const conv = protocol === "tcp" ? ipv4 : ipv6;
    out.push({
      protocol,
      localAddr: conv(la),
      localPort: parseInt(lp, 16),
      remoteAddr: conv(ra),
      remotePort: parseInt(rp, 16),
      state: TCP_STATES[f[3]!.toUpperCase()] ?? f[3]!,
      inode: Number(f[9]),
    });
  }
  return out;
}

/** True for an address reachable from outside the sandbox's loopback (wildcards included). */
export function isRoutable(addr: string): boolean {
  if (addr.startsWith("127.") || addr === "::1" || addr.startsWith("::ffff:127.")) return false;
  return true;
}

export interface PortMonitor {
  pid: number;
  callback: string;
  known: Set<number>;
  timer: NodeJS.Timeout;
}

export class NetworkService {
  private readonly monitors = new Map<number, PortMonitor>();

  constructor(
    private readonly agent: AgentClient,
    private readonly logger: Logger,
    private readonly pollMs: number,
    private readonly checkCallback?: (url: URL) => Promise<void>,
  ) {}

  /** Every TCP socket of the sandbox. */
  async sockets(): Promise<TcpSocket[]> {
    const read = (p: string) => this.agent.readFile(p).then((b) => b.toString("utf8"), () => "");
    const [v4, v6] = await Promise.all([read("/proc/net/tcp"), read("/proc/net/tcp6")]);
    return [...parseProcNetTcp(v4, "tcp"), ...parseProcNetTcp(v6, "tcp6")];
  }

  /** The subset of `ports` listening on a routable address right now. */
  async listening(ports: number[]): Promise<Set<number>> {
    const socks = await this.sockets();
    const up = new Set<number>();
    for (const s of socks) if (s.state === "LISTEN" && ports.includes(s.localPort) && isRoutable(s.localAddr)) up.add(s.localPort);
    return up;
  }

  /**
   * Polls until every port listens, or `until` says to give up (it returns a reason string then).
   * Resolves with null on success, else the reason.
   */
  async waitForPorts(ports: number[], until: () => string | null): Promise<string | null> {
    for (;;) {
      const up = await this.listening(ports);
      if (ports.every((p) => up.has(p))) return null;
      const reason = until();
      if (reason) return reason;
      await sleep(this.pollMs);
    }
  }

  /** PIDs of `pid` and its descendants (from /proc/<n>/stat). */
  private async processTree(pid: number): Promise<Map<number, string>> {
    const entries = await this.agent.readdir("/proc").catch(() => []);
    const stats = await Promise.all(
      entries
        .filter((e) => /^\d+$/.test(e.name))
        .map((e) =>
          this.agent.readFile(`/proc/${e.name}/stat`).then(
            (b) => b.toString("utf8"),
            () => "",
          ),
        ),
    );
    const parent = new Map<number, number>();
    const pgid = new Map<number, number>();
    const comm = new Map<number, string>();
    for (const s of stats) {
      const open = s.indexOf("(");
      const close = s.lastIndexOf(")");
      if (open < 0 || close < 0) continue;
      const p = Number(s.slice(0, open).trim());
      const rest = s.slice(close + 2).split(" ");
      parent.set(p, Number(rest[1]));
      pgid.set(p, Number(rest[2]));
      comm.set(p, s.slice(open + 1, close));
    }
    const tree = new Map<number, string>();
    for (const p of parent.keys()) {
      let cur: number | undefined = p;
      for (let depth = 0; cur !== undefined && cur > 0 && depth < 64; depth++) {
        if (cur === pid || pgid.get(p) === pid) {
          tree.set(p, comm.get(p) ?? "");
          break;
        }
        cur = parent.get(cur);
      }
    }
    return tree;
  }

  /** TCP sockets held by `pid` or its descendants. */
  async portsOf(pid: number): Promise<PortInfo[]> {
    const tree = await this.processTree(pid);
    const inodes = new Map<number, { pid: number; name: string }>();
    await Promise.all(
      [...tree].map(async ([p, name]) => {
        const fds = await this.agent.readdir(`/proc/${p}/fd`).catch(() => []);
        const targets = await Promise.all(
          fds.map((fd) =>
            fd.linkTarget !== undefined
              ? Promise.resolve(fd.linkTarget)
              : this.agent.stat(`/proc/${p}/fd/${fd.name}`, { follow: false }).then(
                  (st) => st.linkTarget ?? "",
                  () => "",
                ),
          ),
        );
        for (const t of targets) {
          const m = /^socket:\[(\d+)\]$/.exec(t);
          if (m) inodes.set(Number(m[1]), { pid: p, name });
        }
      }),
    );
    const out: PortInfo[] = [];
    for (const s of await this.sockets()) {
      const owner = inodes.get(s.inode);
      if (!owner || s.inode === 0) continue;
      out.push({
        pid: owner.pid,
        protocol: s.protocol === "tcp6" ? "tcp6" : "tcp",
        localAddr: s.localAddr,
        localPort: s.localPort,
        remoteAddr: s.remoteAddr,
        remotePort: s.remotePort,
        state: s.state,
        processName: owner.name,
      });
    }
    return out;
  }

  /**
   * Starts POSTing `{pid, port}` to `callback` once for each listening port of `pid`: those already
   * open at once (a server may be up before its monitor is), then each new one as it opens.
   */
  async monitor(pid: number, callback: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(callback);
    } catch {
      throw new HangarError("validation_failed", "callback must be an absolute http(s) URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new HangarError("validation_failed", "callback must be an http(s) URL");
    if (/^169\.254\./.test(url.hostname) || url.hostname === "[fd00:ec2::254]") {
      throw new HangarError("forbidden", "callbacks to link-local metadata addresses are not allowed");
    }
    await this.checkCallback?.(url);
    this.unmonitor(pid);
    const m: PortMonitor = {
      pid,
      callback,
      known: new Set(),
      timer: setInterval(() => void this.poll(m), 2_000),
    };
    m.timer.unref();
    this.monitors.set(pid, m);
    await this.poll(m);
  }

  private async poll(m: PortMonitor): Promise<void> {
    const ports = await this.portsOf(m.pid).catch(() => null);
    if (!ports) return;
    for (const p of ports) {
      if (p.state !== "LISTEN" || m.known.has(p.localPort)) continue;
      m.known.add(p.localPort);
      // checked again at each call: the name may resolve elsewhere by now
      void Promise.resolve(this.checkCallback?.(new URL(m.callback)))
        .then(() => fetch(m.callback, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ pid: m.pid, port: p.localPort }),
        signal: AbortSignal.timeout(10_000),
        }))
        .catch((e: unknown) => this.logger.warn({ err: e, pid: m.pid, callback: m.callback }, "port monitor callback failed"));
    }
  }

  unmonitor(pid: number): boolean {
    const m = this.monitors.get(pid);
    if (!m) return false;
    clearInterval(m.timer);
    this.monitors.delete(pid);
    return true;
  }

  dispose(): void {
    for (const m of this.monitors.values()) clearInterval(m.timer);
    this.monitors.clear();
  }
}
