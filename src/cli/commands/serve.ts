import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { type DemoRunSummary, runDemo } from "../../demo/demo-pipeline.js";
import { RunTrailSpanProcessor } from "../../ingest/span-processor.js";
import { DEFAULT_HOST, DEFAULT_PORT, ServeError, startServer } from "../../server/serve.js";
import { TokenConfigError, TokenSet } from "../../server/tokens.js";
import { StoreError } from "../../store/store-errors.js";
import { parseDuration } from "../../util/duration.js";
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type Command,
  storePathOf,
  stringValue,
} from "../_command.js";
import {
  parseTimeOption,
  SILENT_AFTER_USAGE,
  STALE_AFTER_USAGE,
  silentAfterMs,
  staleAfterMs,
} from "../_store.js";
import { paintStatus } from "../_style.js";
import { CliError, ExitCode } from "../cli-error.js";

export const serveCommand: Command = {
  usage: [
    `runtrail serve [--port ${DEFAULT_PORT}] [--host ${DEFAULT_HOST}] [--db PATH]`,
    "",
    `  --port N           port to listen on; 0 for any free one (default ${DEFAULT_PORT}, or RUNTRAIL_PORT)`,
    `  --host H           address to listen on (default ${DEFAULT_HOST})`,
    "  --tokens FILE      accepted tokens (default: RUNTRAIL_TOKENS_FILE, and RUNTRAIL_TOKENS)",
    "  --insecure         allow serving an address other than loopback without tokens",
    "  --stuck-after DUR  a run still running after this long is stuck (default 1h)",
    SILENT_AFTER_USAGE,
    "  --demo             also run the bundled example pipeline into the store: 12 runs, then one",
    "                     every 10 s, so there is always something to look at",
    STALE_AFTER_USAGE,
    ...COMMON_USAGE,
    "",
    "  Stops on SIGTERM or SIGINT: no new requests, the ones in flight finish, rows are flushed.",
  ].join("\n"),
  options: {
    ...COMMON_OPTIONS,
    port: { type: "string" },
    host: { type: "string" },
    tokens: { type: "string" },
    insecure: { type: "boolean", default: false },
    demo: { type: "boolean", default: false },
    "stuck-after": { type: "string" },
    "stale-after": { type: "string" },
    "silent-after": { type: "string" },
  },
  async run({ values, io }) {
    const portText = stringValue(values, "port") ?? io.env.RUNTRAIL_PORT ?? String(DEFAULT_PORT);
    const port = Number(portText);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new CliError(`--port: "${portText}" is not a port number`, ExitCode.usage);
    }
    const stuck = stringValue(values, "stuck-after");
    let tokens: TokenSet;
    try {
      tokens = TokenSet.load(io.env, stringValue(values, "tokens"));
    } catch (error) {
      if (error instanceof TokenConfigError) throw new CliError(error.message, ExitCode.usage);
      throw error;
    }
    const db = storePathOf(values, io);
    // Listened for from the start: a stop asked for while the server starts comes after it.
    let stopping = false;
    const stopped = new Promise<void>((resolve) => {
      void io.interrupted.then(resolve);
      process.once("SIGTERM", () => resolve());
    }).then(() => {
      stopping = true;
    });
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer({
        db,
        host: stringValue(values, "host") ?? DEFAULT_HOST,
        port,
        tokens,
        insecure: values.insecure === true,
        staleAfterMs: staleAfterMs(values, io.env),
        ...(stuck ? { stuckAfterMs: parseTimeOption("--stuck-after", stuck, parseDuration) } : {}),
        silentAfterMs: silentAfterMs(values, io.env),
        log: (message) => io.stderr(`${message}\n`),
      });
    } catch (error) {
      if (error instanceof ServeError) throw new CliError(error.message, ExitCode.usage);
      if (error instanceof StoreError) throw new CliError(error.message);
      throw error;
    }
    const info = {
      url: server.url,
      db,
      api: `${server.url}/api/runs`,
      metrics: `${server.url}/metrics`,
      openapi: `${server.url}/openapi.json`,
      otlp: `${server.url}/v1/traces`,
    };
    if (values.json) io.stdout(`${JSON.stringify(info)}\n`);
    else {
      io.stdout(
        [
          `runtrail serving ${db}`,
          `  web:      ${server.url}/`,
          `  API:      ${info.api}`,
          `  metrics:  ${info.metrics}`,
          `  OpenAPI:  ${info.openapi}`,
          `  OTLP:     ${info.otlp} (OTLP/HTTP traces, protobuf or JSON)`,
          tokens.size > 0 ? `  tokens:   ${tokens.size} accepted` : "  tokens:   none (open)",
          "",
        ].join("\n"),
      );
    }
    const demo = values.demo
      ? feedDemo(
          db,
          () => stopping,
          (run) => {
            if (!values.json)
              io.stdout(`  demo run ${run.runId}  ${paintStatus(io.style, run.outcome)}\n`);
          },
        ).catch((error: unknown) =>
          io.stderr(`runtrail serve: the demo failed: ${String(error)}\n`),
        )
      : Promise.resolve();
    if (values.demo && !values.json) {
      io.stdout(
        [
          "Feeding it the demo pipeline. Open:",
          `  ${server.url}/                      the runs in a browser`,
          `  ${info.api}?status=failed     failed runs`,
          `  ${server.url}/api/stats             failure rate and durations`,
          "  npm run runtrail -- tail            the same, in the terminal (reads through the server)",
          "Stop with Ctrl-C.",
          "",
        ].join("\n"),
      );
    }
    await stopped;
    io.stderr("runtrail serve: stopping\n");
    await demo;
    await server.close();
    return ExitCode.ok;
  },
};

/**
 * The bundled example pipeline, recording into the served store like any other pipeline: its
 * processor finds the server's claim and hands its rows over through the spool.
 */
async function feedDemo(
  db: string,
  shouldStop: () => boolean,
  onRun: (run: DemoRunSummary) => void,
): Promise<void> {
  const processor = new RunTrailSpanProcessor({ db });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": "runtrail-demo" }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer("runtrail-demo");
  try {
    await runDemo({ tracer, store: db, runs: 12, shouldStop, onRun });
    await runDemo({
      tracer,
      store: db,
      runs: Number.MAX_SAFE_INTEGER,
      first: 13,
      betweenMs: 10_000,
      shouldStop,
      onRun,
    });
  } finally {
    await provider.shutdown();
  }
}
