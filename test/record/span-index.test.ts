import { describe, expect, it } from "vitest";
import { SpanIndex } from "../../src/record/span-index.js";

function spanId(n: number): string {
  return n.toString(16).padStart(16, "0");
}

describe("SpanIndex", () => {
  it("finds what was set, and nothing else", () => {
    const index = new SpanIndex<number>();
    index.set("00f067aa0ba902b7", 1);
    index.set("53995c3f42cd8ad8", 2);
    expect(index.get("00f067aa0ba902b7")).toBe(1);
    expect(index.get("53995c3f42cd8ad8")).toBe(2);
    expect(index.get("0000000000000000")).toBeUndefined();
    expect(index.size).toBe(2);
    index.set("00f067aa0ba902b7", 3);
    expect(index.get("00f067aa0ba902b7")).toBe(3);
    expect(index.size).toBe(2);
  });

  it("deletes an entry, or only when it holds the value given", () => {
    const index = new SpanIndex<string>();
    index.set("a", "first");
    index.delete("a", "other");
    expect(index.get("a")).toBe("first");
    index.delete("a", "first");
    expect(index.get("a")).toBeUndefined();
    index.set("b", "x");
    index.delete("b");
    expect(index.get("b")).toBeUndefined();
    expect(index.size).toBe(0);
    index.delete("never-set");
    expect(index.size).toBe(0);
  });

  it("agrees with a Map through growth, churn and sweeps", () => {
    const index = new SpanIndex<number>(16);
    const expected = new Map<string, number>();
    // A deterministic mix of sets and deletes that fills, empties and refills the table, with
    // ids that share all but their last characters, as counters do.
    let seed = 12345;
    const random = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let step = 0; step < 200_000; step++) {
      const phase = Math.floor(step / 20_000) % 2;
      const id = spanId(Math.floor(random() * 5_000));
      if (random() < (phase === 0 ? 0.7 : 0.3)) {
        index.set(id, step);
        expected.set(id, step);
      } else {
        index.delete(id);
        expected.delete(id);
      }
      if (step % 997 === 0) expect(index.size).toBe(expected.size);
    }
    expect(index.size).toBe(expected.size);
    for (let n = 0; n < 5_000; n++) {
      expect(index.get(spanId(n))).toBe(expected.get(spanId(n)));
    }
  });

  it("holds many ids at once and lets all of them go", () => {
    const index = new SpanIndex<number>();
    for (let n = 0; n < 100_000; n++) index.set(spanId(n * 7919), n);
    expect(index.size).toBe(100_000);
    for (let n = 0; n < 100_000; n++) expect(index.get(spanId(n * 7919))).toBe(n);
    for (let n = 0; n < 100_000; n++) index.delete(spanId(n * 7919));
    expect(index.size).toBe(0);
    expect(index.get(spanId(0))).toBeUndefined();
  });
});
