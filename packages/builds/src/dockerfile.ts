// Reads a Dockerfile just enough to prepare its build: which images its stages start from (after
// ARG substitution), and a rewritten text that drops what Hangar provides itself (the SDK's
// `COPY --from=ghcr.io/blaxel-ai/sandbox… /sandbox-api …`) and declares the trust-store ARGs every
// RUN step gets. Building is buildah's job; this is no Dockerfile engine.

import { HangarError } from "@hangar/common";

/** Variables RUN steps see (as ARGs: not kept in the image) so package managers trust the node's CAs. */
export const TRUST_ARGS = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"] as const;

/** The image Blaxel's SDK copies its sandbox API from; Hangar runs its own. */
const SANDBOX_API_IMAGE = /^(?:ghcr\.io\/)?blaxel-ai\/sandbox(?::[\w.-]+)?(?:@sha256:[a-f0-9]{64})?$/;

export interface PreparedDockerfile {
  text: string;
  /** Images the build needs (FROM and COPY --from that are not stages), as the Dockerfile names them. */
  images: string[];
  /** Lines dropped or changed, for the build log. */
  notes: string[];
}

interface Instruction {
  /** Index of the first physical line, and how many lines it spans. */
  start: number;
  count: number;
  keyword: string;
  args: string;
}

/** Joins continuation lines (`\` at the end) into instructions; skips comments and blank lines. */
function instructions(lines: string[]): Instruction[] {
  const out: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!;
    if (/^\s*(#.*)?$/.test(first)) continue;
    let text = first;
    const start = i;
    while (/\\\s*$/.test(text) && i + 1 < lines.length) {
      text = text.replace(/\\\s*$/, " ");
      i++;
      if (!/^\s*#/.test(lines[i]!)) text += lines[i]!;
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(text);
    if (m) out.push({ start, count: i - start + 1, keyword: m[1]!.toUpperCase(), args: m[2]!.trim() });
  }
  return out;
}

/** `${X}`, `${X:-d}` and `$X` from `vars`. */
function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, def: string | undefined, b: string | undefined) => {
    const v = vars[(a ?? b)!];
    return v !== undefined && v !== "" ? v : (def ?? "");
  });
}

export function prepareDockerfile(text: string, buildArgs: Record<string, string>): PreparedDockerfile {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  const ins = instructions(lines);
  if (!ins.some((i) => i.keyword === "FROM")) throw new HangarError("build_failed", "the Dockerfile has no FROM instruction");
  const globals: Record<string, string> = {};
  const stages = new Set<string>();
  const images = new Set<string>();
  const notes: string[] = [];
  const replace = new Map<number, string[]>();
  let seenFrom = false;
  for (const i of ins) {
    if (i.keyword === "ARG" && !seenFrom) {
      for (const decl of i.args.split(/\s+/)) {
        const eq = decl.indexOf("=");
        const name = eq < 0 ? decl : decl.slice(0, eq);
        const def = eq < 0 ? "" : decl.slice(eq + 1).replace(/^["']|["']$/g, "");
        globals[name] = buildArgs[name] ?? def;
      }
    } else if (i.keyword === "FROM") {
      seenFrom = true;
      const words = i.args.split(/\s+/).filter((w) => !w.startsWith("--"));
      const image = substitute(words[0] ?? "", { ...globals });
      if (!image) throw new HangarError("build_failed", `line ${i.start + 1}: FROM names no image`);
      if (!stages.has(image) && image !== "scratch") images.add(image);
      if (words[1]?.toUpperCase() === "AS" && words[2]) stages.add(words[2]);
      // after each FROM: the trust ARGs for this stage's RUN steps
      // (one ARG each: buildah 1.28 takes only the first name of a multi-name ARG)
      replace.set(i.start + i.count - 1, [lines[i.start + i.count - 1]!, ...TRUST_ARGS.map((a) => `ARG ${a}`)]);
    } else if (i.keyword === "COPY" || i.keyword === "ADD") {
      const from = /--from=(\S+)/.exec(i.args)?.[1];
      if (!from || stages.has(from) || /^\d+$/.test(from)) continue;
      const ref = substitute(from, globals);
      if (SANDBOX_API_IMAGE.test(ref)) {
        for (let k = 0; k < i.count; k++) replace.set(i.start + k, k === 0 ? [`# (Hangar provides the sandbox API: dropped "${lines[i.start]!.trim()}")`] : []);
        notes.push(`dropped ${i.keyword} --from=${ref}: Hangar runs its own sandbox API in every sandbox`);
      } else images.add(ref);
    }
  }
  const out: string[] = [];
  lines.forEach((l, n) => out.push(...(replace.get(n) ?? [l])));
  return { text: out.join("\n"), images: [...images], notes };
}
