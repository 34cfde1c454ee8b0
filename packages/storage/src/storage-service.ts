// Volumes, volume templates and drives: the records in the store, the host's volume images and
// drive directories. Volumes are claimed by one sandbox at a time (the store's attached_to, set
// atomically), so several servers sharing a store never attach one twice.

import { promises as fs } from "node:fs";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createWriteStream } from "node:fs";
import { HangarError, type Logger, type ResourceMetadata, randomId, randomToken, sha256Hex, silentLogger, validateMetadata } from "@hangar/common";
import { extractZip } from "@hangar/builds";
import { type ListQuery, type Page, type Store, StoreConflictError, type StorageKind, type StorageRecord, type WorkspaceRecord } from "@hangar/store";
import { VolumeHost, sh } from "./host.js";

export interface StorageInput {
  metadata?: { name?: unknown; displayName?: unknown; labels?: unknown; externalId?: unknown } | null;
  spec?: Record<string, unknown> | null;
}

/** Where drives keep their files. One box: a directory per drive. Several: a distributed FS mounted at the same path. */
export interface DriveBackend {
  /** Host directory holding the drive's files (made on first use). */
  ensure(driveId: string): Promise<string>;
  remove(driveId: string): Promise<void>;
}

/** Drives as local directories (`<root>/<drive id>`), files stored with the uids seen inside a sandbox (idmapped mounts). */
export class LocalDriveBackend implements DriveBackend {
  constructor(private readonly root: string) {}
  async ensure(driveId: string): Promise<string> {
    // files are stored with the uids a sandbox sees (a sandbox's root is root here, setuid bits
    // and all): the drives' root is root's only, never reachable by other host users
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
    await fs.chmod(this.root, 0o700);
    const dir = `${this.root}/${driveId}`;
    await fs.mkdir(dir, { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
    return dir;
  }
  async remove(driveId: string): Promise<void> {
    await fs.rm(`${this.root}/${driveId}`, { recursive: true, force: true });
  }
}

export interface StorageServiceOptions {
  store: Store;
  volumes: VolumeHost;
  drives: DriveBackend;
  /** Where template archives are kept. */
  templatesDir: string;
  /** Host uid of a sandbox's root (owner of template files in a new volume). */
  rootUid: number;
  defaultRegion: string;
  logger?: Logger;
}

/** Size limits of a volume, MB. */
const MIN_SIZE_MB = 16;
const MAX_SIZE_MB = 1024 * 1024;

const NOT_FOUND = { volumes: "volume_not_found", drives: "drive_not_found", volume_templates: "volume_template_not_found" } as const;
const SINGULAR = { volumes: "volume", drives: "drive", volume_templates: "volume template" } as const;

/** A template version: a zip of files a new volume starts from. */
export interface TemplateVersion {
  name: string;
  file: string;
  contentSize: number;
  createdAt: string;
}

/** Normalized absolute path; null when it is not absolute or has a NUL. */
export function absolutePath(p: unknown): string | null {
  if (typeof p !== "string" || !p.startsWith("/") || p.includes("\0") || p.length > 4096) return null;
  return posix.normalize(p).replace(/\/+$/, "") || "/";
}

/** Mount paths a sandbox may never get a volume or drive on. */
const FORBIDDEN_PREFIXES = ["/proc", "/sys", "/dev", "/.hangar", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/** Checks a mount path inside a sandbox (absolute, not "/", not a system path). */
export function checkMountPath(p: unknown, field: string): string {
  const path = absolutePath(p);
  if (!path) throw new HangarError("invalid_path", `${field}: must be an absolute path`, { field });
  if (typeof p === "string" && p.split("/").includes("..")) throw new HangarError("invalid_path", `${field}: must not contain '..'`, { field });
  if (path === "/") throw new HangarError("invalid_path", `${field}: cannot mount over the sandbox's root`, { field });
  if (FORBIDDEN_PREFIXES.some((f) => path === f || path.startsWith(`${f}/`))) throw new HangarError("invalid_path", `${field}: ${path} is a system path`, { field });
  return path;
}

export class StorageService {
  private readonly store: Store;
  readonly volumeHost: VolumeHost;
  readonly drives: DriveBackend;
  private readonly log: Logger;

  constructor(private readonly o: StorageServiceOptions) {
    this.store = o.store;
    this.volumeHost = o.volumes;
    this.drives = o.drives;
    this.log = o.logger ?? silentLogger;
  }

  // ---- common

  async get(ws: WorkspaceRecord, kind: StorageKind, name: string): Promise<StorageRecord> {
    const rec = await this.store.storage.get(ws.id, kind, name);
    if (!rec) throw new HangarError(NOT_FOUND[kind], `${SINGULAR[kind]} '${name}' not found in workspace '${ws.name}'`);
    return rec;
  }

  async byExternalId(ws: WorkspaceRecord, kind: StorageKind, externalId: string): Promise<StorageRecord> {
    const rec = await this.store.storage.getByExternalId(ws.id, kind, externalId);
    if (!rec) throw new HangarError(NOT_FOUND[kind], `no ${SINGULAR[kind]} with externalId '${externalId}'`);
    return rec;
  }

  list(ws: WorkspaceRecord, kind: StorageKind, query: ListQuery): Promise<Page<StorageRecord>> {
    return this.store.storage.list(ws.id, kind, query);
  }

  /** Inserts a new record; 409 `<kind>_already_exists`-like conflict when the name is taken. */
  private async insert(ws: WorkspaceRecord, kind: StorageKind, md: ResourceMetadata, spec: Record<string, unknown>, prefix: string): Promise<StorageRecord> {
    const now = new Date().toISOString();
    const name = md.name ?? `${prefix}-${randomId(8)}`;
    const rec: StorageRecord = {
      id: randomId(12),
      workspaceId: ws.id,
      kind,
      name,
      externalId: md.externalId ?? null,
      displayName: md.displayName ?? name,
      labels: md.labels ?? {},
      spec,
      status: "DEPLOYING",
      attachedTo: null,
      createdAt: now,
      updatedAt: now,
      version: 1,
    };
    try {
      return await this.store.storage.insert(rec);
    } catch (e) {
      if (e instanceof StoreConflictError) throw new HangarError("already_exists", `${SINGULAR[kind]} '${name}' already exists in workspace '${ws.name}'`, { name });
      throw e;
    }
  }

  private region(spec: Record<string, unknown>): string {
    const r = spec.region;
    if (r !== undefined && r !== null && typeof r !== "string") throw new HangarError("validation_failed", "spec.region: must be a string", { field: "spec.region" });
    return (r as string | undefined) || this.o.defaultRegion;
  }

  private specOf(input: StorageInput): Record<string, unknown> {
    const spec = input.spec ?? {};
    if (typeof spec !== "object" || Array.isArray(spec)) throw new HangarError("validation_failed", "spec: must be an object");
    return spec;
  }

  // ---- volumes

  private sizeOf(v: unknown, fallback: number): number {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < MIN_SIZE_MB || v > MAX_SIZE_MB) {
      throw new HangarError("validation_failed", `spec.size: must be an integer number of MB from ${MIN_SIZE_MB} to ${MAX_SIZE_MB}`, { field: "spec.size" });
    }
    return v;
  }

  async createVolume(ws: WorkspaceRecord, input: StorageInput): Promise<StorageRecord> {
    const md = validateMetadata(input.metadata);
    const spec = this.specOf(input);
    let size = this.sizeOf(spec.size, 1024);
    const region = this.region(spec);
    let from: { dir: string } | null = null;
    let template: string | undefined;
    if (spec.template !== undefined && spec.template !== null && spec.template !== "") {
      if (typeof spec.template !== "string") throw new HangarError("validation_failed", "spec.template: must be 'name:version' or 'name'", { field: "spec.template" });
      template = spec.template;
      const [tplName, verName] = template.split(":");
      const tpl = await this.get(ws, "volume_templates", tplName ?? "");
      const versions = (tpl.spec.versions as TemplateVersion[] | undefined) ?? [];
      const ver = verName ? versions.find((v) => v.name === verName) : versions[versions.length - 1];
      if (!ver) throw new HangarError("volume_template_not_found", `volume template '${tplName}' has no version ${verName ? `'${verName}'` : "yet"}`);
      if (spec.size === undefined && typeof tpl.spec.defaultSize === "number") size = this.sizeOf(tpl.spec.defaultSize, size);
      from = { dir: await this.unpackTemplate(ver.file) };
      template = `${tplName}:${ver.name}`;
    }
    try {
      const rec = await this.insert(ws, "volumes", md, { size, region, ...(template ? { template } : {}) }, "volume");
      try {
        await this.volumeHost.create(rec.id, size, from?.dir);
      } catch (e) {
        await this.store.storage.deleteIfFree(rec.id);
        throw e;
      }
      return (await this.store.storage.update(rec.id, { status: "DEPLOYED" }))!;
    } finally {
      if (from) await fs.rm(from.dir, { recursive: true, force: true });
    }
  }

  /** A template version's files in a fresh directory, owned by a sandbox's root. */
  private async unpackTemplate(file: string): Promise<string> {
    const dir = `${this.o.templatesDir}/tmp-${randomId(8)}`;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      await extractZip(file, dir);
      await sh("chown", ["-R", `${this.o.rootUid}:${this.o.rootUid}`, dir]);
      await fs.chmod(dir, 0o755);
      return dir;
    } catch (e) {
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** PUT: metadata updates, and a size that may only grow (the data kept). */
  async updateVolume(ws: WorkspaceRecord, name: string, input: StorageInput): Promise<StorageRecord> {
    const rec = await this.store.storage.get(ws.id, "volumes", name);
    if (!rec) return this.createVolume(ws, { ...input, metadata: { ...(input.metadata ?? {}), name } });
    const md = validateMetadata(input.metadata);
    const spec = this.specOf(input);
    const cur = rec.spec.size as number;
    const size = this.sizeOf(spec.size, cur);
    if (size < cur) throw new HangarError("validation_failed", `spec.size: a volume can only grow (it has ${cur} MB)`, { field: "spec.size" });
    if (spec.template !== undefined && spec.template !== null && spec.template !== rec.spec.template) {
      throw new HangarError("validation_failed", "spec.template: a volume's template is fixed when it is created", { field: "spec.template" });
    }
    if (size > cur && (await this.volumeHost.grow(rec.id, size)) === "deferred") {
      this.log.info({ volume: rec.name, size }, "volume grown; its filesystem grows when it is next attached (online resize needs CAP_SYS_RESOURCE)");
    }
    return (await this.store.storage.update(rec.id, {
      ...(md.displayName !== undefined ? { displayName: md.displayName } : {}),
      ...(md.labels !== undefined ? { labels: md.labels } : {}),
      ...(md.externalId !== undefined ? { externalId: md.externalId } : {}),
      spec: { ...rec.spec, size },
      updatedAt: new Date().toISOString(),
    }))!;
  }

  async deleteVolume(ws: WorkspaceRecord, name: string): Promise<StorageRecord> {
    const rec = await this.get(ws, "volumes", name);
    if (rec.attachedTo || !(await this.store.storage.deleteIfFree(rec.id))) {
      throw new HangarError("volume_in_use", `volume '${name}' is attached to a sandbox; delete the sandbox first`, { attachedTo: await this.attachedName(rec) });
    }
    await this.volumeHost.remove(rec.id);
    return { ...rec, status: "DELETING" };
  }

  /** "sandbox:<name>" of the sandbox holding a volume. */
  async attachedName(rec: StorageRecord): Promise<string | undefined> {
    if (!rec.attachedTo) return undefined;
    const sbx = await this.store.sandboxes.getById(rec.attachedTo);
    return sbx ? `sandbox:${sbx.name}` : `sandbox:${rec.attachedTo}`;
  }

  /**
   * Claims the volumes a sandbox names (spec.volumes) for it and mounts them on the host; the binds.
   * 404 for an unknown volume, 409 when another sandbox holds one (nothing claimed then).
   */
  async attach(workspaceName: string, sandboxId: string, volumes: Array<{ name: string; mountPath: string; readOnly?: boolean; type?: string; sizeMb?: number }>): Promise<Array<{ source: string; destination: string; readOnly: boolean }>> {
    const ws = await this.store.workspaces.getByName(workspaceName);
    if (!ws) throw new HangarError("workspace_not_found", `workspace '${workspaceName}' not found`);
    const seen = new Set<string>();
    const plan: Array<{ rec: StorageRecord; destination: string; readOnly: boolean }> = [];
    const scratch: Array<{ id: string; sizeMb: number; destination: string; readOnly: boolean }> = [];
    for (const [i, v] of volumes.entries()) {
      if (!v || typeof v !== "object" || typeof v.name !== "string") throw new HangarError("validation_failed", `spec.volumes[${i}].name: must be a volume name`, { field: `spec.volumes[${i}].name` });
      const destination = checkMountPath(v.mountPath, `spec.volumes[${i}].mountPath`);
      if (seen.has(destination)) throw new HangarError("validation_failed", `spec.volumes[${i}].mountPath: ${destination} is used twice`);
      seen.add(destination);
      if (v.type === "ephemeral") {
        // a scratch volume of this sandbox only: made with it, removed with it (no record)
        scratch.push({ id: `eph-${sandboxId}-${i}`, sizeMb: this.sizeOf(v.sizeMb, 0), destination, readOnly: v.readOnly === true });
        continue;
      }
      const rec = await this.get(ws, "volumes", v.name);
      plan.push({ rec, destination, readOnly: v.readOnly === true });
    }
    const claimed: StorageRecord[] = [];
    try {
      for (const p of plan) {
        if (!(await this.store.storage.claim(p.rec.id, sandboxId))) {
          const cur = (await this.store.storage.get(ws.id, "volumes", p.rec.name)) ?? p.rec;
          throw new HangarError("volume_in_use", `volume '${p.rec.name}' is already attached to ${(await this.attachedName(cur)) ?? "another sandbox"}`, { volume: p.rec.name });
        }
        claimed.push(p.rec);
      }
      const out = [];
      for (const p of plan) out.push({ source: await this.volumeHost.mount(p.rec.id), destination: p.destination, readOnly: p.readOnly });
      for (const p of scratch) {
        if (!this.volumeHost.exists(p.id)) await this.volumeHost.create(p.id, p.sizeMb);
        out.push({ source: await this.volumeHost.mount(p.id), destination: p.destination, readOnly: p.readOnly });
      }
      return out;
    } catch (e) {
      for (const r of claimed) await this.detachOne(r, sandboxId);
      await this.removeScratch(sandboxId);
      throw e;
    }
  }

  /** Removes a sandbox's ephemeral volumes. */
  private async removeScratch(sandboxId: string): Promise<void> {
    const prefix = `eph-${sandboxId}-`;
    const files = await fs.readdir(this.volumeHost.imagesDir).catch(() => [] as string[]);
    for (const f of files) if (f.startsWith(prefix) && f.endsWith(".ext4")) await this.volumeHost.remove(f.slice(0, -".ext4".length));
  }

  /** The volumes a new sandbox names exist and are free (before its record is stored; the claim comes at its start). */
  async checkVolumes(ws: WorkspaceRecord, volumes: unknown[], sandboxName: string): Promise<void> {
    for (const v of volumes as Array<{ name?: unknown; type?: unknown }>) {
      if (v?.type === "ephemeral" || typeof v?.name !== "string") continue;
      const rec = await this.get(ws, "volumes", v.name);
      // held by the sandbox of this very name (createIfNotExists of an existing one): its create decides
      const holder = rec.attachedTo ? await this.store.sandboxes.getById(rec.attachedTo) : null;
      if (rec.attachedTo && !(holder && holder.workspaceId === ws.id && holder.name === sandboxName)) throw new HangarError("volume_in_use", `volume '${rec.name}' is already attached to ${(await this.attachedName(rec)) ?? "another sandbox"}`, { volume: rec.name });
    }
  }

  private async detachOne(rec: StorageRecord, sandboxId: string): Promise<void> {
    await this.volumeHost.unmount(rec.id).catch((e) => this.log.warn({ err: e, volume: rec.name }, "unmounting a volume failed"));
    await this.store.storage.release(rec.id, sandboxId);
  }

  /** Frees (and unmounts on the host) every volume a destroyed sandbox held. */
  async release(sandboxId: string): Promise<void> {
    for (const rec of await this.store.storage.listAttached(sandboxId)) await this.detachOne(rec, sandboxId);
    await this.removeScratch(sandboxId);
  }

  // ---- volume templates

  async createTemplate(ws: WorkspaceRecord, input: StorageInput): Promise<StorageRecord> {
    const md = validateMetadata(input.metadata);
    const spec = this.specOf(input);
    const out: Record<string, unknown> = { versions: [] };
    if (spec.defaultSize !== undefined) out.defaultSize = this.sizeOf(spec.defaultSize, 1024);
    if (typeof spec.description === "string") out.description = spec.description.slice(0, 1024);
    const rec = await this.insert(ws, "volume_templates", md, out, "template");
    return (await this.store.storage.update(rec.id, { status: "DEPLOYED" }))!;
  }

  async updateTemplate(ws: WorkspaceRecord, name: string, input: StorageInput): Promise<StorageRecord> {
    const rec = await this.store.storage.get(ws.id, "volume_templates", name);
    if (!rec) return this.createTemplate(ws, { ...input, metadata: { ...(input.metadata ?? {}), name } });
    const md = validateMetadata(input.metadata);
    const spec = this.specOf(input);
    const next = { ...rec.spec };
    if (spec.defaultSize !== undefined) next.defaultSize = this.sizeOf(spec.defaultSize, 1024);
    if (typeof spec.description === "string") next.description = spec.description.slice(0, 1024);
    return (await this.store.storage.update(rec.id, {
      ...(md.displayName !== undefined ? { displayName: md.displayName } : {}),
      ...(md.labels !== undefined ? { labels: md.labels } : {}),
      spec: next,
      updatedAt: new Date().toISOString(),
    }))!;
  }

  /** Stores a zip as version `version` of a template (replacing one of that name); checked by unpacking it once. */
  async uploadTemplateVersion(ws: WorkspaceRecord, name: string, version: string, body: Readable | Buffer, limitBytes: number): Promise<StorageRecord> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(version)) throw new HangarError("validation_failed", "version: 1 to 63 characters of [A-Za-z0-9._-]");
    const rec = await this.get(ws, "volume_templates", name);
    await fs.mkdir(this.o.templatesDir, { recursive: true, mode: 0o700 });
    const file = `${this.o.templatesDir}/${rec.id}-${version}-${randomId(6)}.zip`;
    let bytes = 0;
    const src = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    src.on("data", (b: Buffer) => {
      bytes += b.length;
      if (bytes > limitBytes) src.destroy(new HangarError("payload_too_large", `template archives are limited to ${limitBytes} bytes`));
    });
    try {
      await pipeline(src, createWriteStream(file, { mode: 0o600 }));
      const dir = await this.unpackTemplate(file);
      await fs.rm(dir, { recursive: true, force: true });
    } catch (e) {
      await fs.rm(file, { force: true });
      throw e;
    }
    const cur = (await this.store.storage.get(ws.id, "volume_templates", name)) ?? rec;
    const versions = ((cur.spec.versions as TemplateVersion[] | undefined) ?? []).filter((v) => v.name !== version);
    const old = ((cur.spec.versions as TemplateVersion[] | undefined) ?? []).find((v) => v.name === version);
    if (old) await fs.rm(old.file, { force: true });
    versions.push({ name: version, file, contentSize: bytes, createdAt: new Date().toISOString() });
    return (await this.store.storage.update(rec.id, { spec: { ...cur.spec, versions }, updatedAt: new Date().toISOString() }))!;
  }

  /**
   * `?upload=true` (bl's flow): an upload URL token for the next version of a template (single use,
   * 15 minutes; only its hash is kept). Returns the token and the version name it will create.
   */
  async createTemplateUpload(ws: WorkspaceRecord, name: string, version?: string): Promise<{ token: string; version: string }> {
    const rec = await this.get(ws, "volume_templates", name);
    const versions = (rec.spec.versions as TemplateVersion[] | undefined) ?? [];
    const v = version || `v${versions.length + 1}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v)) throw new HangarError("validation_failed", "version: 1 to 63 characters of [A-Za-z0-9._-]");
    const token = randomToken(24);
    const now = Date.now();
    const uploads = ((rec.spec.uploads as Array<{ version: string; tokenHash: string; expiresAt: number }> | undefined) ?? []).filter((u) => u.expiresAt > now);
    uploads.push({ version: v, tokenHash: sha256Hex(token), expiresAt: now + 15 * 60_000 });
    await this.store.storage.update(rec.id, { spec: { ...rec.spec, uploads } });
    return { token, version: v };
  }

  /** The body PUT to an upload URL becomes the version it was made for; the token is spent first. */
  async receiveTemplateUpload(token: string, body: Readable, limitBytes: number): Promise<StorageRecord> {
    const hash = sha256Hex(token);
    const now = Date.now();
    for (const rec of await this.store.storage.listAll("volume_templates")) {
      const uploads = (rec.spec.uploads as Array<{ version: string; tokenHash: string; expiresAt: number }> | undefined) ?? [];
      const u = uploads.find((x) => x.tokenHash === hash && x.expiresAt > now);
      if (!u) continue;
      await this.store.storage.update(rec.id, { spec: { ...rec.spec, uploads: uploads.filter((x) => x !== u) } });
      const ws = await this.store.workspaces.getById(rec.workspaceId);
      if (!ws) break;
      return this.uploadTemplateVersion(ws, rec.name, u.version, body, limitBytes);
    }
    throw new HangarError("invalid_token", "this upload URL is unknown, used or expired");
  }

  async deleteTemplateVersion(ws: WorkspaceRecord, name: string, version: string): Promise<StorageRecord> {
    const rec = await this.get(ws, "volume_templates", name);
    const versions = (rec.spec.versions as TemplateVersion[] | undefined) ?? [];
    const v = versions.find((x) => x.name === version);
    if (!v) throw new HangarError("volume_template_not_found", `volume template '${name}' has no version '${version}'`);
    await fs.rm(v.file, { force: true });
    return (await this.store.storage.update(rec.id, { spec: { ...rec.spec, versions: versions.filter((x) => x !== v) }, updatedAt: new Date().toISOString() }))!;
  }

  async deleteTemplate(ws: WorkspaceRecord, name: string): Promise<StorageRecord> {
    const rec = await this.get(ws, "volume_templates", name);
    for (const v of (rec.spec.versions as TemplateVersion[] | undefined) ?? []) await fs.rm(v.file, { force: true });
    await this.store.storage.deleteIfFree(rec.id);
    return { ...rec, status: "DELETING" };
  }

  // ---- drives

  private permissions(spec: Record<string, unknown>): unknown[] | undefined {
    const p = spec.permissions;
    if (p === undefined || p === null) return undefined;
    if (!Array.isArray(p) || p.length > 3) throw new HangarError("validation_failed", "spec.permissions: at most 3 entries", { field: "spec.permissions" });
    for (const [i, e] of p.entries()) {
      const x = e as { mode?: unknown; path?: unknown };
      if (!x || typeof x !== "object" || (x.mode !== undefined && x.mode !== "read" && x.mode !== "read-write")) {
        throw new HangarError("validation_failed", `spec.permissions[${i}].mode: "read" or "read-write"`, { field: `spec.permissions[${i}]` });
      }
    }
    return p;
  }

  async createDrive(ws: WorkspaceRecord, input: StorageInput): Promise<StorageRecord> {
    const md = validateMetadata(input.metadata);
    const spec = this.specOf(input);
    const permissions = this.permissions(spec);
    const rec = await this.insert(ws, "drives", md, { region: this.region(spec), ...(permissions ? { permissions } : {}) }, "drive");
    await this.drives.ensure(rec.id);
    return (await this.store.storage.update(rec.id, { status: "DEPLOYED" }))!;
  }

  async updateDrive(ws: WorkspaceRecord, name: string, input: StorageInput): Promise<StorageRecord> {
    const rec = await this.store.storage.get(ws.id, "drives", name);
    if (!rec) return this.createDrive(ws, { ...input, metadata: { ...(input.metadata ?? {}), name } });
    const md = validateMetadata(input.metadata);
    const spec = this.specOf(input);
    const permissions = this.permissions(spec);
    return (await this.store.storage.update(rec.id, {
      ...(md.displayName !== undefined ? { displayName: md.displayName } : {}),
      ...(md.labels !== undefined ? { labels: md.labels } : {}),
      ...(md.externalId !== undefined ? { externalId: md.externalId } : {}),
      spec: { ...rec.spec, ...(permissions ? { permissions } : {}) },
      updatedAt: new Date().toISOString(),
    }))!;
  }

  /** Deletes a drive and its files (mounts left in running sandboxes keep what they had open). */
  async deleteDrive(ws: WorkspaceRecord, name: string): Promise<StorageRecord> {
    const rec = await this.get(ws, "drives", name);
    await this.store.storage.deleteIfFree(rec.id);
    await this.drives.remove(rec.id);
    return { ...rec, status: "DELETING" };
  }

  /** Host directory of a drive of a workspace, by name (404 unknown). */
  async driveSource(workspaceName: string, driveName: unknown): Promise<{ rec: StorageRecord; dir: string }> {
    if (typeof driveName !== "string" || !driveName) throw new HangarError("validation_failed", "driveName: required", { field: "driveName" });
    const ws = await this.store.workspaces.getByName(workspaceName);
    if (!ws) throw new HangarError("workspace_not_found", `workspace '${workspaceName}' not found`);
    const rec = await this.get(ws, "drives", driveName);
    return { rec, dir: await this.drives.ensure(rec.id) };
  }

  /**
   * After a restart (the data dir lock says this server is alone): volumes a crash left half-made
   * are removed, and claims of sandboxes this node no longer runs are released (and unmounted).
   */
  async recover(liveSandboxIds: Set<string>): Promise<{ removed: string[]; released: string[] }> {
    const removed: string[] = [];
    const released: string[] = [];
    for (const rec of await this.store.storage.listAll("volumes")) {
      if (rec.status === "DEPLOYING" && !rec.attachedTo) {
        await this.volumeHost.remove(rec.id);
        await this.store.storage.deleteIfFree(rec.id);
        removed.push(rec.name);
      } else if (rec.attachedTo && !liveSandboxIds.has(rec.attachedTo)) {
        await this.detachOne(rec, rec.attachedTo);
        released.push(rec.name);
      }
    }
    // ephemeral volumes of sandboxes that are gone
    for (const f of await fs.readdir(this.volumeHost.imagesDir).catch(() => [] as string[])) {
      const m = /^eph-([a-z0-9]+)-\d+\.ext4$/.exec(f);
      if (m && !liveSandboxIds.has(m[1]!)) {
        await this.volumeHost.remove(f.slice(0, -".ext4".length));
        removed.push(f.slice(0, -".ext4".length));
      }
    }
    return { removed, released };
  }

  /** Every volume attached to some sandbox (mounted again on the host at start). */
  async attachedVolumes(): Promise<StorageRecord[]> {
    return (await this.store.storage.listAll("volumes")).filter((r) => r.attachedTo);
  }
}
