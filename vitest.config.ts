import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // DuckDB is a native addon: run test files in child processes, not worker threads.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 180_000,
    globalSetup: ["test/global-setup.ts"],
    reporters: process.env.CI ? ["default"] : ["default"],
  },
});
