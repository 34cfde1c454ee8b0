// A sandbox created from a hub image that has a service (a dev server, the code interpreter) starts
// it as a named process of the sandbox API, as Blaxel's hub images do, and the create answers once
// the service listens (or after a while, with the process still starting).

import { type Logger, shellQuote } from "@hangar/common";
import type { NodeSandboxSpec, SandboxNodePort } from "@hangar/control-plane";
import type { HubService } from "./catalog.js";
import { hubServiceOf } from "./hub-images.js";

/** What starting a service needs of a live sandbox (LocalNode's live sandbox has it). */
export interface ServiceSandbox {
  handle: { image: { command?: string[] } };
  services: {
    ready: Promise<unknown>;
    processes: { exec(req: { name: string; command: string; workingDir: string; restartOnFailure: boolean; maxRestarts: number }): Promise<{ running: boolean }> };
    network: { waitForPorts(ports: number[], until: () => string | null): Promise<string | null> };
  };
}

const PORT_WAIT_MS = 60_000;

/** Starts the image's command as the service's process and waits (bounded) for its port. */
export async function startHubService(live: ServiceSandbox, svc: HubService): Promise<string | null> {
  await live.services.ready;
  const cmd = live.handle.image.command;
  if (!cmd?.length) return "the image names no command";
  const rec = await live.services.processes.exec({ name: svc.process, command: cmd.map(shellQuote).join(" "), workingDir: svc.workingDir, restartOnFailure: true, maxRestarts: 25 });
  const deadline = Date.now() + PORT_WAIT_MS;
  return live.services.network.waitForPorts([svc.port], () => {
    if (!rec.running) return `process ${svc.process} exited before port ${svc.port} listened`;
    return Date.now() > deadline ? `port ${svc.port} not listening after ${PORT_WAIT_MS / 1000} s (process ${svc.process} keeps starting)` : null;
  });
}

/** `node` with hub services started after each start and restart of a hub image's sandbox. */
export function withHubServices(node: SandboxNodePort, live: (id: string) => ServiceSandbox, log: Logger): SandboxNodePort {
  const after = async (spec: NodeSandboxSpec) => {
    const svc = hubServiceOf(spec.image);
    if (!svc) return;
    const problem = await startHubService(live(spec.id), svc).catch((e: unknown) => (e instanceof Error ? e.message : String(e)));
    if (problem) log.warn({ sandbox: spec.name, image: spec.image }, `hub service ${svc.process}: ${problem}`);
  };
  return {
    get nodeName() {
      return node.nodeName;
    },
    ensureImage: (ref, onProgress) => node.ensureImage(ref, onProgress),
    start: async (spec) => {
      await node.start(spec);
      await after(spec);
    },
    restart: async (spec) => {
      await node.restart(spec);
      await after(spec);
    },
    updateNetwork: (spec) => node.updateNetwork(spec),
    destroy: (id) => node.destroy(id),
    state: (id) => node.state(id),
    lastActivity: (id) => node.lastActivity(id),
    standby: (id) => node.standby(id),
  };
}
