import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { startServer } from "../../src/server/serve.js";
import { TokenSet } from "../../src/server/tokens.js";
import { tempStore } from "../helpers/temp-dir.js";

/**
 * Sends a POST whose body comes in two parts a second apart, then a GET on the same
 * connection; the answers to both.
 */
async function slowPostThenGet(
  url: string,
  headers: string,
): Promise<{ first: string; second: string }> {
  const { hostname, port } = new URL(url);
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
    `POST /v1/traces HTTP/1.1\r\nHost: runtrail\r\n${headers}Content-Length: ${body.length}\r\n\r\n${body.slice(0, 1024)}`,
  );
  // Longer than a server that answers first waits for the rest before it cuts the client off.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  socket.write(body.slice(1024));
  // The whole answer: headers, then a JSON body.
  await expect
    .poll(() => answer, { timeout: 5_000 })
    .toMatch(/^HTTP\/1\.1 \d{3} [\s\S]*\r\n\r\n\{[\s\S]*\}$/);
  const before = answer.length;
  socket.write("GET /healthz HTTP/1.1\r\nHost: runtrail\r\nConnection: close\r\n\r\n");
  await closed;
  return { first: answer.slice(0, before), second: answer.slice(before) };
}

describe("answers given without reading the request body", () => {
  it("read the rest of it first, so a client still sending gets its answer and keeps its connection", async () => {
    const server = await startServer({ db: tempStore(), port: 0, log: () => undefined });
    try {
      const { first, second } = await slowPostThenGet(server.url, "Content-Type: text/plain\r\n");
      expect(first).toMatch(/^HTTP\/1\.1 415 /);
      expect(first).toMatch(/send application\/x-protobuf or application\/json/);
      // The same connection serves the next request.
      expect(second).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await server.close();
    }
  });

  it("do so for any refusal, such as a request without the token the server asks for", async () => {
    const server = await startServer({
      db: tempStore(),
      port: 0,
      tokens: TokenSet.fromText("ingest-only:*:ingest"),
      log: () => undefined,
    });
    try {
      // OTLP/JSON, so that the refusal (a google.rpc.Status in the request's format) is JSON.
      const { first, second } = await slowPostThenGet(
        server.url,
        "Content-Type: application/json\r\n",
      );
      expect(first).toMatch(/^HTTP\/1\.1 401 /);
      expect(first).toMatch(/"code":16/);
      expect(second).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      await server.close();
    }
  });
});
