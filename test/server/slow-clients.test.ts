import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { startServer } from "../../src/server/serve.js";
import { tempStore } from "../helpers/temp-dir.js";

/** Sends `text` on a raw connection and collects what comes back until the server closes it. */
function rawRequest(url: string, text: string): Promise<{ answer: string; ms: number }> {
  const { hostname, port } = new URL(url);
  const began = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let answer = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => {
      answer += chunk;
    });
    socket.on("close", () => resolve({ answer, ms: Date.now() - began }));
    socket.on("error", reject);
  });
}

describe("slow clients", () => {
  it("cuts off a client that never finishes its request headers, and keeps serving others", async () => {
    const server = await startServer({
      db: tempStore(),
      port: 0,
      slowClientMs: 500,
      log: () => undefined,
    });
    try {
      const slow = rawRequest(server.url, "GET /api/runs HTTP/1.1\r\nHost: runtrail\r\nX-Slow: ");
      const meanwhile = await fetch(`${server.url}/api/runs`);
      expect(meanwhile.status).toBe(200);
      const { answer, ms } = await slow;
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(ms).toBeGreaterThanOrEqual(400);
      expect(ms).toBeLessThan(5_000);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
