import { createHash } from "node:crypto";

/**
 * A SHA-256 content fingerprint: of the bytes of a string or buffer, or of a JSON value with
 * object keys sorted, so equal data gives equal fingerprints whatever the key order.
 */
export function fingerprint(value: unknown): string {
  const hash = createHash("sha256");
  if (typeof value === "string" || value instanceof Uint8Array) hash.update(value);
  else hash.update(stableJson(value));
  return hash.digest("hex");
}

function stableJson(value: unknown): string {
  if (value !== null && typeof value === "object" && "toJSON" in value) {
    // Dates and other values with a JSON form hash as that form, as JSON.stringify writes them.
    const toJSON = (value as { toJSON: unknown }).toJSON;
    if (typeof toJSON === "function") return stableJson(toJSON.call(value));
  }
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
}
