import { describe, expect, it } from "vitest";
import { shortId } from "../../src/util/format.js";

describe("shortId", () => {
  const trace = "4A4A4A4A4A4A4A4A2222222222222222";
  it("is 8 digits for a run that is its trace's root, or whose trace is not known", () => {
    expect(shortId("4a4a4a4a-4a4a-4a4a-2222-222222222222", trace)).toBe("4a4a4a4a");
    expect(shortId("4a4a4a4a-4a4a-4a4a-9876-000000000001")).toBe("4a4a4a4a");
  });

  it("is 20 digits for runs nested in a trace, which share its first 16", () => {
    expect(shortId("4a4a4a4a-4a4a-4a4a-9876-000000000001", trace)).toBe("4a4a4a4a-4a4a-4a4a-9876");
    expect(shortId("4a4a4a4a-4a4a-4a4a-5432-000000000002", trace)).toBe("4a4a4a4a-4a4a-4a4a-5432");
  });
});
