import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { currentOwner, ownerAlive } from "./process-owner.js";
import { StoreError } from "./store-errors.js";

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

/** The claim files this process wrote and has not removed. */
const claimedHere = new Set<string>();

/**
 * Claims a store for this process, unless a live server holds it: then a {@link StoreError}
 * (`locked`) names that server, and its claim is left as it is. A claim left by a server that is
 * gone is replaced. The claim appears whole or not at all, and only where there is none: two
 * servers starting at once do not write over each other's.
 */
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
  const temporary = `${path}.${uniqueSuffix()}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(claim)}\n`);
  try {
    // A few rounds at most: each ends in a claim placed, or one replaced that was left behind.
    for (let round = 0; ; round++) {
      if (placeIfNone(temporary, path)) break;
      const other = otherServer(storePath);
      if (other !== undefined) throw new StoreError("locked", servedMessage(storePath, other));
      if (round >= 10) {
        throw new StoreError("locked", `the claim ${path} keeps changing: another server starts`);
      }
      setAsideIfLeft(path);
    }
  } finally {
    rmSync(temporary, { force: true });
  }
  claimedHere.add(path);
  return claim;
}

/**
 * Puts a file at `path` if nothing is there, as a hard link: readers see all of it or nothing.
 * Where the file system has no hard links, the file is created exclusively and written.
 */
function placeIfNone(source: string, path: string): boolean {
  try {
    linkSync(source, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
  }
  try {
    writeFileSync(path, readFileSync(source), { flag: "wx" });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
}

/**
 * Moves aside the claim at `path` if it was left by a server that is gone. Should a live server
 * have put its own claim there meanwhile, that one is put back.
 */
function setAsideIfLeft(path: string): void {
  const seen = readText(path);
  if (holderOf(parseClaim(seen), path) !== undefined) return;
  const aside = `${path}.${uniqueSuffix()}.left`;
  try {
    renameSync(path, aside);
  } catch {
    return; // Gone already: the next round places ours.
  }
  if (readText(aside) !== seen) placeIfNone(aside, path);
  rmSync(aside, { force: true });
}

/**
 * Tells this process's files apart from those of another process with the same pid (pid 1 in
 * two containers) writing next to the same store.
 */
function uniqueSuffix(): string {
  return `${hostname()}.${process.pid}.${randomBytes(4).toString("hex")}`;
}

/** Removes the claim, if it is this process's. */
export function removeClaim(storePath: string): void {
  const path = claimPathOf(storePath);
  const claim = readClaim(storePath);
  if (claim && claim.pid === process.pid && claim.host === hostname()) {
    rmSync(path, { force: true });
  }
  claimedHere.delete(path);
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function parseClaim(text: string | undefined): ServerClaim | undefined {
  if (text === undefined) return undefined;
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

function readClaim(storePath: string): ServerClaim | undefined {
  return parseClaim(readText(claimPathOf(storePath)));
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

/**
 * The server a claim names, if it holds the store now: as {@link liveClaim}, except that a claim
 * naming this process is one only if this process wrote it. Otherwise it was left by an earlier
 * process with the same pid (pid 1 in a container that restarted), and claims nothing.
 */
function holderOf(claim: ServerClaim | undefined, path: string): ServerClaim | undefined {
  if (claim === undefined) return undefined;
  // A claim from another host cannot be checked, and is most often left behind: a container
  // recreated with the store on a volume gets a new host name. The store's file lock decides:
  // a server elsewhere that holds the file keeps this one waiting, then out.
  if (claim.host !== hostname()) return undefined;
  if (claim.pid === process.pid) return claimedHere.has(path) ? claim : undefined;
  return ownerAlive(claim.pid, claim.processStartedAt) ? claim : undefined;
}

/** The claim of the live server that holds the store, for a server about to claim it. */
export function otherServer(storePath: string): ServerClaim | undefined {
  const path = claimPathOf(storePath);
  return holderOf(parseClaim(readText(path)), path);
}

/** Why a second server cannot serve a store that `claim`'s server holds. */
export function servedMessage(storePath: string, claim: ServerClaim): string {
  return `the store ${storePath} is already served by the runtrail server at ${claim.url} (pid ${claim.pid}); stop it first or serve another --db`;
}
