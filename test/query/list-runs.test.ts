import { beforeAll, describe, expect, it } from "vitest";
import { listRuns, pageRows } from "../../src/query/list-runs.js";
import type { RunFilter } from "../../src/query/run-filter.js";
import { withStore } from "../../src/store/open-store.js";
import { finish, recorder, recordRun, sharedStore } from "../cli/_fixtures.js";
import { tempStore } from "../helpers/temp-dir.js";

const HOUR = 3_600_000;
let db: string;

beforeAll(async () => {
  db = sharedStore();
  const t = recorder(db);
  const now = Date.now();
  // Runs on both sides of every window a page is looked for in (an hour, a day, 30 days back
  // from the newest), some of them failed, and two starting at the same instant.
  const ages = [0.2, 0.5, 0.5, 2, 5, 20, 30, 72, 100, 400, 800, 2000];
  ages.forEach((age, i) => {
    recordRun(t, {
      pipeline: i % 2 === 0 ? "even" : "odd",
      start: Math.round(now - age * HOUR),
      ms: 1000,
      ...(i % 3 === 0 ? { error: new Error(`failure ${i}`) } : {}),
    });
  });
  await finish(t);
});

/** The same runs, newest first, by a plain ORDER BY over the whole table. */
async function expected(where: string): Promise<string[]> {
  return withStore(db, async (s) =>
    (
      await s.all<{ id: string }>(
        `SELECT run_id::VARCHAR AS id FROM runs WHERE ${where} ORDER BY started_at DESC, run_id DESC`,
      )
    ).map((r) => r.id),
  );
}

async function paged(filter: RunFilter, limit: number): Promise<string[]> {
  return withStore(db, async (s) => {
    const ids: string[] = [];
    let page = await listRuns(s, { ...filter, limit });
    ids.push(...page.runs.map((r) => r.run_id));
    while (page.next) {
      page = await listRuns(s, { ...filter, limit, cursor: page.next });
      ids.push(...page.runs.map((r) => r.run_id));
    }
    return ids;
  });
}

describe("listRuns", () => {
  it("gives every run once, newest first, whatever the page size", async () => {
    const all = await expected("TRUE");
    expect(all).toHaveLength(12);
    for (const limit of [1, 2, 3, 5, 11, 12, 100]) {
      expect(await paged({}, limit), `limit ${limit}`).toEqual(all);
    }
  });

  it("pages a filter whose runs are spread over every window", async () => {
    const failed = await expected("status = 'failed'");
    expect(failed).toHaveLength(4);
    for (const limit of [1, 2, 3, 4, 10]) {
      expect(await paged({ statuses: ["failed"] }, limit), `limit ${limit}`).toEqual(failed);
    }
    expect(await paged({ pipeline: "odd" }, 2)).toEqual(await expected("pipeline = 'odd'"));
  });

  it("counts every matching run in the total", async () => {
    const page = await withStore(db, (s) => listRuns(s, { limit: 2, statuses: ["failed"] }));
    expect(page.total).toBe(4);
    expect(page.runs).toHaveLength(2);
  });

  it("gives a page exactly its keys when runs change between finding the keys and reading them", async () => {
    const store = tempStore();
    const t = recorder(store);
    const now = Date.now();
    for (let i = 0; i < 4; i++) {
      recordRun(t, { pipeline: "p", start: now - i * 1000, ms: 10, error: new Error(`e${i}`) });
    }
    await finish(t);
    await withStore(store, async (s) => {
      const where = "status = $1";
      const keys = await s.all<{ run_id: string; started_at: number }>(
        `SELECT run_id::VARCHAR AS run_id, epoch_us(started_at)::DOUBLE AS started_at FROM runs
         WHERE ${where} ORDER BY started_at DESC, run_id DESC LIMIT 3`,
        ["failed"],
      );
      expect(keys).toHaveLength(3);
      const [newest, middle, oldest] = keys as [
        (typeof keys)[0],
        (typeof keys)[0],
        (typeof keys)[0],
      ];
      // The middle key leaves the filter, and a run written since starts between the newest
      // and the middle one: it would take a place in the same query for whole rows.
      await s.run("UPDATE runs SET status = 'completed' WHERE run_id = $1::UUID", [middle.run_id]);
      await s.run(
        `INSERT INTO runs SELECT * REPLACE (uuid() AS run_id,
           make_timestamptz($2::BIGINT) AS started_at) FROM runs WHERE run_id = $1::UUID`,
        [newest.run_id, (newest.started_at + middle.started_at) / 2],
      );
      const rows = await pageRows(s, where, ["failed"], keys);
      expect(rows.map((r) => r.run_id)).toEqual([newest.run_id, middle.run_id, oldest.run_id]);
      expect(rows.map((r) => r.status)).toEqual(["failed", "completed", "failed"]);
      expect(await pageRows(s, where, ["failed"], [])).toEqual([]);
    });
  });
});
