// Path-escape fuzz: over a thousand generated paths (encoded slashes, `..`, double slashes, `~`,
// symlinks planted inside the root pointing outside) against read, download, write, list, find and
// search. A marker file next to the sandbox root must never be read or written.

import { readFile, stat, symlink } from "node:fs/promises";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listTree, MARKER_TEXT, raw, startSandbox, type RawResponse, type SandboxHarness } from "../test/harness.js";

let h: SandboxHarness;
let markerBefore: { mtimeMs: number; size: number };
let baseBefore: string[];

/** Deterministic pseudo-random numbers (so a failure can be replayed). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

beforeAll(async () => {
  h = await startSandbox();
  const outsideAbs = join(h.base, "outside");
  // Symlinks inside the root that point outside it (as the host sees paths).
  await symlink(h.marker, join(h.root, "tmp/evil-abs"));
  await symlink(relative(join(h.root, "tmp"), h.marker), join(h.root, "tmp/evil-rel"));
  await symlink(relative(join(h.root, "tmp"), outsideAbs), join(h.root, "tmp/evil-dir"));
  await symlink("../../../../../../../../..", join(h.root, "tmp/evil-up"));
  await symlink(outsideAbs, join(h.root, "blaxel/link-out"));
  const st = await stat(h.marker);
  markerBefore = { mtimeMs: st.mtimeMs, size: st.size };
  baseBefore = await listTree(h.base, ["root", "logs"]);
});

afterAll(async () => {
  await h?.stop();
});

function generatePaths(n: number): string[] {
  const rand = rng(0x5eed);
  const hostSegments = h.base.split("/").filter(Boolean);
  const parts = [
    "..", ".", "", "%2E%2E", "%2e%2e", ".%2E", "%2E.", "%2F", "%2f", "//", "~", "~root", "%7E",
    "outside", "marker.txt", "tmp", "evil-abs", "evil-rel", "evil-dir", "evil-up", "link-out", "blaxel",
    "%252F", "..%2F", "%5C..", "\\..", "..\\..", "%C0%AE%C0%AE", "%E2%80%A4%E2%80%A4", "a%20b", "...", "....",
    ...hostSegments, "root", "etc", "passwd", "proc", "self", "root", "cwd", "fd",
  ];
  const seps = ["/", "%2F", "%2f", "//", "/%2F"];
  const prefixes = ["", "/", "%2F", "//", "~/", "~%2F", "%2F..%2F", "../"];
  const out = new Set<string>();
  // Direct attempts at the marker's host path, however it is spelled.
  for (const sep of seps) out.add(`${sep === "/" ? "/" : sep}${hostSegments.join(sep)}${sep}outside${sep}marker.txt`);
  while (out.size < n) {
    const len = 1 + Math.floor(rand() * 8);
    let p = prefixes[Math.floor(rand() * prefixes.length)]!;
    for (let i = 0; i < len; i++) {
      if (i > 0) p += seps[Math.floor(rand() * seps.length)]!;
      p += parts[Math.floor(rand() * parts.length)]!;
    }
    if (rand() < 0.2) p += seps[Math.floor(rand() * seps.length)]! + "marker.txt";
    out.add(p);
  }
  return [...out];
}

async function pool<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: size }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

describe("path escapes", () => {
  it("never reads or writes outside the sandbox root across 1,200 generated paths", { timeout: 240_000 }, async () => {
    const paths = generatePaths(1200);
    const t0 = Date.now();
    expect(paths.length).toBeGreaterThanOrEqual(1000);
    const responses: Array<{ what: string; r: RawResponse }> = [];
    const statuses = new Map<number, number>();
    await pool(paths, 16, async (p) => {
      const calls: Array<[string, Promise<RawResponse>]> = [
        ["get", raw(h.port, "GET", `/filesystem/${p}`)],
        ["download", raw(h.port, "GET", `/filesystem/${p}?download=true`)],
        ["put", raw(h.port, "PUT", `/filesystem/${p}`, { content: "fuzz" })],
      ];
      // Whole-tree operations on a share of the paths (many resolve to "/", which is large).
      if (p.length % 4 === 0) calls.push(["tree", raw(h.port, "GET", `/filesystem/tree/${p}`)]);
      if (p.length % 5 === 0) calls.push(["find", raw(h.port, "GET", `/filesystem-find/${p}?patterns=marker.txt&excludeHidden=false&excludeDirs=proc,usr,dev&maxResults=0`)]);
      if (p.length % 7 === 0) calls.push(["delete", raw(h.port, "DELETE", `/filesystem/${p}?recursive=false`)]);
      for (const [what, rp] of calls) {
        const r = await rp;
        responses.push({ what: `${what} ${p}`, r });
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    });
    // Searches over the whole sandbox and through the planted links.
    // (The content search echoes its query, so it searches for a part of the marker.)
    const needle = MARKER_TEXT.slice(0, 20);
    for (const p of ["%2F", "%2Ftmp", "%2Ftmp%2Fevil-dir", "%2Fblaxel%2Flink-out", "%2Ftmp%2Fevil-up"]) {
      const g = await raw(h.port, "GET", `/filesystem-content-search/${p}?query=${encodeURIComponent(needle)}&excludeDirs=proc,dev,usr&maxResults=1000`);
      responses.push({ what: `grep ${p}`, r: g });
      if (g.status === 200) expect(g.json<{ matches: unknown[] }>().matches, `grep ${p}`).toEqual([]);
      responses.push({ what: `find ${p}`, r: await raw(h.port, "GET", `/filesystem-find/${p}?patterns=marker.txt&excludeDirs=proc,dev,usr&maxResults=0&excludeHidden=false`) });
    }
    // Processes see the same root.
    const cat = await raw(h.port, "POST", "/process", { command: `cat /tmp/evil-rel /tmp/evil-abs /tmp/evil-dir/marker.txt /tmp/evil-up${h.marker}; ls /tmp/evil-up`, waitForCompletion: true });
    responses.push({ what: "process", r: cat });

    console.log(`path fuzz: ${paths.length} paths, ${responses.length} requests in ${Date.now() - t0} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    const leaks = responses.filter(({ r }) => r.text.includes(MARKER_TEXT));
    expect(leaks.map((l) => l.what)).toEqual([]);
    const crashes = responses.filter(({ r }) => r.status >= 500);
    expect(crashes.map((c) => `${c.what} → ${c.r.status} ${c.r.text.slice(0, 200)}`)).toEqual([]);
    // Many requests succeeded (paths resolved inside the root), many were refused or missing.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(500);

    expect(await readFile(h.marker, "utf8")).toBe(MARKER_TEXT);
    const st = await stat(h.marker);
    expect({ mtimeMs: st.mtimeMs, size: st.size }).toEqual(markerBefore);
    expect(await listTree(h.base, ["root", "logs"])).toEqual(baseBefore);
  });
});
