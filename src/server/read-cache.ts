/** `value` and every object and array in it, made read-only. */
function frozen<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) frozen(inner);
  }
  return value;
}

/**
 * Answers of reads, kept until the store changes or they are `maxAgeMs` old, whichever comes
 * first. Dashboards, `tail --follow` and status pollers ask the same questions many times a
 * second; between two writes the answer cannot change but for the passing of time (a `since`
 * of 24 h, a stuck run's age), which `maxAgeMs` bounds.
 *
 * A read asked for again while it is still running is not run twice: both askers get its
 * answer. A read that fails is not kept.
 *
 * Every write marks a change once it is done, so an answer is never served after the write
 * that made it stale has told its caller it is done. A read that started before the change and
 * ends after it still answers the requests that waited for it (they came before the change was
 * known), but is not kept for later ones.
 */
export class ReadCache {
  private entries = new Map<string, { generation: number; at: number; value: Promise<unknown> }>();
  private generation = 0;

  constructor(private readonly options: { maxAgeMs: number; maxEntries: number }) {}

  /** The store changed: nothing kept before holds. */
  changed(): void {
    this.generation += 1;
    this.entries.clear();
  }

  /** Reads kept now (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The kept answer for `key`, or `read`'s, kept from now. `fresh` runs `read` whatever is
   * kept (an HTTP `Cache-Control: no-cache`), and keeps its answer for the askers after it.
   */
  get<T>(key: string, read: () => Promise<T>, fresh = false): Promise<T> {
    const now = performance.now();
    const kept = this.entries.get(key);
    if (
      !fresh &&
      kept !== undefined &&
      kept.generation === this.generation &&
      now - kept.at <= this.options.maxAgeMs
    ) {
      return kept.value as Promise<T>;
    }
    const generation = this.generation;
    let value: Promise<T>;
    try {
      // Frozen, for every asker gets the same answer: a change by one would show in the next.
      value = read().then(frozen);
    } catch (error) {
      return Promise.reject(error);
    }
    const entry = { generation, at: now, value };
    // Oldest first: a full cache lets go of the entry made longest ago.
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    value.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return value;
  }
}
