// Where a connection may send requests. The gateway calls providers from the server, so an
// integration's URL could otherwise point it at the host's own services: link-local addresses
// (cloud metadata) are refused to everyone, loopback and private ones need an admin key
// (self-hosted vLLM/Ollama on the host or the LAN).

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { HangarError } from "@hangar/common";

function v4(ip: string): number[] | null {
  const m = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/i.exec(ip);
  return m ? m.slice(1).map(Number) : null;
}

/** "link-local", "private" (loopback, RFC 1918, CGNAT, ULA, unspecified) or "public". */
export function addressKind(ip: string): "link-local" | "private" | "public" {
  const b = v4(ip);
  if (b) {
    const [a, c] = [b[0]!, b[1]!];
    if (a === 169 && c === 254) return "link-local";
    if (a === 127 || a === 10 || a === 0 || (a === 172 && c >= 16 && c <= 31) || (a === 192 && c === 168) || (a === 100 && c >= 64 && c <= 127)) return "private";
    return "public";
  }
  const s = ip.toLowerCase();
  if (/^fe[89ab]/.test(s)) return "link-local";
  if (s === "::1" || s === "::" || /^f[cd]/.test(s)) return "private";
  return "public";
}

/** Checks a connection's base URL for who sets it; throws 403 problems. */
export async function checkUpstream(url: URL, admin: boolean): Promise<void> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const addrs = isIP(host) ? [host] : host === "localhost" ? ["127.0.0.1"] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  if (addrs.some((a) => addressKind(a) === "link-local")) throw new HangarError("forbidden", `spec.config.url: ${host} is a link-local address, which the gateway never calls`);
  if (!admin && addrs.some((a) => addressKind(a) === "private")) throw new HangarError("forbidden", `spec.config.url: ${host} is a loopback or private address; only an admin API key may point a connection there`);
}
