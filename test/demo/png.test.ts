import { crc32, inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { barChartPng } from "../../src/demo/png.js";

/** The chunks of a PNG file: type, data and the CRC it carries. */
function chunksOf(file: Buffer): { type: string; data: Buffer; crc: number; body: Buffer }[] {
  const chunks = [];
  for (let at = 8; at < file.length; ) {
    const length = file.readUInt32BE(at);
    const body = file.subarray(at + 4, at + 8 + length);
    chunks.push({
      type: body.subarray(0, 4).toString("latin1"),
      data: body.subarray(4),
      crc: file.readUInt32BE(at + 8 + length),
      body,
    });
    at += 12 + length;
  }
  return chunks;
}

describe("the demo's PNG charts", () => {
  it("are PNG files whose chunks carry the right CRC-32 and the pixels drawn", () => {
    const file = barChartPng([3, 0, 7, 5], 40, 10);
    expect(file.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10]));
    const chunks = chunksOf(file);
    expect(chunks.map((c) => c.type)).toEqual(["IHDR", "IDAT", "IEND"]);
    for (const chunk of chunks) expect(chunk.crc).toBe(crc32(chunk.body));
    const header = chunks[0]?.data as Buffer;
    expect([header.readUInt32BE(0), header.readUInt32BE(4)]).toEqual([40, 10]);
    const rows = inflateSync(chunks[1]?.data as Buffer);
    expect(rows.length).toBe((40 * 3 + 1) * 10);
    // The bottom row of the tallest bar (the third, x 20-29) is blue; the top-left corner is white.
    const bottom = 9 * (40 * 3 + 1) + 1;
    expect([...rows.subarray(bottom + 25 * 3, bottom + 25 * 3 + 3)]).toEqual([5, 80, 174]);
    expect([...rows.subarray(1, 4)]).toEqual([255, 255, 255]);
  });
});
