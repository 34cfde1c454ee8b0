// The built-in base image: a Debian bookworm root filesystem made with debootstrap from the same
// mirror the host's apt uses, laid out like Blaxel's base image (WORKDIR/HOME /blaxel, root, bash).

import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, rm, writeFile, lstat } from "node:fs/promises";
import { join } from "node:path";
import type { ImageConfig } from "../driver.js";
import { run, RunError, lastLines } from "./exec.js";

export const BASE_SUITE = "bookworm";

/** Packages on top of debootstrap's minbase: the tools agents expect to find. */
export const BASE_PACKAGES = [
  "bash", "coreutils", "procps", "findutils", "grep", "sed", "tar", "gzip", "xz-utils", "unzip",
  "curl", "wget", "ca-certificates", "git", "openssh-client", "python3", "python3-pip", "python3-requests", "python3-venv", "nodejs", "ripgrep", "jq",
  "less", "file", "vim-tiny", "nano", "iproute2", "iputils-ping", "netcat-openbsd",
];

export const BASE_CONFIG: ImageConfig = {
  workingDir: "/blaxel",
  home: "/blaxel",
  env: {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/blaxel",
    LANG: "C.UTF-8",
  },
  uid: 0,
  gid: 0,
  shell: "/bin/bash",
};

/** npm from the npm registry (Debian's npm package does not configure under debootstrap): for bookworm's Node 18. */
export const BASE_NPM = "npm@10.9.2";

// Bump when the build steps change so every node rebuilds its base image.
const RECIPE_VERSION = 3;

/** The base image's id: a hash of everything that determines its content. */
export function baseImageId(): string {
  const recipe = { v: RECIPE_VERSION, suite: BASE_SUITE, arch: process.arch, packages: BASE_PACKAGES, npm: BASE_NPM, config: BASE_CONFIG };
  return createHash("sha256").update(JSON.stringify(recipe)).digest("hex").slice(0, 32);
}

export interface AptMirror {
  /** e.g. http://deb.debian.org/debian */
  debian: string;
  /** e.g. http://deb.debian.org/debian-security, when the host has one. */
  security: string | undefined;
}

interface AptSource {
  uris: string[];
  suites: string[];
}

/** Parses one-line (.list) and deb822 (.sources) apt sources, keeping enabled `deb` entries. */
export function parseAptSources(text: string, deb822: boolean): AptSource[] {
  const out: AptSource[] = [];
  if (!deb822) {
    for (const raw of text.split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m) out.push({ uris: [m[1]!], suites: [m[2]!] });
    }
    return out;
  }
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let last = "";
    for (const raw of stanza.split("\n")) {
      if (raw.startsWith("#")) continue;
      if (/^\s/.test(raw) && last) {
        fields[last] += " " + raw.trim();
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (m) fields[(last = m[1]!.toLowerCase())] = m[2]!.trim();
    }
    if (!fields.uris || !fields.suites) continue;
    if (fields.types && !fields.types.split(/\s+/).includes("deb")) continue;
    if (fields.enabled && /^no$/i.test(fields.enabled)) continue;
    out.push({ uris: fields.uris.split(/\s+/), suites: fields.suites.split(/\s+/) });
  }
  return out;
}

/** The Debian mirror the host's apt uses (HANGAR_DEBIAN_MIRROR overrides it). */
export async function hostAptMirror(): Promise<AptMirror> {
  const override = process.env.HANGAR_DEBIAN_MIRROR;
  const sources: AptSource[] = [];
  const files: [string, boolean][] = [["/etc/apt/sources.list", false]];
  const dir = "/etc/apt/sources.list.d";
  for (const f of (await readdir(dir).catch(() => [] as string[])).sort()) {
    if (f.endsWith(".list")) files.push([join(dir, f), false]);
    else if (f.endsWith(".sources")) files.push([join(dir, f), true]);
  }
  for (const [file, deb822] of files) {
    const text = await readFile(file, "utf8").catch(() => "");
    sources.push(...parseAptSources(text, deb822));
  }
  const strip = (u: string) => u.replace(/\/+$/, "");
  const main = sources.find((s) => s.suites.some((x) => x === BASE_SUITE || x === "stable"));
  const sec = sources.find((s) => s.suites.some((x) => x === `${BASE_SUITE}-security`));
  const debian = override ?? (main ? strip(main.uris[0]!) : undefined);
  if (!debian) {
    throw new Error(`no Debian ${BASE_SUITE} mirror in /etc/apt/sources.list*; set HANGAR_DEBIAN_MIRROR (e.g. http://deb.debian.org/debian)`);
  }
  return { debian, security: sec ? strip(sec.uris[0]!) : undefined };
}

const PHASES: Record<string, string> = {
  Retrieving: "downloading", Validating: "downloading", Extracting: "extracting",
  Unpacking: "installing", Configuring: "installing", Installing: "installing",
};

/** Turns debootstrap's per-package chatter into a few lines: phase changes and periodic counts. */
export function debootstrapSummariser(emit: (line: string) => void, intervalMs = 5000): (line: string) => void {
  let phase = "";
  let count = 0;
  let lastEmit = 0;
  return (raw) => {
    const line = raw.trim();
    if (!line) return;
    const m = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring|Installing) (\S+)/.exec(line);
    if (!m) {
      if (/^[WE]: /.test(line) || /^I: (Base system|Checking Release|Valid Release|Resolving)/.test(line)) emit(`debootstrap: ${line.slice(3)}`);
      return;
    }
    const p = PHASES[m[1]!]!;
    const now = Date.now();
    if (p !== phase) {
      phase = p;
      count = 0;
      lastEmit = now;
      emit(`debootstrap: ${p} packages…`);
    }
    if (m[1] === "Retrieving" || m[1] === "Extracting" || m[1] === "Unpacking") count++;
    if (now - lastEmit >= intervalMs) {
      lastEmit = now;
      emit(`debootstrap: ${p} (${count} so far, ${m[2]!.replace(/\.+$/, "")})`);
    }
  };
}

/** Runs debootstrap into `rootfs`, in a private mount namespace so its /proc and /sys mounts die with it. */
export async function debootstrap(rootfs: string, mirror: AptMirror, onProgress: (line: string) => void): Promise<void> {
  const summarise = debootstrapSummariser(onProgress);
  const args = [
    "--pdeathsig", "KILL", "--",
    "unshare", "--mount", "--propagation", "private", "--",
    "debootstrap", "--variant=minbase", `--include=${BASE_PACKAGES.join(",")}`, "--components=main",
    BASE_SUITE, rootfs, mirror.debian,
  ];
  try {
    await run("setpriv", args, {
      label: "debootstrap",
      timeoutMs: 20 * 60_000,
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
      onLine: (l) => summarise(l),
    });
  } catch (err) {
    // debootstrap keeps its detailed log inside the target.
    const log = await readFile(join(rootfs, "debootstrap/debootstrap.log"), "utf8").catch(() => "");
    if (err instanceof RunError && log) throw new Error(`${err.message} | log: ${lastLines(log, 8)}`, { cause: err });
    throw err;
  }
}

/** Makes `path` an empty regular file (replacing a symlink or whatever debootstrap left). */
async function emptyFile(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st && !st.isFile()) await rm(path, { recursive: true, force: true });
  await writeFile(path, "");
  await chmod(path, 0o644);
}

/** Finishes a debootstrapped tree: Blaxel's layout, apt sources, caches and docs removed. */
export async function finishBaseRootfs(rootfs: string, mirror: AptMirror): Promise<void> {
  await mkdir(join(rootfs, "blaxel"), { recursive: true, mode: 0o755 });
  // The driver bind-mounts over these, so they must be real files.
  for (const f of ["etc/resolv.conf", "etc/hostname", "etc/hosts"]) await emptyFile(join(rootfs, f));
  // apt inside the sandbox uses the same mirror (when the sandbox's egress allows it).
  let sources = `deb ${mirror.debian} ${BASE_SUITE} main\ndeb ${mirror.debian} ${BASE_SUITE}-updates main\n`;
  if (mirror.security) sources += `deb ${mirror.security} ${BASE_SUITE}-security main\n`;
  await writeFile(join(rootfs, "etc/apt/sources.list"), sources);
  // Like Debian's slim images: no docs, man pages or translations, now or after later installs.
  await writeFile(
    join(rootfs, "etc/dpkg/dpkg.cfg.d/hangar-slim"),
    [
      "path-exclude /usr/share/doc/*",
      "path-include /usr/share/doc/*/copyright",
      "path-exclude /usr/share/man/*",
      "path-exclude /usr/share/info/*",
      "path-exclude /usr/share/locale/*",
      "path-include /usr/share/locale/locale.alias",
      "",
    ].join("\n"),
  );
  await writeFile(join(rootfs, "etc/apt/apt.conf.d/docker-clean"), 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\nAPT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\nDir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n');
  // npm itself comes from the npm registry, unpacked where Debian's would be
  await run("sh", ["-c", [
    "set -e",
    "d=$(mktemp -d)",
    "trap 'rm -rf \"$d\"' EXIT",
    "npm pack --silent --pack-destination \"$d\" \"$2\" >/dev/null",
    "mkdir -p \"$1/usr/lib/node_modules/npm\"",
    "tar -xzf \"$d\"/npm-*.tgz -C \"$1/usr/lib/node_modules/npm\" --strip-components=1 --no-same-owner",
    "ln -sf ../lib/node_modules/npm/bin/npm-cli.js \"$1/usr/bin/npm\"",
    "ln -sf ../lib/node_modules/npm/bin/npx-cli.js \"$1/usr/bin/npx\"",
  ].join("\n"), "sh", rootfs, BASE_NPM], { label: "npm for the base image", timeoutMs: 5 * 60_000 });
  await run("sh", ["-c", [
    "set -e",
    "cd \"$1\"",
    "rm -rf var/lib/apt/lists/* var/cache/apt/archives/*.deb var/cache/apt/archives/partial/* var/cache/apt/*.bin",
    "rm -rf var/cache/debconf/*-old var/lib/dpkg/*-old var/log/*.log var/log/apt/* tmp/* var/tmp/*",
    "find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete",
    "find usr/share/doc -mindepth 1 -type d -empty -delete",
    "rm -rf usr/share/man/* usr/share/info/*",
    "find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +",
  ].join("\n"), "sh", rootfs], { label: "base image cleanup", timeoutMs: 5 * 60_000 });
}
