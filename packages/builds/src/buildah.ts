// Dockerfile builds with buildah (the field's daemonless builder), behind the same wall as a
// sandbox. buildah runs rootless as an unprivileged host user (`hangar-build`), so every RUN step is
// in a user namespace whose root is that user's subordinate range; the whole build sits in a cgroup
// with memory, CPU and pids limits and a deadline, and in a network namespace from the node's
// sandbox network (the same firewall: no host, no other sandboxes, no metadata address). The
// result leaves as an EROFS image in Hangar's image store.
//
// Layout under `root` (root-owned, 0755; the rest owned by the build user):
//   home/                    the build user's HOME and XDG_RUNTIME_DIR
//   conf/containers.conf     ulimits, cgroupfs, runc
//   ca-bundle.crt            the trust store RUN steps see at /.hangar-build/ca.crt
//   ws/<workspace>/          storage.conf, storage/ (images, layer cache), run/ — one per workspace,
//                            so one workspace's layer cache never serves another's build
//   tmp/                     contexts, base layouts and EROFS files in flight

import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { createReadStream, createWriteStream, existsSync, promises as fs } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { HangarError, randomToken, silentLogger, type Logger } from "@hangar/common";
import { builtImageRef, cgroups as cg, run, runRaw, type ImageConfig, type LocalImageStore, type NetSlot, type OciImageConfig } from "@hangar/runtime";
import { TRUST_ARGS } from "./dockerfile.js";

export interface BuildLimits {
  memoryMb: number;
  /** CPU quota in CPUs. */
  cpus: number;
  /** Tasks in the build's cgroup, buildah's own threads included. */
  pids: number;
  timeoutMs: number;
}

export const DEFAULT_BUILD_LIMITS: BuildLimits = { memoryMb: 4096, cpus: 2, pids: 4096, timeoutMs: 30 * 60_000 };

/** The network a build runs in: a slot of the node's sandbox network. */
export interface BuildNetwork {
  acquire(): Promise<NetSlot>;
  release(slot: NetSlot): Promise<void>;
  readonly nameservers: string[];
}

export interface BuildahOptions {
  root: string;
  images: LocalImageStore;
  network: BuildNetwork | null;
  logger?: Logger;
  /** The unprivileged host user buildah runs as (created with a subordinate id range when missing). */
  user?: string;
  /** Its subordinate uid/gid range: must not overlap the sandboxes'. */
  subIds?: { start: number; size: number };
  cgroupParent?: string;
  limits?: Partial<BuildLimits>;
  /** PEM certificates RUN steps trust (default: the host's trust store). */
  caBundle?: string;
}

export interface BuildRequest {
  id: string;
  workspace: string;
  /** kind/name the image is for, used in its built: reference. */
  kind: string;
  name: string;
  contextDir: string;
  /** Path of the (prepared) Dockerfile, relative to the context. */
  dockerfile: string;
  /** Images the Dockerfile names (FROM, COPY --from), provided from the image store before the build. */
  images: string[];
  buildArgs: Record<string, string>;
  onLog: (line: string, severity: number) => void;
  signal?: AbortSignal;
}

export interface BuildOutput {
  ref: string;
  imageId: string;
  config: ImageConfig;
  /** True when the image store already had this exact image (an unchanged rebuild). */
  reused: boolean;
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CA_IN_BUILD = "/.hangar-build/ca.crt";
export const SEVERITY = { info: 5, error: 9 } as const;

export class BuildahBuilder {
  private readonly root: string;
  private readonly user: string;
  private readonly subIds: { start: number; size: number };
  private readonly cgroupParent: string;
  private readonly limits: BuildLimits;
  private readonly log: Logger;
  private ready: Promise<void> | null = null;
  private uid = 0;
  private gid = 0;
  /** Base images already in a workspace's storage: "<ws>/<image id>". */
  private readonly provided = new Map<string, Promise<string>>();

  constructor(private readonly opts: BuildahOptions) {
    this.root = opts.root;
    this.user = opts.user ?? "hangar-build";
    this.subIds = opts.subIds ?? { start: 1_200_000_000, size: 65536 };
    this.cgroupParent = opts.cgroupParent ?? "hangar-builds";
    this.limits = { ...DEFAULT_BUILD_LIMITS, ...opts.limits };
    this.log = opts.logger ?? silentLogger;
  }

  /** Checks buildah is there and sets up the build user and directories (once). */
  preflight(): Promise<void> {
    this.ready ??= this.setup().catch((e) => {
      this.ready = null;
      throw e;
    });
    return this.ready;
  }

  private async setup(): Promise<void> {
    for (const [cmd, pkg] of [["buildah", "buildah"], ["newuidmap", "uidmap"], ["runc", "runc"], ["mkfs.erofs", "erofs-utils"]] as const) {
      if ((await runRaw("sh", ["-c", `command -v ${cmd}`])).code !== 0) throw new HangarError("not_configured", `builds need ${cmd} (Debian package ${pkg})`);
    }
    await this.ensureUser();
    await fs.mkdir(this.root, { recursive: true, mode: 0o755 });
    await fs.chmod(this.root, 0o755);
    for (const d of ["home", "conf", "ws", "tmp"]) {
      await fs.mkdir(join(this.root, d), { recursive: true, mode: 0o755 });
      await fs.chown(join(this.root, d), this.uid, this.gid);
    }
    // entered by the build user (its own subdirs), listed by nobody else
    await fs.chmod(join(this.root, "tmp"), 0o711);
    await fs.writeFile(
      join(this.root, "conf", "containers.conf"),
      ['[containers]', 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]', "[engine]", 'cgroup_manager = "cgroupfs"', 'runtime = "runc"', ""].join("\n"),
      { mode: 0o644 },
    );
    const ca = this.opts.caBundle ?? (await fs.readFile("/etc/ssl/certs/ca-certificates.crt", "utf8").catch(() => ""));
    await fs.writeFile(join(this.root, "ca-bundle.crt"), ca, { mode: 0o644 });
  }

  /** The build user with a subordinate id range (rootless buildah maps RUN steps into it). */
  private async ensureUser(): Promise<void> {
    if ((await runRaw("id", ["-u", this.user])).code !== 0) {
      await run("useradd", ["--system", "--no-create-home", "--home-dir", join(this.root, "home"), "--shell", "/usr/sbin/nologin", this.user]);
    }
    this.uid = Number((await run("id", ["-u", this.user])).trim());
    this.gid = Number((await run("id", ["-g", this.user])).trim());
    for (const f of ["/etc/subuid", "/etc/subgid"]) {
      const text = await fs.readFile(f, "utf8").catch(() => "");
      if (!text.split("\n").some((l) => l.startsWith(`${this.user}:`))) {
        await fs.appendFile(f, `${text && !text.endsWith("\n") ? "\n" : ""}${this.user}:${this.subIds.start}:${this.subIds.size}\n`);
      }
    }
  }

  private wsDir(workspace: string): string {
    if (!/^[a-z0-9_-]+$/.test(workspace)) throw new HangarError("validation_failed", `bad workspace id ${workspace}`);
    return join(this.root, "ws", workspace);
  }

  /** The workspace's storage and its storage.conf (created once). */
  private async storage(workspace: string): Promise<string> {
    const dir = this.wsDir(workspace);
    const conf = join(dir, "storage.conf");
    if (!existsSync(conf)) {
      for (const d of [dir, join(dir, "storage"), join(dir, "run")]) {
        await fs.mkdir(d, { recursive: true, mode: 0o700 });
        await fs.chown(d, this.uid, this.gid);
      }
      const text = ["[storage]", 'driver = "overlay"', `runroot = "${dir}/run"`, `graphroot = "${dir}/storage"`, `rootless_storage_path = "${dir}/storage"`, ""].join("\n");
      await fs.writeFile(`${conf}.tmp`, text, { mode: 0o644 });
      await fs.rename(`${conf}.tmp`, conf);
    }
    return conf;
  }

  /** The environment buildah runs with, as the build user. */
  private env(storageConf: string): string[] {
    const home = join(this.root, "home");
    return [
      `PATH=${PATH}`,
      `HOME=${home}`,
      `XDG_RUNTIME_DIR=${home}`,
      `TMPDIR=${home}`,
      `CONTAINERS_CONF=${join(this.root, "conf", "containers.conf")}`,
      `CONTAINERS_STORAGE_CONF=${storageConf}`,
      "BUILDAH_ISOLATION=rootless",
    ];
  }

  /** argv running `args` as the build user; in `cgroup` and the netns `netns` when given. */
  private asBuilder(storageConf: string, args: string[], where: { cgroup?: string; netns?: string } = {}): string[] {
    const enter = where.cgroup ? `for d in ${["pids", "memory", "cpu"].map((c) => cg.cgDir(c, where.cgroup!)).join(" ")}; do echo $$ > "$d/cgroup.procs"; done; ` : "";
    const ns = where.netns ? `nsenter --net=${where.netns} ` : "";
    return ["sh", "-c", `${enter}exec ${ns}runuser -u ${this.user} -- env -i ${this.env(storageConf).join(" ")} "$@"`, "sh", ...args];
  }

  private async buildah(workspace: string, args: string[], timeoutMs = 600_000): Promise<string> {
    const [cmd, ...rest] = this.asBuilder(await this.storage(workspace), ["buildah", ...args]);
    return run(cmd!, rest, { timeoutMs });
  }

  /**
   * Makes `ref` (as a Dockerfile names it) resolve in the workspace's storage: the image store
   * resolves it (built-in base, import dirs, reachable registries), it is handed to buildah once
   * as an OCI layout, and tagged with the name as written.
   */
  async provide(workspace: string, ref: string, onLog: (line: string) => void): Promise<void> {
    let image;
    try {
      image = await this.opts.images.resolve(ref, onLog);
    } catch (e) {
      throw new HangarError(
        "build_failed",
        `base image ${ref} cannot be had here: ${(e as Error).message}. Use hangar/base (Debian bookworm with node and python), an image in HANGAR_IMPORT_DIRS (oci:/path), or a registry this machine reaches`,
      );
    }
    const key = `${workspace}/${image.id}`;
    let p = this.provided.get(key);
    if (!p) {
      p = this.loadBase(workspace, image.id, image.lowerDir, image.config).catch((e) => {
        this.provided.delete(key);
        throw e;
      });
      this.provided.set(key, p);
    }
    const local = await p;
    await this.buildah(workspace, ["tag", local, ref]);
  }

  /** Puts an image-store image into the workspace's storage as localhost/hangar-img/<id>. */
  private async loadBase(workspace: string, id: string, rootfs: string, config: ImageConfig): Promise<string> {
    const name = `localhost/hangar-img/${id.slice(0, 32)}`;
    const storageConf = await this.storage(workspace);
    const [c, ...a] = this.asBuilder(storageConf, ["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", name]);
    if ((await runRaw(c!, a)).code === 0) return name;
    const layout = join(this.root, "tmp", `base-${id.slice(0, 16)}-${randomBytes(4).toString("hex")}`);
    try {
      await writeLayout(rootfs, config, layout);
      await run("chown", ["-R", `${this.uid}:${this.gid}`, layout]);
      const pulled = (await this.buildah(workspace, ["pull", "--quiet", `oci:${layout}:latest`])).trim().split("\n").pop()!;
      await this.buildah(workspace, ["tag", pulled, name]);
      return name;
    } finally {
      await fs.rm(layout, { recursive: true, force: true });
    }
  }

  /** Runs a build; resolves with the image in the image store, or throws build_failed with the reason. */
  async build(req: BuildRequest): Promise<BuildOutput> {
    await this.preflight();
    const t0 = performance.now();
    const storageConf = await this.storage(req.workspace);
    for (const ref of req.images) await this.provide(req.workspace, ref, (l) => req.onLog(l, SEVERITY.info));
    const tProvided = performance.now();
    const cgroup = `/${this.cgroupParent}/${req.id}`;
    const slot = this.opts.network ? await this.opts.network.acquire() : null;
    const iidFile = join(this.root, "home", `iid-${req.id}`);
    // the context must be readable by the build user
    await run("chown", ["-R", `${this.uid}:${this.gid}`, req.contextDir]);
    try {
      // what a killed server's run of this build left behind goes first
      await this.killCgroup(cgroup, false);
      await this.makeCgroup(cgroup);
      const args = [
        "buildah", "bud", "--pull=never", "--layers", "--isolation=rootless",
        `--network=${slot ? "host" : "none"}`,
        ...(slot ? (this.opts.network!.nameservers.length ? this.opts.network!.nameservers.map((n) => `--dns=${n}`) : []) : []),
        "--no-hosts",
        "-v", `${join(this.root, "ca-bundle.crt")}:${CA_IN_BUILD}:ro`,
        ...TRUST_ARGS.flatMap((a) => ["--build-arg", `${a}=${CA_IN_BUILD}`]),
        ...Object.entries(req.buildArgs).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]),
        "--iidfile", iidFile,
        "-f", req.dockerfile,
        req.contextDir,
      ];
      const code = await this.stream(this.asBuilder(storageConf, args, { cgroup, ...(slot ? { netns: slot.netnsPath } : {}) }), req, cgroup);
      if (code !== 0) throw new HangarError("build_failed", `the build failed (buildah exit ${code}); see the build logs`);
      const tBuilt = performance.now();
      const iid = (await fs.readFile(iidFile, "utf8")).trim().replace(/^sha256:/, "");
      const inspect = JSON.parse(await this.buildah(req.workspace, ["inspect", "--type", "image", iid])) as { OCIv1?: OciImageConfig };
      const oci = inspect.OCIv1 ?? {};
      const ref = builtImageRef(req.workspace, req.kind, req.name, req.id);
      const reused = await this.opts.images.has(iid);
      req.onLog(reused ? `image ${iid.slice(0, 12)} is unchanged; reusing it` : `writing image ${iid.slice(0, 12)}…`, SEVERITY.info);
      const image = await this.opts.images.addBuilt(ref, iid, oci, (file) => this.exportErofs(storageConf, iid, file));
      const ms = (a: number, b: number) => Math.round(b - a);
      req.onLog(`timing: base images ${ms(t0, tProvided)} ms, buildah ${ms(tProvided, tBuilt)} ms, image ${ms(tBuilt, performance.now())} ms`, SEVERITY.info);
      return { ref, imageId: iid, config: image.config, reused };
    } finally {
      await fs.rm(iidFile, { force: true });
      await this.killCgroup(cgroup);
      if (slot) await this.opts.network!.release(slot).catch((e) => this.log.warn({ err: e }, "releasing a build's network failed"));
    }
  }

  /**
   * Writes the built image's root filesystem as EROFS (inside the build user's namespace, where its
   * files have their own owners). mkfs.erofs's default keeps each mtime that fits a compact inode;
   * --preserve-mtime (extended inodes for all) took twice as long on the merged overlay.
   */
  private async exportErofs(storageConf: string, iid: string, file: string): Promise<void> {
    const tmp = join(this.root, "home", `erofs-${randomToken(8)}.img`);
    const script = 'c=$(buildah from --pull=never "$1") && m=$(buildah mount "$c") && mkfs.erofs --quiet "$2" "$m"; s=$?; buildah umount "$c" >/dev/null; buildah rm "$c" >/dev/null; exit $s';
    const [cmd, ...args] = this.asBuilder(storageConf, ["buildah", "unshare", "sh", "-c", script, "sh", iid, tmp]);
    try {
      await run(cmd!, args, { timeoutMs: 600_000 });
      // the same filesystem as the image store usually: a rename, else a copy
      await fs.rename(tmp, file).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== "EXDEV") throw e;
        await fs.copyFile(tmp, file);
      });
      await fs.chown(file, 0, 0);
      await fs.chmod(file, 0o644);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** Runs the build, sending its output to the log line by line; kills it at the deadline or on abort. */
  private stream(argv: string[], req: BuildRequest, cgroup: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], cwd: req.contextDir });
      const onLine = (severity: number) => (line: string) => req.onLog(line, severity);
      createInterface({ input: child.stdout! }).on("line", onLine(SEVERITY.info));
      createInterface({ input: child.stderr! }).on("line", onLine(SEVERITY.info));
      let why = "";
      const stop = (reason: string) => {
        why = reason;
        void this.killCgroup(cgroup, false);
        child.kill("SIGKILL");
      };
      const timer = setTimeout(() => stop(`the build took longer than ${Math.round(this.limits.timeoutMs / 1000)} s`), this.limits.timeoutMs);
      const onAbort = () => stop("the build was cancelled");
      req.signal?.addEventListener("abort", onAbort, { once: true });
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once("close", (code) => {
        clearTimeout(timer);
        req.signal?.removeEventListener("abort", onAbort);
        if (why) reject(new HangarError("build_failed", why));
        else resolve(code ?? 1);
      });
    });
  }

  private async makeCgroup(path: string): Promise<void> {
    const l = this.limits;
    const settings: Array<[string, string, string]> = [
      ["pids", "pids.max", String(l.pids)],
      ["memory", "memory.limit_in_bytes", String(l.memoryMb * 1024 * 1024)],
      ["cpu", "cpu.cfs_period_us", "100000"],
      ["cpu", "cpu.cfs_quota_us", String(Math.round(l.cpus * 100_000))],
    ];
    for (const c of ["pids", "memory", "cpu"]) await fs.mkdir(cg.cgDir(c, path), { recursive: true });
    for (const [c, f, v] of settings) await fs.writeFile(`${cg.cgDir(c, path)}/${f}`, v);
    // swap counts against the same limit where the kernel accounts it
    await fs.writeFile(`${cg.cgDir("memory", path)}/memory.memsw.limit_in_bytes`, String(l.memoryMb * 1024 * 1024)).catch(() => {});
  }

  /** Kills whatever is left in the build's cgroup and (unless `remove` is false) removes it. */
  private async killCgroup(path: string, remove = true): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const pids = await cg.cgroupPids(path);
      if (!pids.length) break;
      for (const p of pids) {
        try {
          process.kill(p, "SIGKILL");
        } catch {}
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    if (remove) await cg.removeCgroup(path, ["pids", "memory", "cpu"]).catch((e) => this.log.warn({ err: e, path }, "removing a build cgroup failed"));
  }

  /**
   * Keeps a workspace's layer cache under `limitBytes`: dangling images first, then everything
   * (base images are handed over again on the next build). Never while one of its builds runs.
   */
  async prune(workspace: string, limitBytes: number): Promise<void> {
    const dir = this.wsDir(workspace);
    const size = async () => Number((await runRaw("du", ["-sb", dir])).stdout.split("\t")[0] ?? 0);
    if ((await size()) <= limitBytes) return;
    this.log.info({ workspace, limitBytes }, "build cache over its limit: pruning");
    await this.buildah(workspace, ["rm", "--all"]).catch(() => "");
    await this.buildah(workspace, ["rmi", "--prune"]).catch(() => "");
    if ((await size()) <= limitBytes) return;
    await this.buildah(workspace, ["rmi", "--all", "--force"]).catch(() => "");
    for (const k of this.provided.keys()) if (k.startsWith(`${workspace}/`)) this.provided.delete(k);
  }

  /** Removes the builder's state of a data dir (uninstall). */
  async purge(): Promise<void> {
    const ws = join(this.root, "ws");
    for (const w of await fs.readdir(ws).catch(() => [])) {
      const conf = join(ws, w, "storage.conf");
      if (existsSync(conf)) {
        const [cmd, ...args] = this.asBuilder(conf, ["buildah", "rm", "--all"]);
        await runRaw(cmd!, args);
        const [c2, ...a2] = this.asBuilder(conf, ["buildah", "unshare", "rm", "-rf", join(ws, w, "storage"), join(ws, w, "run")]);
        await runRaw(c2!, a2);
      }
    }
    await fs.rm(this.root, { recursive: true, force: true });
  }
}

/**
 * Writes a root filesystem as a one-layer OCI image layout (uncompressed tar, owners as stored),
 * with `config`'s environment, working directory and user.
 */
async function writeLayout(rootfs: string, config: ImageConfig, layout: string): Promise<void> {
  const blobs = join(layout, "blobs", "sha256");
  await fs.mkdir(blobs, { recursive: true });
  const tmpTar = join(layout, "layer.tar");
  const tar = spawn("tar", ["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", rootfs, "-cf", "-", "."], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  tar.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const done = new Promise<number>((r) => tar.once("close", (c) => r(c ?? 1)));
  await pipeline(tar.stdout!, createWriteStream(tmpTar));
  if ((await done) !== 0) throw new HangarError("build_failed", `exporting a base image failed: ${err.slice(0, 500)}`);
  const layerDigest = await sha256File(tmpTar);
  const layerSize = (await fs.stat(tmpTar)).size;
  await fs.rename(tmpTar, join(blobs, layerDigest));
  const put = async (obj: unknown) => {
    const text = JSON.stringify(obj);
    const d = createHash("sha256").update(text).digest("hex");
    await fs.writeFile(join(blobs, d), text);
    return { digest: `sha256:${d}`, size: Buffer.byteLength(text) };
  };
  const cfg = await put({
    architecture: process.arch === "arm64" ? "arm64" : "amd64",
    os: "linux",
    config: { Env: Object.entries(config.env).map(([k, v]) => `${k}=${v}`), WorkingDir: config.workingDir, User: `${config.uid}:${config.gid}` },
    rootfs: { type: "layers", diff_ids: [`sha256:${layerDigest}`] },
    history: [{ created: "1970-01-01T00:00:00Z", created_by: "hangar image store" }],
  });
  const manifest = await put({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${layerDigest}`, size: layerSize }],
  });
  await fs.writeFile(
    join(layout, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "latest" } }] }),
  );
  await fs.writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return h.digest("hex");
}
