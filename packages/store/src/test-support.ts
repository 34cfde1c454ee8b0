// A fresh embedded store for tests: its own data dir, one workspace ("ws1", named "default").

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecretBox } from "./secret-box.js";
import { openSqliteStore } from "./sqlite.js";
import type { SqlStore } from "./sql-store.js";
import type { WorkspaceRecord } from "./store.js";

export interface TestStore {
  dir: string;
  store: SqlStore;
  secrets: SecretBox;
  workspace: WorkspaceRecord;
  close(): Promise<void>;
}

export async function openTestStore(): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), "hangar-store-"));
  const store = await openSqliteStore(dir);
  const now = new Date().toISOString();
  const workspace = await store.workspaces.create({ id: "ws1", name: "default", displayName: "", labels: {}, createdAt: now, updatedAt: now });
  return {
    dir,
    store,
    secrets: SecretBox.open(dir),
    workspace,
    async close() {
      await store.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
