// `hangar hub`: the sandbox hub's images, and building them ahead of their first use.

import { CliError, type HangarClient } from "./client.js";

type HubImage = { name: string; image: string; displayName?: string; ports?: Array<{ target: number }> };

/** Rows of `hangar hub list`. */
export async function hubRows(c: HangarClient): Promise<string[][]> {
  const hub = await c.api<HubImage[]>("GET", "/sandbox/hub");
  return [["NAME", "IMAGE", "PORTS"], ...hub.map((h) => [h.name, h.image, (h.ports ?? []).map((p) => String(p.target)).join(",")])];
}

/**
 * Builds hub images (all when `names` is empty) one after another, printing the builder's progress
 * lines as they come; throws after trying them all when one failed.
 */
export async function buildHub(c: HangarClient, names: string[], say: (line: string) => void): Promise<void> {
  const all = names.length ? names : (await c.api<HubImage[]>("GET", "/sandbox/hub")).map((h) => h.name).filter((n) => n !== "base-image");
  const failed: string[] = [];
  for (const name of all) {
    const res = await c.raw("POST", `${c.cfg.url}/v0/sandbox/hub/${encodeURIComponent(name)}/build`);
    let buf = "";
    let done = false;
    const handle = (line: string) => {
      if (!line.trim()) return;
      const o = JSON.parse(line) as { progress?: string; image?: string; ms?: number; error?: { code: string; message: string } };
      if (o.progress) say(o.progress);
      else if (o.image) {
        done = true;
        process.stdout.write(`${o.image} ready in ${((o.ms ?? 0) / 1000).toFixed(1)} s\n`);
      } else if (o.error) {
        done = true;
        failed.push(name);
        say(`blaxel/${name}: ${o.error.message}`);
      }
    };
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += Buffer.from(chunk).toString();
      const lines = buf.split("\n");
      buf = lines.pop()!;
      lines.forEach(handle);
    }
    handle(buf);
    if (!done) failed.push(name);
  }
  if (failed.length) throw new CliError(`could not build: ${failed.join(", ")}`);
}
