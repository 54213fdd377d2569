/**
 * The OpenTelemetry Collector's configuration, checked without the Collector: every component
 * a pipeline names is defined and every defined one is used, and the addresses it listens on
 * and sends to agree with docker-compose.yml.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ROOT } from "../helpers/paths.js";
import { argumentAfter, commandOf, portsOf, service, services } from "./_compose.js";
import { durationSeconds } from "./_dashboards.js";

type Components = Record<string, Record<string, unknown> | null>;

interface Pipeline {
  receivers?: string[];
  processors?: string[];
  exporters?: string[];
}

interface CollectorConfig {
  extensions?: Components;
  receivers?: Components;
  processors?: Components;
  exporters?: Components;
  connectors?: Components;
  service: { extensions?: string[]; pipelines: Record<string, Pipeline> };
}

const config = parse(
  readFileSync(join(ROOT, "collector", "otel-collector.yaml"), "utf8"),
) as CollectorConfig;
const pipelines = Object.entries(config.service.pipelines);

/** The ports other services listen on inside the network, as the exporters reach them. */
const LISTENS: Record<string, number[]> = {
  // Jaeger v2 all-in-one: OTLP gRPC and HTTP.
  jaeger: [4317, 4318],
  runtrail: [Number(argumentAfter(commandOf(service("runtrail")), "--port"))],
};

/** Container ports compose publishes for a service. */
function publishedPorts(name: string): number[] {
  return portsOf(service(name)).map((port) => port.container);
}

function section(name: keyof Omit<CollectorConfig, "service">): Components {
  return config[name] ?? {};
}

function settings(kind: keyof Omit<CollectorConfig, "service">, id: string) {
  const found = section(kind)[id];
  if (found === undefined) throw new Error(`${kind} has no ${id}`);
  return (found ?? {}) as Record<string, unknown>;
}

/** host and port of an endpoint: `host:port` or a URL. */
function hostPort(endpoint: string): { host: string; port: number; path: string } {
  const url = new URL(endpoint.includes("://") ? endpoint : `tcp://${endpoint}`);
  return { host: url.hostname, port: Number(url.port), path: url.pathname };
}

/** The signal a pipeline carries: `traces` for `traces` and `traces/anything`. */
function signalOf(pipelineId: string): string {
  return pipelineId.split("/")[0] ?? "";
}

describe("the Collector configuration", () => {
  it("defines every receiver, processor and exporter its pipelines name", () => {
    const connectors = Object.keys(section("connectors"));
    for (const [id, pipeline] of pipelines) {
      expect(pipeline.receivers?.length, `${id} has receivers`).toBeGreaterThan(0);
      expect(pipeline.exporters?.length, `${id} has exporters`).toBeGreaterThan(0);
      for (const r of pipeline.receivers ?? []) {
        expect([...Object.keys(section("receivers")), ...connectors], `${id}`).toContain(r);
      }
      for (const p of pipeline.processors ?? []) {
        expect(Object.keys(section("processors")), `${id}`).toContain(p);
      }
      for (const e of pipeline.exporters ?? []) {
        expect([...Object.keys(section("exporters")), ...connectors], `${id}`).toContain(e);
      }
    }
    for (const e of config.service.extensions ?? []) {
      expect(Object.keys(section("extensions"))).toContain(e);
    }
  });

  it("uses every component it defines", () => {
    const used = (key: keyof Pipeline) => new Set(pipelines.flatMap(([, p]) => p[key] ?? []));
    for (const id of Object.keys(section("receivers"))) expect(used("receivers")).toContain(id);
    for (const id of Object.keys(section("processors"))) expect(used("processors")).toContain(id);
    for (const id of Object.keys(section("exporters"))) expect(used("exporters")).toContain(id);
    for (const id of Object.keys(section("extensions"))) {
      expect(config.service.extensions ?? []).toContain(id);
    }
  });

  it("uses each connector as the exporter of one pipeline and the receiver of another", () => {
    const connectors = Object.keys(section("connectors"));
    expect(connectors).toContain("spanmetrics");
    for (const id of connectors) {
      const from = pipelines.filter(([, p]) => p.exporters?.includes(id)).map(([name]) => name);
      const into = pipelines.filter(([, p]) => p.receivers?.includes(id)).map(([name]) => name);
      expect(from.length, `${id} is exported to`).toBeGreaterThan(0);
      expect(into.length, `${id} is received from`).toBeGreaterThan(0);
      for (const name of from) expect(into).not.toContain(name);
    }
    // spanmetrics turns traces into metrics.
    for (const [name, p] of pipelines) {
      if (p.exporters?.includes("spanmetrics")) expect(signalOf(name)).toBe("traces");
      if (p.receivers?.includes("spanmetrics")) expect(signalOf(name)).toBe("metrics");
    }
  });

  it("puts memory_limiter first in every pipeline with processors", () => {
    for (const [id, pipeline] of pipelines) {
      if ((pipeline.processors ?? []).length === 0) continue;
      expect(pipeline.processors?.[0], id).toBe("memory_limiter");
    }
    expect(config.service.pipelines.traces?.processors).toEqual(["memory_limiter", "batch"]);
    expect(settings("processors", "memory_limiter")).toMatchObject({
      check_interval: "1s",
      limit_percentage: 80,
      spike_limit_percentage: 20,
    });
  });

  it("sends each span to Jaeger, to runtrail and to the span metrics", () => {
    expect(config.service.pipelines.traces).toMatchObject({
      receivers: ["otlp"],
      exporters: ["otlp/jaeger", "otlphttp/runtrail", "spanmetrics"],
    });
    expect(config.service.pipelines["metrics/spanmetrics"]).toMatchObject({
      receivers: ["spanmetrics"],
      exporters: ["prometheus"],
    });
  });

  it("sends to compose services on ports they listen on", () => {
    // Exporters that connect somewhere (the prometheus exporter's endpoint is where it listens).
    const clients = Object.entries(section("exporters")).filter(
      ([id, value]) => !id.startsWith("prometheus") && value?.endpoint !== undefined,
    );
    expect(clients.length).toBeGreaterThan(0);
    for (const [id, value] of clients) {
      const endpoint = String(value?.endpoint ?? "");
      const { host, port } = hostPort(endpoint);
      expect(services[host], `${id}: ${host} is a compose service`).toBeDefined();
      expect(LISTENS[host] ?? [], `${id}: ${host} listens on ${port}`).toContain(port);
    }
    expect(hostPort(String(settings("exporters", "otlp/jaeger").endpoint))).toMatchObject({
      host: "jaeger",
      port: 4317,
    });
    expect(settings("exporters", "otlp/jaeger").tls).toEqual({ insecure: true });
  });

  it("sends runtrail gzip-compressed OTLP/HTTP at its base URL", () => {
    const runtrail = settings("exporters", "otlphttp/runtrail");
    const { host, port, path } = hostPort(String(runtrail.endpoint));
    expect({ host, port }).toEqual({ host: "runtrail", port: 4319 });
    // The otlphttp exporter appends /v1/traces itself.
    expect(path === "" || path === "/").toBe(true);
    expect(runtrail.compression).toBe("gzip");
  });

  it("listens for OTLP on 0.0.0.0, on the ports compose publishes for it", () => {
    const published = publishedPorts("otel-collector");
    const otlp = settings("receivers", "otlp") as {
      protocols: Record<string, { endpoint: string }>;
    };
    expect(Object.keys(otlp.protocols).sort()).toEqual(["grpc", "http"]);
    const listening = Object.entries(otlp.protocols).map(([protocol, p]) => {
      const { host, port } = hostPort(p.endpoint);
      expect(host, protocol).toBe("0.0.0.0");
      expect(published, protocol).toContain(port);
      return port;
    });
    expect(listening.sort()).toEqual([4317, 4318]);
  });

  it("serves the span metrics as OpenMetrics on a port compose publishes", () => {
    const prometheus = settings("exporters", "prometheus");
    const { host, port } = hostPort(String(prometheus.endpoint));
    expect(host).toBe("0.0.0.0");
    expect(publishedPorts("otel-collector")).toContain(port);
    expect(prometheus.enable_open_metrics).toBe(true);
  });

  it("is scraped by Prometheus where it serves", () => {
    const { port } = hostPort(String(settings("exporters", "prometheus").endpoint));
    const scrape = parse(readFileSync(join(ROOT, "prometheus", "prometheus.yml"), "utf8")) as {
      scrape_configs?: { static_configs?: { targets?: string[] }[] }[];
    };
    const targets = (scrape.scrape_configs ?? []).flatMap((job) =>
      (job.static_configs ?? []).flatMap((group) => group.targets ?? []),
    );
    expect(targets).toContain(`otel-collector:${port}`);
  });

  it("answers health checks on a port compose publishes", () => {
    const { host, port } = hostPort(String(settings("extensions", "health_check").endpoint));
    expect(host).toBe("0.0.0.0");
    expect(publishedPorts("otel-collector")).toContain(port);
    expect(config.service.extensions).toContain("health_check");
  });

  it("listens on every port compose publishes for it", () => {
    const listening = [
      ...Object.values(
        (settings("receivers", "otlp") as { protocols: Record<string, { endpoint: string }> })
          .protocols,
      ).map((p) => hostPort(p.endpoint).port),
      hostPort(String(settings("exporters", "prometheus").endpoint)).port,
      hostPort(String(settings("extensions", "health_check").endpoint)).port,
    ];
    for (const port of publishedPorts("otel-collector")) expect(listening).toContain(port);
  });

  it("measures spans from a tenth of a second to hours, per pipeline, with exemplars", () => {
    const spanmetrics = settings("connectors", "spanmetrics") as {
      histogram?: { unit?: string; explicit?: { buckets?: string[] } };
      dimensions?: { name: string }[];
      exemplars?: { enabled?: boolean };
    };
    // Go durations as the Collector writes them (100ms, 2500ms, 1m, 1h) read as Prometheus's do.
    const buckets = (spanmetrics.histogram?.explicit?.buckets ?? []).map(durationSeconds);
    expect(buckets.length).toBeGreaterThan(5);
    expect(buckets[0]).toBe(0.1);
    expect(buckets.at(-1)).toBeGreaterThanOrEqual(3600);
    for (let i = 1; i < buckets.length; i++) {
      expect(buckets[i], `bucket ${i}`).toBeGreaterThan(buckets[i - 1] ?? 0);
    }
    expect(spanmetrics.histogram?.unit).toBe("s");
    expect(spanmetrics.exemplars?.enabled).toBe(true);
    expect((spanmetrics.dimensions ?? []).map((d) => d.name)).toContain("runtrail.pipeline.name");
  });
});
