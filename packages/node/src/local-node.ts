// The node runtime of one machine: runs sandboxes through a driver and keeps, for each live
// sandbox, the per-sandbox services the sandbox API needs (process table, watches, terminals).

import { HangarError, type Logger, silentLogger } from "@hangar/common";
import type { NodeSandboxSpec, NodeSandboxState, SandboxNodePort } from "@hangar/control-plane";
import type { RuntimeSandboxSpec, SandboxDriver, SandboxHandle } from "@hangar/runtime";

/** What the node needs from per-sandbox services. */
export interface SandboxServicesLike {
  dispose(): Promise<void> | void;
}

export interface LiveSandbox<S> {
  readonly id: string;
  spec: NodeSandboxSpec;
  handle: SandboxHandle;
  services: S;
}

export interface LocalNodeOptions<S> {
  driver: SandboxDriver;
  /** Builds the per-sandbox services once its agent is connected. */
  createServices: (handle: SandboxHandle, spec: NodeSandboxSpec) => S;
  logger?: Logger;
  nodeName?: string;
}

export function toRuntimeSpec(spec: NodeSandboxSpec): RuntimeSandboxSpec {
  const out: RuntimeSandboxSpec = {
    id: spec.id,
    name: spec.name,
    workspace: spec.workspace,
    image: spec.image,
    memoryMb: spec.memoryMb,
    envs: spec.envs,
    ports: spec.ports,
  };
  if (spec.runtimeClass) out.runtimeClass = spec.runtimeClass;
  return out;
}

export class LocalNode<S extends SandboxServicesLike> implements SandboxNodePort {
  readonly nodeName: string;
  private readonly driver: SandboxDriver;
  private readonly createServices: LocalNodeOptions<S>["createServices"];
  private readonly log: Logger;
  private readonly live = new Map<string, LiveSandbox<S>>();
  /** Per-sandbox operation chain: start/restart/destroy of one sandbox never overlap. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(opts: LocalNodeOptions<S>) {
    this.driver = opts.driver;
    this.createServices = opts.createServices;
    this.log = opts.logger ?? silentLogger;
    this.nodeName = opts.nodeName ?? "local";
  }

  get driverName(): string {
    return this.driver.name;
  }

  /** Runs fn after every earlier operation on the same sandbox has finished. */
  private serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.locks.set(id, next);
    void next.finally(() => {
      if (this.locks.get(id) === next) this.locks.delete(id);
    }).catch(() => undefined);
    return next;
  }

  /** Resolves an image; building progress goes to the caller, else to the log. */
  async ensureImage(ref: string, onProgress?: (line: string) => void): Promise<void> {
    await this.driver.ensureImage(ref, onProgress ?? ((line) => this.log.info({ image: ref }, line)));
  }

  start(spec: NodeSandboxSpec): Promise<void> {
    return this.serialize(spec.id, async () => {
      const handle = await this.driver.create(toRuntimeSpec(spec));
      this.live.set(spec.id, { id: spec.id, spec, handle, services: this.createServices(handle, spec) });
    });
  }

  restart(spec: NodeSandboxSpec): Promise<void> {
    return this.serialize(spec.id, async () => {
      const cur = this.live.get(spec.id);
      if (cur) await cur.services.dispose();
      const handle = await this.driver.restart(spec.id, toRuntimeSpec(spec));
      this.live.set(spec.id, { id: spec.id, spec, handle, services: this.createServices(handle, spec) });
    });
  }

  async updateNetwork(spec: NodeSandboxSpec): Promise<void> {
    const cur = this.live.get(spec.id);
    if (cur) cur.spec = spec;
  }

  destroy(id: string): Promise<void> {
    return this.serialize(id, async () => {
      const cur = this.live.get(id);
      this.live.delete(id);
      if (cur) await Promise.resolve(cur.services.dispose()).catch((e) => this.log.warn({ err: e, id }, "disposing sandbox services failed"));
      await this.driver.destroy(id);
    });
  }

  state(id: string): NodeSandboxState {
    return this.live.has(id) ? "RUNNING" : "STOPPED";
  }

  /** The live sandbox for a request; 503 when it is not running on this node. */
  get(id: string): LiveSandbox<S> {
    const cur = this.live.get(id);
    if (!cur) throw new HangarError("sandbox_unavailable", "sandbox is not running on this node");
    return cur;
  }

  has(id: string): boolean {
    return this.live.has(id);
  }

  /**
   * Re-attaches to the sandboxes of the store after a restart. Sandboxes whose container is gone
   * (e.g. after a host reboot) are started again. Node-side leftovers no record knows are destroyed.
   */
  async adoptAll(specs: NodeSandboxSpec[]): Promise<{ adopted: string[]; restarted: string[]; removed: string[] }> {
    const adopted: string[] = [];
    const restarted: string[] = [];
    const known = new Set(specs.map((s) => s.id));
    await Promise.all(
      specs.map((spec) =>
        this.serialize(spec.id, async () => {
          try {
            let handle = await this.driver.adopt(toRuntimeSpec(spec));
            if (handle) adopted.push(spec.id);
            else {
              handle = await this.driver.create(toRuntimeSpec(spec));
              restarted.push(spec.id);
            }
            this.live.set(spec.id, { id: spec.id, spec, handle, services: this.createServices(handle, spec) });
          } catch (e) {
            this.log.error({ err: e, sandbox: spec.name }, "could not adopt sandbox");
          }
        }),
      ),
    );
    const removed: string[] = [];
    for (const id of await this.driver.list()) {
      if (!known.has(id)) {
        removed.push(id);
        await this.driver.destroy(id).catch((e) => this.log.warn({ err: e, id }, "could not remove leftover sandbox"));
      }
    }
    return { adopted, restarted, removed };
  }

  /** Drops node-side state without stopping sandboxes (they are adopted on the next start). */
  async close(): Promise<void> {
    await Promise.all([...this.live.values()].map((l) => Promise.resolve(l.services.dispose()).catch(() => undefined)));
    this.live.clear();
    await this.driver.close();
  }
}
