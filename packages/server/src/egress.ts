// The node's egress proxy in `hangar serve`: the Hangar CA in <data-dir>/egress (key 0600), the
// proxy listening on every address of the host (nftables lets only sandboxes and loopback reach
// it), on HANGAR_EGRESS_PORT or a free port chosen once and kept in <data-dir>/egress/port.

import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@hangar/common";
import { CertificateAuthority, EgressProxy } from "@hangar/egress-proxy";
import type { HangarConfig } from "./config.js";

export interface Egress {
  proxy: EgressProxy;
  port: number;
  /** The CAs sandboxes trust besides their image's: the Hangar CA and the configured extra CAs. */
  trustPem: string;
}

export async function startEgress(config: HangarConfig, logger: Logger): Promise<Egress> {
  const dir = join(config.dataDir, "egress");
  const ca = await CertificateAuthority.loadOrCreate(dir);
  const extraCa = config.egressCaFiles.map((f) => readFileSync(f, "utf8"));
  const proxy = new EgressProxy({
    ca,
    logger: logger.child({ component: "egress" }),
    ...(config.sandboxDns ? { dns: config.sandboxDns } : {}),
    extraCa,
    ...(config.sandboxCidr ? { deniedCidrs: [config.sandboxCidr] } : {}),
  });
  const portFile = join(dir, "port");
  const kept = Number((await readFile(portFile, "utf8").catch(() => "0")).trim()) || 0;
  let port: number;
  try {
    port = await proxy.listen(config.egressPort || kept, "0.0.0.0");
  } catch (e) {
    // the kept port was taken meanwhile: running sandboxes still reach the new one through the redirect
    if (config.egressPort || !kept) throw e;
    logger.warn({ port: kept }, "egress port taken; choosing another");
    port = await proxy.listen(0, "0.0.0.0");
  }
  if (port !== kept) await writeFile(portFile, `${port}\n`);
  logger.info({ port }, "egress proxy listening");
  return { proxy, port, trustPem: ca.certPem + extraCa.map((p) => `${p.trimEnd()}\n`).join("") };
}
