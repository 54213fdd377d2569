/**
 * docker-compose.yml as the stack's checks read it: its services' images, commands,
 * environment, ports and mounts, in compose's short and long syntax.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT } from "../helpers/paths.js";

interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
}

interface PortLong {
  target: number;
  published?: number | string;
  protocol?: string;
}

interface VolumeLong {
  type?: string;
  source?: string;
  target: string;
  read_only?: boolean;
}

export interface Service {
  image?: string;
  build?: string | { context?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | PortLong)[];
  volumes?: (string | VolumeLong)[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: Healthcheck;
  restart?: string;
}

interface Compose {
  version?: unknown;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

export const COMPOSE_TEXT = readFileSync(join(ROOT, "docker-compose.yml"), "utf8");
export const compose = parse(COMPOSE_TEXT) as Compose;
export const services = compose.services;

export function service(name: string): Service {
  const found = services[name];
  if (found === undefined) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

export function commandOf(s: Service): string[] {
  if (s.command === undefined) return [];
  return typeof s.command === "string" ? s.command.split(/\s+/).filter(Boolean) : s.command;
}

/** The argument after `name` in a command (`--port 4319`), if `name` is in it. */
export function argumentAfter(command: readonly string[], name: string): string | undefined {
  const at = command.indexOf(name);
  return at === -1 ? undefined : command[at + 1];
}

/** The value of a `name=value` argument of a command (`--config=/etc/...`), if it has one. */
export function flagValue(command: readonly string[], name: string): string | undefined {
  return command.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

export function environmentOf(s: Service): Record<string, string> {
  const env: Record<string, string> = {};
  if (Array.isArray(s.environment)) {
    for (const entry of s.environment) {
      const at = entry.indexOf("=");
      if (at === -1) env[entry] = "";
      else env[entry.slice(0, at)] = entry.slice(at + 1);
    }
  } else {
    for (const [key, value] of Object.entries(s.environment ?? {})) env[key] = String(value ?? "");
  }
  return env;
}

export function buildContextOf(s: Service): string | undefined {
  if (s.build === undefined) return undefined;
  return typeof s.build === "string" ? s.build : (s.build.context ?? ".");
}

/** The tag of an image reference (`name[:tag][@digest]`), if it names one. */
export function tagOf(image: string): string | undefined {
  const name = image.split("@")[0] ?? image;
  const colon = name.indexOf(":", name.lastIndexOf("/") + 1);
  return colon === -1 ? undefined : name.slice(colon + 1);
}

export interface Published {
  host: number | undefined;
  container: number;
  protocol: string;
}

export function portsOf(s: Service): Published[] {
  return (s.ports ?? []).map((port): Published => {
    if (typeof port === "object") {
      return {
        host: port.published === undefined ? undefined : Number(port.published),
        container: Number(port.target),
        protocol: port.protocol ?? "tcp",
      };
    }
    const [spec = "", protocol = "tcp"] = String(port).split("/");
    const parts = spec.split(":");
    const container = Number(parts.at(-1));
    const host = parts.length >= 2 ? Number(parts.at(-2)) : undefined;
    return { host, container, protocol };
  });
}

export interface Mount {
  kind: "bind" | "volume";
  source: string;
  target: string;
}

export function mountsOf(s: Service): Mount[] {
  return (s.volumes ?? []).map((volume): Mount => {
    let source: string;
    let target: string;
    let type: string | undefined;
    if (typeof volume === "string") {
      const parts = volume.split(":");
      source = parts[0] ?? "";
      target = parts[1] ?? "";
    } else {
      source = volume.source ?? "";
      target = volume.target;
      type = volume.type;
    }
    const bind = type === "bind" || /^[./~]/.test(source);
    return { kind: bind ? "bind" : "volume", source, target };
  });
}
