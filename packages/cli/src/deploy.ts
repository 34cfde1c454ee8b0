// `hangar deploy`, `hangar push` and build logs, on the wire `bl` uses (blaxel-workloads.md §1):
// read blaxel.toml, zip the project honouring .blaxelignore, ask for an upload URL, PUT the zip to
// it, then follow the resource's status and build logs.

import { lstatSync, readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { basename, isAbsolute, join, posix, resolve } from "node:path";
import { TomlError, parse as parseToml } from "smol-toml";
import { ZipFile } from "yazl";
import { CliError, type HangarClient } from "./client.js";

// ---- kinds -------------------------------------------------------------------------------------

/** Kinds that build from source, by every name `bl` accepts, to their API plural. */
export const BUILD_KINDS: Record<string, string> = {
  sandbox: "sandboxes",
  sandboxes: "sandboxes",
  sbx: "sandboxes",
  agent: "agents",
  agents: "agents",
  function: "functions",
  functions: "functions",
  fn: "functions",
  mcp: "functions",
  job: "jobs",
  jobs: "jobs",
};

export interface BuildKind {
  plural: string;
  singular: string;
}

export function buildKind(k: string): BuildKind {
  const plural = BUILD_KINDS[k.toLowerCase()];
  if (!plural) throw new CliError(`unknown type '${k}'; use one of: sandbox, agent, function, job`);
  return { plural, singular: plural === "sandboxes" ? "sandbox" : plural.slice(0, -1) };
}

// ---- names -------------------------------------------------------------------------------------

const NAME_MAX = 49;

/** A resource name from free text: lowercase, runs of other characters as one '-', at most 49. */
export function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, NAME_MAX)
    .replace(/-+$/, "");
}

/** The toml `name` wins over `-n`, which wins over the directory's name (as `bl` does). */
export function resolveName(tomlName: string | undefined, flagName: string | undefined, dir: string): string {
  const raw = tomlName || flagName || basename(dir);
  const name = slugify(raw);
  if (!name) throw new CliError(`cannot make a resource name from '${raw}'; pass -n NAME`);
  return name;
}

// ---- blaxel.toml -------------------------------------------------------------------------------

/** What Hangar reads of blaxel.toml. */
export interface ProjectConfig {
  name?: string;
  type?: string;
  memory?: number;
  port?: number;
  /** `[env]`: values may say ${secrets.X}, ${X}, ${X:default} or $X. */
  env: Record<string, string>;
  /** `[runtime]`, as written. */
  runtime: Record<string, unknown>;
  /** `[build.args]`. */
  buildArgs: Record<string, string>;
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);

function scalarTable(v: unknown, where: string, file: string): Record<string, string> {
  if (v === undefined) return {};
  if (!isTable(v)) throw new CliError(`${file}: ${where} must be a table`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string" && typeof x !== "number" && typeof x !== "boolean") throw new CliError(`${file}: ${where}.${k} must be a string`);
    out[k] = String(x);
  }
  return out;
}

function optionalInteger(v: unknown, key: string, file: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new CliError(`${file}: ${key} must be a positive integer`);
  return v;
}

function optionalString(v: unknown, key: string, file: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new CliError(`${file}: ${key} must be a string`);
  return v;
}

export function parseProjectToml(text: string, file = "blaxel.toml"): ProjectConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) throw new CliError(`${file}:${e.line}:${e.column}: ${e.message.split("\n")[0]}`);
    throw e;
  }
  const runtime = doc.runtime === undefined ? {} : doc.runtime;
  if (!isTable(runtime)) throw new CliError(`${file}: runtime must be a table`);
  const build = doc.build === undefined ? {} : doc.build;
  if (!isTable(build)) throw new CliError(`${file}: build must be a table`);
  return {
    name: optionalString(doc.name, "name", file),
    type: optionalString(doc.type, "type", file),
    memory: optionalInteger(doc.memory, "memory", file),
    port: optionalInteger(doc.port, "port", file),
    env: scalarTable(doc.env, "env", file),
    runtime,
    buildArgs: scalarTable(build.args, "build.args", file),
  };
}

/** DIR/blaxel.toml, or an empty config when there is none. */
export function readProjectConfig(dir: string): ProjectConfig {
  const file = join(dir, "blaxel.toml");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { env: {}, runtime: {}, buildArgs: {} };
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseProjectToml(text, file);
}

// ---- env files ---------------------------------------------------------------------------------

/** KEY=VALUE lines (`export ` allowed, # comments, surrounding quotes removed). */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq).replace(/^export\s+/, "").trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, "");
    out[key] = value;
  }
  return out;
}

/** `.env.build` content: toml `[build.args]` merged with an existing `.env.build` (which wins). */
export function buildEnvContent(tomlArgs: Record<string, string>, fileArgs: Record<string, string>): string | undefined {
  const merged = { ...tomlArgs, ...fileArgs };
  const keys = Object.keys(merged).sort();
  if (!keys.length) return undefined;
  return `${keys.map((k) => `${k}=${merged[k]}`).join("\n")}\n`;
}

/** Resolves ${secrets.X}, ${X:default}, ${X} and $X from `vars`; unknown references stay as written. */
export function substitute(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$\{secrets\.([A-Za-z_][A-Za-z0-9_]*)\}|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, secret?: string, braced?: string, dflt?: string, bare?: string) => {
    const key = secret ?? braced ?? bare!;
    const v = vars[key];
    if (v !== undefined) return v;
    if (dflt !== undefined) return dflt;
    return all;
  });
}

/** runtime.envs: `[env]` (resolved against the env files, then the environment), then the env files; BL_API_KEY is never sent. */
export function runtimeEnvs(tomlEnv: Record<string, string>, fileVars: Record<string, string>, processEnv: Record<string, string | undefined> = process.env): Array<{ name: string; value: string }> {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries(tomlEnv)) merged[k] = substitute(v, { ...processEnv, ...fileVars });
  Object.assign(merged, fileVars);
  delete merged.BL_API_KEY;
  return Object.entries(merged).map(([name, value]) => ({ name, value }));
}

/** Env files: -e files (DIR-relative, else cwd-relative; must exist), or DIR/.env when present. */
export function readEnvFiles(dir: string, files: string[] | undefined): Record<string, string> {
  const vars: Record<string, string> = {};
  const list = files?.length ? files : [".env"];
  for (const f of list) {
    const candidates = isAbsolute(f) ? [f] : [join(dir, f), resolve(f)];
    const path = candidates.find((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    });
    if (!path) {
      if (files?.length) throw new CliError(`env file ${f} not found`);
      continue;
    }
    Object.assign(vars, parseDotenv(readFileSync(path, "utf8")));
  }
  return vars;
}

// ---- ignore rules ------------------------------------------------------------------------------

/** What `bl` leaves out when the project has no .blaxelignore. */
export const DEFAULT_IGNORES = [".blaxel", ".env.build", ".docker", ".git", "dist", ".venv", "venv", "node_modules", ".env", ".next", "__pycache__"];

/** The rules of a .blaxelignore text: its lines without comments, plus .env.build (always injected, never copied). */
export function parseIgnoreFile(text: string): string[] {
  const rules: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const hash = line.indexOf("#");
    if (hash >= 0) line = line.slice(0, hash).trim();
    if (line) rules.push(line);
  }
  return [...rules, ".env.build"];
}

export function ignoreRules(dir: string): string[] {
  try {
    return parseIgnoreFile(readFileSync(join(dir, ".blaxelignore"), "utf8"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [...DEFAULT_IGNORES];
    throw new CliError(`cannot read ${join(dir, ".blaxelignore")}: ${(e as Error).message}`);
  }
}

/**
 * Whether a project path (relative, '/'-separated) is left out, as `bl` decides it: the rule is a
 * plain prefix of the path from the project root (so `.git` also leaves out `.github/` and
 * `.gitignore`), or `/rule/` occurs in it, or it ends in `/rule`. No globs. A rule naming the root
 * itself or a place outside it ('.', '/', '..') matches nothing by prefix.
 */
export function isIgnored(rel: string, rules: readonly string[]): boolean {
  const p = `/${rel}`;
  for (const rule of rules) {
    const prefix = posix.normalize(rule).replace(/^\/+/, "").replace(/\/+$/, "");
    if (prefix && prefix !== "." && prefix !== ".." && !prefix.startsWith("../") && rel.startsWith(prefix)) return true;
    if (p.includes(`/${rule}/`) || p.endsWith(`/${rule}`)) return true;
  }
  return false;
}

// ---- the archive -------------------------------------------------------------------------------

export interface ArchiveEntry {
  /** Path in the zip; directories end in '/'. */
  name: string;
  /** Where the file is on disk (files only). */
  path?: string;
  mode: number;
  mtime: Date;
}

export interface ArchivePlan {
  entries: ArchiveEntry[];
  /** Symlinks found and left out (they may point outside the project). */
  symlinks: string[];
}

/** Walks DIR in name order, leaving out ignored paths, symlinks and special files. */
export function planArchive(dir: string, rules: readonly string[]): ArchivePlan {
  const plan: ArchivePlan = { entries: [], symlinks: [] };
  const walk = (abs: string, rel: string) => {
    const names = readdirSync(abs).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (isIgnored(r, rules)) continue;
      const p = join(abs, n);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) plan.symlinks.push(r);
      else if (st.isDirectory()) {
        plan.entries.push({ name: `${r}/`, mode: st.mode, mtime: st.mtime });
        walk(p, r);
      } else if (st.isFile()) plan.entries.push({ name: r, path: p, mode: st.mode, mtime: st.mtime });
    }
  };
  walk(dir, "");
  return plan;
}

/** Zips a plan (deflate), plus generated files at the root. */
export function zipArchive(plan: ArchivePlan, extra: Array<{ name: string; data: string | Buffer }> = []): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const zip = new ZipFile();
    const chunks: Buffer[] = [];
    zip.outputStream.on("data", (c: Buffer) => chunks.push(c));
    zip.outputStream.on("end", () => resolvePromise(Buffer.concat(chunks)));
    zip.outputStream.on("error", reject);
    zip.on("error", reject);
    const extraNames = new Set(extra.map((e) => e.name));
    for (const e of plan.entries) {
      if (extraNames.has(e.name)) continue;
      if (e.name.endsWith("/")) zip.addEmptyDirectory(e.name.slice(0, -1), { mode: e.mode, mtime: e.mtime });
      else zip.addFile(e.path!, e.name, { compress: true, mode: e.mode, mtime: e.mtime });
    }
    for (const e of extra) zip.addBuffer(Buffer.from(e.data), e.name, { compress: true, mode: 0o100644, mtime: new Date() });
    zip.end();
  });
}

export interface Project {
  dir: string;
  config: ProjectConfig;
  name: string;
  kind: BuildKind;
  zip: Buffer;
  files: number;
}

/** Reads and zips a project directory. */
export async function packProject(dirArg: string, flags: { name?: string; type?: string }, progress: (msg: string) => void): Promise<Project> {
  let dir: string;
  try {
    dir = realpathSync(resolve(dirArg));
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
  } catch (e) {
    throw new CliError(`${dirArg}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such directory" : (e as Error).message}`);
  }
  const config = readProjectConfig(dir);
  const name = resolveName(config.name, flags.name, dir);
  const kind = buildKind(flags.type ?? config.type ?? "sandbox");
  const plan = planArchive(dir, ignoreRules(dir));
  if (plan.symlinks.length) {
    const shown = plan.symlinks.slice(0, 5).join(", ") + (plan.symlinks.length > 5 ? `, and ${plan.symlinks.length - 5} more` : "");
    progress(`warning: left out ${plan.symlinks.length} symlink(s), which are not uploaded: ${shown}`);
  }
  let fileArgs: Record<string, string> = {};
  try {
    fileArgs = parseDotenv(readFileSync(join(dir, ".env.build"), "utf8"));
  } catch {
    /* no .env.build */
  }
  const envBuild = buildEnvContent(config.buildArgs, fileArgs);
  const zip = await zipArchive(plan, envBuild ? [{ name: ".env.build", data: envBuild }] : []);
  const files = plan.entries.filter((e) => !e.name.endsWith("/")).length + (envBuild ? 1 : 0);
  return { dir, config, name, kind, zip, files };
}

// ---- upload ------------------------------------------------------------------------------------

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** PUT of the zip to an upload URL, with no Blaxel headers (the URL is the credential). */
export function putZip(url: string, zip: Buffer, onProgress?: (sent: number, total: number) => void): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolvePromise, reject) => {
    const req = request(u, { method: "PUT", headers: { "content-type": "application/zip", "content-length": String(zip.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    const CHUNK = 64 * 1024;
    let sent = 0;
    const pump = () => {
      while (sent < zip.length) {
        const chunk = zip.subarray(sent, sent + CHUNK);
        sent += chunk.length;
        const at = sent;
        const more = req.write(chunk, () => onProgress?.(at, zip.length));
        if (!more) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

/** A bar on a TTY (redrawn in place), one line otherwise. */
function uploadMeter(total: number, progress: (msg: string) => void): { update: (sent: number) => void; done: () => void } {
  if (!process.stderr.isTTY) {
    progress(`uploading ${formatBytes(total)}…`);
    return { update: () => undefined, done: () => undefined };
  }
  let last = 0;
  const draw = (sent: number) => {
    const width = 30;
    const filled = Math.round((sent / Math.max(total, 1)) * width);
    process.stderr.write(`\r\x1b[2muploading [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${formatBytes(sent)} / ${formatBytes(total)}\x1b[0m\x1b[K`);
  };
  draw(0);
  return {
    update: (sent) => {
      if (Date.now() - last < 80 && sent < total) return;
      last = Date.now();
      draw(sent);
    },
    done: () => {
      draw(total);
      process.stderr.write("\n");
    },
  };
}

function problemMessage(status: number, body: string): string {
  try {
    const p = JSON.parse(body) as { detail?: string; title?: string; error?: string; message?: string };
    return `${status}: ${p.detail ?? p.title ?? p.error ?? p.message ?? body}`;
  } catch {
    return `${status}: ${body}`;
  }
}

/**
 * Asks for an upload URL and PUTs the zip to it. A network failure or a 5xx is retried (three
 * attempts, with a fresh URL each time); a refusal of the archive is not.
 */
async function upload<T>(zip: Buffer, ask: () => Promise<{ url: string; value: T }>, progress: (msg: string) => void): Promise<T> {
  let lastError = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt) {
      progress(`upload failed (${lastError}); retrying`);
      await sleep(1000 * 2 ** (attempt - 1));
    }
    const { url, value } = await ask();
    const meter = uploadMeter(zip.length, progress);
    let res: { status: number; body: string };
    try {
      res = await putZip(url, zip, (sent) => meter.update(sent));
    } catch (e) {
      meter.done();
      lastError = (e as Error).message;
      continue;
    }
    meter.done();
    if (res.status === 200) return value;
    if (res.status < 500) throw new CliError(`the server refused the upload: ${problemMessage(res.status, res.body)}`);
    lastError = problemMessage(res.status, res.body);
  }
  throw new CliError(`upload failed: ${lastError}`);
}

// ---- status and build logs ---------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** UTC "2006-01-02T15:04:05", the form `bl` sends as `start`. */
export function logStart(d: Date): string {
  return d.toISOString().slice(0, 19);
}

interface LogLine {
  timestamp: string;
  message: string;
  severity?: number;
}

/** Reads a resource's build log lines, each once: the position moves on by the lines read. */
export class BuildLogReader {
  private seen = 0;
  private failures = 0;

  constructor(
    private readonly c: HangarClient,
    private readonly kind: BuildKind,
    private readonly name: string,
    private readonly start?: string,
  ) {}

  /** New lines since the last call; after 5 failures in a row it gives up (returns nothing). */
  async next(): Promise<LogLine[]> {
    if (this.failures >= 5) return [];
    const out: LogLine[] = [];
    try {
      for (;;) {
        const q = new URLSearchParams({ resourceType: this.kind.plural, workloadIds: this.name, limit: "1000", offset: String(this.seen), workspace: this.c.cfg.workspace });
        if (this.start) q.set("start", this.start);
        const res = await this.c.api<Record<string, { logs?: LogLine[]; totalCount?: number }>>("GET", `/observability/logs?${q}`);
        const logs = res[this.name]?.logs ?? [];
        out.push(...logs);
        this.seen += logs.length;
        if (logs.length < 1000) break;
      }
      this.failures = 0;
    } catch (e) {
      if (++this.failures >= 5) process.stderr.write(`warning: stopped reading build logs: ${(e as Error).message}\n`);
    }
    return out;
  }
}

function writeLogLines(lines: LogLine[], write: (s: string) => void): void {
  for (const l of lines) write(`${l.message.replace(/\n+$/, "")}\n`);
}

interface ResourceJson {
  metadata: { name: string; url?: string };
  status?: string;
  events?: Array<{ status?: string; message?: string }>;
}

/** Statuses after which a deploy is over. */
const FINAL = new Set(["DEPLOYED", "FAILED", "DEACTIVATED", "DEACTIVATING", "DELETING", "TERMINATED"]);
/** Statuses during which a build is running. */
const BUILDING = new Set(["UPLOADING", "BUILDING", "DEPLOYING"]);

async function getResource(c: HangarClient, kind: BuildKind, name: string): Promise<ResourceJson> {
  return c.api<ResourceJson>("GET", `/${kind.plural}/${encodeURIComponent(name)}`);
}

/** Follows a resource after its upload: prints status changes and build logs until it is final. */
async function followDeploy(c: HangarClient, kind: BuildKind, name: string, first: string | undefined, opts: { start: string; timeoutMs: number; progress: (msg: string) => void }): Promise<ResourceJson> {
  const logs = new BuildLogReader(c, kind, name, opts.start);
  const deadline = Date.now() + opts.timeoutMs;
  let last = first;
  let errors = 0;
  for (;;) {
    let r: ResourceJson;
    try {
      r = await getResource(c, kind, name);
      errors = 0;
    } catch (e) {
      if (++errors >= 5) throw e;
      await sleep(1000);
      continue;
    }
    const status = r.status ?? "UNKNOWN";
    // a build's lines follow its BUILDING line and precede the status it ends in
    const changed = status !== last;
    const leadsLogs = status === "UPLOADING" || status === "BUILDING";
    last = status;
    if (changed && leadsLogs) opts.progress(`${kind.singular}/${name}: ${status}`);
    // lines are written in batches: give the last ones a moment after the end
    if (FINAL.has(status)) await sleep(500);
    writeLogLines(await logs.next(), (s) => process.stderr.write(s));
    if (changed && !leadsLogs) opts.progress(`${kind.singular}/${name}: ${status}`);
    if (FINAL.has(status)) return r;
    if (Date.now() > deadline) throw new CliError(`${kind.singular}/${name} is still ${status} after ${Math.round(opts.timeoutMs / 1000)}s; follow it with 'hangar logs ${kind.singular} ${name} --build -f'`);
    await sleep(1000);
  }
}

function failureMessage(r: ResourceJson): string {
  const ev = [...(r.events ?? [])].reverse().find((e) => e.message);
  return ev?.message ?? `status ${r.status}`;
}

// ---- commands ----------------------------------------------------------------------------------

export interface DeployOptions {
  directory: string;
  name?: string;
  type?: string;
  envFile?: string[];
  memory?: string;
  wait: boolean;
  output: "text" | "json";
  timeout: string;
}

/** `hangar deploy`: returns the exit code. */
export async function deploy(c: HangarClient, o: DeployOptions, progress: (msg: string) => void): Promise<number> {
  const started = Date.now();
  const project = await packProject(o.directory, { name: o.name, type: o.type }, progress);
  const { config, name, kind } = project;
  const memoryText = o.memory ?? config.runtime.memory ?? config.memory;
  const memory = memoryText === undefined ? undefined : Number(memoryText);
  if (memory !== undefined && (!Number.isInteger(memory) || memory <= 0)) throw new CliError(`memory must be a whole number of MB (got ${String(memoryText)})`);
  const envs = runtimeEnvs(config.env, readEnvFiles(project.dir, o.envFile));
  const runtime: Record<string, unknown> = {
    ...(memory !== undefined ? { memory } : {}),
    ...(envs.length ? { envs } : {}),
    ...(config.port !== undefined ? { ports: [{ target: config.port, protocol: "HTTP" }] } : {}),
    // a function's MCP transport ([runtime] transport: http-stream, websocket, or stdio for Hangar's bridge)
    ...(kind.plural === "functions" && typeof config.runtime.transport === "string" ? { transport: config.runtime.transport } : {}),
  };
  const body = { metadata: { name, labels: { "x-blaxel-auto-generated": "true" } }, spec: { runtime } };
  const timeoutSeconds = Number(o.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new CliError(`--timeout must be a number of seconds (got ${o.timeout})`);

  progress(`packed ${project.files} file(s) of ${project.dir} (${formatBytes(project.zip.length)}) as ${kind.singular}/${name}`);
  const start = logStart(new Date(Date.now() - 1000));
  const resource = await upload(
    project.zip,
    async () => {
      let res: Response;
      try {
        res = await c.raw("PUT", `${c.cfg.url}/v0/${kind.plural}/${encodeURIComponent(name)}?upload=true`, body);
      } catch (e) {
        if (kind.plural !== "sandboxes" && e instanceof CliError && /^40[45]:/.test(e.message)) throw new CliError(`deploying ${kind.plural} from source is not supported by this server yet (sandboxes are)`);
        throw e;
      }
      const url = res.headers.get("x-blaxel-upload-url");
      if (!url) throw new CliError(`the server gave no upload URL for ${kind.singular}/${name} (no X-Blaxel-Upload-Url header)`);
      const r = (await res.json()) as ResourceJson;
      if (r.status) progress(`${kind.singular}/${name}: ${r.status}`);
      return { url, value: r };
    },
    progress,
  );

  const result = (status: string, r: ResourceJson | undefined, error?: string) => ({
    resources: [{ kind: kind.singular, name, status, ...(r?.metadata.url ? { url: r.metadata.url } : {}), ...(error ? { error } : {}) }],
    success: !error,
    totalDuration: `${Math.round((Date.now() - started) / 1000)}s`,
  });

  if (!o.wait) {
    if (o.output === "json") {
      const now = await getResource(c, kind, name).catch(() => resource);
      process.stdout.write(`${JSON.stringify(result(now.status ?? "UPLOADING", now), null, 2)}\n`);
    } else {
      process.stdout.write(`${kind.singular}/${name} uploaded; it builds on the server (follow with 'hangar logs ${kind.singular} ${name} --build -f')\n`);
    }
    return 0;
  }

  const final = await followDeploy(c, kind, name, resource.status, { start, timeoutMs: timeoutSeconds * 1000, progress });
  const status = final.status ?? "UNKNOWN";
  if (status === "DEPLOYED") {
    const url = final.metadata.url ?? (kind.plural === "sandboxes" ? await c.sandboxUrl(name) : undefined);
    if (o.output === "json") process.stdout.write(`${JSON.stringify(result(status, { ...final, metadata: { ...final.metadata, url } }), null, 2)}\n`);
    else {
      progress(`${kind.singular}/${name} deployed in ${Math.round((Date.now() - started) / 1000)}s`);
      if (url) process.stdout.write(`${url}\n`);
    }
    return 0;
  }
  const message = status === "FAILED" ? failureMessage(final) : `unexpected status ${status}`;
  if (o.output === "json") {
    process.stdout.write(`${JSON.stringify(result(status, final, message), null, 2)}\n`);
    return 1;
  }
  throw new CliError(`${kind.singular}/${name} failed: ${message}`);
}

export interface PushOptions {
  directory: string;
  name?: string;
  type?: string;
  timeout: string;
}

interface ImageJson {
  metadata?: { status?: string };
  spec?: { image?: string };
  status?: string;
  error?: string;
}

/** `hangar push`: builds an image from the project, touching no resource. */
export async function push(c: HangarClient, o: PushOptions, progress: (msg: string) => void): Promise<void> {
  const project = await packProject(o.directory, { name: o.name, type: o.type }, progress);
  const { name, kind } = project;
  const timeoutMs = Number(o.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new CliError(`--timeout must be a number of seconds (got ${o.timeout})`);
  progress(`packed ${project.files} file(s) of ${project.dir} (${formatBytes(project.zip.length)}) as image ${kind.plural}/${name}`);
  await upload(
    project.zip,
    async () => {
      const res = await c.raw("POST", `${c.cfg.url}/v0/images?upload=true`, { name, resourceType: kind.plural });
      const url = res.headers.get("x-blaxel-upload-url");
      if (!url) throw new CliError("the server gave no upload URL (no X-Blaxel-Upload-Url header)");
      return { url, value: undefined };
    },
    progress,
  );
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    let img: ImageJson | undefined;
    try {
      img = await c.api<ImageJson>("GET", `/images/${kind.plural}/${encodeURIComponent(name)}`);
    } catch (e) {
      if (!(e instanceof CliError && e.message.startsWith("404"))) throw e;
    }
    const status = img?.metadata?.status ?? img?.status ?? "UPLOADING";
    if (status !== last) {
      progress(`image ${kind.plural}/${name}: ${status}`);
      last = status;
    }
    if (status === "BUILT") {
      process.stdout.write(`${img?.spec?.image ?? `${kind.plural}/${name}`}\n`);
      return;
    }
    if (status === "FAILED") throw new CliError(`image ${kind.plural}/${name} failed: ${img?.error ?? "the build failed"}`);
    if (Date.now() > deadline) throw new CliError(`image ${kind.plural}/${name} is still ${status} after ${Math.round(timeoutMs / 1000)}s`);
    await sleep(1000);
  }
}

/** `hangar logs KIND NAME --build [-f]`: the lines of the resource's recent builds. */
export async function buildLogs(c: HangarClient, k: string, name: string, o: { follow?: boolean; since?: string }): Promise<void> {
  const kind = buildKind(k);
  const since = o.since === undefined ? undefined : parseSince(o.since);
  const logs = new BuildLogReader(c, kind, name, since);
  const write = (s: string) => process.stdout.write(s);
  if (!o.follow) {
    // a missing resource is a 404, not an empty log
    await getResource(c, kind, name);
    writeLogLines(await logs.next(), write);
    return;
  }
  for (;;) {
    const r = await getResource(c, kind, name);
    writeLogLines(await logs.next(), write);
    if (!BUILDING.has(r.status ?? "")) {
      await sleep(500);
      writeLogLines(await logs.next(), write);
      return;
    }
    await sleep(1000);
  }
}

/** `--since`: a duration back from now (30s, 10m, 2h, 1d) or a date. */
export function parseSince(text: string, now = Date.now()): string {
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  if (m) return logStart(new Date(now - Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"]));
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new CliError(`--since: '${text}' is neither a duration (10m, 2h) nor a date`);
  return logStart(d);
}
