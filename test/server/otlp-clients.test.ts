import { describe, expect, it } from "vitest";
import { startServer } from "../../src/server/serve.js";
import { runtrail, startFixture } from "../helpers/processes.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { byRunId, comparable } from "../otlp/_compare.js";

describe("the OpenTelemetry OTLP exporters against a real server", () => {
  for (const protocol of ["json", "proto"] as const) {
    it(`give the rows the in-process processor gives, field by field (${protocol})`, async () => {
      const served = tempStore();
      const inProcess = tempStore();
      const server = await startServer({ db: served, port: 0, log: () => undefined });
      let ids: string[];
      try {
        const pipeline = startFixture("otlp-pipeline.ts", [
          "--url",
          server.url,
          "--protocol",
          protocol,
          "--db",
          inProcess,
        ]);
        const finished = await pipeline.exited;
        expect(finished.stderr).toBe("");
        expect(finished.code).toBe(0);
        ids = finished.stdout
          .split("\n")
          .filter((l) => l.startsWith("run "))
          .map((l) => l.slice(4));
        expect(ids).toHaveLength(3);
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        const accepted = metrics.match(/^runtrail_otlp_spans_total\{result="accepted"\} (\d+)$/m);
        expect(Number(accepted?.[1])).toBeGreaterThanOrEqual(18);
        expect(metrics).toMatch(/^runtrail_ingest_rows_total\{source="otlp"\} \d+$/m);
      } finally {
        await server.close();
      }
      const remote = (await storedRuns(served)).sort(byRunId);
      const local = (await storedRuns(inProcess)).sort(byRunId);
      expect(remote.map((r) => r.run_id)).toEqual([...ids].sort());
      expect(Object.fromEntries(remote.map((r) => [r.pipeline, r.status]))).toEqual({
        summaries: "degraded",
        ingest: "failed",
        classify: "completed",
      });
      expect(remote.find((r) => r.pipeline === "summaries")).toMatchObject({
        llm_calls: 3,
        tokens: 2940,
        retry_count: 1,
        service_name: `otlp-${protocol}`,
      });
      expect(remote.map(comparable)).toEqual(local.map(comparable));
      expect(await storedStages(served)).toEqual(await storedStages(inProcess));
    }, 60_000);
  }

  it("include runtrail demo --otlp, which sends the example pipeline over OTLP", async () => {
    const db = tempStore();
    const server = await startServer({ db, port: 0, log: () => undefined });
    let finished: Awaited<ReturnType<typeof runtrail>>;
    try {
      finished = await runtrail(["demo", "--otlp", server.url, "--runs", "4", "--pace", "0"]);
    } finally {
      await server.close();
    }
    expect(finished.code).toBe(0);
    expect(finished.stderr).toContain(
      `Sending 4 runs of the demo pipeline to ${server.url}/v1/traces`,
    );
    const sent = finished.stdout.match(/[0-9a-f-]{36}/g) ?? [];
    expect(sent).toHaveLength(4);
    const runs = await storedRuns(db);
    expect(runs.map((r) => r.run_id).sort()).toEqual([...sent].sort());
    expect(runs.every((r) => r.service_name === "runtrail-demo" && r.status !== "running")).toBe(
      true,
    );
  }, 60_000);
});
