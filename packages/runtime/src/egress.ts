// What a sandbox's `spec.network` means to the runtime (never its secrets): whether its traffic
// goes through the node's egress proxy and whether everything else is cut off, and the environment
// that points its programs at the proxy and the Hangar CA.

import type { RuntimeNetwork } from "./driver.js";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string" && x.length > 0) : []);

/**
 * The runtime's view of `spec.network`: domain lists (allowedDomains/forbiddenDomains, top level or
 * under proxy) make it "enforced"; a proxy section alone makes it "proxy"; anything else (no
 * network, or only subnet/egress/firewall) leaves the sandbox direct.
 */
export function runtimeNetworkOf(network: unknown): RuntimeNetwork | undefined {
  if (!isObj(network)) return undefined;
  const proxy = isObj(network.proxy) ? network.proxy : null;
  const lists = [network.allowedDomains, network.forbiddenDomains, proxy?.allowedDomains, proxy?.forbiddenDomains].some((l) => strings(l).length > 0);
  if (!lists && !proxy) return undefined;
  return { egress: lists ? "enforced" : "proxy", bypass: strings(proxy?.bypass) };
}

/** Always bypassed: loopback, private ranges, the metadata address, .local and .internal (Blaxel's list). */
export const NO_PROXY_DEFAULTS = ["localhost", "127.0.0.1", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254", ".local", ".internal"];

/** NO_PROXY: the defaults plus the bypass list, "*.x.com" written ".x.com" as curl, Python and npm read it. */
export function noProxy(bypass: string[]): string {
  const extra = bypass.map((b) => (b.startsWith("*.") ? b.slice(1) : b));
  return [...new Set([...NO_PROXY_DEFAULTS, ...extra])].join(",");
}

/** Where the Hangar CA appears inside every sandbox (a read-only bind mount). */
export const SANDBOX_CA_DIR = "/.hangar/ca";
/** The CA certificates alone (Hangar CA and any extra trusted CA). */
export const SANDBOX_CA_FILE = `${SANDBOX_CA_DIR}/ca.crt`;
/** The image's CA bundle plus those. */
export const SANDBOX_CA_BUNDLE = `${SANDBOX_CA_DIR}/bundle.crt`;

/** The environment of a sandbox whose egress goes through the proxy at `proxyUrl`. */
export function egressEnv(network: RuntimeNetwork, proxyUrl: string): Record<string, string> {
  const np = noProxy(network.bypass);
  return {
    HTTP_PROXY: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
    NO_PROXY: np,
    no_proxy: np,
    SSL_CERT_FILE: SANDBOX_CA_BUNDLE,
    NODE_EXTRA_CA_CERTS: SANDBOX_CA_FILE,
    REQUESTS_CA_BUNDLE: SANDBOX_CA_BUNDLE,
    CURL_CA_BUNDLE: SANDBOX_CA_BUNDLE,
    GIT_SSL_CAINFO: SANDBOX_CA_BUNDLE,
    PIP_CERT: SANDBOX_CA_BUNDLE,
    NPM_CONFIG_CAFILE: SANDBOX_CA_BUNDLE,
  };
}

/**
 * The environment that points a workload's SDK at Hangar: the platform endpoint is the egress
 * proxy's listener at the sandbox's gateway, which hands requests addressed to itself to the API.
 */
export function platformEnv(gatewayUrl: string): Record<string, string> {
  return { BL_API_URL: `${gatewayUrl}/v0`, BL_RUN_URL: `${gatewayUrl}/run`, BL_DISABLE_H2: "true" };
}
