import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

export const SCOPES = ["read", "ingest", "admin", "metrics"] as const;
export type Scope = (typeof SCOPES)[number];

/** What a request may do: the scopes of its token, and the tenant whose runs it sees. */
export interface Grant {
  name: string;
  /** The only tenant this token sees, or null for every tenant. */
  tenant: string | null;
  scopes: ReadonlySet<Scope>;
}

/** Everything, for a server without tokens on loopback. */
export const OPEN_GRANT: Grant = { name: "open", tenant: null, scopes: new Set(SCOPES) };

interface TokenEntry extends Grant {
  digest: Buffer;
}

export class TokenConfigError extends Error {
  override readonly name = "TokenConfigError";
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

function scopesOf(values: unknown, where: string): Set<Scope> {
  if (!Array.isArray(values) || values.length === 0) {
    throw new TokenConfigError(`${where}: "scopes" must list one or more of ${SCOPES.join(", ")}`);
  }
  const scopes = new Set<Scope>();
  for (const value of values) {
    if (!SCOPES.includes(value as Scope)) {
      throw new TokenConfigError(
        `${where}: "${String(value)}" is not a scope; use ${SCOPES.join(", ")}`,
      );
    }
    scopes.add(value as Scope);
  }
  return scopes;
}

function tenantOf(value: unknown, where: string): string | null {
  // Left out, it is not taken as every tenant: a token of one tenant's missing its tenant would
  // see everyone's runs.
  if (value === undefined || value === null) {
    throw new TokenConfigError(`${where}: give "tenant": a tenant name, or "*" for all tenants`);
  }
  if (value === "*") return null;
  if (typeof value !== "string" || value.length === 0) {
    throw new TokenConfigError(`${where}: "tenant" must be a tenant name, or "*" for all`);
  }
  return value;
}

/**
 * The tokens a server accepts. Each has a tenant (or all) and scopes: `read` (the query API),
 * `ingest` (OTLP), `admin` (deleting runs; includes read) and `metrics` (`/metrics`). Tokens
 * are kept as SHA-256 digests and compared in constant time; a file may hold only digests.
 */
export class TokenSet {
  private constructor(private readonly entries: TokenEntry[]) {}

  static readonly none = new TokenSet([]);

  /**
   * A file (JSON): `{ "tokens": [ { "name": "grafana", "token": "…" or "sha256": "<hex>",
   * "tenant": "acme" or "*", "scopes": ["read", "metrics"] } ] }`.
   */
  static fromFile(path: string): TokenSet {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new TokenConfigError(
        `cannot read the tokens file ${path}: ${(error as Error).message}`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new TokenConfigError(`${path} is not JSON: ${(error as Error).message}`);
    }
    const list = (parsed as { tokens?: unknown } | null)?.tokens;
    if (!Array.isArray(list)) throw new TokenConfigError(`${path}: expected { "tokens": [ ... ] }`);
    return new TokenSet(
      list.map((item: Record<string, unknown>, i) => {
        const where = `${path}: token ${i + 1}`;
        if (item === null || typeof item !== "object") {
          throw new TokenConfigError(`${where} is not an object`);
        }
        let digest: Buffer;
        if (typeof item.token === "string" && item.token.length > 0) digest = sha256(item.token);
        else if (typeof item.sha256 === "string" && /^[0-9a-fA-F]{64}$/.test(item.sha256)) {
          digest = Buffer.from(item.sha256, "hex");
        } else {
          throw new TokenConfigError(
            `${where}: give "token" (the token) or "sha256" (64 hex digits of its SHA-256)`,
          );
        }
        return {
          name: typeof item.name === "string" ? item.name : `token ${i + 1}`,
          tenant: tenantOf(item.tenant, where),
          scopes: scopesOf(item.scopes, where),
          digest,
        };
      }),
    );
  }

  /**
   * `RUNTRAIL_TOKENS`: entries `<token>:<tenant or *>:<scope>+<scope>`, separated by commas
   * or white space, e.g. `s3cret:*:read+metrics, acme-key:acme:ingest`.
   */
  static fromText(text: string): TokenSet {
    const entries = text
      .split(/[\s,]+/)
      .filter((e) => e.length > 0)
      .map((entry, i): TokenEntry => {
        const where = `RUNTRAIL_TOKENS entry ${i + 1}`;
        const parts = entry.split(":");
        if (parts.length < 3) {
          throw new TokenConfigError(`${where}: expected <token>:<tenant or *>:<scope>+<scope>`);
        }
        const scopes = parts.pop() as string;
        const tenant = parts.pop() as string;
        const token = parts.join(":");
        if (token.length === 0) throw new TokenConfigError(`${where}: the token is empty`);
        return {
          name: `env ${i + 1}`,
          tenant: tenantOf(tenant, where),
          scopes: scopesOf(scopes.split("+"), where),
          digest: sha256(token),
        };
      });
    return new TokenSet(entries);
  }

  /** Tokens from `RUNTRAIL_TOKENS_FILE` (or the given file) and `RUNTRAIL_TOKENS`. */
  static load(env: NodeJS.ProcessEnv, file?: string): TokenSet {
    const path = file ?? env.RUNTRAIL_TOKENS_FILE;
    const fromFile = path ? TokenSet.fromFile(path).entries : [];
    const fromEnv = env.RUNTRAIL_TOKENS ? TokenSet.fromText(env.RUNTRAIL_TOKENS).entries : [];
    return new TokenSet([...fromFile, ...fromEnv]);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The grant of a token, or undefined. Every entry is compared, in constant time each. */
  authenticate(token: string): Grant | undefined {
    const digest = sha256(token);
    let found: TokenEntry | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry;
    }
    return found && { name: found.name, tenant: found.tenant, scopes: found.scopes };
  }
}

/** Whether a grant may use a scope; `admin` includes `read`. */
export function allows(grant: Grant, scope: Scope): boolean {
  return grant.scopes.has(scope) || (scope === "read" && grant.scopes.has("admin"));
}
