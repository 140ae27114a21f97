/**
 * A list of records (access or request records) in the order they arrived, that a test can wait
 * on: "the first record, past or future, that says the connection ended like this".
 *
 * @module
 */

interface Waiter<T> {
  match(item: T): boolean;
  done(item: T): void;
}

/** Records in arrival order, with {@linkcode RecordLog.waitFor} for one still to come. */
export class RecordLog<T> {
  /** Every record so far, oldest first. */
  readonly items: T[] = [];
  #waiters = new Set<Waiter<T>>();

  /** `what` names the records in messages, e.g. `access`. */
  constructor(readonly what: string) {}

  /** Appends `item` and wakes every waiter it satisfies. */
  push(item: T): void {
    this.items.push(item);
    for (const w of [...this.#waiters]) if (w.match(item)) w.done(item);
  }

  /**
   * Resolves with the first record (past or future) that satisfies `match`; rejects after
   * `timeoutMs`, quoting the last records.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   *
   * const log = new RecordLog<{ end: string }>("access");
   * const closed = log.waitFor((r) => r.end === "client-closed", 1000);
   * log.push({ end: "client-closed" });
   * assert.deepEqual(await closed, { end: "client-closed" });
   * ```
   */
  waitFor(match: (item: T) => boolean, timeoutMs: number): Promise<T> {
    const found = this.items.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        match,
        done: (item) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(item);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(
          new Error(
            `no matching ${this.what} record within ${timeoutMs} ms; the last ones:\n` +
              this.items.slice(-20).map((r) => JSON.stringify(r)).join("\n"),
          ),
        );
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }
}
