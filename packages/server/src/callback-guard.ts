// Port-monitor callbacks are POSTed by the host on behalf of a sandbox: they must not reach what
// the sandbox itself cannot — the host's own addresses (its loopback services, the Hangar API),
// link-local and metadata addresses, other sandboxes.

import { lookup } from "node:dns/promises";
import { isIPv4 } from "node:net";
import { networkInterfaces } from "node:os";
import { HangarError } from "@hangar/common";
import { compilePattern } from "@hangar/egress-proxy";

const LOOPBACK = [compilePattern("127.0.0.0/8"), compilePattern("0.0.0.0/8")];
const LINK_LOCAL = compilePattern("169.254.0.0/16");

/** Why an address is refused as a callback target, or null. */
export function refusedCallbackAddress(address: string, sandboxCidr: string, hostAddresses: Set<string>): string | null {
  let ip = address.toLowerCase();
  if (ip.startsWith("::ffff:") && isIPv4(ip.slice(7))) ip = ip.slice(7);
  if (hostAddresses.has(ip)) return "an address of the Hangar host";
  if (isIPv4(ip)) {
    if (LOOPBACK.some((inRange) => inRange(ip))) return "the host's loopback";
    if (LINK_LOCAL(ip)) return "a link-local (metadata) address";
    if (compilePattern(sandboxCidr)(ip)) return "a sandbox address";
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
