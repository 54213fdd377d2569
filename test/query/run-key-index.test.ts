import { describe, expect, it } from "vitest";
import { lookupRun } from "../../src/query/find-run.js";
import { RunKeyIndex } from "../../src/query/run-key-index.js";
import { withStore } from "../../src/store/open-store.js";
import { writeRows } from "../../src/store/write-rows.js";
import { blankRun } from "../helpers/run-row.js";
import { tempStore } from "../helpers/temp-dir.js";

const T0 = Date.UTC(2026, 0, 1) * 1000;
const run = (id: string, startedAt: number) =>
  blankRun({
    run_id: id,
    trace_id: id.replaceAll("-", ""),
    span_id: "0000000000000001",
    pipeline: "p",
    status: "completed",
    started_at: startedAt,
  });

describe("RunKeyIndex", () => {
  it("gives the start times of the runs an 8-digit prefix names, stored or noted since", async () => {
    const db = tempStore();
    await withStore(db, async (s) => {
      await writeRows(s, {
        runs: [
          run("12345678-0000-4000-8000-000000000001", T0),
          run("12345678-0000-4000-8000-000000000002", T0 + 5),
          run("abcdef00-0000-4000-8000-000000000003", T0 + 9),
        ],
        stages: [],
      });
      const index = await RunKeyIndex.build(s);
      expect(index.size).toBe(3);
      expect(index.startsOf("12345678")?.sort()).toEqual([T0, T0 + 5]);
      expect(index.startsOf("1234567800004000")?.sort()).toEqual([T0, T0 + 5]);
      expect(index.startsOf("abcdef00")).toEqual([T0 + 9]);
      expect(index.startsOf("99999999")).toEqual([]);
      // Fewer than 8 digits: the index cannot narrow it.
      expect(index.startsOf("1234567")).toBeUndefined();

      index.note("99999999-0000-4000-8000-000000000004", T0 + 20);
      index.note("12345678-0000-4000-8000-000000000005", T0 + 30);
      expect(index.startsOf("99999999")).toEqual([T0 + 20]);
      expect(index.startsOf("12345678")?.sort()).toEqual([T0, T0 + 5, T0 + 30]);
    });
  });

  it("merges what it noted into its sorted part, once each, and still finds every run", () => {
    return withStore(tempStore(), async (s) => {
      const index = await RunKeyIndex.build(s);
      const ids: string[] = [];
      for (let i = 0; i < 10_000; i++) {
        const head = ((i * 2_654_435_761) >>> 0).toString(16).padStart(8, "0");
        const id = `${head}-0000-4000-8000-${String(i).padStart(12, "0")}`;
        ids.push(id);
        index.note(id, T0 + i);
        // Written again (running, then finished): the same key twice.
        index.note(id, T0 + i);
      }
      // Merged twice over (4,096 noted at a time), the repeats dropped.
      expect(index.size).toBeLessThan(20_000);
      for (const [i, id] of ids.entries()) {
        expect(index.startsOf(id.slice(0, 8))).toContain(T0 + i);
      }
    });
  });

  it("makes a lookup read only the rows it names, with the same answers as a scan", async () => {
    const db = tempStore();
    await withStore(db, async (s) => {
      const trace = "feedbeef00000000aaaaaaaaaaaaaaaa";
      await writeRows(s, {
        runs: [
          run("feedbeef-0000-0000-aaaa-aaaaaaaaaaaa", T0),
          // A run nested in that trace: its id starts with the trace's first 16 digits.
          { ...run("feedbeef-0000-0000-0000-000000000001", T0 + 7), trace_id: trace },
          run("c0ffee00-0000-4000-8000-000000000009", T0 + 3),
        ],
        stages: [],
      });
      const index = await RunKeyIndex.build(s);
      for (const prefix of ["feedbeef", "feedbeef0000", trace, "c0ffee00", "c0ffee01", "feed"]) {
        expect(await lookupRun(s, prefix, undefined, index), prefix).toEqual(
          await lookupRun(s, prefix),
        );
      }
      expect((await lookupRun(s, "c0ffee00", undefined, index)).found).toBe("one");
      // More runs of one head than a lookup names one by one: their time range bounds the scan.
      const nested = Array.from({ length: 70 }, (_, i) => ({
        ...run(`feedbeef-0000-0000-1111-${String(i).padStart(12, "0")}`, T0 + 100 + i),
        trace_id: trace,
      }));
      await writeRows(s, { runs: nested, stages: [] });
      for (const r of nested) index.note(r.run_id, r.started_at);
      expect(index.startsOf("feedbeef")?.length).toBe(72);
      for (const prefix of ["feedbeef", trace, "feedbeef00000000111100000000006"]) {
        expect(await lookupRun(s, prefix, undefined, index), prefix).toEqual(
          await lookupRun(s, prefix),
        );
      }
      expect((await lookupRun(s, "feedbeef", undefined, index)).found).toBe("many");
      // An entry whose run is gone costs a look, not a wrong answer.
      await s.run("DELETE FROM runs WHERE run_id = 'c0ffee00-0000-4000-8000-000000000009'");
      expect((await lookupRun(s, "c0ffee00", undefined, index)).found).toBe("none");
    });
  });
});
