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

describe("early answers on /v1/traces", () => {
  it("reads the rest of a refused body first, so a client still sending gets its answer and keeps its connection", async () => {
    const server = await startServer({ db: tempStore(), port: 0, log: () => undefined });
    try {
      const { hostname, port } = new URL(server.url);
      const socket = connect(Number(port), hostname);
      let answer = "";
      socket.setEncoding("utf8").on("data", (chunk: string) => {
        answer += chunk;
      });
      const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
      socket.on("error", () => undefined);
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      const body = "x".repeat(256 * 1024);
      socket.write(
        `POST /v1/traces HTTP/1.1\r\nHost: runtrail\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 1024)}`,
      );
      // Longer than a server that answers first waits for the rest before it cuts the client off.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      socket.write(body.slice(1024));
      await expect.poll(() => answer, { timeout: 5_000 }).toMatch(/^HTTP\/1\.1 415 /);
      expect(answer).toMatch(/send application\/x-protobuf or application\/json/);
      // The same connection serves the next request.
      const before = answer.length;
      socket.write("GET /healthz HTTP/1.1\r\nHost: runtrail\r\nConnection: close\r\n\r\n");
      await closed;
      expect(answer.slice(before)).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await server.close();
    }
  });
});
