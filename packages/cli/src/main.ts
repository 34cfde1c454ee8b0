#!/usr/bin/env node
// `hangar`: start the server, and drive it from a terminal.

import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { parseAllDocuments, stringify } from "yaml";
import { shellQuote } from "@hangar/common";
import { CliError, HangarClient, resolveClientConfig, writeConfigFile } from "./client.js";
import { BUILD_KINDS, buildKind, buildLogs, deploy, push } from "./deploy.js";
import { LISTINGS, age, listAll } from "./listings.js";
import { runFunction } from "./mcp.js";
import { MANIFEST_STORAGE_KINDS, STORAGE_KINDS, STORAGE_SINGULAR, applyStorage } from "./storage.js";
import { connectTerminal } from "./terminal.js";
import { cancelExecution, getExecutions, getJobs, jobLogs, runJob } from "./jobs.js";
import { buildHub, hubRows } from "./hub.js";

type Globals = { url?: string; apiKey?: string; workspace?: string };
type Output = "table" | "json" | "yaml";

const program = new Command("hangar")
  .description("Hangar: isolated Linux computers for AI agents, on your own machine")
  .option("--url <url>", "Hangar server URL (HANGAR_URL; default http://127.0.0.1:8585)")
  .option("--api-key <key>", "API key (HANGAR_API_KEY)")
  .option("-w, --workspace <name>", "workspace (HANGAR_WORKSPACE; default 'default')")
  .showHelpAfterError();

const client = () => new HangarClient(resolveClientConfig(program.opts<Globals>()));
const outputOption = () => new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"]).default("table");

/** Prints progress on stderr so stdout stays clean for data. */
function progress(msg: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\x1b[2m${msg}\x1b[0m\n`);
  else process.stderr.write(`${msg}\n`);
}

function print(value: unknown, output: Output, table: () => string[][]): void {
  if (output === "json") process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (output === "yaml") process.stdout.write(stringify(value));
  else {
    const rows = table();
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
    for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
  }
}


type SandboxJson = { metadata: { name: string; createdAt?: string; labels?: Record<string, string> }; spec: { runtime?: { image?: string; memory?: number } }; status?: string; state?: string };

/** Singular of each plural kind, for messages such as "sandbox/x deleted". */
const SINGULAR: Record<string, string> = { sandboxes: "sandbox", workspaces: "workspace", "api-keys": "api-key", snapshots: "snapshot", agents: "agent", functions: "function", models: "model", policies: "policy", "integrations/connections": "integrationconnection", ...STORAGE_SINGULAR };

const KINDS: Record<string, string> = { sandbox: "sandboxes", sandboxes: "sandboxes", sbx: "sandboxes", workspace: "workspaces", workspaces: "workspaces", "api-key": "api-keys", "api-keys": "api-keys", apikeys: "api-keys", snapshot: "snapshots", snapshots: "snapshots", agent: "agents", agents: "agents", function: "functions", functions: "functions", fn: "functions", mcp: "functions", model: "models", models: "models", policy: "policies", policies: "policies", integrationconnection: "integrations/connections", integrationconnections: "integrations/connections", connection: "integrations/connections", connections: "integrations/connections", ...STORAGE_KINDS };

function kindOf(k: string): string {
  const kind = KINDS[k.toLowerCase()];
  if (!kind) throw new CliError(`unknown kind '${k}'; use one of: ${Object.keys(LISTINGS).join(", ")}`);
  return kind;
}

// ---- serve -------------------------------------------------------------------------------------
program
  .command("serve")
  .description("start Hangar (control plane, edge, node runtime) in this process")
  .option("--port <n>", "port (HANGAR_PORT, default 8585)")
  .option("--host <addr>", "address to bind (HANGAR_HOST, default 127.0.0.1)")
  .option("--data-dir <dir>", "data directory (HANGAR_DATA_DIR)")
  .option("--log-level <level>", "trace|debug|info|warn|error (HANGAR_LOG_LEVEL)")
  .action(async (o: { port?: string; host?: string; dataDir?: string; logLevel?: string }) => {
    const { createHangar, loadConfig } = await import("@hangar/server");
    const config = loadConfig(o);
    const hangar = await createHangar(config);
    const port = await hangar.listen();
    const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
    if (hangar.createdAdminKey) {
      process.stdout.write(
        `\nHangar created workspace 'default' and an admin API key (shown once, also in ${hangar.adminKeyFile}):\n\n    ${hangar.createdAdminKey}\n\n` +
          `Use it with the Blaxel SDK:\n    BL_API_URL=${url}/v0 BL_RUN_URL=${url}/run BL_WORKSPACE=default BL_API_KEY=<key> BL_DISABLE_H2=true\n\n`,
      );
    }
    hangar.logger.info({ url, dataDir: config.dataDir, runtime: config.runtime, runtimeClass: config.runtimeClass }, "hangar is serving");
    let closing = false;
    const stop = (sig: string) => {
      if (closing) process.exit(1);
      closing = true;
      hangar.logger.info({ signal: sig }, "shutting down (sandboxes keep running)");
      void hangar.close().then(() => process.exit(0), () => process.exit(1));
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });

// ---- uninstall ---------------------------------------------------------------------------------
program
  .command("uninstall")
  .description("with the server stopped: destroy every sandbox of the data dir and remove what Hangar keeps on the host (network devices, nft table, mounts, cgroups); the data dir stays")
  .option("--data-dir <dir>", "data directory (HANGAR_DATA_DIR)")
  .option("--log-level <level>", "trace|debug|info|warn|error (HANGAR_LOG_LEVEL)", "warn")
  .action(async (o: { dataDir?: string; logLevel?: string }) => {
    const { loadConfig, uninstallRuntime } = await import("@hangar/server");
    const { createLogger } = await import("@hangar/common");
    const config = loadConfig(o);
    await uninstallRuntime(config, createLogger(config.logLevel));
    progress(`removed the sandboxes and host state of ${config.dataDir}`);
  });

// ---- hub ---------------------------------------------------------------------------------------
const hub = program.command("hub").description("the sandbox hub's images (blaxel/node, blaxel/nextjs, ...)");
hub
  .command("list")
  .description("list the hub's images")
  .action(async () => {
    const rows = await hubRows(client());
    print(rows, "table", () => rows);
  });
hub
  .command("build")
  .description("build hub images ahead of their first use (all when none is named); built ones are found in the machine's cache at once")
  .argument("[names...]", "hub image names, e.g. expo nextjs")
  .action(async (names: string[]) => buildHub(client(), names, progress));

// ---- login -------------------------------------------------------------------------------------
program
  .command("login")
  .description("save the server URL, API key and workspace for later commands")
  .action(async () => {
    const c = client();
    if (!c.cfg.apiKey) throw new CliError("no API key: pass --api-key or set HANGAR_API_KEY");
    const wss = await c.api<{ name: string }[]>("GET", "/workspaces");
    if (!wss.some((w) => w.name === c.cfg.workspace)) throw new CliError(`the key does not reach workspace '${c.cfg.workspace}' (it reaches: ${wss.map((w) => w.name).join(", ") || "none"})`);
    const path = writeConfigFile({ url: c.cfg.url, apiKey: c.cfg.apiKey, workspace: c.cfg.workspace });
    process.stdout.write(`logged in to ${c.cfg.url} as workspace '${c.cfg.workspace}'; saved to ${path}\n`);
  });

// ---- get ---------------------------------------------------------------------------------------
program
  .command("get")
  .description("list resources, or show one; `get revisions NAME` lists an agent's (or with --type, a function's) revisions")
  .argument("<kind>", `${Object.keys(LISTINGS).join(" | ")} | jobs | executions JOB | revisions NAME`)
  .argument("[name]")
  .argument("[execution]", "with executions: one execution of the job")
  .option("--type <type>", "with revisions: agent | function", "agent")
  .addOption(outputOption())
  .action(async (k: string, name: string | undefined, execution: string | undefined, o: { output: Output; type: string }) => {
    const c = client();
    if (/^jobs?$/i.test(k)) return getJobs(c, name, o.output, print, age);
    if (/^executions?$/i.test(k)) return getExecutions(c, name, execution, o.output, print, age);
    if (k === "revisions" || k === "revision") {
      if (!name) throw new CliError("usage: hangar get revisions NAME [--type agent|function]");
      const kind = buildKind(o.type).plural;
      const revs = await c.api<Array<{ id: string; status: string; active: boolean; canary: boolean; trafficPercent: number; replicas?: number; image?: string; createdAt: string }>>("GET", `/${kind}/${encodeURIComponent(name)}/revisions`);
      return print(revs, o.output, () => [
        ["REVISION", "STATUS", "TRAFFIC", "ROLE", "REPLICAS", "IMAGE", "AGE"],
        ...revs.map((r) => [r.id, r.status, `${r.trafficPercent}%`, r.active ? "active" : r.canary ? "canary" : "", String(r.replicas ?? ""), r.image ?? "", age(r.createdAt)]),
      ]);
    }
    const kind = kindOf(k);
    const l = LISTINGS[kind]!;
    const items = name ? [await c.api<unknown>("GET", `${l.path}/${encodeURIComponent(name)}`)] : await listAll(c, l.path);
    print(name ? items[0] : items, o.output, () => [l.header, ...items.map(l.row)]);
  });

/** An agent's or function's app output, each line labelled with its revision and replica. */
async function workloadLogs(c: HangarClient, plural: string, name: string, follow: boolean): Promise<void> {
  const path = `${c.cfg.url}/v0/${plural}/${encodeURIComponent(name)}/logs`;
  if (!follow) {
    const { replicas } = (await (await c.raw("GET", path)).json()) as { replicas: Array<{ replica: string; revision: string; stdout: string; stderr: string }> };
    for (const r of replicas) {
      for (const [stream, text] of [["stdout", r.stdout], ["stderr", r.stderr]] as const) {
        for (const line of text.split("\n").filter(Boolean)) (stream === "stderr" ? process.stderr : process.stdout).write(`${r.revision}/${r.replica} ${line}\n`);
      }
    }
    return;
  }
  const res = await c.raw("GET", `${path}?follow=true`);
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) process.stdout.write(chunk);
}

// ---- run ---------------------------------------------------------------------------------------
program
  .command("run")
  .description("call an agent or a function on its run URL (as `bl run`; the answer streams to stdout), or start an execution of a job (-f batch.json)")
  .argument("<type>", "agent | function | job")
  .argument("<name>")
  .option("-d, --data <body>", "request body (JSON or text); jobs: the batch inline")
  .option("-f, --file <path>", "jobs: the batch file ({\"tasks\": [...]} or an array of tasks; '-': stdin)")
  .option("-e, --env <KEY=VALUE...>", "jobs: environment overrides of this execution")
  .option("--memory <mb>", "jobs: memory override (at most the job's)")
  .option("--wait", "jobs: wait for the end, with a progress bar of tasks done and failed")
  .option("--path <path>", "path under the run URL", "/")
  .option("--method <method>", "HTTP method", "POST")
  .option("-H, --header <header...>", "extra header(s), 'Name: value'")
  .option("--async", "answer at once; the result goes to the agent's async callback")
  .option("--tool <tool>", "functions: call this MCP tool (with the official MCP client) and print its result")
  .option("--args <json>", "functions: the tool's arguments, a JSON object", "{}")
  .option("--tools", "functions: list the MCP server's tools")
  .action(async (type: string, name: string, o: { data?: string; path: string; method: string; header?: string[]; async?: boolean; tool?: string; args: string; tools?: boolean; file?: string; env?: string[]; memory?: string; wait?: boolean }) => {
    const c = client();
    const kind = buildKind(type).plural;
    if (kind === "jobs") return runJob(c, name, o);
    if (o.tool || o.tools) {
      if (kind !== "functions") throw new CliError("--tool and --tools are for functions (MCP servers)");
      const r = await runFunction(c, name, o.tool ? { tool: o.tool, args: o.args } : {});
      process.stdout.write(`${JSON.stringify(r.value, null, 2)}\n`);
      if (r.isError) process.exitCode = 1;
      return;
    }
    const w = await c.api<{ metadata: { url: string } }>("GET", `/${kind}/${encodeURIComponent(name)}`);
    const url = new URL(w.metadata.url.replace(/\/$/, "") + (o.path.startsWith("/") ? o.path : `/${o.path}`));
    if (o.async) url.searchParams.set("async", "true");
    const headers: Record<string, string> = {};
    for (const h of o.header ?? []) {
      const i = h.indexOf(":");
      if (i <= 0) throw new CliError(`bad header '${h}': use 'Name: value'`);
      headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
    }
    if (o.data !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) headers["content-type"] = /^\s*[[{]/.test(o.data) ? "application/json" : "text/plain";
    const res = await fetch(url, { method: o.method.toUpperCase(), headers: c.headers(headers), ...(o.data !== undefined ? { body: o.data } : {}) }).catch((e: Error) => {
      throw new CliError(`cannot reach ${url.origin}: ${e.message}`);
    });
    for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) process.stdout.write(chunk);
    if (!res.ok) {
      process.stderr.write(`\n${type} '${name}' answered ${res.status}\n`);
      process.exitCode = 1;
    }
  });

// ---- fork --------------------------------------------------------------------------------------
program
  .command("fork")
  .description("create sandbox NEW from SANDBOX as it is now (its files, and its running processes and memory where the runtime can), or from one of its snapshots")
  .argument("<sandbox>")
  .argument("<new>")
  .option("--snapshot <id>", "fork this snapshot (id or name) instead of the sandbox's live state")
  .addOption(outputOption())
  .action(async (sandbox: string, target: string, o: { snapshot?: string; output: Output }) => {
    const c = client();
    const res = await c.api<{ name: string; snapshotId?: string; processes?: boolean }>("POST", `/sandboxes/${encodeURIComponent(sandbox)}/fork`, {
      targetName: target,
      targetType: "sandbox",
      ...(o.snapshot ? { snapshotId: o.snapshot } : {}),
    });
    print(res, o.output, () => [
      ["NAME", "FROM", "KEPT"],
      [res.name, o.snapshot ? `snapshot/${o.snapshot}` : `sandbox/${sandbox}`, res.processes ? "files, processes, memory" : "files"],
    ]);
  });

// ---- apply -------------------------------------------------------------------------------------
program
  .command("apply")
  .description("create or update resources from a YAML/JSON manifest (kind: Sandbox)")
  .requiredOption("-f, --filename <file>", "manifest file, or - for stdin")
  .action(async (o: { filename: string }) => {
    const c = client();
    const text = readFileSync(o.filename === "-" ? 0 : o.filename, "utf8");
    const docs = parseAllDocuments(text);
    for (const doc of docs) {
      if (doc.errors.length) throw new CliError(`${o.filename}: ${doc.errors[0]!.message}`);
      const m = doc.toJSON() as { kind?: string; metadata?: { name?: string }; spec?: unknown } | null;
      if (!m) continue;
      if (typeof m.kind !== "string") throw new CliError(`${o.filename}: each document needs a 'kind'`);
      const storageKind = MANIFEST_STORAGE_KINDS[m.kind.toLowerCase()];
      if (storageKind) {
        if (!m.metadata?.name) throw new CliError(`${o.filename}: a ${m.kind} needs metadata.name`);
        process.stdout.write(`${await applyStorage(c, storageKind, m.metadata.name, { metadata: m.metadata, spec: m.spec ?? {} })}\n`);
        continue;
      }
      if (m.kind.toLowerCase() !== "sandbox") throw new CliError(`kind '${m.kind}' is not supported yet; supported: Sandbox, Volume, VolumeTemplate, Drive`);
      const name = m.metadata?.name;
      if (!name) throw new CliError(`${o.filename}: a Sandbox needs metadata.name`);
      const body = { metadata: m.metadata, spec: m.spec };
      const path = `/sandboxes/${encodeURIComponent(name)}`;
      let exists = true;
      try {
        await c.api("GET", path);
      } catch (e) {
        if (!(e instanceof CliError) || !e.message.startsWith("404")) throw e;
        exists = false;
      }
      if (exists) {
        await c.api("PUT", path, body);
        process.stdout.write(`sandbox/${name} configured\n`);
      } else {
        progress(`creating sandbox/${name} (the first sandbox of an image builds it; this can take a minute)…`);
        await c.api("POST", "/sandboxes", body);
        process.stdout.write(`sandbox/${name} created\n`);
      }
    }
  });

// ---- delete ------------------------------------------------------------------------------------
program
  .command("delete")
  .description("delete a resource")
  .argument("<kind>", "sandbox | workspace | api-key")
  .argument("<name>")
  .option("--wait", "wait until it is gone")
  .action(async (k: string, name: string, o: { wait?: boolean }) => {
    const c = client();
    const kind = kindOf(k);
    const path = `/${kind}/${encodeURIComponent(name)}`;
    await c.api("DELETE", path);
    if (o.wait && kind === "sandboxes") {
      progress(`waiting for sandbox/${name} to be removed…`);
      for (;;) {
        try {
          await c.api("GET", path);
        } catch (e) {
          if (e instanceof CliError && e.message.startsWith("404")) break;
          throw e;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    process.stdout.write(`${SINGULAR[kind]}/${name} deleted\n`);
  });

// ---- drive -------------------------------------------------------------------------------------
const driveCmd = program.command("drive").description("mount drives into running sandboxes");
driveCmd
  .command("mount")
  .description("mount a drive (or a directory of it) into a running sandbox at PATH")
  .argument("<sandbox>")
  .argument("<drive>")
  .argument("<path>", "mount path inside the sandbox")
  .option("--drive-path <dir>", "directory of the drive to mount", "/")
  .option("--read-only", "mount read-only")
  .action(async (sandbox: string, drive: string, path: string, o: { drivePath: string; readOnly?: boolean }) => {
    const c = client();
    const res = await c.raw("POST", `${await c.sandboxUrl(sandbox)}/drives/mount`, { driveName: drive, mountPath: path, drivePath: o.drivePath, readOnly: !!o.readOnly });
    const r = (await res.json()) as { mountPath: string; drivePath: string };
    process.stdout.write(`drive/${drive}${r.drivePath === "/" ? "" : `:${r.drivePath}`} mounted at ${r.mountPath} in sandbox/${sandbox}\n`);
  });
driveCmd
  .command("unmount")
  .description("unmount the drive mounted at PATH in a sandbox")
  .argument("<sandbox>")
  .argument("<path>")
  .action(async (sandbox: string, path: string) => {
    const c = client();
    await c.raw("DELETE", `${await c.sandboxUrl(sandbox)}/drives/mount/${path.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/")}`);
    process.stdout.write(`unmounted ${path} in sandbox/${sandbox}\n`);
  });
driveCmd
  .command("list")
  .description("drives mounted in a sandbox")
  .argument("<sandbox>")
  .addOption(outputOption())
  .action(async (sandbox: string, o: { output: Output }) => {
    const c = client();
    const { mounts } = (await (await c.raw("GET", `${await c.sandboxUrl(sandbox)}/drives/mount`)).json()) as { mounts: Array<{ driveName: string; drivePath: string; mountPath: string; readOnly: boolean }> };
    print(mounts, o.output, () => [["DRIVE", "DRIVE PATH", "MOUNT PATH", "MODE"], ...mounts.map((m) => [m.driveName, m.drivePath, m.mountPath, m.readOnly ? "ro" : "rw"])]);
  });

// ---- deploy / push -----------------------------------------------------------------------------
program
  .command("deploy")
  .description("build a directory's source on the server and run it (a sandbox by default), following the build")
  .option("-d, --directory <dir>", "project directory (with blaxel.toml, Dockerfile, .blaxelignore)", ".")
  .option("-n, --name <name>", "resource name (blaxel.toml 'name' wins; default: the directory's name)")
  .option("-t, --type <type>", "sandbox | agent | function | job (default: blaxel.toml 'type', else sandbox)")
  .option("-e, --env-file <file...>", "env files for runtime.envs (default: .env in the directory)")
  .option("--memory <mb>", "memory in MB (default: blaxel.toml [runtime] memory or memory)")
  .option("--no-wait", "return once the source is uploaded")
  .option("--timeout <seconds>", "give up following after this long", "3600")
  .option("-y, --yes", "no effect (accepted for bl compatibility)")
  .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json"]).default("text"))
  .action(async (o: { directory: string; name?: string; type?: string; envFile?: string[]; memory?: string; wait: boolean; timeout: string; output: "text" | "json" }) => {
    process.exitCode = await deploy(client(), o, progress);
  });

program
  .command("push")
  .description("build an image from a directory's source on the server, without deploying it")
  .option("-d, --directory <dir>", "project directory", ".")
  .option("-n, --name <name>", "image name (blaxel.toml 'name' wins; default: the directory's name)")
  .option("-t, --type <type>", "sandbox | agent | function | job (default: blaxel.toml 'type', else sandbox)")
  .option("--timeout <seconds>", "give up waiting after this long", "3600")
  .option("-y, --yes", "no effect (accepted for bl compatibility)")
  .action(async (o: { directory: string; name?: string; type?: string; timeout: string }) => {
    await push(client(), o, progress);
  });

// ---- exec / logs / connect ---------------------------------------------------------------------
/** The command line of `args`: one argument is a shell line as given, several are quoted words. */
function commandLine(args: string[]): string {
  if (args.length === 1) return args[0]!;
  return args.map(shellQuote).join(" ");
}

program
  .command("exec")
  .description("run a command in a sandbox, streaming its output; exits with its exit code")
  .argument("<name>", "sandbox")
  .argument("<command...>", "command (after --)")
  .option("--workdir <dir>", "working directory inside the sandbox")
  .option("-e, --env <KEY=VALUE...>", "environment variables")
  .option("--timeout <seconds>", "kill the command after this many seconds")
  .action(async (name: string, command: string[], o: { workdir?: string; env?: string[]; timeout?: string }) => {
    const c = client();
    const url = await c.sandboxUrl(name);
    const env = Object.fromEntries((o.env ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
    const body = { command: commandLine(command), waitForCompletion: true, env, ...(o.workdir ? { workingDir: o.workdir } : {}), ...(o.timeout ? { timeout: Number(o.timeout) } : {}) };
    const res = await c.raw("POST", `${url}/process`, body, { accept: "text/event-stream" });
    let exitCode = 0;
    let buf = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const ev = JSON.parse(line) as { type: string; data?: string };
        if (ev.type === "stdout") process.stdout.write(ev.data ?? "");
        else if (ev.type === "stderr") process.stderr.write(ev.data ?? "");
        else if (ev.type === "error") throw new CliError(ev.data ?? "process failed");
        else if (ev.type === "result") {
          const r = JSON.parse(ev.data ?? "{}") as { exitCode?: number; status?: string };
          exitCode = r.exitCode ?? (r.status === "completed" ? 0 : 1);
        }
      }
    }
    process.exitCode = exitCode;
  });

program
  .command("logs")
  .description("print a process's logs, or with --build the build logs of a resource (-f: follow until it ends)")
  .usage("SANDBOX PROCESS [-f] | agent|function NAME [-f] | KIND NAME --build [-f] | job NAME --execution ID [--task N] [-f]")
  .argument("<name>", "sandbox; or a kind: agent | function (the app's output per replica); with --build: sandbox | agent | function | job")
  .argument("<process>", "process name or pid; with --build, the resource name")
  .option("-f, --follow", "stream new output (build logs: until the build is over)")
  .option("--build", "the build logs of a resource deployed from source")
  .option("--since <when>", "with --build: lines since a duration ago (10m, 2h) or a date")
  .option("--execution <id>", "with job NAME: the logs of an execution's tasks")
  .option("--task <index>", "with --execution: one task's logs")
  .action(async (name: string, proc: string, o: { follow?: boolean; build?: boolean; since?: string; execution?: string; task?: string }) => {
    const c = client();
    if (o.build) return buildLogs(c, name, proc, o);
    if (o.execution) return jobLogs(c, proc, o.execution, o);
    const plural = BUILD_KINDS[name.toLowerCase()];
    if (plural === "agents" || plural === "functions") return workloadLogs(c, plural, proc, !!o.follow);
    if (plural && plural !== "sandboxes") throw new CliError(`only build logs (--build) and executions' logs (--execution) are available for ${plural}`);
    const url = await c.sandboxUrl(name);
    if (!o.follow) {
      const res = await c.raw("GET", `${url}/process/${encodeURIComponent(proc)}/logs`);
      const l = (await res.json()) as { stdout?: string; stderr?: string };
      process.stdout.write(l.stdout ?? "");
      process.stderr.write(l.stderr ?? "");
      return;
    }
    const res = await c.raw("GET", `${url}/process/${encodeURIComponent(proc)}/logs/stream`);
    let buf = "";
    const decoder = new TextDecoder();
    const flush = (line: string) => {
      if (line.startsWith("[keepalive]")) return;
      if (line.startsWith("stdout:")) process.stdout.write(`${line.slice(7)}\n`);
      else if (line.startsWith("stderr:")) process.stderr.write(`${line.slice(7)}\n`);
      else process.stdout.write(`${line}\n`);
    };
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        flush(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) flush(buf);
  });

program
  .command("cancel")
  .description("cancel a job execution (running tasks get SIGTERM, then SIGKILL)")
  .argument("<kind>", "execution")
  .argument("<job>")
  .argument("<id>")
  .action(async (kind: string, job: string, id: string) => {
    if (!/^executions?$/i.test(kind)) throw new CliError("usage: hangar cancel execution JOB ID");
    await cancelExecution(client(), job, id);
  });

program
  .command("connect")
  .description("open an interactive terminal in a sandbox")
  .argument("<name>", "sandbox")
  .option("--shell <shell>", "shell to start")
  .action(async (name: string, o: { shell?: string }) => {
    const c = client();
    process.exitCode = await connectTerminal(await c.sandboxUrl(name), c.cfg.apiKey ?? "", c.headers(), o.shell);
  });

// ---- workspaces and keys -----------------------------------------------------------------------
const ws = program.command("workspaces").description("manage workspaces");
ws.command("create")
  .argument("<name>")
  .option("--display-name <text>")
  .action(async (name: string, o: { displayName?: string }) => {
    await client().api("POST", "/workspaces", { name, displayName: o.displayName });
    process.stdout.write(`workspace/${name} created\n`);
  });
ws.command("list").addOption(outputOption()).action(async (o: { output: Output }) => {
  const items = await client().api<{ name: string; displayName?: string; createdAt?: string }[]>("GET", "/workspaces");
  print(items, o.output, () => [["NAME", "DISPLAY NAME", "AGE"], ...items.map((w) => [w.name, w.displayName ?? "", age(w.createdAt)])]);
});
ws.command("delete")
  .argument("<name>")
  .action(async (name: string) => {
    await client().api("DELETE", `/workspaces/${encodeURIComponent(name)}`);
    process.stdout.write(`workspace/${name} deleted\n`);
  });

const keys = program.command("api-keys").description("manage API keys of the selected workspace");
keys
  .command("create")
  .argument("<name>")
  .option("--admin", "may create workspaces and admin keys")
  .option("--expires-in <duration>", "e.g. 30d")
  .option("--grant <workspace...>", "workspaces the key reaches (default: the selected one)")
  .action(async (name: string, o: { admin?: boolean; expiresIn?: string; grant?: string[] }) => {
    const k = await client().api<{ id: string; apiKey: string }>("POST", "/api-keys", { name, admin: o.admin ?? false, expires_in: o.expiresIn, workspaces: o.grant });
    process.stderr.write(`created ${k.id}; the key is shown once:\n`);
    process.stdout.write(`${k.apiKey}\n`);
  });
keys.command("list").addOption(outputOption()).action(async (o: { output: Output }) => {
  const items = await client().api<{ id: string; name: string; prefix: string; admin: boolean; revokedAt: string | null; createdAt: string }[]>("GET", "/api-keys");
  print(items, o.output, () => [["ID", "NAME", "PREFIX", "ADMIN", "REVOKED", "AGE"], ...items.map((k) => [k.id, k.name, k.prefix, String(k.admin), k.revokedAt ? "yes" : "", age(k.createdAt)])]);
});
keys
  .command("revoke")
  .argument("<id>")
  .action(async (id: string) => {
    await client().api("DELETE", `/api-keys/${encodeURIComponent(id)}`);
    process.stdout.write(`api-key/${id} revoked\n`);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CliError) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(e.exitCode);
  }
  // a refusal with a clear message (e.g. data_dir_in_use) needs no stack
  if (e instanceof Error && "status" in e && typeof (e as { status: unknown }).status === "number" && (e as { status: number }).status < 500) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`error: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
