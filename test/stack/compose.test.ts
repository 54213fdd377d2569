/**
 * The compose stack and the runtrail image, checked without Docker: docker-compose.yml and the
 * Dockerfile are read as text and their references to each other and to the repo are followed.
 */
import { copyFileSync, existsSync, readFileSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CLI, ROOT } from "../helpers/paths.js";
import { start } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";
import {
  argumentAfter,
  buildContextOf,
  COMPOSE_TEXT,
  commandOf,
  compose,
  environmentOf,
  flagValue,
  mountsOf,
  portsOf,
  type Service,
  service,
  services,
  tagOf,
} from "./_compose.js";

const DOCKERFILE = readFileSync(join(ROOT, "Dockerfile"), "utf8");
const COLLECTOR_DOCKERFILE = readFileSync(join(ROOT, "collector", "Dockerfile"), "utf8");

function hasHealthcheck(s: Service): boolean {
  return s.healthcheck !== undefined && s.healthcheck.disable !== true && !!s.healthcheck.test;
}

function dependenciesOf(s: Service): [string, { condition?: string } | undefined][] {
  if (s.depends_on === undefined) return [];
  if (Array.isArray(s.depends_on)) return s.depends_on.map((name) => [name, undefined]);
  return Object.entries(s.depends_on);
}

interface Instruction {
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions, continuation lines joined, grouped by stage (`FROM`). */
function dockerStages(text: string): Instruction[][] {
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push(pending + line);
    pending = "";
  }
  if (pending !== "") logical.push(pending.trim());
  const stages: Instruction[][] = [];
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const instruction = { keyword: (match[1] ?? "").toUpperCase(), args: match[2] ?? "" };
    if (instruction.keyword === "FROM") stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

const stages = dockerStages(DOCKERFILE);
const runtimeStage = stages.at(-1) ?? [];

function all(stage: Instruction[], keyword: string): string[] {
  return stage.filter((i) => i.keyword === keyword).map((i) => i.args);
}

/** The exec-form command after `CMD` in a HEALTHCHECK instruction. */
function dockerHealthcheck(): string[] {
  const args = all(runtimeStage, "HEALTHCHECK")[0];
  if (args === undefined) throw new Error("the runtime stage has no HEALTHCHECK");
  const cmd = /\bCMD\s+(\[.*\])\s*$/.exec(args)?.[1];
  if (cmd === undefined) throw new Error(`HEALTHCHECK is not in exec form: ${args}`);
  return JSON.parse(cmd) as string[];
}

describe("docker-compose.yml", () => {
  it("has the six services of the stack and no version key", () => {
    expect(Object.keys(services).sort()).toEqual(
      ["demo", "grafana", "jaeger", "otel-collector", "prometheus", "runtrail"].sort(),
    );
    expect(compose.version).toBeUndefined();
  });

  it("pins every image to a version, or builds runtrail:local and the Collector from the repo", () => {
    const builds = new Map(
      Object.values(services)
        .filter((s) => buildContextOf(s) !== undefined && s.image !== undefined)
        .map((s) => [s.image, buildContextOf(s)]),
    );
    expect(builds).toEqual(
      new Map([
        ["runtrail:local", "."],
        ["runtrail-otel-collector:0.120.0", "./collector"],
      ]),
    );
    for (const [name, s] of Object.entries(services)) {
      const image = s.image;
      expect(image, `${name} names its image`).toBeDefined();
      if (image === undefined) continue;
      if (image === "runtrail:local") {
        expect(builds.has(image), `${name}: runtrail:local is built by a service`).toBe(true);
        continue;
      }
      const tag = tagOf(image);
      expect(tag, `${name}: ${image} has a tag`).toBeDefined();
      expect(tag, `${name}: ${image}`).not.toBe("latest");
      expect(tag, `${name}: ${image} is a full version`).toMatch(/^v?\d+\.\d+\.\d+/);
    }
  });

  it("uses the major lines of each image the configuration is written for", () => {
    const collectorBase = dockerStages(COLLECTOR_DOCKERFILE).at(-1)?.[0]?.args;
    expect(collectorBase).toMatch(/^otel\/opentelemetry-collector-contrib:0\.1\d\d\.\d+$/);
    // The built image carries the version of the contrib image it adds to.
    expect(service("otel-collector").image).toBe(
      `runtrail-otel-collector:${tagOf(collectorBase ?? "")}`,
    );
    expect(service("jaeger").image).toMatch(/^jaegertracing\/jaeger:2\.\d+\.\d+$/);
    expect(service("prometheus").image).toMatch(/^prom\/prometheus:v3\.\d+\.\d+$/);
    expect(service("grafana").image).toMatch(/^grafana\/grafana:11\.\d+\.\d+$/);
    expect(service("demo").image).toBe("runtrail:local");
  });

  it("publishes each host port once", () => {
    const seen = new Map<string, string>();
    for (const [name, s] of Object.entries(services)) {
      for (const port of portsOf(s)) {
        expect(Number.isInteger(port.container), `${name}: ${JSON.stringify(port)}`).toBe(true);
        if (port.host === undefined) continue;
        const key = `${port.host}/${port.protocol}`;
        expect(seen.get(key), `host port ${key} of ${name}`).toBeUndefined();
        seen.set(key, name);
      }
    }
    // The Collector owns OTLP on the host; Jaeger takes it inside the network only.
    expect(seen.get("4317/tcp")).toBe("otel-collector");
    expect(seen.get("4318/tcp")).toBe("otel-collector");
    expect(seen.get("16686/tcp")).toBe("jaeger");
  });

  it("declares every named volume it uses, and uses every one it declares", () => {
    const used = new Set(
      Object.values(services).flatMap((s) =>
        mountsOf(s)
          .filter((m) => m.kind === "volume")
          .map((m) => m.source),
      ),
    );
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    expect(used).toEqual(declared);
    expect(declared).toEqual(new Set(["runtrail-data", "prometheus-data", "grafana-data"]));
  });

  it("names existing services with a condition in every depends_on", () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dependency, options] of dependenciesOf(s)) {
        expect(services[dependency], `${name} depends on ${dependency}`).toBeDefined();
        expect(options?.condition, `${name} -> ${dependency} has a condition`).toMatch(
          /^service_(started|healthy|completed_successfully)$/,
        );
      }
    }
  });

  it("waits for service_healthy only on services that have a health check", () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dependency, options] of dependenciesOf(s)) {
        if (options?.condition !== "service_healthy") continue;
        const target = services[dependency];
        expect(target && hasHealthcheck(target), `${name} -> ${dependency}`).toBe(true);
      }
    }
    for (const name of Object.keys(services)) {
      expect(hasHealthcheck(service(name)), name).toBe(true);
    }
    expect(new Map(dependenciesOf(service("demo"))).get("otel-collector")?.condition).toBe(
      "service_healthy",
    );
  });

  it("starts runtrail's dependents once its store is ready", () => {
    for (const name of ["otel-collector", "prometheus"]) {
      const dependencies = new Map(dependenciesOf(service(name)));
      expect(dependencies.get("runtrail")?.condition, name).toBe("service_healthy");
    }
    const grafana = new Map(dependenciesOf(service("grafana")));
    expect(grafana.get("prometheus")?.condition).toBe("service_healthy");
    expect(grafana.has("jaeger")).toBe(true);
    expect(new Map(dependenciesOf(service("demo"))).has("otel-collector")).toBe(true);
  });

  const bindMounts = Object.entries(services).flatMap(([name, s]) =>
    mountsOf(s)
      .filter((m) => m.kind === "bind")
      .map((m) => ({ name, ...m })),
  );

  it("bind-mounts only paths inside the repo", () => {
    expect(bindMounts.length).toBeGreaterThan(0);
    for (const mount of bindMounts) expect(mount.source, mount.name).toMatch(/^\.\/[^.]/);
  });

  for (const mount of bindMounts) {
    it(`has ${mount.source}, which ${mount.name} mounts`, () => {
      expect(existsSync(join(ROOT, mount.source))).toBe(true);
    });
  }

  it("mounts the configuration file each service's command names", () => {
    const collectorConfig = flagValue(commandOf(service("otel-collector")), "--config");
    expect(collectorConfig).toBe("/etc/otelcol-contrib/config.yaml");
    expect(mountsOf(service("otel-collector"))).toContainEqual({
      kind: "bind",
      source: "./collector/otel-collector.yaml",
      target: collectorConfig,
    });

    const prometheus = commandOf(service("prometheus"));
    expect(mountsOf(service("prometheus"))).toContainEqual({
      kind: "bind",
      source: "./prometheus/prometheus.yml",
      target: flagValue(prometheus, "--config.file"),
    });
    expect(mountsOf(service("prometheus"))).toContainEqual({
      kind: "volume",
      source: "prometheus-data",
      target: flagValue(prometheus, "--storage.tsdb.path"),
    });
    expect(prometheus).toContain("--enable-feature=exemplar-storage");
  });

  const home = environmentOf(service("grafana")).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? "";
  const homeMount = mountsOf(service("grafana")).find(
    (m) => m.kind === "bind" && home.startsWith(`${m.target}/`),
  );
  const homeFile = homeMount
    ? join(ROOT, homeMount.source, home.slice(homeMount.target.length))
    : "";
  it("opens Grafana on a dashboard file it mounts", () => {
    expect(homeMount, `${home} is under a bind mount`).toBeDefined();
    expect(existsSync(homeFile)).toBe(true);
  });

  it("runs runtrail on the port it publishes, open only with --insecure", () => {
    const runtrail = service("runtrail");
    const command = commandOf(runtrail);
    expect(command[0]).toBe("serve");
    expect(argumentAfter(command, "--host")).toBe("0.0.0.0");
    expect(argumentAfter(command, "--port")).toBe("4319");
    expect(command).toContain("--insecure");
    expect(portsOf(runtrail)).toContainEqual({ host: 4319, container: 4319, protocol: "tcp" });
    expect(mountsOf(runtrail)).toContainEqual({
      kind: "volume",
      source: "runtrail-data",
      target: "/data",
    });
    expect(environmentOf(runtrail).RUNTRAIL_JAEGER_URL).toBe("http://localhost:16686");
    expect(COMPOSE_TEXT).toMatch(/RUNTRAIL_TOKENS/);
  });

  it("checks runtrail's health as the image does", () => {
    const test = service("runtrail").healthcheck?.test;
    expect(test).toEqual(["CMD", ...dockerHealthcheck()]);
  });

  it("sends the demo's spans to the Collector's OTLP/HTTP port", () => {
    const command = commandOf(service("demo"));
    expect(command[0]).toBe("demo");
    const url = new URL(argumentAfter(command, "--otlp") ?? "");
    expect(url.hostname).toBe("otel-collector");
    expect(portsOf(service("otel-collector")).map((p) => p.container)).toContain(Number(url.port));
    expect(argumentAfter(command, "--every")).toBe("10");
    expect(service("demo").restart).toBe("unless-stopped");
  });

  it("checks the demo's health by the age of the file it writes after each run", async () => {
    const command = commandOf(service("demo"));
    const alive = argumentAfter(command, "--alive-file") ?? "";
    const test = service("demo").healthcheck?.test ?? [];
    expect(test.slice(0, 3)).toEqual(["CMD", "node", "-e"]);
    const script = String(test[3]);
    expect(script).toContain(`'${alive}'`);
    // The same check, on a file the built demo command writes here.
    const folder = tempDir();
    const file = join(folder, "demo-alive");
    const check = () =>
      start(process.execPath, ["-e", script.replaceAll(`'${alive}'`, JSON.stringify(file))]).exited;
    expect((await check()).code, "no file yet").toBe(1);
    const demo = await start(process.execPath, [
      CLI,
      "demo",
      "--runs",
      "2",
      "--pace",
      "0",
      "--db",
      join(folder, "runs.duckdb"),
      "--alive-file",
      file,
    ]).exited;
    expect(demo.code, demo.stderr).toBe(0);
    expect(readFileSync(file, "utf8")).toMatch(/^\d{4}-\d\d-\d\dT.*Z [0-9a-f-]{36}\n$/);
    expect((await check()).code, "a fresh file").toBe(0);
    const old = new Date(Date.now() - 120_000);
    utimesSync(file, old, old);
    expect((await check()).code, "a file two minutes old").toBe(1);
  }, 60_000);
});

describe("Dockerfile", () => {
  it("builds in one stage and runs from another, both on the same pinned Node 20 image", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const bases = stages.map((stage) => (stage[0]?.args ?? "").split(/\s+/)[0]);
    for (const base of bases) expect(base).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
    expect(new Set(bases).size).toBe(1);
  });

  it("installs every dependency and builds dist/ in the build stage", () => {
    const build = stages[0] ?? [];
    const runs = all(build, "RUN").join("\n");
    expect(runs).toMatch(/\bnpm install\b/);
    expect(runs).toMatch(/\bnpm run build\b/);
    expect(runs).not.toMatch(/--omit=dev/);
  });

  it("installs production dependencies only, without scripts, in the runtime stage", () => {
    const install = all(runtimeStage, "RUN").find((r) => /\bnpm install\b/.test(r));
    expect(install).toBeDefined();
    expect(install).toMatch(/--omit=dev\b/);
    expect(install).toMatch(/--ignore-scripts\b/);
    const buildName = /\bAS\s+(\S+)/i.exec(stages[0]?.[0]?.args ?? "")?.[1];
    expect(all(runtimeStage, "COPY")).toContainEqual(
      expect.stringMatching(new RegExp(`^--from=${buildName}\\s+/app/dist\\s`)),
    );
  });

  it("has install steps npm accepts with this lock file (each run with --dry-run)", async () => {
    const installs = stages
      .flatMap((stage) => all(stage, "RUN"))
      .map((run) => /\bnpm (?:install|ci)\b[^&]*/.exec(run)?.[0].trim())
      .filter((command): command is string => command !== undefined);
    expect(installs).toHaveLength(2);
    const folder = tempDir();
    copyFileSync(join(ROOT, "package.json"), join(folder, "package.json"));
    copyFileSync(join(ROOT, "package-lock.json"), join(folder, "package-lock.json"));
    for (const command of installs) {
      const [, ...args] = command.split(/\s+/);
      const done = await start("npm", [...args, "--dry-run"], { cwd: folder }).exited;
      expect(done.code, `${command}: ${done.stderr}`).toBe(0);
    }
  }, 120_000);

  it("gives the distroless Collector a static BusyBox for its health check, asking its health_check port", () => {
    const [tools, collector] = dockerStages(COLLECTOR_DOCKERFILE);
    const toolsFrom = tools?.[0]?.args ?? "";
    // The uClibc build of BusyBox is statically linked: it runs without a libc in the image.
    expect(toolsFrom).toMatch(/^busybox:\d+\.\d+\.\d+-uclibc\s+AS\s+busybox$/i);
    expect(all(collector ?? [], "COPY")).toEqual(["--from=busybox /bin/busybox /busybox"]);
    const test = service("otel-collector").healthcheck?.test ?? [];
    expect(test.slice(0, 3)).toEqual(["CMD", "/busybox", "wget"]);
    const url = new URL(String(test.at(-1)));
    const extension = parse(
      readFileSync(join(ROOT, "collector", "otel-collector.yaml"), "utf8"),
    ) as {
      extensions: { health_check: { endpoint: string } };
      service: { extensions: string[] };
    };
    expect(extension.service.extensions).toContain("health_check");
    expect(url.port).toBe(extension.extensions.health_check.endpoint.split(":").at(-1));
    // The image's own HEALTHCHECK asks the same.
    const imageCheck = all(collector ?? [], "HEALTHCHECK")[0] ?? "";
    expect(imageCheck).toContain(JSON.stringify(url.href).slice(1, -1));
  });

  it("runs as a user that is not root", () => {
    const users = all(runtimeStage, "USER");
    expect(users.length).toBeGreaterThan(0);
    const user = (users.at(-1) ?? "").split(":")[0];
    expect(user).not.toMatch(/^(root|0)$/);
  });

  it("keeps the store on a volume the user owns, and serves port 4319", () => {
    const env = all(runtimeStage, "ENV").join(" ");
    expect(env).toMatch(/\bRUNTRAIL_DB=\/data\/runs\.duckdb\b/);
    expect(all(runtimeStage, "VOLUME").join(" ")).toMatch(/"\/data"|\/data\b/);
    expect(all(runtimeStage, "RUN").join("\n")).toMatch(/chown node:node \/data/);
    expect(all(runtimeStage, "EXPOSE").flatMap((e) => e.split(/\s+/))).toContain("4319");
  });

  it("checks readiness over HTTP with node itself", () => {
    const command = dockerHealthcheck();
    expect(command[0]).toBe("node");
    expect(command.join(" ")).toContain("http://127.0.0.1:4319/readyz");
  });

  it("starts the server by default, and any runtrail command when given one", () => {
    expect(all(runtimeStage, "ENTRYPOINT")).toEqual(['["node", "/app/dist/cli/main.js"]']);
    const cmd = JSON.parse(all(runtimeStage, "CMD").at(-1) ?? "[]") as string[];
    expect(cmd).toEqual(["serve", "--host", "0.0.0.0", "--port", "4319", "--insecure"]);
  });

  it("leaves out of the build context what is installed or built, and nothing it copies", () => {
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    for (const entry of ["node_modules", "dist", ".git", ".runtrail"]) {
      expect(ignored).toContain(entry);
    }
    const copied = stages
      .flatMap((stage) => all(stage, "COPY"))
      .filter((args) => !args.startsWith("--from="))
      .flatMap((args) => args.split(/\s+/).slice(0, -1));
    expect(copied).toEqual(
      expect.arrayContaining(["package.json", "package-lock.json", "tsconfig.json", "src"]),
    );
    for (const path of copied) {
      expect(ignored, path).not.toContain(path);
      expect(existsSync(join(ROOT, path)), path).toBe(true);
    }
  });
});
