import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { OtlpIngest, type OtlpIngestOptions } from "../otlp/otlp-ingest.js";
import { DEFAULT_SILENT_AFTER_MS, DEFAULT_STALE_AFTER_MS } from "../store/reap.js";
import { otherServer, removeClaim, servedMessage, writeClaim } from "../store/server-claim.js";
import { StoreError } from "../store/store-errors.js";
import { type AppOptions, ChangeFeed, createApp, type RunTrailApp } from "./app.js";
import { RunMetrics } from "./run-metrics.js";
import { ServedStore } from "./served-store.js";
import { TokenSet } from "./tokens.js";

export const DEFAULT_PORT = 4319;
export const DEFAULT_HOST = "127.0.0.1";

export interface ServeOptions {
  /** The store, resolved to an absolute path. */
  db: string;
  host?: string;
  /** 0 for a port the OS chooses. Default 4319. */
  port?: number;
  tokens?: TokenSet;
  /** Serve without tokens on an address other than loopback. */
  insecure?: boolean;
  jaegerUrl?: string;
  staleAfterMs?: number;
  /** A run received over OTLP that no span arrived for in this long is crashed. Default 30 min. */
  silentAfterMs?: number;
  stuckAfterMs?: number;
  /** Limits of the OTLP receiver's memory; see {@link OtlpIngestOptions}. */
  otlp?: Omit<OtlpIngestOptions, "onWrite">;
  /** How long a store held by another process is waited for. Default 30 s. */
  lockWaitMs?: number;
  /** Told of background failures. Default: printed to stderr. */
  log?: (message: string) => void;
  /**
   * A client that takes longer than this to send its request headers gets 408 and is cut off;
   * one that takes three times as long for the whole request too. Default 10 s.
   */
  slowClientMs?: number;
}

export interface RunningServer {
  /** `http://host:port`, with the port the server listens on. */
  url: string;
  app: RunTrailApp;
  store: ServedStore;
  /** Stops accepting, finishes requests (up to a few seconds), writes in the spool, closes the store. */
  close(): Promise<void>;
}

export class ServeError extends Error {
  override readonly name = "ServeError";
}

export function isLoopback(host: string): boolean {
  return (
    host === "localhost" ||
    host === "::1" ||
    host === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  );
}

/**
 * New connections the kernel holds for the server while it is busy (capped by the system's
 * `net.core.somaxconn`). Past Node's default of 511, connections that had sent a request body
 * were reset: a burst of OTLP exporters at ten times what the server takes lost hundreds that
 * way, where it should answer each, with 429 if it must.
 */
const LISTEN_BACKLOG = 4096;

/** How long requests in flight may finish after a shutdown begins; then connections are cut. */
const DRAIN_MS = 5_000;

/**
 * Starts the runtrail server on a store: listens, claims the store (so that pipelines spool to
 * it and the CLI reads through it), then opens it. Requests that come before the store is
 * open get 503 with `Retry-After`.
 *
 * A store that a live runtrail server holds (its claim names a live process) is refused at once
 * with a {@link StoreError} (`locked`) naming that server, before anything is listened on or
 * written: the other server keeps its claim and its store. A claim left by a server that was
 * killed does not count.
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const host = options.host ?? DEFAULT_HOST;
  const tokens = options.tokens ?? TokenSet.none;
  if (tokens.size === 0 && !isLoopback(host) && !options.insecure) {
    throw new ServeError(
      `refusing to serve ${host} without tokens: anyone who can reach it could read and delete runs. Set RUNTRAIL_TOKENS or RUNTRAIL_TOKENS_FILE (or --tokens FILE), or pass --insecure`,
    );
  }
  const served = otherServer(options.db);
  if (served !== undefined) throw new StoreError("locked", servedMessage(options.db, served));
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const stuckAfterMs = options.stuckAfterMs ?? 3_600_000;
  const changes = new ChangeFeed();
  const runMetrics = new RunMetrics({ stuckAfterMs });
  let store: ServedStore | undefined;
  let ingest: OtlpIngest | undefined;
  const appOptions: AppOptions = {
    store: () => store,
    otlp: () => ingest,
    tokens,
    stuckAfterMs,
    changes,
    log,
    metrics: {
      refresh: (s) => s.read((session) => runMetrics.refresh(session)),
      observeRequest: (method, route, status, seconds) =>
        runMetrics.observeRequest(method, route, status, seconds),
      render: (accept) => runMetrics.render(accept),
      observeOtlp: (result, spans) => runMetrics.observeOtlp(result, spans),
    },
    ...(options.jaegerUrl !== undefined ? { jaegerUrl: options.jaegerUrl } : {}),
  };
  const app = createApp(appOptions);

  const server = await new Promise<Server>((resolve, reject) => {
    const slow = options.slowClientMs ?? 10_000;
    const s = createAdaptorServer({
      fetch: app.fetch,
      serverOptions: {
        headersTimeout: slow,
        requestTimeout: slow * 3,
        // How often Node looks for clients past those times.
        connectionsCheckingInterval: Math.max(100, Math.min(slow / 4, 30_000)),
      },
    }) as Server;
    s.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new ServeError(`${host}:${options.port ?? DEFAULT_PORT} is in use by another program`)
          : error,
      ),
    );
    s.listen({ port: options.port ?? DEFAULT_PORT, host, backlog: LISTEN_BACKLOG }, () =>
      resolve(s),
    );
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;

  const stopListening = () =>
    new Promise<void>((resolve) => {
      const cut = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
      server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      server.closeIdleConnections();
      // Event streams never end by themselves: tell them to.
      changes.close();
    });

  try {
    // Refuses, should another server have claimed the store since the check above.
    writeClaim(options.db, url);
  } catch (error) {
    await stopListening();
    throw error;
  }
  try {
    store = await ServedStore.open(options.db, {
      staleAfterMs,
      silentAfterMs: options.silentAfterMs ?? DEFAULT_SILENT_AFTER_MS,
      lockWaitMs: options.lockWaitMs ?? 30_000,
      onChange: () => changes.notify(),
      onIngest: (rows, seconds, ok) => runMetrics.observeIngest("spool", rows, seconds, ok),
      onError: (error) =>
        log(`runtrail serve: ${error instanceof Error ? error.message : String(error)}`),
    });
    ingest = await OtlpIngest.open(store, {
      ...options.otlp,
      onWrite: (spans, runs, seconds, ok) => {
        runMetrics.observeIngest("otlp", spans, seconds, ok);
        if (ok && runs > 0) changes.notify();
      },
    });
  } catch (error) {
    await store?.close();
    removeClaim(options.db);
    await stopListening();
    throw error;
  }
  const opened = store;
  const receiver = ingest;

  let closing: Promise<void> | undefined;
  return {
    url,
    app,
    store: opened,
    close() {
      closing ??= (async () => {
        // Requests in flight are answered once their spans are written.
        await stopListening();
        await receiver.close();
        await opened.close();
        removeClaim(options.db);
      })();
      return closing;
    },
  };
}
