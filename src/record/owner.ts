/** The process that owns a run: where it runs and since when, to tell a live owner from a dead one. */
export interface RunOwner {
  host: string;
  pid: number;
  /** Epoch microseconds the process started, so a reused pid is not taken for the owner. */
  startedAt: number;
}
