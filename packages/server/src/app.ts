// Composition root: builds every plane of one `hangar serve` process and wires them together.

import { resolveTxt } from "node:dns/promises";
import { mkdirSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { type Server, createServer, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, LogController } from "fastify";
import { HangarError, type Logger, createLogger, sendProblem, shellQuote } from "@hangar/common";
import {
  ApiKeyService,
  AuthService,
  ExpiryReaper,
  type NodeSandboxSpec,
  PreviewService,
  SandboxService,
  WorkspaceService,
  controlPlanePlugin,
} from "@hangar/control-plane";
import { BuildahBuilder, BuildService, type BuildTarget } from "@hangar/builds";
import { HubImages, hubRoutes, withHubServices } from "@hangar/hub";
import { Edge, EdgeUrls, FrontDoor, PreviewPortListeners, previewPortOf } from "@hangar/edge";
import { AsyncCallService, CallbackSender, ReplacementService, type ReplicaPort, WorkloadRouter, WorkloadService, invokeRoutes, isCodeModeImage, workloadRoutes } from "@hangar/workloads";
import { JobScheduler, JobService, SandboxScheduleService, StoreTaskQueue, type TaskPort, jobRoutes, scheduleRoutes } from "@hangar/jobs";
import { LocalNode } from "@hangar/node";
import { Accountant, ConnectionTokens, FunctionConnections, GatewayService, ModelGateway, gatewayRoutes, parsePlacement } from "@hangar/gateway";
import { RunPlaneMcpBridges, bridgeBundlePath, builtinServerBundlePath } from "@hangar/mcp-bridge";
import { EXECUTE_SANDBOX_LABEL, codeModeBundlePath, isExecuteSandboxOf } from "@hangar/code-mode";
import { SnapshotService, snapshotRoutes } from "@hangar/snapshots";
import { DEFAULT_SANDBOX_CIDR, DEFAULT_USERNS, LinuxDriver, type LocalImageStore, hasApiRelay } from "@hangar/runtime";
import { DriveMounts, LocalDriveBackend, StorageService, VolumeHost, nodeStorage, storageRoutes, templateUploadRoute } from "@hangar/storage";
import { SandboxServices, createSandboxApi } from "@hangar/sandbox-api";
import { SecretBox, type Store, type WorkspaceRecord, openSqliteStore } from "@hangar/store";
import { bootstrap } from "./bootstrap.js";
import type { HangarConfig } from "./config.js";
import { hostCallbackGuard } from "./callback-guard.js";
import { type DataDirLock, lockDataDir } from "./data-dir-lock.js";
import { createDriver, createImageStore } from "./driver.js";
import { startEgress } from "./egress.js";
import { installProblemHandling, installValidation } from "./http.js";
import { InSandboxApi } from "./in-sandbox-api.js";
import { AgentUpgrades } from "./agent-upgrades.js";
import { VERSION } from "./version.js";

export interface Hangar {
  readonly config: HangarConfig;
  readonly app: FastifyInstance;
  readonly server: Server;
  readonly store: Store;
  readonly node: LocalNode<SandboxServices>;
  readonly logger: Logger;
  /** The admin key if this start created it (shown once). */
  readonly createdAdminKey: string | null;
  readonly adminKeyFile: string;
  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number>;
  /** Stops serving; sandboxes keep running and are adopted by the next start. */
  close(): Promise<void>;
}

export async function createHangar(config: HangarConfig, logger: Logger = createLogger(config.logLevel)): Promise<Hangar> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // before anything touches the host: one server per data dir
  const lock = lockDataDir(config.dataDir);
  try {
    return await createLocked(config, logger, lock);
  } catch (e) {
    lock.release();
    throw e;
  }
}

async function createLocked(config: HangarConfig, logger: Logger, lock: DataDirLock): Promise<Hangar> {
  const startedAt = Date.now();
  const store = await openSqliteStore(config.dataDir);
  const secrets = SecretBox.open(config.dataDir);

  // the egress proxy first: the driver's firewall redirects policed sandboxes to its port
  const egress = config.runtime === "linux" ? await startEgress(config, logger) : null;
  const images = createImageStore(config, logger);
  const driver = await createDriver(config, logger, egress ? { port: egress.port, caPem: egress.trustPem } : undefined, images);
  await driver.preflight();
  if (config.runtimeClass === "gvisor" && driver instanceof LinuxDriver && !driver.gvisor) {
    logger.warn("HANGAR_RUNTIME_CLASS=gvisor but runsc is not installed (Debian package runsc): creating a sandbox will fail with 503 until it is");
  }
  const sandboxApi = createSandboxApi({ logger });
  // the host end of each sandbox's localhost:8080 relay (set once the node exists)
  let inSandbox: InSandboxApi | null = null;
  let agentUpgrades: AgentUpgrades | null = null;
  const checkCallback = hostCallbackGuard(config.sandboxCidr ?? DEFAULT_SANDBOX_CIDR);
  // volumes (ext4 images on loop devices, mounted under the run dir) and drives (directories)
  const storage =
    driver instanceof LinuxDriver
      ? new StorageService({
          store,
          volumes: new VolumeHost({ imagesDir: join(config.dataDir, "volumes"), mountDir: join(driver.runDir, "volumes"), rootUid: DEFAULT_USERNS.hostId }),
          drives: new LocalDriveBackend(join(config.dataDir, "drives")),
          templatesDir: join(config.dataDir, "volume-templates"),
          rootUid: DEFAULT_USERNS.hostId,
          defaultRegion: config.regions?.[0] ?? "local",
          logger: logger.child({ component: "storage" }),
        })
      : null;
  const node: LocalNode<SandboxServices> = new LocalNode<SandboxServices>({
    driver,
    logger,
    standby: { idleMs: config.standbyIdleMs, connectionIdleMs: config.connectionIdleMs, checkpointAfterMs: config.checkpointAfterMs, memoryLowBytes: config.memoryLowBytes },
    ...(egress ? { egress: egress.proxy } : {}),
    // zero data retention: a destroyed sandbox's process logs go with it
    removeData: async (id) => {
      await inSandbox?.close(id);
      agentUpgrades?.forget(id);
      await rm(join(config.dataDir, "logs", id), { recursive: true, force: true });
    },
    ...(storage ? { storage: nodeStorage(storage) } : {}),
    createServices: (handle, spec) => {
      // its api.sock, where the agent relays localhost:8080 (no relay: nothing to serve)
      if (hasApiRelay(spec)) inSandbox?.open(spec.id);
      const agentUpgrade = agentUpgrades?.port(spec.id);
      return new SandboxServices({
        id: spec.id,
        name: spec.name,
        agent: handle.agent,
        image: handle.image,
        env: handle.env,
        logDir: join(config.dataDir, "logs", spec.id),
        logger: logger.child({ sandbox: spec.name }),
        checkCallback,
        ...(storage ? { drives: new DriveMounts(storage, node, { id: spec.id, workspace: spec.workspace }) } : {}),
        ...(agentUpgrade ? { agentUpgrade } : {}),
      });
    },
  });
  agentUpgrades = new AgentUpgrades(node, logger.child({ component: "agent-upgrades" }));
  if (driver instanceof LinuxDriver) {
    inSandbox = new InSandboxApi({ node, api: sandboxApi, agentDir: (id) => driver.agentDir(id), rootUid: (id) => driver.sandboxRootUid(id), logger: logger.child({ component: "in-sandbox-api" }) });
  }

  const auth = new AuthService(store);
  const apiKeys = new ApiKeyService(store, () => auth.invalidate());
  const workspaces = new WorkspaceService(store, () => auth.invalidate());
  // the builder (builds from source, hub images on first use) and the sandbox hub's images
  const builder = driver instanceof LinuxDriver ? createBuilder(config, logger, driver, images) : null;
  const hub = builder ? new HubImages({ images, builder, stagingDir: join(config.buildDir, "tmp"), logger: logger.child({ component: "hub" }) }) : null;
  if (hub) images.setProvider(hub);
  const sandboxes = new SandboxService({ store, node: hub ? withHubServices(node, (id) => node.get(id), logger.child({ component: "hub" })) : node, secrets, logger, defaultRuntimeClass: config.runtimeClass, regions: config.regions, ...(storage ? { checkVolumes: (ws, v, name) => storage.checkVolumes(ws, v, name) } : {}) });
  // port mode (no preview domain): each app preview is served on a host port of its own
  const previewPorts = config.previewDomain ? undefined : new PreviewPortListeners({ host: config.host, range: config.previewPorts, listPorts: () => store.previews.listHostPorts(), logger });
  const previews = new PreviewService(store, secrets, previewPorts);
  // the model gateway: connections, models, policies; its run plane caches forget on every change
  let modelGateway: ModelGateway | null = null;
  const gateway = new GatewayService({ store, secrets, placement: parsePlacement(config.nodeLocation, config.nodeFlavors), onChange: () => modelGateway?.invalidate() });
  const accountant = new Accountant(store, logger.child({ component: "gateway" }));
  modelGateway = new ModelGateway({ store, auth, service: gateway, accountant, logger: logger.child({ component: "gateway" }), timeoutMs: config.modelTimeoutMs });

  // integration connections of functions: access tokens refreshed from the connections' refresh tokens, injected by the egress proxy
  const connectionTokens = new ConnectionTokens({ store, secrets, overrides: config.integrationEndpoints, logger: logger.child({ component: "connections" }) });
  const functionConnections = new FunctionConnections({ store, tokens: connectionTokens });
  const workloads = new WorkloadService({ onDeleted: (ws, kind, name) => (kind === "functions" ? deleteExecuteSandboxes(sandboxes, ws, name) : Promise.resolve()), connections: functionConnections, checkPlacement: (workspaceId, policies) => gateway.placementProblem(workspaceId, policies), store, replicas: replicaPort(node), secrets, checkCallback, keys: apiKeys, region: config.regions[0]!, targetConcurrency: config.scaleConcurrency, scaleDownIdleMs: config.scaleDownIdleMs, logger: logger.child({ component: "workloads" }) });
  const asyncCalls = new AsyncCallService({ store, workloads, replicas: replicaPort(node), callbacks: new CallbackSender({ checkTarget: checkCallback, logger }), logger: logger.child({ component: "async-calls" }) });
  const replacements = new ReplacementService({ store, workloads, logger: logger.child({ component: "replacements" }) });
  const snapshots = new SnapshotService({ store, sandboxes, node, secrets, dir: join(config.dataDir, "snapshots"), logger: logger.child({ component: "snapshots" }) });
  const jobQueue = new StoreTaskQueue(store);
  const jobs = new JobService({
    store,
    tasks: taskPort(node),
    secrets,
    queue: jobQueue,
    logger: logger.child({ component: "jobs" }),
    nodeCap: config.jobsMaxTasks,
    credentials: {
      issue: async (workspaceId, name) => {
        const k = await apiKeys.create({ name, workspaceIds: [workspaceId] });
        return { id: k.record.id, key: k.key };
      },
      revoke: async (id) => {
        await store.apiKeys.revoke(id, new Date().toISOString());
        auth.invalidate();
      },
    },
  });
  // sandbox schedules start processes in sandboxes (woken if parked) on the jobs scheduler's tick
  const sandboxSchedules = new SandboxScheduleService({
    store,
    secrets,
    logger: logger.child({ component: "schedules" }),
    sandboxes: {
      exists: async (workspaceId, name) => {
        const rec = await store.sandboxes.get(workspaceId, name);
        return !!rec && rec.status !== "DELETING" && !rec.terminatedAt;
      },
      exec: async (workspaceId, name, input) => {
        const rec = await store.sandboxes.get(workspaceId, name);
        if (!rec || rec.status === "DELETING" || rec.terminatedAt || !node.has(rec.id)) throw new HangarError("sandbox_not_found", `sandbox '${name}' is not running`);
        const lease = await node.acquire(rec.id);
        try {
          await lease.live.services.ready;
          await lease.live.services.processes.exec(input);
        } finally {
          lease.release();
        }
      },
    },
  });
  const scheduler = new JobScheduler({ store, jobs, queue: jobQueue, sandboxSchedules, logger: logger.child({ component: "jobs" }) });
  jobs.setScheduler(scheduler);
  const builds = builder ? createBuilds(config, logger, store, builder, images, node, sandboxes, workloads, jobs) : null;
  const boot = await bootstrap({ store, workspaces, apiKeys, dataDir: config.dataDir, bootstrapKey: config.bootstrapApiKey, logger });

  const urls = new EdgeUrls({ previewDomain: config.previewDomain, sandboxDomain: config.sandboxDomain });
  const selfHosts = [config.host, ...(config.publicUrl ? [new URL(config.publicUrl).hostname] : [])];
  // functions' MCP clients speaking another transport than the function's server are bridged here
  const mcpBridges = new RunPlaneMcpBridges({ log: (m) => logger.debug({ component: "mcp-bridge" }, m) });
  const edge = new Edge({ runIdleMs: config.runIdleMs, auth, sandboxes, previews, store, node, api: sandboxApi, urls, selfHosts, logger, mcp: mcpBridges, workloads: new WorkloadRouter({ store, auth, workloads, asyncCalls }), models: modelGateway });

  // Activity keeps lastUsedAt (and so ttl-idle expiry) current; written at most every 5 s per sandbox.
  const touched = new Map<string, number>();
  node.on("activity", (id, at) => {
    if (at - (touched.get(id) ?? 0) < 5_000) return;
    touched.set(id, at);
    void sandboxes.touch(id, new Date(at)).catch(() => undefined);
  });
  node.on("recovered", (id, message) => void sandboxes.recordEvent(id, "RECOVERED", message).catch((e) => logger.warn({ err: e, id }, "recording a recovery event failed")));
  const reaper = new ExpiryReaper({ store, node, lastActivity: (id) => node.lastActivity(id), logger });
  let server!: Server;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    // The edge sees every request first; what it does not route goes to Fastify.
    serverFactory: (handler) => {
      const handle = (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => {
        if (previewPortOf(req.socket) === undefined) runPlaneJobs(req);
        edge.handle(req, res, () => handler(req, res));
      };
      server = createServer(handle);
      server.on("upgrade", (req, socket, head) =>
        edge.handleUpgrade(req, socket, head, () => socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")),
      );
      return server;
    },
  });
  installValidation(app);
  installProblemHandling(app, logger);
  await app.register(swagger, {
    openapi: {
      info: { title: "Hangar", version: VERSION, description: "Self-hostable agent infrastructure; speaks Blaxel's public API." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });

  // URLs handed to clients are built on the public URL, else on the address the client used.
  const baseUrl = (req: FastifyRequest) => new URL(config.publicUrl ?? `${req.protocol}://${req.headers.host ?? `${config.host}:${config.port}`}`);
  /** Where a source upload goes: the token is the URL's only credential. */
  const uploadUrl = (req: FastifyRequest, token: string) => new URL(`/upload/${token}`, baseUrl(req)).href;
  await app.register(controlPlanePlugin, {
    prefix: "/v0",
    store,
    auth,
    apiKeys,
    workspaces,
    sandboxes,
    previews,
    node,
    sandboxUrl: (req, ws, name) => urls.sandboxUrl(baseUrl(req), ws, name),
    previewUrl: (req, p) => urls.previewUrl(baseUrl(req), p),
    lookupTxt: (host) => resolveTxt(host),
    ...(builds ? { builds: { port: builds, uploadUrl, taskLogs: (ws, job, id, task) => jobs.logLines(ws, job, id, task) } } : {}),
    extraRoutes: [
      hubRoutes({ hashOf: (name) => (hub ? hub.contentHash(name) : Promise.resolve("")), ensure: (image, onProgress) => node.ensureImage(image, onProgress) }),
      ...(storage ? [storageRoutes({ storage, uploadLimitBytes: config.uploadLimitBytes, uploadUrl: (req, token) => new URL(`/upload/volume-templates/${token}`, baseUrl(req)).href })] : []),
      workloadRoutes({
        workloads,
        kinds: ["agents", "functions"],
        url: (req, ws, kind, name) => new URL(`/run/${encodeURIComponent(ws.name)}/${kind}/${encodeURIComponent(name)}`, baseUrl(req)).href,
        ...(builds ? { upload: async (req, ws, kind, name) => uploadUrl(req, (await builds.createUpload(ws, kind, name)).token) } : {}),
      }),
      gatewayRoutes({
        service: gateway,
        accountant,
        modelUrl: (req, ws, name) => new URL(`/run/${encodeURIComponent(ws.name)}/models/${encodeURIComponent(name)}`, baseUrl(req)).href,
        listProviderModels: listProviderModels,
      }),
      snapshotRoutes({ snapshots, sandboxUrl: (req, ws, name) => urls.sandboxUrl(baseUrl(req), ws, name), state: (id) => node.state(id) }),
      jobRoutes({
        jobs,
        url: (req, ws, name) => new URL(`/run/${encodeURIComponent(ws.name)}/jobs/${encodeURIComponent(name)}`, baseUrl(req)).href,
        ...(builds ? { upload: async (req, ws, name) => uploadUrl(req, (await builds.createUpload(ws, "jobs", name)).token) } : {}),
      }),
      scheduleRoutes(sandboxSchedules),
    ],
  });

  // The upload URL is its own credential (single use, expiring): no Blaxel auth headers.
  if (builds) {
    await app.register(async (up) => {
      up.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
      up.put<{ Params: { token: string } }>("/upload/:token", { schema: { hide: true } }, async (req) => {
        await builds.receiveUpload(req.params.token, req.body as import("node:stream").Readable);
        return { message: "upload received; the build starts" };
      });
    });
  }

  if (storage) await app.register(templateUploadRoute(storage, config.uploadLimitBytes));
  // the Workload API beside the stable invoke URL (/api/v2/endpoints/workloads/{id}, served by the edge)
  await app.register(invokeRoutes({ store, auth, replacements, baseUrl }), { prefix: "/api/v2" });
  // A job execution's data URL (BL_EXECUTION_DATA_URL): the token is its only credential; it dies with the execution.
  app.get<{ Params: { token: string } }>("/jobs-data/:token", { schema: { hide: true } }, async (req) => {
    const data = await jobs.dataFor(req.params.token);
    if (!data) throw new HangarError("not_found", "no such execution data (the execution ended or never existed)");
    return data;
  });

  app.get("/health", { schema: { summary: "Liveness and version", tags: ["system"] } }, async () => ({
    status: "ok",
    version: VERSION,
    runtime: driver.name,
    isolated: driver.capabilities.isolated,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
  }));
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  // Captures and archives a dead server left mid-way are failed or settled before adoption reads the records.
  const recovered = await snapshots.recover();
  if (recovered.failed || recovered.archives) logger.info(recovered, "snapshots and archives left mid-way settled");
  // Re-adopt the sandboxes this node held before a restart or crash.
  const wsNames = new Map((await store.workspaces.list()).map((w) => [w.id, w]));
  const records = await store.sandboxes.listAll();
  const adoptable: NodeSandboxSpec[] = [];
  for (const rec of records) {
    const ws = wsNames.get(rec.workspaceId);
    if (!ws) continue;
    if (rec.status === "DEPLOYED") adoptable.push(sandboxes.nodeSpec(rec, ws));
    // rebuilding from source, or failed to: what it ran before still runs (if anything does)
    else if ((rec.status === "UPLOADING" || rec.status === "BUILDING" || rec.status === "FAILED") && (await driver.state(rec.id)) !== "missing") adoptable.push(sandboxes.nodeSpec(rec, ws));
    else if (rec.status === "DELETING") void sandboxes.purge(rec).catch((e) => logger.error({ err: e }, "resuming deletion failed"));
    else if (rec.status === "DEPLOYING") {
      // The server died mid-creation: the half-made sandbox is removed and marked failed.
      await node.destroy(rec.id).catch(() => undefined);
      await store.sandboxes.update(rec.id, { status: "FAILED", events: [...rec.events, { type: "deployment", status: "FAILED", message: "server restarted during creation", time: new Date().toISOString() }] });
    }
  }
  // agents' replicas are node sandboxes too
  adoptable.push(...(await workloads.nodeSpecs()));
  // and job tasks' sandboxes
  adoptable.push(...(await jobs.nodeSpecs()).map((t) => ({ ...t, platform: true })));
  const adoption = await node.adoptAll(adoptable);
  // volumes: half-made ones removed, claims of sandboxes that are gone released
  if (storage) {
    const r = await storage.recover(new Set(adoptable.filter((s) => node.has(s.id)).map((s) => s.id))).catch((e: unknown) => {
      logger.warn({ err: e }, "recovering volumes failed");
      return { removed: [], released: [] };
    });
    if (r.removed.length || r.released.length) logger.info(r, "volumes recovered");
  }
  await workloads.restarted(adoption.restarted);
  await workloads.resume();
  if (adoptable.length) logger.info({ adopted: adoption.adopted.length, restarted: adoption.restarted.length, removed: adoption.removed.length }, "sandboxes adopted");

  await app.ready();
  reaper.start();
  accountant.start();
  snapshots.start();
  // the data dir lock says no other server uses this store: builds it left mid-way resume now
  if (builds && (await builds.releaseOrphans())) logger.info("resuming builds a previous server left unfinished");
  builds?.start();
  workloads.start();
  replacements.start();
  if (await asyncCalls.releaseOrphans()) logger.info("resuming async agent calls a previous server left unfinished");
  asyncCalls.start();
  // the data dir lock says this process holds the node alone: it takes over every running task
  await jobs.start(true);
  scheduler.start();
  // Connections arrive at the front door, which splices plain preview traffic and hands the rest
  // to the HTTP server above.
  const front = new FrontDoor(server, (head, raw, current) => edge.decideSplice(head, raw, current), logger);
  previewPorts?.attach(front);
  // the platform endpoint: workloads' SDK reaches the API and the run plane at their gateway
  // (workloads only: a user's sandbox still reaches nothing of the host)
  const isWorkload = (id: string) => node.has(id) && node.get(id).spec.platform === true;
  egress?.proxy.setPlatform({
    request: (req, res, id) => (isWorkload(id) ? server.emit("request", req, res) : sendProblem(res, new HangarError("forbidden", "only workloads reach the platform endpoint"))),
    upgrade: (req, socket, head, id) => (isWorkload(id) ? server.emit("upgrade", req, socket, head) : socket.destroy()),
  });

  return {
    config,
    app,
    server,
    store,
    node,
    logger,
    createdAdminKey: boot.createdKey,
    adminKeyFile: boot.keyFile,
    async listen() {
      const port = await front.listen(config.port, config.host);
      await previewPorts?.start();
      return port;
    },
    async close() {
      await reaper.stop();
      workloads.close();
      replacements.close();
      asyncCalls.close();
      snapshots.stop();
      await jobs.close();
      await builds?.close();
      previewPorts?.stop();
      await front.close();
      await mcpBridges.close();
      await inSandbox?.closeAll();
      await app.close().catch(() => undefined);
      await modelGateway?.close();
      await accountant.close();
      await node.close();
      await egress?.proxy.close();
      await store.close();
      lock.release();
    },
  };
}

/** The builder: buildah as the build user, on this node's sandbox network and image store. */
function createBuilder(config: HangarConfig, logger: Logger, driver: LinuxDriver, images: LocalImageStore): BuildahBuilder {
  return new BuildahBuilder({
    root: config.buildDir,
    images,
    network: driver.network,
    logger: logger.child({ component: "builds" }),
    cgroupParent: `${config.cgroupParent ?? "hangar"}-builds`,
    limits: { timeoutMs: config.buildTimeoutMs },
  });
}

/** Builds from source with `builder`. */
function createBuilds(
  config: HangarConfig,
  logger: Logger,
  store: Store,
  builder: BuildahBuilder,
  images: LocalImageStore,
  node: LocalNode<SandboxServices>,
  sandboxes: SandboxService,
  workloads: WorkloadService,
  jobs: JobService,
): BuildService {
  const log = logger.child({ component: "builds" });
  // the sandbox a build is for, by name
  const sandboxOf = async (b: { workspaceId: string; resourceName: string }) => store.sandboxes.get(b.workspaceId, b.resourceName);
  const sandboxTarget: BuildTarget = {
    building: async (b) => {
      const rec = await sandboxOf(b);
      if (rec) await sandboxes.buildStarted(rec.id);
    },
    deploy: async (b, out) => {
      const rec = await sandboxOf(b);
      if (!rec) return;
      await sandboxes.deployBuilt(rec.id, out.ref);
      // the image's own command runs as process "app" (not Blaxel's sandbox-api: Hangar serves that)
      const cmd = out.config.command;
      if (cmd?.length && !cmd[0]!.endsWith("/sandbox-api")) {
        await startApp(node.get(rec.id), cmd).catch((e) => log.warn({ err: e, sandbox: rec.name }, "starting the image's command failed"));
      }
    },
    failed: async (b, message) => {
      const rec = await sandboxOf(b);
      if (rec) await sandboxes.buildFailed(rec.id, message);
    },
  };
  return new BuildService({
    store,
    builder,
    dir: join(config.dataDir, "builds"),
    stagingDir: join(config.buildDir, "tmp"),
    logger: log,
    targets: {
      sandboxes: sandboxTarget,
      // agents and functions: the built image becomes a new revision
      agents: workloadTarget(workloads, "agents"),
      functions: {
        ...workloadTarget(workloads, "functions"),
        // a code-mode function's upload is its files (e.g. the OpenAPI document), run by code mode
        planOptions: async (b) => ({ codeMode: isCodeModeImage(String(((await store.workloads.get(b.workspaceId, "functions", b.resourceName))?.spec as { runtime?: { image?: string } } | undefined)?.runtime?.image ?? "")) }),
      },
      // jobs: the built image becomes the job's new revision
      jobs: {
        building: (b) => jobs.setBuildStatus(b.workspaceId, b.resourceName, "BUILDING", "building the image from source"),
        deploy: (b, out) => jobs.deployImage(b.workspaceId, b.resourceName, out.ref),
        failed: (b, message) => jobs.setBuildStatus(b.workspaceId, b.resourceName, "FAILED", `build failed: ${message}`),
      },
    },
    images,
    imagesInUse: async () =>
      new Set([
        // (a sandbox being deleted keeps its mounted lower until it ends, so its image may go)
        ...(await store.sandboxes.listAll()).filter((r) => r.status !== "DELETING" && !r.terminatedAt).map((r) => String((r.spec as { runtime?: { image?: string } }).runtime?.image ?? "")),
        ...(await workloads.imagesInUse()),
        ...(await jobs.imagesInUse()),
        ...(await store.snapshots.images()),
      ]),
    cacheLimitBytes: config.buildCacheLimitBytes,
    concurrency: config.buildConcurrency,
    uploadLimitBytes: config.uploadLimitBytes,
  });
}

/** What a build does for a workload of `kind`: its status while building, its image as a new revision. */
function workloadTarget(workloads: WorkloadService, kind: string): BuildTarget {
  return {
    building: (b) => workloads.setBuildStatus(b.workspaceId, kind, b.resourceName, "BUILDING", "building the image from source"),
    deploy: (b, out) => workloads.deployImage(b.workspaceId, kind, b.resourceName, out.ref),
    failed: (b, message) => workloads.setBuildStatus(b.workspaceId, kind, b.resourceName, "FAILED", `build failed: ${message}`),
  };
}

/** Starts an image's command (ENTRYPOINT then CMD) as the sandbox's process "app". */
function startApp(live: { services: SandboxServices }, command: string[], restartOnFailure = false): Promise<unknown> {
  return live.services.processes.exec({ name: "app", command: command.map(shellQuote).join(" "), ...(restartOnFailure ? { restartOnFailure, maxRestarts: -1 } : {}) });
}

/** What an async call's answer keeps (the rest is counted in response_length only by Blaxel too). */
const ASYNC_RESULT_MAX = 10 * 1024 * 1024;

/** Where a stdio function's replica gets Hangar's MCP bridge (one bundled file, written at start). */
const MCP_BRIDGE_PATH = "/tmp/.hangar/mcp-bridge.cjs";
let bridgeBytes: Promise<Buffer> | null = null;
const mcpBridgeBundle = () => (bridgeBytes ??= readFile(bridgeBundlePath()));

/** Where a code-mode function's replica gets Hangar's code-mode server (one bundled file, written at start). */
const CODE_MODE_PATH = "/tmp/.hangar/code-mode.cjs";
let codeModeBytes: Promise<Buffer> | null = null;
const codeModeBundle = () => (codeModeBytes ??= readFile(codeModeBundlePath()));

/** Replicas of agents run as node sandboxes with the image's command as process "app". */
function replicaPort(node: LocalNode<SandboxServices>): ReplicaPort {
  return {
    nodeName: node.nodeName,
    start: (spec) => node.start(spec),
    destroy: (id) => node.destroy(id),
    has: (id) => node.has(id),
    lastActivity: (id) => node.lastActivity(id),
    async setNetwork(id, network) {
      if (!node.has(id)) return;
      const { network: _old, ...spec } = node.get(id).spec;
      await node.updateNetwork(network ? { ...spec, network } : spec);
    },
    async startApp(id, opts) {
      const live = node.get(id);
      if (opts?.builtin) {
        // Hangar's built-in MCP server of an integration (the image gives node); a crash restarts it in place
        const path = `/tmp/.hangar/${opts.builtin}-mcp.cjs`;
        await live.services.files.writeFile(path, await readFile(builtinServerBundlePath(opts.builtin)));
        await live.services.processes.exec({ name: "app", command: `exec node ${path}`, restartOnFailure: true, maxRestarts: -1 });
        return;
      }
      if (opts?.codeMode) {
        // image blaxel/code-mode: the base image's node runs Hangar's code-mode MCP server on $PORT
        await live.services.files.writeFile(CODE_MODE_PATH, await codeModeBundle());
        return void (await live.services.processes.exec({ name: "app", command: `exec node ${CODE_MODE_PATH}`, restartOnFailure: true, maxRestarts: -1 }));
      }
      const cmd = live.handle.image.command;
      if (!cmd?.length) throw new HangarError("validation_failed", "the image names no command (CMD or ENTRYPOINT) to run the agent's server");
      // an image built from a code-mode function's files runs code mode
      if (cmd.includes(CODE_MODE_PATH)) await live.services.files.writeFile(CODE_MODE_PATH, await codeModeBundle());
      // a crash restarts it in place (the replica is replaced, its sandbox kept)
      if (!opts?.mcpStdio) return void (await startApp(live, cmd, true));
      // a stdio MCP server: Hangar's bridge (run by the image's node) serves it on $PORT
      await live.services.files.writeFile(MCP_BRIDGE_PATH, await mcpBridgeBundle());
      const bridge = `command -v node >/dev/null || { echo "a stdio function needs node (18+) in its image to run Hangar's MCP bridge" >&2; exit 127; }; exec node ${MCP_BRIDGE_PATH} ${cmd.map(shellQuote).join(" ")}`;
      await live.services.processes.exec({ name: "app", command: bridge, restartOnFailure: true, maxRestarts: -1 });
    },
    appLogs(id) {
      const app = node.has(id) ? node.get(id).services.processes.find("app") : undefined;
      return app ? app.logs : null;
    },
    async request(id, port, call, timeoutMs) {
      const lease = await node.acquire(id, "request");
      try {
        return await new Promise<{ statusCode: number; body: string }>((resolve) => {
          const up = httpRequest(
            { host: node.get(id).handle.address, port, method: call.method, path: call.path, headers: { ...call.headers, "content-length": String(call.body.length) }, timeout: timeoutMs },
            (res) => {
              const got: Buffer[] = [];
              let size = 0;
              res.on("data", (d: Buffer) => {
                lease.touch();
                if (size < ASYNC_RESULT_MAX) got.push(d);
                size += d.length;
              });
              res.on("end", () => resolve({ statusCode: res.statusCode ?? 502, body: Buffer.concat(got).toString("utf8").slice(0, ASYNC_RESULT_MAX) }));
              res.on("error", () => resolve({ statusCode: 502, body: "" }));
            },
          );
          up.on("timeout", () => up.destroy(new Error("timeout")));
          up.on("error", (e) => resolve({ statusCode: /timeout/.test(e.message) ? 504 : 502, body: JSON.stringify({ error: `the agent did not answer: ${e.message}` }) }));
          up.end(call.body);
        });
      } finally {
        lease.release();
      }
    },
    async waitListening(id, port, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      // the replica stays awake while its app starts (a short standby idle would park it mid-boot)
      const lease = await node.acquire(id, "request");
      try {
        for (;;) {
          lease.touch();
          const live = node.get(id);
          if (await canConnect(live.handle.address, port)) return;
          const app = live.services.processes.find("app");
          // dying before it ever listened is a failed deployment, not something to restart forever
          if (app && (!app.running || app.restartCount > 0)) {
            const tail = app.logs.tail();
            throw new HangarError("validation_failed", `the app exited (code ${app.exitCode}) before listening on port ${port}: ${(tail.logs || "").slice(-500)}`);
          }
          if (Date.now() > deadline) throw new HangarError("upstream_timeout", `nothing listened on port ${port} within ${Math.round(timeoutMs / 1000)} s`);
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        lease.release();
      }
    },
  };
}

/** Asks a provider for its model list (GET, 5 s); null when it does not answer with JSON. */
async function listProviderModels(baseUrl: string, path: string, headers: Record<string, string>): Promise<unknown | null> {
  const res = await fetch(baseUrl + path, { headers, signal: AbortSignal.timeout(5_000) });
  if (!res.ok) return null;
  return res.json().catch(() => null);
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}


/**
 * Job tasks run as node sandboxes with the job's command (or the image's) as process
 * "task-<index>-<attempt>"; they reach Hangar at the platform endpoint the driver gives workload sandboxes.
 */
function taskPort(node: LocalNode<SandboxServices>): TaskPort {
  return {
    nodeName: node.nodeName,
    start: (spec) => node.start({ ...spec, platform: true }),
    destroy: (id) => node.destroy(id),
    has: (id) => node.has(id),
    async run(id, how) {
      const live = node.get(id);
      await live.services.ready;
      // after a restart the task's process is adopted with the sandbox: it is awaited, never run twice
      let rec = live.services.processes.find(how.name);
      if (!rec) {
        const cmd = how.command ?? live.handle.image.command;
        if (!cmd?.length) throw new HangarError("validation_failed", "the image names no command (CMD or ENTRYPOINT) and the job sets no spec.runtime.command");
        rec = await live.services.processes.exec({ name: how.name, command: cmd.map(shellQuote).join(" "), env: how.env, keepAlive: true, timeout: how.timeoutS });
      }
      await rec.finished;
      const text = await rec.logs.text();
      return { status: rec.status === "running" ? "failed" : rec.status, exitCode: rec.exitCode, logs: text.logs };
    },
    async stop(id) {
      if (!node.has(id)) return;
      const procs = node.get(id).services.processes;
      for (const rec of procs.list()) if (rec.running && rec.name.startsWith("task-")) await procs.stop(rec.pid);
    },
    hostUrl(id) {
      // the platform endpoint the driver points the sandbox's BL_API_URL at (workload sandboxes only)
      const api = node.get(id).handle.env.BL_API_URL;
      if (!api) throw new HangarError("not_configured", "job tasks need the platform endpoint (the Linux runtime's egress listener)");
      return api.replace(/\/v0$/, "");
    },
  };
}

/** The run plane's form of job executions (`bl run job`): /run/{ws}/jobs/{name}/executions… → /v0 with the workspace header. */
function runPlaneJobs(req: import("node:http").IncomingMessage): void {
  const m = /^\/run\/([^/?]+)\/jobs\/([^/?]+)(\/executions[^?]*)?(\?.*)?$/.exec(req.url ?? "");
  if (!m || (!m[3] && req.method !== "POST")) return;
  req.headers["x-blaxel-workspace"] = decodeURIComponent(m[1]!);
  req.url = `/v0/jobs/${m[2]}${m[3] ?? "/executions"}${m[4] ?? ""}`;
}

/** Deletes the sandboxes code mode's `execute` made for function `fn` (they would otherwise idle out). */
async function deleteExecuteSandboxes(sandboxes: SandboxService, ws: WorkspaceRecord, fn: string): Promise<void> {
  const page = await sandboxes.list(ws, { sort: "createdAt:desc", limit: 1000, labels: { [EXECUTE_SANDBOX_LABEL]: fn.slice(0, 63) } });
  for (const sb of page.items) if (isExecuteSandboxOf(fn, sb.name, sb.labels)) await sandboxes.delete(ws, sb.name).catch(() => undefined);
}
