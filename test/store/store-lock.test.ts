import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { lockStore } from "../../src/store/store-lock.js";
import { tempDir } from "../helpers/temp-dir.js";

/** Whether `lock` settles within `ms`. */
async function within<T>(lock: Promise<T>, ms: number): Promise<T | "waiting"> {
  return Promise.race([lock, sleep(ms).then(() => "waiting" as const)]);
}

describe("the in-process store lock", () => {
  it("lets one thread hold many stores at once, those that shared a lock bucket included", async () => {
    const dir = tempDir();
    // These two paths fell in one of the 64 buckets the lock used to have: the second waited
    // for the first to be let go.
    const paths = [
      "/tmp/runtrail-test-FINVND/runs.duckdb",
      "/tmp/runtrail-test-FJSk1V/runs.duckdb",
      ...Array.from({ length: 100 }, (_, i) => `${dir}/store-${i}/runs.duckdb`),
    ];
    const releases: (() => void)[] = [];
    for (const path of paths) {
      const release = await within(lockStore(path), 2_000);
      expect(release, path).not.toBe("waiting");
      if (release !== "waiting") releases.push(release);
    }
    for (const release of releases) release();
  });

  it("makes a second taker of the same store wait until the first lets go", async () => {
    const path = `${tempDir()}/runs.duckdb`;
    const first = await lockStore(path);
    const second = lockStore(path);
    expect(await within(second, 300)).toBe("waiting");
    first();
    const release = await within(second, 2_000);
    expect(release).not.toBe("waiting");
    if (release !== "waiting") release();
    // Let go, it is free for the next.
    const third = await within(lockStore(path), 2_000);
    expect(third).not.toBe("waiting");
    if (third !== "waiting") third();
  });

  it("makes a taker wait while every slot is held, and lets it in when one frees up", async () => {
    const dir = tempDir();
    const held: (() => void)[] = [];
    // As many stores as the table has slots (256).
    for (let i = 0; i < 256; i++) {
      const release = await within(lockStore(`${dir}/held-${i}/runs.duckdb`), 2_000);
      expect(release).not.toBe("waiting");
      if (release !== "waiting") held.push(release);
    }
    const late = lockStore(`${dir}/late/runs.duckdb`);
    expect(await within(late, 300)).toBe("waiting");
    held.pop()?.();
    const release = await within(late, 2_000);
    expect(release).not.toBe("waiting");
    if (release !== "waiting") release();
    for (const r of held) r();
  });
});
