/**
 * Noticing that certificate files changed, by polling. Polling rather than `Deno.watchFs`
 * because certbot renews by replacing symlinks (which inotify reports on the link's directory,
 * not on the watched target), because editors and `cp` write files in several steps, and
 * because a few `stat` calls every few seconds cost nothing.
 *
 * @module
 */

/**
 * Polls files and directories and calls `onChange` once per change that has settled.
 *
 * Each poll records, per path: whether it exists; for a symlink, the link itself (inode,
 * mtime) and the identity of its target (device, inode, size, mtime, ctime, found by
 * following the link); for a file, the same identity; for a directory, also the sorted list of
 * entry names. A change fires only when two polls in a row agree on the new state, so a file
 * that is still being written (or a certbot renewal half done) is not loaded; the callback
 * thus runs one to two intervals after the last write. A path that vanished or cannot be read
 * counts as changed; a path that comes back to its old state before settling does not fire.
 *
 * `paths` is asked again at every poll, so the caller can widen the list after a reload;
 * paths new to the list are taken as they are, without firing.
 *
 * @example
 * ```ts
 * const watcher = new FileWatcher(() => ["/etc/edgemux/certs"], 5000, () => {
 *   console.log("certificates changed: reloading");
 * });
 * watcher.start();
 * await watcher.stop();
 * ```
 */
export class FileWatcher {
  #paths: () => readonly string[];
  #intervalMs: number;
  #onChange: () => void;
  /** The last state that fired (or the first one seen), per path. */
  #baseline = new Map<string, string>();
  /** A changed state seen once, waiting for the next poll to confirm it. */
  #pending: Map<string, string> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #inFlight: Promise<void> | null = null;
  /** Bumped by start() and stop(), so callbacks of an earlier run do nothing. */
  #generation = 0;

  /**
   * @param paths the files and directories to watch, asked for at every poll
   * @param intervalMs the time between polls
   * @param onChange called after a change settles; whatever it throws is swallowed
   */
  constructor(paths: () => readonly string[], intervalMs: number, onChange: () => void) {
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be positive, got ${intervalMs}`);
    this.#paths = paths;
    this.#intervalMs = intervalMs;
    this.#onChange = onChange;
  }

  /**
   * Takes the first snapshot and starts polling. Calling it again while running does nothing;
   * after stop(), it starts afresh (changes made while stopped are not reported).
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const generation = ++this.#generation;
    this.#inFlight = this.#snapshot().then((state) => {
      if (generation !== this.#generation) return;
      this.#baseline = state;
      this.#pending = null;
    }).catch(() => {}).finally(() => this.#settled(generation));
  }

  /**
   * Stops polling. The returned promise settles once a poll that was already running has
   * finished, so nothing is left running after it (test sanitizers check that).
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#generation++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
  }

  /** After a snapshot or poll of `generation` finished: arm the next poll if still current. */
  #settled(generation: number): void {
    // A stop() (and maybe a new start()) since then owns the timer now.
    if (generation !== this.#generation) return;
    this.#inFlight = null;
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#inFlight = this.#poll(generation).catch(() => {}).finally(() =>
        this.#settled(generation)
      );
    }, this.#intervalMs);
  }

  async #poll(generation: number): Promise<void> {
    const current = await this.#snapshot();
    if (!this.#running || generation !== this.#generation) return;
    // Paths the caller added since the baseline are taken as they are; dropped ones forgotten.
    const baseline = new Map<string, string>();
    for (const [path, state] of current) baseline.set(path, this.#baseline.get(path) ?? state);
    this.#baseline = baseline;

    if (sameState(current, baseline)) {
      this.#pending = null;
      return;
    }
    if (this.#pending === null || !sameState(current, this.#pending)) {
      this.#pending = current;
      return;
    }
    this.#baseline = current;
    this.#pending = null;
    try {
      const result: unknown = this.#onChange();
      // An async callback's rejection must not become an unhandled rejection.
      if (result instanceof Promise) result.catch(() => {});
    } catch {
      // The watcher outlives its callback's failures; the caller logs its own errors.
    }
  }

  async #snapshot(): Promise<Map<string, string>> {
    let paths: string[];
    try {
      paths = [...new Set(this.#paths())];
    } catch {
      paths = [...this.#baseline.keys()];
    }
    const states = await Promise.all(paths.map(describePath));
    return new Map(paths.map((p, i) => [p, states[i]]));
  }
}

function sameState(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [path, state] of a) if (b.get(path) !== state) return false;
  return true;
}

function identity(info: Deno.FileInfo): string {
  return [
    info.dev,
    info.ino,
    info.size,
    info.mtime?.getTime(),
    info.ctime?.getTime(),
    info.isDirectory ? "d" : info.isFile ? "f" : "o",
  ].join(":");
}

/** One line describing everything about a path that a reload could depend on. */
async function describePath(path: string): Promise<string> {
  let link: Deno.FileInfo;
  try {
    link = await Deno.lstat(path);
  } catch (error) {
    return `missing:${error instanceof Error ? error.name : "?"}`;
  }
  let parts = link.isSymlink ? `link:${identity(link)}` : "";
  let target: Deno.FileInfo;
  try {
    target = link.isSymlink ? await Deno.stat(path) : link;
  } catch (error) {
    return `${parts} dangling:${error instanceof Error ? error.name : "?"}`;
  }
  parts += ` ${identity(target)}`;
  if (target.isDirectory) {
    try {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
      parts += ` [${names.sort().join("/")}]`;
    } catch (error) {
      parts += ` unlistable:${error instanceof Error ? error.name : "?"}`;
    }
  }
  return parts;
}
