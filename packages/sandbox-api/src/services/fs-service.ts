// File operations of the sandbox API, performed by the agent with the sandbox's own view of its
// filesystem. Paths given here are absolute and normalised (see paths.ts).

import type { AgentClient, AgentDirEntry, AgentStat } from "@hangar/sandbox-agent";
import { HangarError } from "@hangar/common";
import { agentCall, agentErrno, fromAgentError } from "../util/agent-errors.js";
import { goPermissions, goRfc3339 } from "../util/go-format.js";
import { baseName, joinPath, type PathContext } from "../paths.js";
import type { UserDirectory } from "./user-directory.js";

/** `File` of the wire spec. */
export interface FileInfo {
  path: string;
  name: string;
  permissions: string;
  size: number;
  lastModified: string;
  owner: string;
  group: string;
}

export interface FileWithContent extends FileInfo {
  content: string;
}

export interface Subdirectory {
  path: string;
  name: string;
}

export interface Directory {
  path: string;
  name: string;
  files: FileInfo[];
  subdirectories: Subdirectory[];
}

/** A directory with its subdirectories expanded (GET /filesystem/tree). */
export interface DirectoryTree extends Directory {
  subdirectories: Array<Subdirectory & Partial<Omit<DirectoryTree, "path" | "name">>>;
  /** Present when the tree was cut at `maxEntries`. */
  truncated?: boolean;
}

export type EntryKind = "file" | "directory" | "missing";

/** Bytes read from the agent per call when streaming a file. */
export const READ_CHUNK = 1024 * 1024;
/** Largest file returned inline as JSON `content`. */
export const MAX_JSON_READ = 64 * 1024 * 1024;

export class FileService {
  constructor(
    private readonly agent: AgentClient,
    private readonly users: UserDirectory,
    readonly paths: PathContext,
  ) {}

  /** stat following symlinks; null when the path does not exist. */
  async statOrNull(path: string, follow = true): Promise<AgentStat | null> {
    try {
      return await this.agent.stat(path, { follow });
    } catch (e) {
      const errno = agentErrno(e);
      if (errno === "ENOENT" || errno === "ENOTDIR") return null;
      throw fromAgentError(e, path);
    }
  }

  async kind(path: string): Promise<{ kind: EntryKind; stat: AgentStat | null }> {
    const st = await this.statOrNull(path);
    if (!st) return { kind: "missing", stat: null };
    return { kind: st.type === "directory" ? "directory" : "file", stat: st };
  }

  async fileInfo(path: string, st: AgentStat): Promise<FileInfo> {
    const { owner, group } = await this.users.names(st.uid, st.gid);
    return {
      path,
      name: baseName(path),
      permissions: goPermissions(st.mode),
      size: st.size,
      lastModified: goRfc3339(st.mtimeMs),
      owner,
      group,
    };
  }

  /** FileWithContent: metadata and the content as a UTF-8 string. */
  async readJson(path: string, st?: AgentStat): Promise<FileWithContent> {
    const stat = st ?? (await agentCall(() => this.agent.stat(path), path));
    if (stat.type === "directory") throw new HangarError("is_a_directory", `${path} is a directory, not a file`);
    assertRegular(path, stat);
    if (stat.size > MAX_JSON_READ) {
      throw new HangarError("payload_too_large", `${path} is ${stat.size} bytes; download files over ${MAX_JSON_READ} bytes with Accept: application/octet-stream`);
    }
    const [info, data] = await Promise.all([this.fileInfo(path, stat), this.readAll(path, stat.size)]);
    return { ...info, content: data.toString("utf8") };
  }

  /** Reads a whole file (in agent-sized chunks). */
  async readAll(path: string, sizeHint?: number): Promise<Buffer> {
    if (sizeHint !== undefined && sizeHint <= READ_CHUNK * 8) {
      return agentCall(() => this.agent.readFile(path), path);
    }
    const parts: Buffer[] = [];
    let offset = 0;
    for (;;) {
      const chunk = await agentCall(() => this.agent.readFile(path, { offset, length: READ_CHUNK * 4 }), path);
      if (chunk.length === 0) break;
      parts.push(chunk);
      offset += chunk.length;
      if (offset > MAX_JSON_READ) break;
    }
    return Buffer.concat(parts);
  }

  /** Reads `length` bytes from `offset` (fewer at end of file). */
  readRange(path: string, offset: number, length: number): Promise<Buffer> {
    return agentCall(() => this.agent.readFile(path, { offset, length }), path);
  }

  private async readdir(path: string): Promise<AgentDirEntry[]> {
    const entries = await agentCall(() => this.agent.readdir(path), path);
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Directory: its files (with metadata) and subdirectories, sorted by name. */
  async listDirectory(path: string): Promise<Directory> {
    const [entries, names] = await Promise.all([this.readdir(path), this.users.resolver()]);
    const dir: Directory = { path, name: baseName(path), files: [], subdirectories: [] };
    for (const e of entries) {
      const p = joinPath(path, e.name);
      if (e.type === "directory") {
        dir.subdirectories.push({ path: p, name: e.name });
      } else {
        const { owner, group } = names(e.uid, e.gid);
        dir.files.push({ path: p, name: e.name, permissions: goPermissions(e.mode), size: e.size, lastModified: goRfc3339(e.mtimeMs), owner, group });
      }
    }
    return dir;
  }

  /** The directory with every subdirectory expanded, at most `maxEntries` entries in total. */
  async tree(path: string, maxEntries = 10_000, maxDepth = 32): Promise<DirectoryTree> {
    let budget = maxEntries;
    let truncated = false;
    const expand = async (p: string, depth: number): Promise<DirectoryTree> => {
      const dir = (await this.listDirectory(p)) as DirectoryTree;
      budget -= dir.files.length + dir.subdirectories.length;
      if (budget < 0 || depth >= maxDepth) {
        if (dir.subdirectories.length > 0) truncated = true;
        return dir;
      }
      for (let i = 0; i < dir.subdirectories.length; i++) {
        if (budget <= 0) {
          truncated = true;
          break;
        }
        const sub = dir.subdirectories[i]!;
        try {
          const child = await expand(sub.path, depth + 1);
          dir.subdirectories[i] = { ...sub, files: child.files, subdirectories: child.subdirectories };
        } catch {
          /* unreadable subdirectory: listed without children */
        }
      }
      return dir;
    };
    const root = await expand(path, 0);
    if (truncated) root.truncated = true;
    return root;
  }

  /** Refuses to write over devices, pipes and sockets (opening them could block or act on them). */
  private async assertWritable(path: string): Promise<void> {
    if (path === "/") throw new HangarError("is_a_directory", "/ is a directory");
    const st = await this.statOrNull(path);
    if (st?.type === "directory") throw new HangarError("is_a_directory", `${path} is a directory`);
    if (st) assertRegular(path, st);
  }

  /** Creates or replaces a file (parents created with 0755). */
  async writeFile(path: string, data: Buffer, mode = 0o644): Promise<void> {
    await this.assertWritable(path);
    await agentCall(() => this.agent.writeFile(path, data, { mode, mkdirs: true }), path);
  }

  /** mkdir -p with `mode`; fine when the directory exists. */
  async mkdir(path: string, mode = 0o755): Promise<void> {
    try {
      await this.agent.mkdir(path, { mode, recursive: true });
    } catch (e) {
      if (agentErrno(e) === "EEXIST") {
        const st = await this.statOrNull(path);
        if (st?.type === "directory") return;
        throw new HangarError("already_exists", `${path} exists and is not a directory`);
      }
      throw fromAgentError(e, path);
    }
  }

  /** Removes a file, a symlink, an empty directory, or a whole tree with `recursive`. */
  async remove(path: string, recursive: boolean): Promise<EntryKind> {
    const st = await this.statOrNull(path, false);
    if (!st) throw new HangarError("file_not_found", `${path}: file or directory not found`);
    const kind: EntryKind = st.type === "directory" ? "directory" : "file";
    if (path === "/") throw new HangarError("forbidden", "refusing to remove the sandbox root");
    try {
      await this.agent.remove(path, { recursive: kind === "directory" && recursive });
    } catch (e) {
      if (agentErrno(e) === "ENOTEMPTY" || agentErrno(e) === "EEXIST") {
        throw new HangarError("directory_not_empty", `${path} is not empty; pass recursive=true to delete it with its contents`);
      }
      throw fromAgentError(e, path);
    }
    return kind;
  }

  /** Writes `files` (relative path → text) under `root`, creating directories as needed. */
  async writeTree(root: string, files: Record<string, string>): Promise<void> {
    await this.mkdir(root);
    const entries = Object.entries(files);
    for (const [rel] of entries) {
      if (rel.includes("\0")) throw new HangarError("invalid_path", "file paths must not contain NUL bytes");
    }
    // Bounded parallelism: each write is one agent round trip.
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const [rel, content] = entries[next++]!;
        const target = joinPath(root, rel.replace(/^\/+/, ""));
        if (target === root) throw new HangarError("invalid_path", `file path '${rel}' resolves to the tree root`);
        await this.writeFile(target, Buffer.from(typeof content === "string" ? content : String(content)));
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, entries.length) }, worker));
  }

  /** Opens `path` for streamed writing (parents created). */
  async openWriter(path: string, mode = 0o644): Promise<FileWriter> {
    await this.assertWritable(path);
    const handle = await agentCall(() => this.agent.openFile(path, { mode, mkdirs: true }), path);
    return new FileWriter(this.agent, handle, path);
  }
}

/** Only regular files are read or written: devices, pipes and sockets could block or act on open. */
export function assertRegular(path: string, st: AgentStat): void {
  if (st.type !== "file") {
    throw new HangarError("unprocessable", `${path} is not a regular file (device, pipe or socket); only regular files can be read or written`);
  }
}

/** Streamed writes to one open file in the sandbox. */
export class FileWriter {
  private closed = false;
  bytes = 0;

  constructor(
    private readonly agent: AgentClient,
    private readonly handle: number,
    readonly path: string,
  ) {}

  async write(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    await agentCall(() => this.agent.writeChunk(this.handle, data), this.path);
    this.bytes += data.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await agentCall(() => this.agent.closeFile(this.handle), this.path);
  }

  /** Closes without reporting errors (after a failed upload). */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agent.closeFile(this.handle).catch(() => {});
  }
}
