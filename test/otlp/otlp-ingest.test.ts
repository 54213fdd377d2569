import { afterEach, describe, expect, it } from "vitest";
import { decodeJson } from "../../src/otlp/decode.js";
import { IngestBusyError, OtlpIngest, type OtlpIngestOptions } from "../../src/otlp/otlp-ingest.js";
import { RemoteSpan } from "../../src/otlp/remote-span.js";
import { ServedStore } from "../../src/server/served-store.js";
import { tempStore } from "../helpers/temp-dir.js";
import { type HandSpan, jsonBody, pythonRun } from "./_bodies.js";

const opened: ServedStore[] = [];

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

async function ingestOn(options: OtlpIngestOptions = {}) {
  const store = await ServedStore.open(tempStore(), { staleAfterMs: 3_600_000 });
  opened.push(store);
  const writes: { spans: number; runs: number; ok: boolean }[] = [];
  const ingest = await OtlpIngest.open(store, {
    ...options,
    onWrite: (spans, runs, _seconds, ok) => writes.push({ spans, runs, ok }),
  });
  return { ingest, writes, store };
}

describe("OtlpIngest", () => {
  it("tells of every write with the runs it wrote, new runs and changed ones", async () => {
    const { ingest, writes } = await ingestOn();
    const r = pythonRun();
    const first = decodeJson(jsonBody([r.root, r.extract])).spans;
    expect(await ingest.submit(first, null)).toEqual({ rejected: 0, errorMessage: undefined });
    await ingest.submit(decodeJson(jsonBody([r.summarize])).spans, null);
    // A retry stores nothing and changes no run.
    await ingest.submit(first, null);
    expect(writes).toEqual([
      { spans: 2, runs: 1, ok: true },
      { spans: 1, runs: 1, ok: true },
      { spans: 2, runs: 0, ok: true },
    ]);
    await ingest.close();
  });

  it("turns a request away, rather than queueing it, past the spans it may hold unwritten", async () => {
    const { ingest } = await ingestOn({ maxPendingSpans: 3 });
    const r = pythonRun();
    const spans = decodeJson(jsonBody([r.root, r.extract])).spans;
    const taken = ingest.submit(spans, null);
    expect(ingest.pending).toBe(2);
    await expect(ingest.submit(spans, null)).rejects.toBeInstanceOf(IngestBusyError);
    await taken;
    expect(ingest.pending).toBe(0);
    expect(ingest.busy).toBe(false);
    await ingest.close();
    await expect(ingest.submit(spans, null)).rejects.toThrow(/shutting down/);
  });

  it("stores each span's text under its own ids, also of requests some of whose spans came before", async () => {
    const { ingest, writes, store } = await ingestOn();
    const r = pythonRun();
    const body = (spans: HandSpan[]) => decodeJson(jsonBody(spans)).spans;
    await ingest.submit(body([r.root]), null);
    // In one write: a request whose first span is stored already, and one sent twice at once.
    await Promise.all([
      ingest.submit(body([r.root, r.extract]), null),
      ingest.submit(body([r.summarize]), null),
      ingest.submit(body([r.summarize]), null),
    ]);
    expect(writes.map((w) => w.spans)).toEqual([1, 4]);
    const rows = await store.read((s) =>
      s.all<{ trace_id: string; span_id: string; span: string }>(
        "SELECT trace_id, span_id, span FROM otlp_spans ORDER BY span_id",
      ),
    );
    const names = new Map(
      [r.root, r.extract, r.summarize].map((h) => [h.spanId.toLowerCase(), h.name]),
    );
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(RemoteSpan.fromJSON(row.trace_id, row.span_id, row.span).name).toBe(
        names.get(row.span_id),
      );
    }
    await ingest.close();
  });
});
