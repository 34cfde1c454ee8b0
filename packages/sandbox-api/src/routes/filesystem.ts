// Filesystem routes (wire spec §5.5): read, write, delete, trees, find, search, multipart, watch.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import { pathParam, queryBool, queryInt, rawParam, sendRawProblem, StreamWriter, svc, hijack } from "../http.js";
import { decodeRawPath, hasEncodedSlash } from "../paths.js";
import {
  contentSearchQuery,
  fileGetQuery,
  fileRequestSchema,
  findQuery,
  fuzzyQuery,
  multipartCompleteSchema,
  multipartInitiateSchema,
  partQuery,
  recursiveQuery,
  treeRequestSchema,
  uploadIdParams,
  watchQuery,
} from "../schemas.js";
import { assertRegular, READ_CHUNK } from "../services/fs-service.js";
import { DEFAULT_EXCLUDE_DIRS } from "../services/walker.js";
import { parseOctalMode } from "../util/go-format.js";
import { splitList } from "../util/glob.js";
import { pumpCoalesced, readMultipart } from "../util/multipart.js";
import { KEEPALIVE_LINE } from "../util/stream-format.js";

const CONTENT_TYPES: Record<string, string> = {
  ".txt": "text/plain",
  ".log": "text/plain",
  ".html": "text/html",
  ".htm": "text/html",
  ".css": "text/css",
  ".js": "application/javascript",
  ".json": "application/json",
  ".xml": "application/xml",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".tar": "application/x-tar",
  ".gz": "application/gzip",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".png": "image/png",
  ".gif": "image/gif",
  ".svg": "image/svg+xml",
};

function mode(value: string | undefined, dflt: number): number {
  try {
    return parseOctalMode(value) ?? dflt;
  } catch (e) {
    throw new HangarError("validation_failed", (e as Error).message);
  }
}

/** Blaxel's rule: raw bytes for octet-stream, for any specific non-JSON type, or with download=true. */
function wantsDownload(req: FastifyRequest, download: boolean | undefined): boolean {
  if (download) return true;
  const accept = req.headers.accept;
  if (!accept) return false;
  if (accept.includes("application/octet-stream")) return true;
  return !accept.includes("application/json") && !accept.includes("*/*");
}

/** Directory names to skip: the default list when absent, none when given empty. */
function excludeDirs(value: string | undefined): string[] {
  return value === undefined ? DEFAULT_EXCLUDE_DIRS : splitList(value);
}

function maxResults(value: number | undefined, dflt: number, allowAll: boolean): number {
  if (value === undefined || value === null) return dflt;
  if (value === 0 && allowAll) return 0;
  if (value <= 0) return dflt;
  return Math.min(value, 1000);
}

/** `attachment` with an ASCII filename, plus RFC 5987 filename* when the name is not plain ASCII. */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  if (ascii === name) return `attachment; filename="${name}"`;
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** Streams a file (or a byte range of it) as the response body. */
async function sendFile(req: FastifyRequest, reply: FastifyReply, path: string, size: number): Promise<void> {
  const s = svc(req);
  const name = path.slice(path.lastIndexOf("/") + 1);
  const ext = name.includes(".") ? name.slice(name.lastIndexOf(".")).toLowerCase() : "";
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range && size > 0) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (!m || (m[1] === "" && m[2] === "")) throw new HangarError("range_not_satisfiable", `unsupported Range ${JSON.stringify(range)}; use a single bytes=start-end range`, { size });
    if (m[1] === "") {
      start = Math.max(0, size - Number(m[2]));
    } else {
      start = Number(m[1]);
      end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
    if (start > end || start >= size) throw new HangarError("range_not_satisfiable", `range ${range} is outside the file (${size} bytes)`, { size });
    status = 206;
  }
  const res = hijack(reply);
  const headers: Record<string, string> = {
    "content-type": CONTENT_TYPES[ext] ?? "application/octet-stream",
    "content-disposition": contentDisposition(name),
    "content-length": String(size === 0 ? 0 : end - start + 1),
    "accept-ranges": "bytes",
  };
  if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${size}`;
  let first: Buffer;
  try {
    first = size === 0 ? Buffer.alloc(0) : await s.files.readRange(path, start, Math.min(READ_CHUNK, end - start + 1));
  } catch (e) {
    sendRawProblem(res, e);
    return;
  }
  try {
    res.writeHead(status, headers);
  } catch (e) {
    sendRawProblem(res, e);
    return;
  }
  if (req.method === "HEAD" || size === 0) {
    res.end();
    return;
  }
  let offset = start;
  let chunk = first;
  let aborted = false;
  res.on("close", () => (aborted = true));
  try {
    for (;;) {
      if (chunk.length === 0) break;
      offset += chunk.length;
      if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
      if (aborted || offset > end) break;
      // Read the next chunk while the previous one drains.
      chunk = await s.files.readRange(path, offset, Math.min(READ_CHUNK, end - offset + 1));
    }
  } catch {
    res.destroy();
    return;
  }
  res.end();
}

export async function filesystemRoutes(app: FastifyInstance): Promise<void> {
  // ---- read / write / delete ----------------------------------------------------------------

  app.get<{ Querystring: { download?: boolean } }>("/filesystem/*", { schema: { querystring: fileGetQuery } }, async (req, reply) => {
    const s = svc(req);
    const path = pathParam(req, "/filesystem/");
    const { kind, stat } = await s.files.kind(path);
    if (kind === "missing") throw new HangarError("file_not_found", `${path}: file or directory not found`);
    if (kind === "directory") return s.files.listDirectory(path);
    assertRegular(path, stat!);
    if (wantsDownload(req, req.query.download)) return sendFile(req, reply, path, stat!.size);
    return s.files.readJson(path, stat!);
  });

  app.put<{ Body: { content?: string; isDirectory?: boolean; permissions?: string } | undefined }>(
    "/filesystem/*",
    { schema: { body: { content: { "application/json": { schema: fileRequestSchema } } } }, bodyLimit: 64 * 1024 * 1024 },
    async (req) => {
      const s = svc(req);
      const path = pathParam(req, "/filesystem/");
      if (req.headers["content-type"]?.toLowerCase().startsWith("multipart/form-data")) {
        let permissions: number | undefined;
        let wrote = false;
        await readMultipart(req.raw, {
          onField: (name, value) => {
            if (name === "permissions" && value.trim() !== "") permissions = mode(value.trim(), 0o644);
          },
          onFile: async (field, filename, stream) => {
            if (field !== "file" || wrote || !filename) {
              stream.resume();
              return;
            }
            const writer = await s.files.openWriter(path, permissions ?? 0o644);
            try {
              await pumpCoalesced(stream, (b) => writer.write(b));
              await writer.close();
            } catch (e) {
              await writer.abort();
              throw e;
            }
            wrote = true;
          },
        });
        if (!wrote) throw new HangarError("validation_failed", "missing 'file' field in multipart form");
        if (permissions !== undefined) await s.agent.chmod(path, permissions).catch(() => {});
        return { path, message: "Binary file uploaded successfully" };
      }
      const body = req.body ?? {};
      if (body.isDirectory) {
        await s.files.mkdir(path, mode(body.permissions, 0o755));
        return { path, message: "Directory created successfully" };
      }
      await s.files.writeFile(path, Buffer.from(body.content ?? "", "utf8"), mode(body.permissions, 0o644));
      return { path, message: "File created/updated successfully" };
    },
  );

  app.delete<{ Querystring: { recursive?: boolean } }>("/filesystem/*", { schema: { querystring: recursiveQuery } }, async (req) => {
    const path = pathParam(req, "/filesystem/");
    const kind = await svc(req).files.remove(path, req.query.recursive === true);
    return { path, message: kind === "directory" ? "Directory deleted successfully" : "File deleted successfully" };
  });

  // ---- trees --------------------------------------------------------------------------------

  app.get("/filesystem/tree/*", async (req) => {
    const s = svc(req);
    const path = pathParam(req, "/filesystem/tree/");
    const { kind } = await s.files.kind(path);
    if (kind === "missing") throw new HangarError("file_not_found", `${path}: directory not found`);
    if (kind !== "directory") throw new HangarError("not_a_directory", `${path} is not a directory`);
    return s.files.tree(path);
  });

  app.put<{ Body: { files: Record<string, string> } }>(
    "/filesystem/tree/*",
    { schema: { body: treeRequestSchema }, bodyLimit: 64 * 1024 * 1024 },
    async (req) => {
      const s = svc(req);
      const path = pathParam(req, "/filesystem/tree/");
      await s.files.writeTree(path, req.body.files);
      return s.files.tree(path);
    },
  );

  app.delete<{ Querystring: { recursive?: boolean } }>("/filesystem/tree/*", { schema: { querystring: recursiveQuery } }, async (req) => {
    const path = pathParam(req, "/filesystem/tree/");
    await svc(req).files.remove(path, req.query.recursive === true);
    return { path, message: "Directory deleted successfully" };
  });

  // ---- find / fuzzy / content search --------------------------------------------------------

  app.get<{ Querystring: { type?: "file" | "directory"; patterns?: string; maxResults?: number; excludeDirs?: string; excludeHidden?: boolean } }>(
    "/filesystem-find/*",
    { schema: { querystring: findQuery } },
    async (req) => {
      const q = req.query;
      return svc(req).search.find(pathParam(req, "/filesystem-find/"), {
        type: q.type ?? "file",
        patterns: splitList(q.patterns),
        maxResults: maxResults(q.maxResults, 20, true),
        excludeDirs: excludeDirs(q.excludeDirs),
        excludeHidden: queryBool(q.excludeHidden, true),
      });
    },
  );

  app.get<{ Querystring: { query?: string; maxResults?: number; patterns?: string; excludeDirs?: string; excludeHidden?: boolean } }>(
    "/filesystem-search/*",
    { schema: { querystring: fuzzyQuery } },
    async (req) => {
      const q = req.query;
      const raw = rawParam(req, "/filesystem-search/");
      const root = pathParam(req, "/filesystem-search/");
      // Blaxel's handler uses the path both as the directory and as the fuzzy term; an explicit
      // `query` parameter (not sent by SDK 0.3.21) takes precedence as the term.
      let term = q.query;
      if (!term) {
        const decoded = decodeRawPath(raw);
        term = hasEncodedSlash(raw) ? (decoded.startsWith("/") ? decoded : `/${decoded}`) : decoded.replace(/^\//, "");
        if (term === "" || term === "/" || term === ".") throw new HangarError("validation_failed", "query parameter is required in path");
      }
      return svc(req).search.fuzzy(root, term, {
        maxResults: maxResults(q.maxResults, 20, false),
        patterns: splitList(q.patterns),
        excludeDirs: excludeDirs(q.excludeDirs),
        excludeHidden: queryBool(q.excludeHidden, true),
      });
    },
  );

  app.get<{ Querystring: { query: string; caseSensitive?: boolean; contextLines?: number; maxResults?: number; filePattern?: string; excludeDirs?: string } }>(
    "/filesystem-content-search/*",
    { schema: { querystring: contentSearchQuery } },
    async (req) => {
      const q = req.query;
      const result = await svc(req).search.content(pathParam(req, "/filesystem-content-search/"), {
        query: q.query,
        regex: false,
        caseSensitive: q.caseSensitive === true,
        contextLines: Math.min(10, Math.max(0, queryInt(q.contextLines, 0))),
        maxResults: maxResults(q.maxResults, 100, false),
        filePattern: q.filePattern || undefined,
        excludeDirs: excludeDirs(q.excludeDirs),
      });
      return { query: result.query, matches: result.matches, total: result.total };
    },
  );

  // ---- multipart uploads --------------------------------------------------------------------

  app.get("/filesystem-multipart", async (req) => ({ uploads: svc(req).uploads.list() }));

  app.post<{ Body: { permissions?: unknown } | null | undefined }>(
    "/filesystem-multipart/initiate/*",
    { schema: { body: { content: { "application/json": { schema: multipartInitiateSchema } } } } },
    async (req) => {
      const path = pathParam(req, "/filesystem-multipart/initiate/");
      const perm = req.body && typeof req.body === "object" && typeof req.body.permissions === "string" ? req.body.permissions : undefined;
      const upload = await svc(req).uploads.initiate(path, mode(perm, 0o644));
      return { uploadId: upload.uploadId, path: upload.path };
    },
  );

  app.put<{ Params: { uploadId: string }; Querystring: { partNumber: number } }>(
    "/filesystem-multipart/:uploadId/part",
    { schema: { params: uploadIdParams, querystring: partQuery } },
    async (req) => {
      const s = svc(req);
      let part: Awaited<ReturnType<typeof s.uploads.uploadPart>> | undefined;
      await readMultipart(req.raw, {
        onFile: async (field, _filename, stream) => {
          if (field !== "file" || part) {
            stream.resume();
            return;
          }
          part = await s.uploads.uploadPart(req.params.uploadId, req.query.partNumber, stream);
        },
      });
      if (!part) throw new HangarError("validation_failed", "missing 'file' field in multipart form");
      return { partNumber: part.partNumber, etag: part.etag, size: part.size };
    },
  );

  app.get<{ Params: { uploadId: string } }>("/filesystem-multipart/:uploadId/parts", { schema: { params: uploadIdParams } }, async (req) => ({
    uploadId: req.params.uploadId,
    parts: svc(req).uploads.listParts(req.params.uploadId),
  }));

  app.post<{ Params: { uploadId: string }; Body: { parts: Array<{ partNumber: number; etag?: string }> } }>(
    "/filesystem-multipart/:uploadId/complete",
    { schema: { params: uploadIdParams, body: multipartCompleteSchema } },
    async (req) => {
      const path = await svc(req).uploads.complete(req.params.uploadId, req.body.parts);
      return { path, message: "Multipart upload completed successfully" };
    },
  );

  app.delete<{ Params: { uploadId: string } }>("/filesystem-multipart/:uploadId/abort", { schema: { params: uploadIdParams } }, async (req) => {
    await svc(req).uploads.abort(req.params.uploadId);
    return { message: "Multipart upload aborted successfully" };
  });

  // ---- watch --------------------------------------------------------------------------------

  app.get<{ Querystring: { ignore?: string } }>("/watch/filesystem/*", { schema: { querystring: watchQuery } }, async (req, reply) => {
    const s = svc(req);
    let path = pathParam(req, "/watch/filesystem/");
    let recursive = false;
    if (path === "/**" || path.endsWith("/**")) {
      recursive = true;
      path = path.slice(0, -3) || "/";
    }
    const { kind } = await s.files.kind(path);
    if (kind !== "directory") throw new HangarError("not_a_directory", `${path} is not a directory (watch a directory, or dir/** for its whole tree)`);
    let out: StreamWriter | null = null;
    const pending: string[] = [];
    const sub = await s.watches.watch(path, { recursive, ignore: splitList(req.query.ignore) }, (e) => {
      const line = `${JSON.stringify(e)}\n`;
      if (out) out.write(line);
      else pending.push(line);
    });
    out = new StreamWriter(hijack(reply), 200, { "content-type": "text/plain; charset=utf-8" });
    for (const l of pending) out.write(l);
    const keepalive = setInterval(() => out?.keepalive(KEEPALIVE_LINE), s.limits.streamKeepaliveMs);
    out.onClose(() => {
      clearInterval(keepalive);
      void sub.close();
    });
  });
}
