import { describe, expect, it } from "vitest";
import { storeThread } from "../../src/store/store-thread.js";
import { storedRuns } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";
import { traced } from "../helpers/tracing.js";

describe("the store thread", () => {
  it("is started when a writer first has a run, before the writer's first write", async () => {
    const db = tempStore();
    // Writes an hour apart: only shutdown writes.
    const { processor, provider, tracer } = traced({ db, flushIntervalMs: 3_600_000 });
    expect(storeThread.started).toBe(false);
    const run = tracer.startSpan("nightly");
    // Reading the counters records the spans queued so far.
    expect(processor.stats).toMatchObject({ openRuns: 1, flushes: 0 });
    expect(storeThread.started).toBe(true);
    run.end();
    await provider.shutdown();
    expect((await storedRuns(db)).map((r) => r.status)).toEqual(["completed"]);
  });
});
