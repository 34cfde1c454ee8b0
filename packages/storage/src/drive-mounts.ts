// The sandbox API's drive mounts (GET|POST /drives/mount, DELETE /drives/mount/{path}) for one
// sandbox: the drive's host directory (or a subdirectory) mounted into the running sandbox by the
// node's runtime (idmapped, at a path resolved inside the sandbox), recorded by the runtime so it
// comes back after a restart or a restore.

import { HangarError } from "@hangar/common";
import { type StorageService, checkMountPath } from "./storage-service.js";

export interface DriveMountInfo {
  driveName: string;
  drivePath: string;
  mountPath: string;
  readOnly: boolean;
}

/** What drive mounts need from the node (LocalNode implements it over the driver). */
export interface LiveMountNode {
  mountLive(id: string, m: { source: string; sourcePath?: string; destination: string; readOnly: boolean; meta?: Record<string, string> }): Promise<void>;
  unmountLive(id: string, destination: string): Promise<boolean>;
  liveMounts(id: string): Promise<Array<{ destination: string; readOnly: boolean; meta?: Record<string, string> }>>;
}

/** "/a/../b", "a/b" → "/b", "/a/b"; a path leaving the drive → 400. */
export function drivePathOf(p: unknown): string {
  if (p === undefined || p === null || p === "") return "/";
  if (typeof p !== "string" || p.includes("\0") || p.length > 4096) throw new HangarError("invalid_path", "drivePath: must be a path inside the drive", { field: "drivePath" });
  const parts: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") throw new HangarError("invalid_path", `drivePath: ${p} leaves the drive`, { field: "drivePath" });
    parts.push(c);
  }
  return `/${parts.join("/")}`;
}

export class DriveMounts {
  constructor(
    private readonly storage: StorageService,
    private readonly node: LiveMountNode,
    private readonly sandbox: { id: string; workspace: string },
  ) {}

  async list(): Promise<DriveMountInfo[]> {
    return (await this.node.liveMounts(this.sandbox.id))
      .filter((m) => m.meta?.driveName)
      .map((m) => ({ driveName: m.meta!.driveName!, drivePath: m.meta!.drivePath ?? "/", mountPath: m.destination, readOnly: m.readOnly }));
  }

  async mount(body: unknown): Promise<DriveMountInfo> {
    const b = (body ?? {}) as { driveName?: unknown; mountPath?: unknown; drivePath?: unknown; readOnly?: unknown };
    if (typeof body !== "object" || body === null) throw new HangarError("validation_failed", "body: {driveName, mountPath, drivePath?, readOnly?}");
    const mountPath = checkMountPath(b.mountPath, "mountPath");
    const drivePath = drivePathOf(b.drivePath);
    if (b.readOnly !== undefined && b.readOnly !== null && typeof b.readOnly !== "boolean") throw new HangarError("validation_failed", "readOnly: must be a boolean", { field: "readOnly" });
    const readOnly = b.readOnly === true;
    const { rec, dir } = await this.storage.driveSource(this.sandbox.workspace, b.driveName);
    const existing = (await this.list()).find((m) => m.mountPath === mountPath);
    if (existing) {
      if (existing.driveName === rec.name && existing.drivePath === drivePath && existing.readOnly === readOnly) return existing;
      throw new HangarError("mount_path_busy", `${mountPath} already has drive '${existing.driveName}' mounted`, { mountPath });
    }
    const nested = (await this.list()).find((m) => mountPath.startsWith(`${m.mountPath}/`) || m.mountPath.startsWith(`${mountPath}/`));
    if (nested) throw new HangarError("mount_path_busy", `${mountPath} overlaps the mount of drive '${nested.driveName}' at ${nested.mountPath}`, { mountPath });
    await this.node.mountLive(this.sandbox.id, {
      source: dir,
      ...(drivePath !== "/" ? { sourcePath: drivePath.slice(1) } : {}),
      destination: mountPath,
      readOnly,
      meta: { driveName: rec.name, drivePath },
    });
    return { driveName: rec.name, drivePath, mountPath, readOnly };
  }

  async unmount(rawPath: string): Promise<string> {
    const mountPath = checkMountPath(rawPath.startsWith("/") ? rawPath : `/${rawPath}`, "mountPath");
    if (!(await this.list()).some((m) => m.mountPath === mountPath)) throw new HangarError("not_found", `no drive is mounted at ${mountPath}`);
    await this.node.unmountLive(this.sandbox.id, mountPath);
    return mountPath;
  }
}
