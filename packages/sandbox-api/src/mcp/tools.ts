// The MCP tools of a sandbox (Blaxel's tool names and argument names), with descriptions written for
// the model that calls them: what each does, what it returns, its limits and the path convention.

import { HangarError } from "@hangar/common";
import { resolvePath } from "../paths.js";
import type { ProcessRecord } from "../managers/process-manager.js";
import type { SandboxServices } from "../services.js";
import { DEFAULT_EXCLUDE_DIRS } from "../services/walker.js";
import { globMatch } from "../util/glob.js";

export interface ToolDef {
  name: string;
  description: string;
  inputSchema: { type: "object"; properties: Record<string, unknown>; required?: string[]; additionalProperties?: boolean };
  run(s: SandboxServices, args: Record<string, unknown>): Promise<unknown>;
}

const PATHS =
  "Paths: absolute (/app/src/x.ts), relative to the sandbox working directory (src/x.ts), or under the home directory (~/x).";
const MAX_TOOL_TEXT = 200_000;
const MAX_READ_LINES = 250;

/** Keeps the last `max` characters of a long text, saying what was cut. */
function clip(text: string, max = MAX_TOOL_TEXT): string {
  if (text.length <= max) return text;
  return `[... ${text.length - max} earlier characters omitted ...]\n${text.slice(-max)}`;
}

const str = (a: Record<string, unknown>, k: string): string | undefined => (typeof a[k] === "string" ? (a[k] as string) : undefined);
const num = (a: Record<string, unknown>, k: string): number | undefined => (typeof a[k] === "number" ? (a[k] as number) : undefined);
const bool = (a: Record<string, unknown>, k: string): boolean | undefined => (typeof a[k] === "boolean" ? (a[k] as boolean) : undefined);

function path(s: SandboxServices, a: Record<string, unknown>, key = "path"): string {
  const p = str(a, key);
  if (p === undefined) throw new HangarError("validation_failed", `${key} is required`);
  return resolvePath(p, s.paths);
}

/** A process as the tools report it: the wire shape without its output (processGetLogs has that). */
function withoutOutput(s: SandboxServices, r: ProcessRecord, nullCompletedAt = false) {
  const { logs: _l, stdout: _o, stderr: _e, ...rest } = s.processes.shape(r, { logs: "", stdout: "", stderr: "" }, { nullCompletedAt });
  return rest;
}

const identifier = {
  type: "object" as const,
  properties: { identifier: { type: "string", description: "The process name or its PID (as returned by processExecute/processesList)." } },
  required: ["identifier"],
  additionalProperties: false,
};

export const TOOLS: ToolDef[] = [
  // ---- processes ----------------------------------------------------------------------------
  {
    name: "processExecute",
    description:
      "Run a shell command in the sandbox (through the image shell, `sh -c`). By default waits up to 60 s for it to finish and returns " +
      "{pid, name, status (running|completed|failed|killed|stopped), exitCode, logs, stdout, stderr, startedAt, completedAt, workingDir}. " +
      "For servers and long jobs pass waitForCompletion=false (returns at once with status running; read output later with processGetLogs), " +
      "optionally with waitForPorts to return once the server listens, and keepAlive=true to keep the sandbox awake while it runs. " +
      "A name lets you refer to the process later; it must not belong to a running process. Output is capped at the last 200,000 characters.",
    inputSchema: {
      type: "object",
      properties: {
        command: { type: "string", description: "Shell command line, e.g. \"npm install && npm test\"." },
        name: { type: "string", description: "Optional name for later processGet/processGetLogs/processStop calls." },
        workingDir: { type: "string", description: `Directory to run in (must exist); default the sandbox working directory. ${PATHS}` },
        env: { type: "object", additionalProperties: { type: "string" }, description: "Extra environment variables." },
        waitForCompletion: { type: "boolean", description: "Wait for the command to exit (max 60 s). Default true." },
        timeout: { type: "number", description: "Kill the command (whole process group) after this many seconds; 0 = never. Default none (600 with keepAlive)." },
        waitForPorts: { type: "array", items: { type: "integer" }, description: "Return once these TCP ports listen (max 60 s); implies not waiting for completion." },
        restartOnFailure: { type: "boolean", description: "Restart the command when it exits with a non-zero code." },
        maxRestarts: { type: "integer", description: "Restart limit with restartOnFailure (default 3; negative = unlimited)." },
        keepAlive: { type: "boolean", description: "Keep the sandbox from going to standby while this runs." },
        includeLogs: { type: "boolean", description: "Include output even when not waiting for completion. Default true." },
      },
      required: ["command"],
      additionalProperties: false,
    },
    async run(s, a) {
      const waitForPorts = Array.isArray(a.waitForPorts) ? (a.waitForPorts as number[]) : undefined;
      const wait = waitForPorts && waitForPorts.length > 0 ? false : (bool(a, "waitForCompletion") ?? true);
      const rec = await s.processes.exec({
        command: str(a, "command") ?? "",
        name: str(a, "name"),
        workingDir: str(a, "workingDir"),
        env: (a.env as Record<string, string> | undefined) ?? undefined,
        timeout: num(a, "timeout"),
        restartOnFailure: bool(a, "restartOnFailure"),
        maxRestarts: num(a, "maxRestarts"),
        keepAlive: bool(a, "keepAlive"),
      });
      let note: string | undefined;
      if (waitForPorts && waitForPorts.length > 0) {
        const deadline = Date.now() + s.limits.waitCapMs;
        const reason = await s.network.waitForPorts(waitForPorts, () =>
          !rec.running ? `the process exited before port(s) ${waitForPorts.join(", ")} listened` : Date.now() > deadline ? `port(s) ${waitForPorts.join(", ")} not listening after 60 s` : null,
        );
        if (reason) note = reason;
      }
      if (wait && !(await s.processes.waitForExit(rec, s.limits.waitCapMs))) {
        note = "still running after 60 s; check again with processGet or processGetLogs";
      }
      const res = await s.processes.toResponse(rec, { logs: bool(a, "includeLogs") === false && !wait ? "none" : "full" });
      return { ...res, logs: clip(res.logs), stdout: clip(res.stdout), stderr: clip(res.stderr), ...(note ? { note } : {}) };
    },
  },
  {
    name: "processGet",
    description: "Status of one process by name or PID: {pid, name, command, status, exitCode, startedAt, completedAt, workingDir, restartCount, keepAlive} (without output; use processGetLogs).",
    inputSchema: identifier,
    async run(s, a) {
      return withoutOutput(s, s.processes.get(str(a, "identifier") ?? ""));
    },
  },
  {
    name: "processGetLogs",
    description: "Output of a process (running or finished) by name or PID: {logs (stdout and stderr interleaved), stdout, stderr}, each capped at the last 200,000 characters.",
    inputSchema: identifier,
    async run(s, a) {
      const t = await s.processes.get(str(a, "identifier") ?? "").logs.text();
      return { logs: clip(t.logs), stdout: clip(t.stdout), stderr: clip(t.stderr) };
    },
  },
  {
    name: "processesList",
    description: "Every process started through this API (running and finished, oldest first) with pid, name, command, status, exitCode and times; no output.",
    inputSchema: { type: "object", properties: {}, additionalProperties: false },
    async run(s) {
      return s.processes.list().map((r) => withoutOutput(s, r, true));
    },
  },
  {
    name: "processStop",
    description: "Stop a running process gracefully (SIGTERM to its whole process group, SIGKILL after 10 s); its status becomes stopped.",
    inputSchema: identifier,
    async run(s, a) {
      const r = await s.processes.stop(str(a, "identifier") ?? "");
      return { identifier: str(a, "identifier"), pid: r.pid, message: "Process stopped successfully" };
    },
  },
  {
    name: "processKill",
    description: "Kill a running process immediately (SIGKILL to its whole process group); its status becomes killed.",
    inputSchema: identifier,
    async run(s, a) {
      const r = await s.processes.kill(str(a, "identifier") ?? "");
      return { identifier: str(a, "identifier"), pid: r.pid, message: "Process killed successfully" };
    },
  },

  // ---- filesystem ---------------------------------------------------------------------------
  {
    name: "fsGetWorkingDirectory",
    description: "The sandbox working directory (the base of relative paths) and the home directory.",
    inputSchema: { type: "object", properties: {}, additionalProperties: false },
    async run(s) {
      return { workingDirectory: s.paths.workingDir, home: s.paths.home };
    },
  },
  {
    name: "fsListDirectory",
    description: `List a directory: {path, files: [{path, name, size, permissions, lastModified, owner, group}], subdirectories: [{path, name}]}. ${PATHS}`,
    inputSchema: {
      type: "object",
      properties: { path: { type: "string", description: "Directory to list." } },
      required: ["path"],
      additionalProperties: false,
    },
    async run(s, a) {
      return s.files.listDirectory(path(s, a));
    },
  },
  {
    name: "fsReadFile",
    description: `Read a whole text file: {path, content, size, permissions, lastModified}. Files over 1 MB are refused; use codegenReadFileRange for parts of large files. ${PATHS}`,
    inputSchema: {
      type: "object",
      properties: { path: { type: "string", description: "File to read." } },
      required: ["path"],
      additionalProperties: false,
    },
    async run(s, a) {
      const p = path(s, a);
      const st = await s.files.statOrNull(p);
      if (!st) throw new HangarError("file_not_found", `${p} does not exist`);
      if (st.type === "directory") throw new HangarError("is_a_directory", `${p} is a directory; use fsListDirectory`);
      if (st.size > 1024 * 1024) throw new HangarError("payload_too_large", `${p} is ${st.size} bytes; read it in parts with codegenReadFileRange`);
      const f = await s.files.readJson(p, st);
      return { path: f.path, content: f.content, size: f.size, permissions: f.permissions, lastModified: f.lastModified };
    },
  },
  {
    name: "fsWriteFile",
    description: `Create or overwrite a file with the given text (parent directories are created), or create a directory with isDirectory=true. Returns {path, message}. ${PATHS}`,
    inputSchema: {
      type: "object",
      properties: {
        path: { type: "string", description: "File (or directory) to write." },
        content: { type: "string", description: "The complete new file content." },
        permissions: { type: "string", description: "Octal mode such as \"0644\" (files) or \"0755\" (directories)." },
        isDirectory: { type: "boolean", description: "Create a directory (mkdir -p) instead of a file." },
      },
      required: ["path"],
      additionalProperties: false,
    },
    async run(s, a) {
      const p = path(s, a);
      const perm = str(a, "permissions");
      const mode = perm ? Number.parseInt(perm, 8) : undefined;
      if (mode !== undefined && !Number.isFinite(mode)) throw new HangarError("validation_failed", "permissions must be an octal string such as \"0644\"");
      if (bool(a, "isDirectory")) {
        await s.files.mkdir(p, mode ?? 0o755);
        return { path: p, message: "Directory created successfully" };
      }
      await s.files.writeFile(p, Buffer.from(str(a, "content") ?? "", "utf8"), mode ?? 0o644);
      return { path: p, message: "File created/updated successfully" };
    },
  },
  {
    name: "fsEditFile",
    description:
      "Edit a text file by exact replacement: oldText must occur exactly once (or set replaceAll=true) and is replaced by newText. " +
      `Include enough surrounding lines in oldText to make it unique; whitespace must match. Returns {path, replacements}. ${PATHS}`,
    inputSchema: {
      type: "object",
      properties: {
        path: { type: "string", description: "File to edit." },
        oldText: { type: "string", description: "Exact text to find (non-empty)." },
        newText: { type: "string", description: "Replacement text (may be empty to delete)." },
        replaceAll: { type: "boolean", description: "Replace every occurrence instead of requiring exactly one." },
      },
      required: ["path", "oldText", "newText"],
      additionalProperties: false,
    },
    async run(s, a) {
      const p = path(s, a);
      const oldText = str(a, "oldText") ?? "";
      const newText = str(a, "newText") ?? "";
      if (!oldText) throw new HangarError("validation_failed", "oldText must not be empty");
      const st = await s.files.statOrNull(p);
      if (!st || st.type === "directory") throw new HangarError("file_not_found", `${p} is not an existing file`);
      const content = (await s.files.readAll(p, st.size)).toString("utf8");
      const count = content.split(oldText).length - 1;
      if (count === 0) throw new HangarError("unprocessable", `oldText was not found in ${p}; read the file and copy the exact text, including whitespace`);
      if (count > 1 && !bool(a, "replaceAll")) throw new HangarError("unprocessable", `oldText occurs ${count} times in ${p}; add surrounding lines to make it unique, or set replaceAll`);
      const updated = bool(a, "replaceAll") ? content.split(oldText).join(newText) : content.replace(oldText, () => newText);
      await s.files.writeFile(p, Buffer.from(updated, "utf8"), st.mode & 0o7777);
      return { path: p, replacements: bool(a, "replaceAll") ? count : 1 };
    },
  },
  {
    name: "fsDeleteFileOrDirectory",
    description: `Delete a file, a symlink or an empty directory; set recursive=true to delete a directory with everything in it. ${PATHS}`,
    inputSchema: {
      type: "object",
      properties: {
        path: { type: "string", description: "What to delete." },
        recursive: { type: "boolean", description: "Delete a non-empty directory with its contents." },
      },
      required: ["path"],
      additionalProperties: false,
    },
    async run(s, a) {
      const p = path(s, a);
      const kind = await s.files.remove(p, bool(a, "recursive") === true);
      return { path: p, message: kind === "directory" ? "Directory deleted successfully" : "File deleted successfully" };
    },
  },

  // ---- code search and navigation -----------------------------------------------------------
  {
    name: "codegenFileSearch",
    description:
      "Fuzzy search of file paths (fzf-style: the query's characters in order, e.g. \"usrctl\" finds src/user/controller.ts). " +
      "Use when you know part of a file name but not where it is. Returns up to 10 {path, score} best first, paths relative to the searched directory.",
    inputSchema: {
      type: "object",
      properties: {
        query: { type: "string", description: "Part of the file name or path." },
        directory: { type: "string", description: `Directory to search; default the working directory. ${PATHS}` },
      },
      required: ["query"],
      additionalProperties: false,
    },
    async run(s, a) {
      const root = str(a, "directory") ? path(s, a, "directory") : s.paths.workingDir;
      const r = await s.search.fuzzy(root, str(a, "query") ?? "", { maxResults: 10, patterns: [], excludeDirs: DEFAULT_EXCLUDE_DIRS, excludeHidden: true });
      return { directory: root, query: str(a, "query"), matches: r.matches.filter((m) => m.type === "file").map((m) => ({ path: m.path, score: m.score })) };
    },
  },
  {
    name: "codegenGrepSearch",
    description:
      "Regex search of file contents with ripgrep (Rust regex syntax; escape special characters for literal text, e.g. \"foo\\\\(\"). " +
      "Skips node_modules, .git, dist, build and similar directories. Returns matching lines as \"path:line: text\" (paths relative to the searched directory), at most maxResults (default 50).",
    inputSchema: {
      type: "object",
      properties: {
        query: { type: "string", description: "The regular expression." },
        caseSensitive: { type: "boolean", description: "Default false." },
        includePattern: { type: "string", description: "Only files whose name matches this glob, e.g. \"*.ts\"." },
        excludePattern: { type: "string", description: "Skip files whose name matches this glob." },
        directory: { type: "string", description: `Directory to search; default the working directory. ${PATHS}` },
        maxResults: { type: "integer", description: "Maximum matching lines (1-500, default 50)." },
      },
      required: ["query"],
      additionalProperties: false,
    },
    async run(s, a) {
      const root = str(a, "directory") ? path(s, a, "directory") : s.paths.workingDir;
      const r = await s.search.content(root, {
        query: str(a, "query") ?? "",
        regex: true,
        caseSensitive: bool(a, "caseSensitive") === true,
        contextLines: 0,
        maxResults: Math.min(500, Math.max(1, num(a, "maxResults") ?? 50)),
        filePattern: str(a, "includePattern"),
        excludePattern: str(a, "excludePattern"),
        excludeDirs: DEFAULT_EXCLUDE_DIRS,
      });
      const lines = r.matches.map((m) => `${m.path}:${m.line}: ${m.text.length > 500 ? `${m.text.slice(0, 500)}…` : m.text}`);
      return { directory: root, total: r.total, results: lines.join("\n") };
    },
  },
  {
    name: "codegenListDir",
    description: `List a directory quickly (names, sizes, subdirectories); the first step of exploring a codebase before searching or reading files. ${PATHS}`,
    inputSchema: {
      type: "object",
      properties: { relativeWorkspacePath: { type: "string", description: "Directory to list; \".\" for the working directory." } },
      required: ["relativeWorkspacePath"],
      additionalProperties: false,
    },
    async run(s, a) {
      const dir = await s.files.listDirectory(path(s, a, "relativeWorkspacePath"));
      return {
        path: dir.path,
        directories: dir.subdirectories.map((d) => `${d.name}/`),
        files: dir.files.map((f) => ({ name: f.name, size: f.size })),
      };
    },
  },
  {
    name: "codegenReadFileRange",
    description: `Read lines startLineOneIndexed..endLineOneIndexedInclusive of a text file (at most 250 lines per call). Returns {file, startLine, endLine, totalLines, content}. ${PATHS}`,
    inputSchema: {
      type: "object",
      properties: {
        targetFile: { type: "string", description: "File to read." },
        startLineOneIndexed: { type: "integer", minimum: 1, description: "First line (1-based, inclusive)." },
        endLineOneIndexedInclusive: { type: "integer", minimum: 1, description: "Last line (inclusive); at most start+249." },
      },
      required: ["targetFile", "startLineOneIndexed", "endLineOneIndexedInclusive"],
      additionalProperties: false,
    },
    async run(s, a) {
      const p = path(s, a, "targetFile");
      const start = num(a, "startLineOneIndexed") ?? 1;
      const end = num(a, "endLineOneIndexedInclusive") ?? start;
      if (end < start) throw new HangarError("validation_failed", "endLineOneIndexedInclusive must be >= startLineOneIndexed");
      if (end - start + 1 > MAX_READ_LINES) throw new HangarError("validation_failed", `at most ${MAX_READ_LINES} lines per call; read ${start}..${start + MAX_READ_LINES - 1} first`);
      const st = await s.files.statOrNull(p);
      if (!st || st.type === "directory") throw new HangarError("file_not_found", `${p} is not an existing file`);
      const lines = (await s.files.readAll(p, st.size)).toString("utf8").split("\n");
      if (start > lines.length) throw new HangarError("validation_failed", `${p} has only ${lines.length} lines`);
      const last = Math.min(end, lines.length);
      return { file: p, startLine: start, endLine: last, totalLines: lines.length, content: lines.slice(start - 1, last).join("\n") };
    },
  },
  {
    name: "codegenCodebaseSearch",
    description:
      "Find the code snippets most relevant to a query (keyword ranking with BM25 over 40-line windows; identifiers are split on camelCase and snake_case, so use the words you expect in the code). " +
      "Returns up to 10 {path, startLine, endLine, score, content}, best first.",
    inputSchema: {
      type: "object",
      properties: {
        query: { type: "string", description: "What you are looking for, e.g. \"retry failed upload part\"." },
        targetDirectories: { type: "array", items: { type: "string" }, description: "Glob patterns of relative directories to restrict to, e.g. [\"src/**\"]." },
      },
      required: ["query"],
      additionalProperties: false,
    },
    async run(s, a) {
      const dirs = Array.isArray(a.targetDirectories) ? (a.targetDirectories as string[]).filter((d) => typeof d === "string" && d) : [];
      const filter = dirs.length ? (p: string) => dirs.some((g) => dirMatch(g, p)) : undefined;
      const hits = await s.codegen.codebaseSearch(s.paths.workingDir, str(a, "query") ?? "", 10, filter);
      return { query: str(a, "query"), results: hits.map((h) => ({ path: h.path, startLine: h.startLine, endLine: h.endLine, score: Math.round(h.score * 100) / 100, content: h.text })) };
    },
  },
  {
    name: "codegenRerank",
    description:
      "Rank the files of a directory by relevance to a natural-language query (local BM25, scores normalised so the best file is 1.0) and return the best ones with their content, " +
      "within tokenLimit (default 30000 tokens) and above scoreThreshold (default 0.5). A first pass to narrow down where to look.",
    inputSchema: {
      type: "object",
      properties: {
        path: { type: "string", description: `Directory to rank; default the working directory. ${PATHS}` },
        query: { type: "string", description: "The question or task." },
        scoreThreshold: { type: "number", minimum: 0, maximum: 1, description: "Minimum normalised score (default 0.5)." },
        tokenLimit: { type: "integer", minimum: 1, description: "Budget of returned content in tokens (~4 characters each; default 30000)." },
        filePattern: { type: "string", description: "Regular expression the relative path must match, e.g. \"\\\\.ts$\"." },
      },
      required: ["query"],
      additionalProperties: false,
    },
    async run(s, a) {
      const root = str(a, "path") ? path(s, a) : s.paths.workingDir;
      const files = await s.codegen.rerank(root, str(a, "query") ?? "", {
        scoreThreshold: num(a, "scoreThreshold") ?? 0.5,
        tokenLimit: num(a, "tokenLimit") ?? 30_000,
        filePattern: str(a, "filePattern"),
      });
      return { success: true, message: `Found ${files.length} relevant files`, files };
    },
  },

  // ---- code editing (Morph / Relace) --------------------------------------------------------
  {
    name: "codegenEditFile",
    description:
      "Apply a sketched edit to a file (or create it) with a fast-apply model (Morph or Relace; needs MORPH_API_KEY or RELACE_API_KEY in the sandbox env). " +
      "Write only the changed lines with a little context, and mark skipped unchanged code with a comment such as \"// ... existing code ...\". " +
      "Returns {success, path, message}.",
    inputSchema: {
      type: "object",
      properties: {
        targetFile: { type: "string", description: `File to edit. ${PATHS}` },
        instructions: { type: "string", description: "One sentence in the first person saying what the edit does, e.g. \"I am adding input validation to parseConfig\"." },
        codeEdit: { type: "string", description: "The edit: changed code only, unchanged spans replaced by \"// ... existing code ...\"." },
      },
      required: ["targetFile", "codeEdit"],
      additionalProperties: false,
    },
    async run(s, a) {
      const p = path(s, a, "targetFile");
      const r = await s.codegen.fastApply(p, str(a, "codeEdit") ?? "", { instructions: str(a, "instructions") });
      return { success: true, path: p, provider: r.provider, message: `Applied the edit to ${p}${str(a, "instructions") ? `: ${str(a, "instructions")}` : ""}` };
    },
  },
  {
    name: "codegenReapply",
    description: "Re-apply the last codegenEditFile edit of a file with the provider's stronger model; use right after an edit came out wrong. Returns {success, path, message}.",
    inputSchema: {
      type: "object",
      properties: { targetFile: { type: "string", description: `File whose last edit to re-apply. ${PATHS}` } },
      required: ["targetFile"],
      additionalProperties: false,
    },
    async run(s, a) {
      const p = path(s, a, "targetFile");
      const r = await s.codegen.reapply(p);
      return { success: true, path: p, provider: r.provider, message: `Re-applied the last edit to ${p}` };
    },
  },
  {
    name: "codegenParallelApply",
    description:
      "Apply one kind of edit to several files at once with the fast-apply model: editPlan says what to change (as a sketched edit or precise instructions), editRegions lists the files " +
      "(optionally with the line range to focus on). Needs MORPH_API_KEY or RELACE_API_KEY. Returns {success, results: [{path, success, message}]}.",
    inputSchema: {
      type: "object",
      properties: {
        editPlan: { type: "string", description: "The edit to apply in every region." },
        editRegions: {
          type: "array",
          minItems: 1,
          maxItems: 50,
          items: {
            type: "object",
            properties: {
              relativeWorkspacePath: { type: "string", description: "File to edit." },
              startLine: { type: "integer", minimum: 1 },
              endLine: { type: "integer", minimum: 1 },
            },
            required: ["relativeWorkspacePath"],
          },
        },
      },
      required: ["editPlan", "editRegions"],
      additionalProperties: false,
    },
    async run(s, a) {
      const plan = str(a, "editPlan") ?? "";
      const regions = (a.editRegions as Array<{ relativeWorkspacePath: string; startLine?: number; endLine?: number }>) ?? [];
      const results = await Promise.all(
        regions.map(async (r) => {
          const p = resolvePath(r.relativeWorkspacePath, s.paths);
          const where = r.startLine ? ` (focus on lines ${r.startLine}-${r.endLine ?? r.startLine})` : "";
          try {
            await s.codegen.fastApply(p, plan, { instructions: `Apply this change${where}` });
            return { path: p, success: true, message: "applied" };
          } catch (e) {
            if (e instanceof HangarError && e.code === "not_configured") throw e;
            return { path: p, success: false, message: (e as Error).message };
          }
        }),
      );
      return { success: results.every((r) => r.success), results };
    },
  },
];

/** Matches a relative file path against a directory glob ("src", "src/**", "packages/*\/src"). */
function dirMatch(glob: string, filePath: string): boolean {
  const g = glob.replace(/^\.\//, "").replace(/\/\*\*$/, "").replace(/\/+$/, "");
  if (g === "" || g === "**" || g === ".") return true;
  const parts = filePath.split("/");
  const gparts = g.split("/");
  if (parts.length <= gparts.length) return false;
  return gparts.every((gp, i) => gp === "**" || globMatch(gp, parts[i]!));
}
