import type { Context } from "hono";
import type { Child } from "hono/jsx";
import { isoOfMicros } from "../util/duration.js";
import { formatTime } from "../util/format.js";
import { setPageHeaders } from "./page.js";

/** A status as a coloured badge, with its word: the colour is never the only sign. */
export function StatusBadge(props: { status: string; label?: string }) {
  return <span class={`status status-${props.status}`}>{props.label ?? props.status}</span>;
}

/** A time (epoch microseconds) in UTC, machine-readable in `datetime`. */
export function Time(props: { micros: number | null }) {
  if (props.micros === null) return <span class="muted">-</span>;
  return <time datetime={isoOfMicros(props.micros)}>{formatTime(props.micros)}</time>;
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
  setPageHeaders(c);
  c.header("Cache-Control", "no-store");
  c.header(FRAGMENT_HEADER, name);
  return c.html(String(await element?.toString()), 200);
}

/** A column of a table: its heading, and `num` for right-aligned numbers. */
export type Column = string | readonly [heading: string, kind: "num"];

/** The header row of a table, each heading a column header (`scope="col"`). */
export function ColumnHeads(props: { columns: readonly Column[] }) {
  return (
    <thead>
      <tr>
        {props.columns.map((column) =>
          typeof column === "string" ? (
            <th scope="col">{column}</th>
          ) : (
            <th scope="col" class="num">
              {column[0]}
            </th>
          ),
        )}
      </tr>
    </thead>
  );
}
