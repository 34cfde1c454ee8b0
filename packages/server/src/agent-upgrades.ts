// POST /upgrade of the sandbox API (Blaxel's `sandbox.system.upgrade`): replaces a sandbox's agent
// with this node's build in place (LocalNode.upgradeAgent). The count and build are the driver's
// record; the progress of the last attempt (Blaxel's lastUpgrade) is kept here per sandbox.

import type { Logger } from "@hangar/common";
import type { LocalNode } from "@hangar/node";
import type { AgentUpgradePort, SandboxServices, UpgradeStatus } from "@hangar/sandbox-api";

const IDLE: UpgradeStatus = { status: "idle", step: "none", version: "" };

export class AgentUpgrades {
  private readonly last = new Map<string, UpgradeStatus>();

  constructor(
    private readonly node: LocalNode<SandboxServices>,
    private readonly logger: Logger,
  ) {}

  /** The port of one sandbox, or undefined where the driver cannot upgrade agents. */
  port(id: string): AgentUpgradePort | undefined {
    if (!this.node.agentBuild()) return undefined;
    return {
      begin: (version) => {
        const build = this.node.agentBuild(version)!;
        const attempt: UpgradeStatus = { status: "running", step: "starting", version: build.version, lastAttempt: new Date().toISOString() };
        this.last.set(id, attempt);
        return () => {
          this.last.set(id, { ...attempt, step: "replace" });
          this.node.upgradeAgent(id, version).then(
            () => this.last.set(id, { ...attempt, status: "completed", step: "completed" }),
            (e: unknown) => {
              this.logger.warn({ err: e, id }, "upgrading a sandbox agent failed");
              this.last.set(id, { ...attempt, status: "failed", step: "replace", error: (e as Error).message });
            },
          );
        };
      },
      status: async () => {
        const s = await this.node.agentState(id);
        return { version: s?.version ?? "", upgradeCount: s?.upgrades ?? 0, lastUpgrade: this.last.get(id) ?? IDLE };
      },
    };
  }

  forget(id: string): void {
    this.last.delete(id);
  }
}
