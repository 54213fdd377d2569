import type { Child } from "hono/jsx";

export type Section = "runs" | "trends" | "login" | "error";

export interface LayoutProps {
  title: string;
  section: Section;
  children?: Child;
  /** Scripts of the page, served from `/ui/`: pages read without them, and update with them. */
  scripts?: string[];
  /** Style sheets beyond runtrail's own, such as the charting library's. */
  styles?: string[];
}

/** The frame of every page: a skip link, the navigation, the content, the page's scripts. */
export function Layout(props: LayoutProps) {
  const current = (section: Section) => (props.section === section ? "page" : undefined);
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · runtrail`}</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href="/ui/style.css" />
        {(props.styles ?? []).map((href) => (
          <link rel="stylesheet" href={href} />
        ))}
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <nav aria-label="Main">
            <a class="brand" href="/">
              runtrail
            </a>
            <ul>
              <li>
                <a href="/" aria-current={current("runs")}>
                  Runs
                </a>
              </li>
              <li>
                <a href="/trends" aria-current={current("trends")}>
                  Trends
                </a>
              </li>
            </ul>
          </nav>
        </header>
        <main id="main">{props.children}</main>
        {(props.scripts ?? []).map((src) => (
          <script src={src} defer />
        ))}
      </body>
    </html>
  );
}

/** A page's HTML document, doctype first. */
export async function documentOf(element: Child): Promise<string> {
  return `<!DOCTYPE html>${await element?.toString()}`;
}
