import { describe, expect, it } from "vitest";
import {
  formatSeconds,
  InvalidTimeError,
  parseDuration,
  parseTimePoint,
} from "../../src/util/duration.js";

describe("durations and points in time", () => {
  it("reads durations in every unit, and combined", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("15m")).toBe(900_000);
    expect(parseDuration("24h")).toBe(86_400_000);
    expect(parseDuration("30d")).toBe(2_592_000_000);
    expect(parseDuration("2w")).toBe(1_209_600_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
  });

  it("refuses what is not a duration", () => {
    for (const text of ["", "30", "d", "30 days", "yesterday", "-5m", "5m-"]) {
      expect(() => parseDuration(text), text).toThrow(InvalidTimeError);
    }
  });

  it("reads a duration ago, a date, and a date-time in UTC unless it says otherwise", () => {
    const now = Date.UTC(2026, 10, 23, 12, 0, 0);
    expect(parseTimePoint("24h", now)).toBe((now - 86_400_000) * 1000);
    expect(parseTimePoint("2026-11-01", now)).toBe(Date.UTC(2026, 10, 1) * 1000);
    expect(parseTimePoint("2026-11-01T12:00", now)).toBe(Date.UTC(2026, 10, 1, 12) * 1000);
    expect(parseTimePoint("2026-11-01T12:00:00Z", now)).toBe(Date.UTC(2026, 10, 1, 12) * 1000);
    expect(parseTimePoint("2026-11-01T12:00:00+02:00", now)).toBe(Date.UTC(2026, 10, 1, 10) * 1000);
    expect(() => parseTimePoint("2026-13-45", now)).toThrow(InvalidTimeError);
  });

  it("refuses days a month does not have, rather than rolling them over", () => {
    for (const text of ["2026-02-30", "2026-04-31", "2025-02-29", "2100-02-29", "2026-00-10"]) {
      expect(() => parseTimePoint(text), text).toThrow(/not a valid date/);
    }
    expect(parseTimePoint("2024-02-29")).toBe(Date.UTC(2024, 1, 29) * 1000);
    expect(parseTimePoint("2000-02-29T10:00:00Z")).toBe(Date.UTC(2000, 1, 29, 10) * 1000);
  });

  it("refuses durations over 1,000 years and times outside the years 1 to 9999", () => {
    expect(() => parseDuration("1001y")).toThrow(InvalidTimeError);
    expect(() => parseDuration("52200w")).toThrow(/longer than 1,000 years/);
    expect(parseDuration("52000w")).toBe(52_000 * 604_800_000);
    const now = Date.UTC(2026, 10, 23);
    expect(() => parseTimePoint("200000000d", now)).toThrow(/longer than 1,000 years/);
    expect(() => parseTimePoint("99999999999999w", now)).toThrow(InvalidTimeError);
    expect(() => parseTimePoint("+275760-09-13T00:00:00Z", now)).toThrow(InvalidTimeError);
    expect(parseTimePoint("0001-01-01T00:00:00Z", now)).toBe(-62_135_596_800_000_000);
  });

  it("formats durations for people", () => {
    expect(formatSeconds(0.85)).toBe("850ms");
    expect(formatSeconds(12.345)).toBe("12.35s");
    expect(formatSeconds(200)).toBe("3m 20s");
    expect(formatSeconds(7500)).toBe("2h 5m");
    expect(formatSeconds(200_000)).toBe("2d 7h");
  });
});
