import type { Context } from "hono";
import type { Child } from "hono/jsx";
import { formatTime } from "../util/format.js";

/** A status as a coloured badge, with its word: the colour is never the only sign. */
export function StatusBadge(props: { status: string; label?: string }) {
  return <span class={`status status-${props.status}`}>{props.label ?? props.status}</span>;
}

/** A time (epoch microseconds) in UTC, machine-readable in `datetime`. */
export function Time(props: { micros: number | null }) {
  if (props.micros === null) return <span class="muted">-</span>;
  return (
    <time datetime={new Date(Math.floor(props.micros / 1000)).toISOString()}>
      {formatTime(props.micros)}
    </time>
  );
}

/** Text cut to `max` characters, with an ellipsis when cut. */
export function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** The header naming a fragment, so that a live script never swaps in another page (a login). */
export const FRAGMENT_HEADER = "X-Runtrail-Fragment";

/**
 * A part of a page, for a page's script to swap in: HTML without the document around it, with
 * the pages' headers, never cached.
 */
export async function htmlFragment(c: Context, name: string, element: Child): Promise<Response> {
  c.header(
    "Content-Security-Policy",
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
  );
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "same-origin");
  c.header("Cache-Control", "no-store");
  c.header(FRAGMENT_HEADER, name);
  return c.html(String(await element?.toString()), 200);
}
