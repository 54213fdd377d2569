import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { currentOwner, ownerAlive } from "./process-owner.js";

/**
 * A store held by a runtrail server says so in a file next to it, `runs.duckdb.server.json`:
 * where the server listens and which process it is. Pipelines in other processes then spool
 * their rows at once instead of waiting for the file (the server writes the spool in within a
 * fraction of a second), and the CLI reads through the server.
 */
export interface ServerClaim {
  url: string;
  host: string;
  pid: number;
  /** When the server process started, epoch microseconds: tells a reused pid apart. */
  processStartedAt: number;
}

export function claimPathOf(storePath: string): string {
  return `${storePath}.server.json`;
}

/** Writes the claim of this process for a store (atomically: a reader sees all of it or none). */
export function writeClaim(storePath: string, url: string): ServerClaim {
  const owner = currentOwner();
  const claim: ServerClaim = {
    url,
    host: owner.host,
    pid: owner.pid,
    processStartedAt: owner.startedAt,
  };
  const path = claimPathOf(storePath);
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(claim)}\n`);
  renameSync(temporary, path);
  return claim;
}

/** Removes the claim, if it is this process's. */
export function removeClaim(storePath: string): void {
  const claim = readClaim(storePath);
  if (claim && claim.pid === process.pid && claim.host === hostname()) {
    rmSync(claimPathOf(storePath), { force: true });
  }
}

function readClaim(storePath: string): ServerClaim | undefined {
  let text: string;
  try {
    text = readFileSync(claimPathOf(storePath), "utf8");
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<ServerClaim>;
    if (
      typeof value.url === "string" &&
      typeof value.host === "string" &&
      typeof value.pid === "number" &&
      typeof value.processStartedAt === "number"
    ) {
      return value as ServerClaim;
    }
  } catch {
    // A damaged claim claims nothing.
  }
  return undefined;
}

/**
 * The claim of a server that holds the store now: one on this host whose process is alive. A
 * claim left by a server that was killed is ignored. A claim from another host (a store on a
 * shared folder) cannot be checked, and is believed.
 */
export function liveClaim(storePath: string): ServerClaim | undefined {
  const claim = readClaim(storePath);
  if (claim === undefined) return undefined;
  if (claim.host !== hostname()) return claim;
  return ownerAlive(claim.pid, claim.processStartedAt) ? claim : undefined;
}
