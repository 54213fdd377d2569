import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { allows, TokenConfigError, TokenSet } from "../../src/server/tokens.js";
import { tempDir } from "../helpers/temp-dir.js";

function file(content: unknown): string {
  const path = join(tempDir(), "tokens.json");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

describe("tokens", () => {
  it("reads a file of tokens and of SHA-256 digests, and grants their tenant and scopes", () => {
    const digest = createHash("sha256").update("hashed-secret").digest("hex");
    const tokens = TokenSet.fromFile(
      file({
        tokens: [
          { name: "grafana", token: "plain-secret", tenant: "*", scopes: ["read", "metrics"] },
          { name: "acme", sha256: digest, tenant: "acme", scopes: ["admin"] },
        ],
      }),
    );
    expect(tokens.size).toBe(2);
    const grafana = tokens.authenticate("plain-secret");
    expect(grafana).toMatchObject({ name: "grafana", tenant: null });
    expect(grafana && allows(grafana, "metrics")).toBe(true);
    expect(grafana && allows(grafana, "admin")).toBe(false);
    const acme = tokens.authenticate("hashed-secret");
    expect(acme).toMatchObject({ name: "acme", tenant: "acme" });
    // admin includes read
    expect(acme && allows(acme, "read")).toBe(true);
    expect(acme && allows(acme, "ingest")).toBe(false);
    expect(tokens.authenticate(digest)).toBeUndefined();
    expect(tokens.authenticate("plain-secret ")).toBeUndefined();
    expect(tokens.authenticate("")).toBeUndefined();
  });

  it("joins the file and RUNTRAIL_TOKENS, whose tokens may hold colons", () => {
    const path = file({ tokens: [{ token: "from-file", tenant: "*", scopes: ["read"] }] });
    const tokens = TokenSet.load({
      RUNTRAIL_TOKENS_FILE: path,
      RUNTRAIL_TOKENS: "a:b:c:globex:ingest+read  other:*:metrics",
    });
    expect(tokens.size).toBe(3);
    expect(tokens.authenticate("from-file")?.tenant).toBeNull();
    expect(tokens.authenticate("a:b:c")).toMatchObject({ tenant: "globex" });
    expect([...(tokens.authenticate("a:b:c")?.scopes ?? [])].sort()).toEqual(["ingest", "read"]);
    expect(TokenSet.load({}).size).toBe(0);
  });

  it("names what is wrong in a bad configuration", () => {
    const cases: [() => TokenSet, RegExp][] = [
      [() => TokenSet.fromFile(join(tempDir(), "none.json")), /cannot read the tokens file/],
      [() => TokenSet.fromFile(file("{ not json")), /is not JSON/],
      [() => TokenSet.fromFile(file({ tokens: {} })), /expected \{ "tokens": \[ \.\.\. \] \}/],
      [
        () => TokenSet.fromFile(file({ tokens: [{ token: "x", tenant: "*", scopes: ["write"] }] })),
        /token 1: "write" is not a scope/,
      ],
      [
        () =>
          TokenSet.fromFile(file({ tokens: [{ sha256: "abc", tenant: "*", scopes: ["read"] }] })),
        /token 1: give "token"/,
      ],
      [
        () => TokenSet.fromFile(file({ tokens: [{ token: "x", scopes: ["read"] }] })),
        /token 1: give "tenant": a tenant name, or "\*" for all tenants/,
      ],
      [() => TokenSet.fromText("secret:*"), /entry 1: expected <token>:<tenant or \*>/],
      [() => TokenSet.fromText(":*:read"), /entry 1: the token is empty/],
      [() => TokenSet.fromText("s:acme:"), /entry 1: "" is not a scope/],
    ];
    for (const [load, message] of cases) {
      expect(load).toThrow(TokenConfigError);
      expect(load).toThrow(message);
    }
  });
});
