#!/usr/bin/env node
// `hangar`: start the server, and drive it from a terminal.

import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { parseAllDocuments, stringify } from "yaml";
import { CliError, HangarClient, resolveClientConfig, writeConfigFile } from "./client.js";
import { BUILD_KINDS, buildLogs, deploy, push } from "./deploy.js";
import { connectTerminal } from "./terminal.js";
import { cancelExecution, getExecutions, getJobs, jobLogs, runJob } from "./jobs.js";

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

function age(iso: string | undefined): string {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172_800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86_400)}d`;
}

type SandboxJson = { metadata: { name: string; createdAt?: string; labels?: Record<string, string> }; spec: { runtime?: { image?: string; memory?: number } }; status?: string; state?: string };

/** Singular of each plural kind, for messages such as "sandbox/x deleted". */
const SINGULAR: Record<string, string> = { sandboxes: "sandbox", workspaces: "workspace", "api-keys": "api-key" };

const KINDS: Record<string, string> = { sandbox: "sandboxes", sandboxes: "sandboxes", sbx: "sandboxes", workspace: "workspaces", workspaces: "workspaces", "api-key": "api-keys", "api-keys": "api-keys", apikeys: "api-keys" };

function kindOf(k: string): string {
  const kind = KINDS[k.toLowerCase()];
  if (!kind) throw new CliError(`unknown kind '${k}'; use one of: sandboxes, workspaces, api-keys`);
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
  .description("list resources, or show one")
  .argument("<kind>", "sandboxes | workspaces | api-keys | jobs | executions JOB")
  .argument("[name]")
  .argument("[execution]", "with executions: one execution of the job")
  .addOption(outputOption())
  .action(async (k: string, name: string | undefined, execution: string | undefined, o: { output: Output }) => {
    const c = client();
    if (/^jobs?$/i.test(k)) return getJobs(c, name, o.output, print, age);
    if (/^executions?$/i.test(k)) return getExecutions(c, name, execution, o.output, print, age);
    const kind = kindOf(k);
    if (kind === "sandboxes") {
      let items: SandboxJson[];
      if (name) items = [await c.api<SandboxJson>("GET", `/sandboxes/${encodeURIComponent(name)}`)];
      else {
        items = [];
        let cursor = "";
        do {
          const page = await c.api<{ data: SandboxJson[]; meta: { nextCursor?: string } }>("GET", `/sandboxes?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
          items.push(...page.data);
          cursor = page.meta.nextCursor ?? "";
        } while (cursor);
      }
      print(name ? items[0] : items, o.output, () => [
        ["NAME", "STATUS", "STATE", "IMAGE", "MEMORY", "AGE"],
        ...items.map((s) => [s.metadata.name, s.status ?? "", s.state ?? "", s.spec.runtime?.image ?? "", `${s.spec.runtime?.memory ?? ""}MB`, age(s.metadata.createdAt)]),
      ]);
    } else if (kind === "workspaces") {
      const items = await c.api<{ name: string; displayName?: string; createdAt?: string }[]>("GET", name ? `/workspaces/${encodeURIComponent(name)}` : "/workspaces").then((v) => (Array.isArray(v) ? v : [v]));
      print(name ? items[0] : items, o.output, () => [["NAME", "DISPLAY NAME", "AGE"], ...items.map((w) => [w.name, w.displayName ?? "", age(w.createdAt)])]);
    } else {
      const items = await c.api<{ id: string; name: string; prefix: string; admin: boolean; revokedAt: string | null; createdAt: string }[]>("GET", "/api-keys");
      print(items, o.output, () => [["ID", "NAME", "PREFIX", "ADMIN", "REVOKED", "AGE"], ...items.map((k) => [k.id, k.name, k.prefix, String(k.admin), k.revokedAt ? "yes" : "", age(k.createdAt)])]);
    }
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
      if (m.kind.toLowerCase() !== "sandbox") throw new CliError(`kind '${m.kind}' is not supported yet; supported: Sandbox`);
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
function shellQuote(args: string[]): string {
  if (args.length === 1) return args[0]!;
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
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
    const body = { command: shellQuote(command), waitForCompletion: true, env, ...(o.workdir ? { workingDir: o.workdir } : {}), ...(o.timeout ? { timeout: Number(o.timeout) } : {}) };
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
  .usage("SANDBOX PROCESS [-f] | KIND NAME --build [-f]")
  .argument("<name>", "sandbox; with --build, a kind: sandbox | agent | function | job")
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
    if (BUILD_KINDS[name.toLowerCase()] && BUILD_KINDS[name.toLowerCase()] !== "sandboxes") throw new CliError(`only build logs are available for ${BUILD_KINDS[name.toLowerCase()]}: add --build`);
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
  .command("run")
  .description("start an execution of a job: -f batch.json ({\"tasks\": [...]} or an array of tasks)")
  .argument("<kind>", "job")
  .argument("<name>")
  .option("-f, --file <path>", "the batch file ('-': stdin)")
  .option("-d, --data <json>", "the batch inline")
  .option("-e, --env <KEY=VALUE...>", "environment overrides of this execution")
  .option("--memory <mb>", "memory override (at most the job's)")
  .option("-w, --wait", "wait for the end, with a progress bar of tasks done and failed")
  .action(async (kind: string, name: string, o: { file?: string; data?: string; wait?: boolean; env?: string[]; memory?: string }) => {
    if (!/^jobs?$/i.test(kind)) throw new CliError("only jobs run this way: hangar run job NAME -f batch.json");
    await runJob(client(), name, o);
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
