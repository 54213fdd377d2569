import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ChangedRuns, ReadCache } from "../../src/server/read-cache.js";

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
    expect(await cache.get("a", reads.read, { fresh: true })).toMatchObject({ n: 2 });
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

  describe("answers about the runs of an id prefix", () => {
    const changed = (...runIds: string[]) => {
      const runs = new ChangedRuns();
      for (const id of runIds) runs.run(id);
      return runs;
    };
    /** Asks for each key once more and tells which were read again. */
    const readAgain = async (cache: ReadCache, scopes: Record<string, string | undefined>) => {
      const again: string[] = [];
      for (const [key, idPrefix] of Object.entries(scopes)) {
        await cache.get(key, async () => again.push(key), idPrefix ? { idPrefix } : {});
      }
      return again;
    };

    it("keeps them across writes of other runs; drops those a written run's id would match", async () => {
      const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10, maxRunRows: 100 });
      const scopes = {
        list: undefined,
        "run 1234abcd": "1234abcd",
        "run 1234": "1234",
        "run 5678": "5678",
        // A trace id prefix longer than 16 digits: its runs share only the first 16.
        "trace 9999": "99990000111122223333",
      };
      expect(await readAgain(cache, scopes)).toEqual(Object.keys(scopes));
      expect(await readAgain(cache, scopes)).toEqual([]);

      // No run changed: nothing is dropped.
      cache.changed(changed());
      expect(await readAgain(cache, scopes)).toEqual([]);
      // A run of another prefix: only what is about the whole store.
      cache.changed(changed("abcd0000-0000-4000-8000-000000000000"));
      expect(await readAgain(cache, scopes)).toEqual(["list"]);
      // Ids are compared as hex digits, whatever their case and dashes.
      cache.changed(changed("1234ABCD-0000-4000-8000-000000000000"));
      expect(await readAgain(cache, scopes)).toEqual(["list", "run 1234abcd", "run 1234"]);
      cache.changed(changed("12340000-0000-4000-8000-000000000000"));
      expect(await readAgain(cache, scopes)).toEqual(["list", "run 1234"]);
      // A run nested in the trace: the same first 16 digits, then its own span id.
      cache.changed(changed("99990000-1111-2222-aaaa-bbbbccccdddd"));
      expect(await readAgain(cache, scopes)).toEqual(["list", "trace 9999"]);
      cache.changed(changed("99990000-1112-2222-3333-000000000000"));
      expect(await readAgain(cache, scopes)).toEqual(["list"]);
      // A change that does not tell its runs: everything.
      cache.changed();
      expect(await readAgain(cache, scopes)).toEqual(Object.keys(scopes));
    });

    it("does not keep a read of a run under way when that run changes", async () => {
      const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10, maxRunRows: 100 });
      let release: () => void = () => undefined;
      const slow = cache.get("a", () => new Promise<string>((r) => (release = () => r("before"))), {
        idPrefix: "abcd",
      });
      cache.changed(changed("abcd1234-0000-4000-8000-000000000000"));
      const after = cache.get("a", async () => "after", { idPrefix: "abcd" });
      release();
      expect(await slow).toBe("before");
      expect(await after).toBe("after");
      expect(await cache.get("a", async () => "again", { idPrefix: "abcd" })).toBe("after");
    });

    it("keeps them for runMaxAgeMs, whatever maxAgeMs is", async () => {
      const cache = new ReadCache({ maxAgeMs: 10, maxEntries: 10, runMaxAgeMs: 60_000 });
      const reads = counted();
      await cache.get("run", reads.read, { idPrefix: "abcd" });
      await cache.get("list", reads.read);
      await sleep(40);
      expect(await cache.get("run", reads.read, { idPrefix: "abcd" })).toMatchObject({ n: 1 });
      expect(await cache.get("list", reads.read)).toMatchObject({ n: 3 });
    });

    it("lets go of the oldest once they hold more rows than maxRunRows", async () => {
      const cache = new ReadCache({ maxAgeMs: 60_000, maxEntries: 10, maxRunRows: 10 });
      const rowsOf = (answer: unknown) => (answer as { rows: number }).rows;
      const read = (rows: number) => async () => ({ rows });
      await cache.get("a", read(4), { idPrefix: "aaaa", rowsOf });
      await cache.get("b", read(4), { idPrefix: "bbbb", rowsOf });
      expect(cache.size).toBe(2);
      await cache.get("c", read(3), { idPrefix: "cccc", rowsOf });
      await sleep(0);
      expect(cache.size).toBe(2);
      const again: string[] = [];
      for (const key of ["b", "c", "a"]) {
        await cache.get(key, async () => again.push(key), {
          idPrefix: key.repeat(4),
          rowsOf: () => 1,
        });
      }
      expect(again).toEqual(["a"]);
      // One answer holding more than all allowed is not kept at all.
      await cache.get("huge", read(11), { idPrefix: "eeee", rowsOf });
      await sleep(0);
      expect(await cache.get("huge", read(1), { idPrefix: "eeee", rowsOf })).toEqual({ rows: 1 });
    });
  });
});
