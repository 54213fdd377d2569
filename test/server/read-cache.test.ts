import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ReadCache } from "../../src/server/read-cache.js";

/** A read that counts its calls and answers `{ n }`, the call's number. */
function counted() {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    read: async () => {
      calls += 1;
      return { n: calls, list: [{ calls }] };
    },
  };
}

describe("ReadCache", () => {
  it("answers a question again from what it kept, until the store changes", async () => {
    const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10 });
    const reads = counted();
    expect(await cache.get("a", reads.read)).toMatchObject({ n: 1 });
    expect(await cache.get("a", reads.read)).toMatchObject({ n: 1 });
    expect(await cache.get("b", reads.read)).toMatchObject({ n: 2 });
    cache.changed();
    expect(cache.size).toBe(0);
    expect(await cache.get("a", reads.read)).toMatchObject({ n: 3 });
    expect(reads.calls).toBe(3);
  });

  it("reads again once what it kept is older than maxAgeMs", async () => {
    const cache = new ReadCache({ maxAgeMs: 50, maxEntries: 10 });
    const reads = counted();
    await cache.get("a", reads.read);
    await sleep(80);
    expect(await cache.get("a", reads.read)).toMatchObject({ n: 2 });
  });

  it("reads anew when asked for a fresh answer, and keeps that one", async () => {
    const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10 });
    const reads = counted();
    await cache.get("a", reads.read);
    expect(await cache.get("a", reads.read, true)).toMatchObject({ n: 2 });
    expect(await cache.get("a", reads.read)).toMatchObject({ n: 2 });
  });

  it("runs a read asked for twice at once only once", async () => {
    const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10 });
    const reads = counted();
    const answers = await Promise.all([1, 2, 3].map(() => cache.get("a", reads.read)));
    expect(reads.calls).toBe(1);
    expect(new Set(answers).size).toBe(1);
  });

  it("does not keep a read that was under way when the store changed", async () => {
    const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10 });
    let release: () => void = () => undefined;
    const slow = cache.get("a", () => new Promise<string>((r) => (release = () => r("before"))));
    cache.changed();
    const after = cache.get("a", async () => "after");
    release();
    expect(await slow).toBe("before");
    expect(await after).toBe("after");
    expect(await cache.get("a", async () => "again")).toBe("after");
  });

  it("keeps no failure: the next ask reads again", async () => {
    const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10 });
    await expect(cache.get("a", () => Promise.reject(new Error("locked")))).rejects.toThrow(
      "locked",
    );
    await expect(
      cache.get("a", () => {
        throw new Error("thrown before any promise");
      }),
    ).rejects.toThrow("thrown before");
    expect(await cache.get("a", async () => "read")).toBe("read");
  });

  it("lets go of the oldest answer when full", async () => {
    const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 2 });
    const reads = counted();
    await cache.get("a", reads.read);
    await cache.get("b", reads.read);
    await cache.get("c", reads.read);
    expect(cache.size).toBe(2);
    expect(await cache.get("c", reads.read)).toMatchObject({ n: 3 });
    expect(await cache.get("a", reads.read)).toMatchObject({ n: 4 });
  });

  it("freezes what it keeps, since every asker shares it", async () => {
    const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10 });
    const answer = await cache.get("a", counted().read);
    expect(() => {
      (answer as { n: number }).n = 9;
    }).toThrow(TypeError);
    expect(() => answer.list.push({ calls: 9 })).toThrow(TypeError);
    expect(Object.isFrozen(answer.list[0])).toBe(true);
  });
});
