// Safe extraction of uploaded source zips. Archives are hostile input: every entry name is
// checked, links and special files are refused, sizes are counted as bytes are inflated, and a
// refused archive leaves the destination empty.

import { constants as fsc } from "node:fs";
import { mkdir, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import yauzl, { type Entry, type ZipFile } from "yauzl";
import { HangarError } from "@hangar/common";

export interface ExtractLimits {
  /** Most entries (files and directories) an archive may list. Default 100 000. */
  maxEntries: number;
  /** Most bytes all files together may inflate to, counted while writing. Default 2 GiB. */
  maxBytes: number;
  /** Highest inflated/compressed ratio of one entry, checked once it passes 1 MiB. Default 1000. */
  maxRatio: number;
  /** Longest entry name, in characters. Default 4096. */
  maxPathLength: number;
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = { maxEntries: 100_000, maxBytes: 2 * 1024 ** 3, maxRatio: 1000, maxPathLength: 4096 };

const RATIO_FLOOR = 1024 * 1024;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const WRITE_FLAGS = fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY | fsc.O_NOFOLLOW;
/** fs error codes that an entry's path (not the host) is to blame for. */
const PATH_ERRORS = new Set(["EEXIST", "ELOOP", "ENAMETOOLONG", "ENOTDIR", "EISDIR", "EINVAL"]);

/** Extracts the zip file at `zipPath` into the EMPTY existing directory `dest`. Returns counts. */
export async function extractZip(zipPath: string, dest: string, limits: Partial<ExtractLimits> = {}): Promise<{ files: number; dirs: number; bytes: number }> {
  const lim = { ...DEFAULT_EXTRACT_LIMITS, ...limits };
  if ((await readdir(dest)).length > 0) throw new HangarError("internal", `extractZip: ${dest} is not empty`);
  const counts = { files: 0, dirs: 0, bytes: 0 };
  const kinds = new Map<string, "file" | "dir">(); // every path made so far, implicit parents included
  const named = new Set<string>(); // paths some entry named
  let zip: ZipFile | undefined;
  try {
    zip = await yauzl
      .openPromise(zipPath, { lazyEntries: true, validateEntrySizes: true, decodeStrings: true, strictFileNames: true })
      .catch((e: unknown) => { throw invalid(`not a readable zip: ${message(e)}`); });
    if (zip.entryCount > lim.maxEntries) throw tooLarge(`the archive lists ${zip.entryCount} entries; the limit is ${lim.maxEntries}`);
    const entries = zip.eachEntry();
    for (;;) {
      // Errors reading the central directory (including yauzl's own name checks) are the archive's fault.
      const next = await entries.next().catch((e: unknown) => { throw invalid(`corrupt or unsafe zip: ${message(e)}`); });
      if (next.done) break;
      await extractEntry(zip, next.value).catch((e: unknown) => { throw entryError(next.value.fileName, e); });
    }
  } catch (e) {
    for (const name of await readdir(dest)) await rm(join(dest, name), { recursive: true, force: true });
    throw e;
  } finally {
    zip?.close();
  }
  return counts;

  async function extractEntry(zip: ZipFile, entry: Entry): Promise<void> {
    const q = JSON.stringify(entry.fileName);
    const segs = entrySegments(entry.fileName, lim.maxPathLength);
    const mode = entry.externalFileAttributes >>> 16;
    const type = mode & S_IFMT;
    const isDir = entry.fileName.endsWith("/") || type === S_IFDIR;
    if (type === S_IFLNK) throw invalid(`entry ${q} is a symbolic link; links are not allowed`);
    if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) throw invalid(`entry ${q} is a device, fifo or socket; only files and directories are allowed`);
    if (entry.isEncrypted()) throw invalid(`entry ${q} is encrypted`);
    if (!isDir && entry.compressionMethod !== 0 && entry.compressionMethod !== 8) throw invalid(`entry ${q} uses compression method ${entry.compressionMethod}; only stored and deflate are supported`);
    if (segs.length === 0) {
      if (isDir) return; // "./" names dest itself
      throw invalid(`entry ${q} has no file name`);
    }

    const rel = segs.join("/");
    if (named.has(rel)) throw invalid(`entry ${q} repeats the path ${JSON.stringify(rel)}`);
    named.add(rel);
    for (let i = 1; i <= segs.length; i++) {
      const path = segs.slice(0, i).join("/");
      const kind = kinds.get(path);
      if (kind === "file") throw invalid(`entry ${q} is below ${JSON.stringify(path)}, which is a file`);
      if (i === segs.length && !isDir) {
        if (kind === "dir") throw invalid(`entry ${q} is a file where the archive has a directory`);
      } else if (!kind) {
        await mkdir(join(dest, path), 0o755);
        kinds.set(path, "dir");
        counts.dirs++;
      }
    }
    if (isDir) return;

    // Headers give an early refusal; the meter below counts what is actually inflated.
    if (counts.bytes + entry.uncompressedSize > lim.maxBytes) throw tooLarge(`entry ${q} would take the archive past ${lim.maxBytes} bytes`);
    checkRatio(q, entry.uncompressedSize, entry.compressedSize);
    kinds.set(rel, "file");
    const perm = mode & 0o111 ? 0o755 : 0o644;
    const fh = await open(join(dest, rel), WRITE_FLAGS, perm);
    try {
      await fh.chmod(perm); // whatever the umask
      let written = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          written += chunk.length;
          counts.bytes += chunk.length;
          if (counts.bytes > lim.maxBytes) return cb(tooLarge(`entry ${q} takes the archive past ${lim.maxBytes} bytes`));
          try { checkRatio(q, written, entry.compressedSize); } catch (e) { return cb(e as Error); }
          cb(null, chunk);
        },
      });
      await pipeline(await zip.openReadStreamPromise(entry), meter, fh.createWriteStream());
    } finally {
      await fh.close(); // a no-op when the write stream already closed it
    }
    counts.files++;
  }

  function checkRatio(q: string, inflated: number, compressed: number): void {
    if (inflated > RATIO_FLOOR && inflated > lim.maxRatio * compressed) {
      throw tooLarge(`entry ${q} inflates more than ${lim.maxRatio} times its compressed size`);
    }
  }
}

/** The path segments of an entry name, refusing anything that is not a plain relative path. */
function entrySegments(name: string, maxLength: number): string[] {
  const q = JSON.stringify(name);
  if (name.length > maxLength) throw invalid(`entry ${q} has a path longer than ${maxLength} characters`);
  if (name.includes("\0")) throw invalid(`entry ${q} has a NUL in its path`);
  if (name.includes("\\")) throw invalid(`entry ${q} has a backslash in its path`);
  if (name.startsWith("/") || /^[a-zA-Z]:/.test(name)) throw invalid(`entry ${q} has an absolute path`);
  const parts = name.split("/");
  if (name.endsWith("/")) parts.pop();
  const segs: string[] = [];
  for (const s of parts) {
    if (s === "..") throw invalid(`entry ${q} has a ".." segment`);
    if (s === "") throw invalid(`entry ${q} has an empty path segment`);
    if (Buffer.byteLength(s) > 255) throw invalid(`entry ${q} has a path segment longer than 255 bytes`);
    if (s !== ".") segs.push(s);
  }
  return segs;
}

/** Blames the entry for anything but a failure of the host (disk full, permissions on dest). */
function entryError(name: string, e: unknown): unknown {
  if (e instanceof HangarError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.syscall && !PATH_ERRORS.has(err.code ?? "")) return e;
  return invalid(`entry ${JSON.stringify(name)} could not be extracted: ${message(e)}`);
}

function invalid(detail: string): HangarError {
  return new HangarError("invalid_archive", detail);
}

function tooLarge(detail: string): HangarError {
  return new HangarError("archive_too_large", detail);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
