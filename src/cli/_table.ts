import { visibleLength } from "./_style.js";

export interface TableColumn {
  header: string;
  align?: "left" | "right";
}

function pad(text: string, width: number, align: "left" | "right"): string {
  const fill = " ".repeat(Math.max(0, width - visibleLength(text)));
  return align === "right" ? fill + text : text + fill;
}

/** A table drawn with box characters, as seed 000's `runs tail` shows it. */
export function renderTable(columns: readonly TableColumn[], rows: readonly string[][]): string {
  const widths = columns.map((c, i) =>
    Math.max(visibleLength(c.header), ...rows.map((r) => visibleLength(r[i] ?? ""))),
  );
  const line = (left: string, fill: string, join: string, right: string) =>
    left + widths.map((w) => fill.repeat(w + 2)).join(join) + right;
  const cells = (values: readonly string[], bar: string, header: boolean) =>
    bar +
    columns
      .map(
        (c, i) =>
          ` ${pad(values[i] ?? "", widths[i] ?? 0, header ? "left" : (c.align ?? "left"))} `,
      )
      .join(bar) +
    bar;
  return [
    line("┏", "━", "┳", "┓"),
    cells(
      columns.map((c) => c.header),
      "┃",
      true,
    ),
    line("┡", "━", "╇", "┩"),
    ...rows.map((r) => cells(r, "│", false)),
    line("└", "─", "┴", "┘"),
  ].join("\n");
}

/** Label and value lines inside a rounded box, as seed 000's `runs show`. */
export function renderPanel(title: string, lines: readonly string[]): string {
  const width = Math.max(visibleLength(title), ...lines.map(visibleLength));
  const border = "─".repeat(width + 2);
  const titlePad = width - visibleLength(title);
  const left = Math.floor(titlePad / 2);
  return [
    `╭${border}╮`,
    `│ ${" ".repeat(left)}${title}${" ".repeat(titlePad - left)} │`,
    `├${border}┤`,
    ...lines.map((l) => `│ ${l}${" ".repeat(width - visibleLength(l))} │`),
    `╰${border}╯`,
  ].join("\n");
}
