/**
 * The part of autocannon's programmatic API the server benchmark uses (autocannon ships no
 * types, and @types/autocannon describes an older major version).
 */
declare module "autocannon" {
  import type { EventEmitter } from "node:events";

  namespace autocannon {
    interface Request {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string;
      /** Called before each request is sent; returns the request to send. */
      setupRequest?: (request: Request, context: Record<string, unknown>) => Request;
    }

    interface Options {
      url: string;
      connections?: number;
      /** Seconds. */
      duration?: number;
      /** Requests to make in all; overrides duration. */
      amount?: number;
      /** Requests per second over all connections. */
      overallRate?: number;
      /** Requests per second from each connection. */
      connectionRate?: number;
      ignoreCoordinatedOmission?: boolean;
      /** Seconds to wait for a response. */
      timeout?: number;
      headers?: Record<string, string>;
      requests?: Request[];
      title?: string;
    }

    /** hdr-histogram-percentiles-obj: min, max, mean and percentiles of one statistic. */
    interface Histogram {
      average: number;
      mean: number;
      stddev: number;
      min: number;
      max: number;
      total: number;
      p50: number;
      p90: number;
      p99: number;
    }

    interface Result {
      title?: string;
      url: string;
      /** Seconds. */
      duration: number;
      connections: number;
      errors: number;
      timeouts: number;
      mismatches: number;
      non2xx: number;
      statusCodeStats: Record<string, { count: number }>;
      latency: Histogram;
      requests: Histogram & { sent: number };
      throughput: Histogram;
    }

    interface Instance extends EventEmitter {
      stop(): void;
    }
  }

  function autocannon(
    options: autocannon.Options,
    done: (error: Error | null, result: autocannon.Result) => void,
  ): autocannon.Instance;

  export = autocannon;
}
