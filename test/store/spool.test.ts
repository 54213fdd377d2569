import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { StageRow } from "../../src/record/rows.js";
import { formatUuid } from "../../src/record/run-id.js";
import { ingestSpool } from "../../src/store/ingest-spool.js";
import { withStore } from "../../src/store/open-store.js";
import { SEGMENT_LINES, spoolRows } from "../../src/store/spool.js";
import { blankRun, blankStage } from "../helpers/run-row.js";
import { storedRuns, storedStages } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";

const hex = (n: number, digits: number) => n.toString(16).padStart(digits, "0");

describe("the spool", () => {
  it("writes a batch larger than a segment in several, read back in order, the later row last", async () => {
    const db = tempStore();
    const started = Date.UTC(2026, 10, 24) * 1000;
    const runs = Array.from({ length: 1_000 }, (_, i) =>
      blankRun({
        run_id: formatUuid(hex(i, 32)),
        trace_id: hex(i, 32),
        span_id: hex(i, 16),
        pipeline: "bulk",
        status: "completed",
        started_at: started + i,
      }),
    );
    const stage = (i: number, tokens: number): StageRow =>
      blankStage({
        run_id: formatUuid(hex(i % 1_000, 32)),
        span_id: hex(1_000_000 + i, 16),
        name: "work",
        seq: Math.floor(i / 1_000),
        status: "completed",
        started_at: started + i,
        tokens,
      });
    // More rows than a segment holds; the first stage comes again at the end with a late LLM
    // call counted, as a late span rewrites a stage's row: the later row must win.
    const stages = Array.from({ length: SEGMENT_LINES }, (_, i) => stage(i, 0));
    stages.push(stage(0, 10));

    const paths = await spoolRows(db, runs, stages);
    expect(paths).toHaveLength(2);
    expect((paths[0] as string) < (paths[1] as string)).toBe(true);
    const folder = `${db}.spool`;
    expect(readdirSync(folder).sort()).toEqual(paths.map((p) => p.slice(folder.length + 1)));

    const ingested = await withStore(db, (session) => ingestSpool(session));
    expect(ingested).toEqual({ rows: runs.length + stages.length, rejectedFiles: 0 });
    expect(readdirSync(folder)).toEqual([]);
    expect(await storedRuns(db)).toHaveLength(runs.length);
    const stored = await storedStages(db);
    expect(stored).toHaveLength(SEGMENT_LINES);
    expect(stored.find((s) => s.span_id === hex(1_000_000, 16))?.tokens).toBe(10);
  });
});
