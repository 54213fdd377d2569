/**
 * Reads what is left of a request body nobody read, at most `max` bytes, and drops it. A body
 * that was read (or is being read) is left alone.
 */
export async function discardUnreadBody(request: Request, max: number): Promise<void> {
  if (request.bodyUsed || request.body === null || request.body.locked) return;
  const reader = request.body.getReader();
  let read = 0;
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return;
      read += chunk.value.byteLength;
      if (read > max) return;
    }
  } catch {
    // The client went away: there is nobody left to answer.
  } finally {
    reader.releaseLock();
  }
}
