import { describe, expect, it } from "vitest";
import { ROW_GROUP_SIZE, withStore } from "../../src/store/open-store.js";
import { compactStore } from "../../src/store/prune.js";
import { rowGroupSizes } from "../helpers/store-rows.js";
import { tempStore } from "../helpers/temp-dir.js";

describe("compactStore", () => {
  it("keeps every row, in row groups of the store's size", async () => {
    const db = tempStore();
    const rows = 3 * ROW_GROUP_SIZE + 100;
    await withStore(db, async (s) => {
      await s.run(`CREATE TABLE numbers AS SELECT range AS n FROM range(${2 * rows})`);
      await s.run(`DELETE FROM numbers WHERE n >= ${rows}`);
      await compactStore(s);
    });
    await withStore(db, async (s) => {
      const sizes = await rowGroupSizes(s, "numbers");
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(rows);
      expect(Math.max(...sizes)).toBe(ROW_GROUP_SIZE);
    });
  });
});
