// Multipart uploads (the SDK switches to them above 5 MiB): each part streams into its own file
// inside the sandbox; completing moves part 1 into place and appends the others.

import { createHash, randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import type { AgentClient } from "@hangar/sandbox-agent";
import { HangarError } from "@hangar/common";
import { agentCall, agentErrno } from "../util/agent-errors.js";
import { pumpCoalesced } from "../util/multipart.js";
import type { FileService } from "./fs-service.js";
import { READ_CHUNK } from "./fs-service.js";

export interface UploadedPart {
  partNumber: number;
  etag: string;
  size: number;
  uploadedAt: string;
}

export interface MultipartUpload {
  uploadId: string;
  path: string;
  permissions: number;
  initiatedAt: string;
  parts: Record<string, UploadedPart>;
}

interface UploadState {
  upload: MultipartUpload;
  dir: string;
  busy: number;
  completing: boolean;
}

/** Where parts live inside the sandbox. */
export const UPLOADS_DIR = "/tmp/.hangar-multipart";
const MAX_PARTS = 10_000;

export class UploadManager {
  private readonly uploads = new Map<string, UploadState>();

  constructor(
    private readonly agent: AgentClient,
    private readonly files: FileService,
  ) {}

  /** Removes parts left by an earlier server process (uploads this manager does not know). */
  async cleanStale(): Promise<void> {
    const entries = await this.agent.readdir(UPLOADS_DIR).catch(() => []);
    await Promise.all(
      entries.filter((e) => !this.uploads.has(e.name)).map((e) => this.agent.remove(`${UPLOADS_DIR}/${e.name}`, { recursive: true }).catch(() => {})),
    );
  }

  private state(uploadId: string): UploadState {
    const s = this.uploads.get(uploadId);
    if (!s) throw new HangarError("upload_not_found", `multipart upload '${uploadId}' not found (it was completed, aborted or never initiated)`);
    return s;
  }

  async initiate(path: string, permissions: number): Promise<MultipartUpload> {
    if (path === "/") throw new HangarError("is_a_directory", "/ is a directory");
    const uploadId = randomUUID();
    const dir = `${UPLOADS_DIR}/${uploadId}`;
    await this.files.mkdir(dir, 0o700);
    const upload: MultipartUpload = { uploadId, path, permissions, initiatedAt: new Date().toISOString(), parts: {} };
    this.uploads.set(uploadId, { upload, dir, busy: 0, completing: false });
    return upload;
  }

  async uploadPart(uploadId: string, partNumber: number, stream: Readable): Promise<UploadedPart> {
    const s = this.state(uploadId);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
      throw new HangarError("validation_failed", `partNumber must be an integer from 1 to ${MAX_PARTS}`);
    }
    if (s.completing) throw new HangarError("conflict", `multipart upload '${uploadId}' is being completed`);
    s.busy++;
    try {
      const writer = await this.files.openWriter(`${s.dir}/${partNumber}`, 0o600);
      const md5 = createHash("md5");
      try {
        await pumpCoalesced(stream, async (b) => {
          md5.update(b);
          await writer.write(b);
        });
        await writer.close();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      const part: UploadedPart = { partNumber, etag: md5.digest("hex"), size: writer.bytes, uploadedAt: new Date().toISOString() };
      s.upload.parts[String(partNumber)] = part;
      return part;
    } finally {
      s.busy--;
    }
  }

  listParts(uploadId: string): UploadedPart[] {
    return Object.values(this.state(uploadId).upload.parts).sort((a, b) => a.partNumber - b.partNumber);
  }

  list(): MultipartUpload[] {
    return [...this.uploads.values()].map((s) => s.upload);
  }

  /** Assembles the listed parts (in partNumber order) into the target file. */
  async complete(uploadId: string, parts: Array<{ partNumber: number; etag?: string }>): Promise<string> {
    const s = this.state(uploadId);
    if (!Array.isArray(parts) || parts.length === 0) throw new HangarError("validation_failed", "at least one part is required");
    if (s.busy > 0) throw new HangarError("conflict", "parts are still uploading; complete after every part has finished");
    const ordered = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    for (let i = 0; i < ordered.length; i++) {
      const p = ordered[i]!;
      const have = s.upload.parts[String(p.partNumber)];
      if (!have) throw new HangarError("validation_failed", `part ${p.partNumber} was not uploaded`);
      if (p.etag && p.etag !== have.etag) throw new HangarError("validation_failed", `part ${p.partNumber}: etag ${p.etag} does not match the uploaded part (${have.etag})`);
      if (i > 0 && ordered[i - 1]!.partNumber === p.partNumber) throw new HangarError("validation_failed", `part ${p.partNumber} listed twice`);
    }
    s.completing = true;
    const target = s.upload.path;
    try {
      const st = await this.files.statOrNull(target);
      if (st?.type === "directory") throw new HangarError("is_a_directory", `${target} is a directory`);
      await this.files.mkdir(target.slice(0, target.lastIndexOf("/")) || "/");
      // Part 1 is renamed into place when the filesystems allow it, copied otherwise.
      let first = 0;
      try {
        await this.agent.rename(`${s.dir}/${ordered[0]!.partNumber}`, target);
        first = 1;
      } catch (e) {
        if (agentErrno(e) !== "EXDEV" && agentErrno(e) !== "EBUSY") throw e;
        await agentCall(() => this.agent.writeFile(target, Buffer.alloc(0), { mode: s.upload.permissions }), target);
      }
      for (let i = first; i < ordered.length; i++) {
        const src = `${s.dir}/${ordered[i]!.partNumber}`;
        const handle = await agentCall(() => this.agent.openFile(target, { append: true }), target);
        try {
          let offset = 0;
          for (;;) {
            const chunk = await agentCall(() => this.agent.readFile(src, { offset, length: READ_CHUNK * 4 }), src);
            if (chunk.length === 0) break;
            await agentCall(() => this.agent.writeChunk(handle, chunk), target);
            offset += chunk.length;
          }
        } finally {
          await this.agent.closeFile(handle).catch(() => {});
        }
      }
      await agentCall(() => this.agent.chmod(target, s.upload.permissions), target);
    } catch (e) {
      s.completing = false;
      throw e;
    }
    this.uploads.delete(uploadId);
    await this.agent.remove(s.dir, { recursive: true }).catch(() => {});
    return target;
  }

  async abort(uploadId: string): Promise<void> {
    const s = this.state(uploadId);
    this.uploads.delete(uploadId);
    await this.agent.remove(s.dir, { recursive: true }).catch(() => {});
  }

  async dispose(): Promise<void> {
    const dirs = [...this.uploads.values()].map((s) => s.dir);
    this.uploads.clear();
    await Promise.all(dirs.map((d) => this.agent.remove(d, { recursive: true }).catch(() => {})));
  }
}
