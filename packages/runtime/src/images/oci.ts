// Importing OCI/Docker images: skopeo copies any source (layout, archive, registry) into a local
// OCI layout, umoci unpacks its layers (whiteouts included) into a root filesystem, and the OCI
// config gives the ImageConfig.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ImageConfig } from "../driver.js";
import { run, runRaw, lastLines } from "./exec.js";
import { pickShell, resolveUser } from "./rootfs.js";

/** The tag images get in our staging layouts. */
export const STAGING_TAG = "hangar";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface SkopeoOptions {
  /** Plain HTTP / unverified TLS for this source (loopback registries). */
  insecure?: boolean;
  /** Scratch directory for skopeo's temporary files. */
  tmpDir: string;
  timeoutMs: number;
  onLine?: (line: string) => void;
}

function skopeoGlobal(o: SkopeoOptions): string[] {
  // Trust policy is "accept anything" (as Debian's default policy.json); we pin by digest ourselves.
  return ["--insecure-policy", "--tmpdir", o.tmpDir, "--command-timeout", `${Math.ceil(o.timeoutMs / 1000)}s`];
}

/** Checks that a registry image exists and is reachable, quickly, before any download. */
export async function skopeoInspect(source: string, o: SkopeoOptions): Promise<void> {
  const args = [...skopeoGlobal(o), "inspect", "--raw", "--retry-times", "0"];
  if (o.insecure) args.push("--tls-verify=false");
  args.push(source);
  const r = await runRaw("skopeo", args, { timeoutMs: o.timeoutMs + 2000, env: { ...process.env, TMPDIR: o.tmpDir } });
  if (r.code !== 0) throw new Error(r.timedOut ? "timed out reaching the registry" : cleanSkopeoError(r.stderr));
}

/** Copies an image from any skopeo source into an OCI layout at `layoutDir`, tagged STAGING_TAG. */
export async function skopeoCopy(source: string, layoutDir: string, o: SkopeoOptions): Promise<void> {
  const args = [...skopeoGlobal(o), "copy", "--format", "oci", "--retry-times", "1"];
  if (o.insecure) args.push("--src-tls-verify=false");
  args.push(source, `oci:${layoutDir}:${STAGING_TAG}`);
  const r = await runRaw("skopeo", args, {
    timeoutMs: o.timeoutMs + 2000,
    env: { ...process.env, TMPDIR: o.tmpDir },
    onLine: (l, stream) => {
      if (stream === "stdout" && l.trim()) o.onLine?.(l.trim());
    },
  });
  if (r.code !== 0) throw new Error(r.timedOut ? "timed out copying the image" : cleanSkopeoError(r.stderr));
}

/** skopeo's errors are long chains ("copying system image from manifest list: ..."); keep the useful tail. */
function cleanSkopeoError(stderr: string): string {
  const text = lastLines(stderr, 2).replace(/^time="[^"]*" level=\w+ msg="?/, "").replace(/"$/, "");
  const parts = text.split(": ").filter(Boolean);
  return (parts.length > 3 ? parts.slice(-3).join(": ") : text) || "skopeo failed";
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

export interface OciImageConfig {
  architecture?: string;
  os?: string;
  config?: { Env?: string[]; WorkingDir?: string; User?: string; Entrypoint?: string[]; Cmd?: string[]; ExposedPorts?: Record<string, unknown> };
}

export interface LayoutImage {
  /** Manifest digest, e.g. "sha256:abc…". */
  digest: string;
  config: OciImageConfig;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

async function readBlobJson(layoutDir: string, digest: string): Promise<unknown> {
  if (!DIGEST_RE.test(digest)) throw new Error(`unsupported digest ${digest}`);
  const text = await readFile(join(layoutDir, "blobs", "sha256", digest.slice(7)), "utf8");
  return JSON.parse(text);
}

/** Reads the manifest digest and image config of the STAGING_TAG image in a layout. */
export async function readLayoutImage(layoutDir: string): Promise<LayoutImage> {
  const index = JSON.parse(await readFile(join(layoutDir, "index.json"), "utf8")) as { manifests?: Descriptor[] };
  const desc = index.manifests?.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === STAGING_TAG);
  if (!desc) throw new Error("the copied layout has no image");
  const manifest = (await readBlobJson(layoutDir, desc.digest)) as { config?: Descriptor; layers?: Descriptor[] };
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new Error("manifest has no config or layers");
  const config = (await readBlobJson(layoutDir, manifest.config.digest)) as OciImageConfig;
  return { digest: desc.digest, config };
}

const GOARCH: Partial<Record<NodeJS.Architecture, string>> = { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

/** Throws when the image cannot run on this node (another OS or CPU architecture). */
export function checkPlatform(config: OciImageConfig): void {
  const want = GOARCH[process.arch] ?? process.arch;
  if (config.os && config.os !== "linux") throw new Error(`image is for ${config.os}, not linux`);
  if (config.architecture && config.architecture !== want) throw new Error(`image is for ${config.architecture}; this node runs ${want}`);
}

/** Unpacks the layout's image into `<bundle>/rootfs` (umoci applies layers and whiteouts). */
export async function umociUnpack(layoutDir: string, bundle: string, timeoutMs: number): Promise<void> {
  await run("umoci", ["--log", "error", "unpack", "--image", `${layoutDir}:${STAGING_TAG}`, bundle], { timeoutMs, label: "umoci unpack" });
}

/** Derives how processes run from the OCI config and the unpacked rootfs (/etc/passwd). */
export async function imageConfigFromOci(rootfs: string, oci: OciImageConfig): Promise<ImageConfig> {
  const c = oci.config ?? {};
  const env: Record<string, string> = {};
  for (const kv of c.Env ?? []) {
    const eq = kv.indexOf("=");
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const user = await resolveUser(rootfs, c.User ?? "");
  env.PATH ??= DEFAULT_PATH;
  env.HOME ??= user.home;
  const workingDir = c.WorkingDir && c.WorkingDir.startsWith("/") ? c.WorkingDir : "/";
  const command = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  const exposedPorts = Object.keys(c.ExposedPorts ?? {}).flatMap((k) => (/^\d+(\/tcp)?$/.test(k) ? [Number.parseInt(k, 10)] : []));
  return {
    workingDir,
    home: env.HOME,
    env,
    uid: user.uid,
    gid: user.gid,
    shell: await pickShell(rootfs, user.loginShell),
    ...(command.length ? { command } : {}),
    ...(exposedPorts.length ? { exposedPorts } : {}),
  };
}
