// Port-monitor callbacks are POSTed by the host on behalf of a sandbox: they must not reach what
// the sandbox itself cannot — the host's own addresses (its loopback services, the Hangar API),
// link-local and metadata addresses, other sandboxes.

import { lookup } from "node:dns/promises";
import { isIPv4 } from "node:net";
import { networkInterfaces } from "node:os";
import { HangarError } from "@hangar/common";

function v4(ip: string): number {
  return ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(v4(base!) / size) * size;
  const n = v4(ip);
  return n >= start && n < start + size;
}

/** Why an address is refused as a callback target, or null. */
export function refusedCallbackAddress(address: string, sandboxCidr: string, hostAddresses: Set<string>): string | null {
  let ip = address.toLowerCase();
  if (ip.startsWith("::ffff:") && isIPv4(ip.slice(7))) ip = ip.slice(7);
  if (hostAddresses.has(ip)) return "an address of the Hangar host";
  if (isIPv4(ip)) {
    if (inCidr(ip, "127.0.0.0/8") || inCidr(ip, "0.0.0.0/8")) return "the host's loopback";
    if (inCidr(ip, "169.254.0.0/16")) return "a link-local (metadata) address";
    if (inCidr(ip, sandboxCidr)) return "a sandbox address";
    return null;
  }
  if (ip === "::1" || ip === "::") return "the host's loopback";
  if (/^fe[89ab]/.test(ip)) return "a link-local address";
  return null;
}

/** A SandboxServices `checkCallback` refusing names that resolve to the host, link-local or sandboxes. */
export function hostCallbackGuard(sandboxCidr: string): (url: URL) => Promise<void> {
  return async (url) => {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const addrs = await lookup(host, { all: true, verbatim: true }).catch(() => {
      throw new HangarError("validation_failed", `callback host ${host} does not resolve`);
    });
    const mine = new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address.toLowerCase())));
    for (const a of addrs) {
      const why = refusedCallbackAddress(a.address, sandboxCidr, mine);
      if (why) throw new HangarError("forbidden", `callback ${url.origin} resolves to ${a.address}, ${why}: not allowed`);
    }
  };
}
