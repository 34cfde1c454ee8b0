// First start: the `default` workspace and an admin key, printed once and kept in the data dir.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "@hangar/common";
import type { ApiKeyService, WorkspaceService } from "@hangar/control-plane";
import type { Store } from "@hangar/store";

export const DEFAULT_WORKSPACE = "default";

export interface BootstrapResult {
  /** The admin key when it was created by this start (shown once), else null. */
  createdKey: string | null;
  keyFile: string;
}

/**
 * Ensures the default workspace exists and that an admin key exists: the one from
 * HANGAR_BOOTSTRAP_API_KEY when given (idempotent on every start), else a random one on first start.
 */
export async function bootstrap(deps: { store: Store; workspaces: WorkspaceService; apiKeys: ApiKeyService; dataDir: string; bootstrapKey: string | undefined; logger: Logger }): Promise<BootstrapResult> {
  const { store, workspaces, apiKeys } = deps;
  const keyFile = join(deps.dataDir, "admin-key");
  const ws = (await store.workspaces.getByName(DEFAULT_WORKSPACE)) ?? (await workspaces.create({ name: DEFAULT_WORKSPACE, displayName: "Default" }));

  if (deps.bootstrapKey) {
    if (await apiKeys.exists(deps.bootstrapKey)) return { createdKey: null, keyFile };
    await apiKeys.create({ name: "bootstrap", workspaceIds: [ws.id], admin: true, key: deps.bootstrapKey });
    deps.logger.info("created the admin API key given by HANGAR_BOOTSTRAP_API_KEY");
    return { createdKey: null, keyFile };
  }
  if ((await store.apiKeys.list()).length > 0) return { createdKey: null, keyFile };
  const created = await apiKeys.create({ name: "admin", workspaceIds: [ws.id], admin: true });
  if (!existsSync(keyFile)) writeFileSync(keyFile, `${created.key}\n`, { mode: 0o600 });
  return { createdKey: created.key, keyFile };
}
