import { DEFAULT_HOST, DEFAULT_PORT, ServeError, startServer } from "../../server/serve.js";
import { TokenConfigError, TokenSet } from "../../server/tokens.js";
import { StoreError } from "../../store/store-errors.js";
import { resolveStorePath } from "../../store/store-path.js";
import { parseDuration } from "../../util/duration.js";
import { COMMON_OPTIONS, COMMON_USAGE, type Command, stringValue } from "../_command.js";
import { parseTimeOption, STALE_AFTER_USAGE, staleAfterMs } from "../_store.js";
import { CliError, ExitCode } from "../cli-error.js";

export const serveCommand: Command = {
  name: "serve",
  summary: "serve the store: query API, /metrics, and the place the CLI reads from",
  usage: [
    `runtrail serve [--port ${DEFAULT_PORT}] [--host ${DEFAULT_HOST}] [--db PATH]`,
    "",
    `  --port N           port to listen on; 0 for any free one (default ${DEFAULT_PORT}, or RUNTRAIL_PORT)`,
    `  --host H           address to listen on (default ${DEFAULT_HOST})`,
    "  --tokens FILE      accepted tokens (default: RUNTRAIL_TOKENS_FILE, and RUNTRAIL_TOKENS)",
    "  --insecure         allow serving an address other than loopback without tokens",
    "  --stuck-after DUR  a run still running after this long is stuck (default 1h)",
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
    "stuck-after": { type: "string" },
    "stale-after": { type: "string" },
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
    const db = resolveStorePath(stringValue(values, "db"), io.env);
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
    };
    if (values.json) io.stdout(`${JSON.stringify(info)}\n`);
    else {
      io.stdout(
        [
          `runtrail serving ${db}`,
          `  API:      ${info.api}`,
          `  metrics:  ${info.metrics}`,
          `  OpenAPI:  ${info.openapi}`,
          tokens.size > 0 ? `  tokens:   ${tokens.size} accepted` : "  tokens:   none (open)",
          "",
        ].join("\n"),
      );
    }
    await new Promise<void>((resolve) => {
      void io.interrupted.then(resolve);
      process.once("SIGTERM", () => resolve());
    });
    io.stderr("runtrail serve: stopping\n");
    await server.close();
    return ExitCode.ok;
  },
};
