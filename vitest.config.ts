import { defineConfig } from "vitest/config";

// Unit tests sit beside the code; end-to-end tests drive a real `hangar serve` process.
// Workspace packages resolve to their TypeScript sources through the "hangar-source" condition.
export default defineConfig({
  resolve: { conditions: ["hangar-source"] },
  test: {
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["packages/*/src/**/*.test.ts"], testTimeout: 30_000, hookTimeout: 60_000 },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["tests/e2e/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          pool: "forks",
          maxWorkers: 2,
        },
      },
    ],
  },
});
