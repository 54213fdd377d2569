/** A media type without its parameters, in lower case: `Text/Plain; charset=utf-8` is `text/plain`. */
export function mediaEssence(mediaType: string): string {
  return (mediaType.split(";")[0] ?? "").trim().toLowerCase();
}
