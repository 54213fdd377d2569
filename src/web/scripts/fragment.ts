import { FRAGMENT_HEADER } from "../run-views.js";

/**
 * Script text of `fetchFragment(url, name)`, for the pages' live scripts: a promise of the HTML
 * of the part of a page called `name` at `url`, or of null when the answer is anything else (an
 * error, a login page).
 */
export const FETCH_FRAGMENT_JS = `function fetchFragment(url, name) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(
      function (response) {
        if (!response.ok || response.headers.get("${FRAGMENT_HEADER}") !== name) return null;
        return response.text();
      }
    );
  }`;
