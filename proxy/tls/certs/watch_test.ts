import assert from "node:assert/strict";
import { FileWatcher } from "./watch.ts";
import { makeTempDir } from "../../../tests/_helpers/tmp.ts";

const INTERVAL_MS = 15;

/** Counts the watcher's calls and lets a test wait for the next one with a deadline. */
class Calls {
  count = 0;
  #waiters: (() => void)[] = [];

  readonly onChange = () => {
    this.count++;
    for (const wake of this.#waiters.splice(0)) wake();
  };

  /** Resolves once `count` reaches `n`; rejects after `ms`. */
  async reach(n: number, ms = 3000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`onChange ran ${this.count} times, not ${n}`)), ms);
    });
    try {
      while (this.count < n) {
        await Promise.race([new Promise<void>((wake) => this.#waiters.push(wake)), deadline]);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Lets the watcher poll about `polls` more times. */
function polls(polls: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, polls * INTERVAL_MS));
}

/** What a watcher test gets: a directory of its own, a call counter and a way to watch. */
interface Watching {
  /** A fresh temporary directory, removed when the test ends. */
  dir: string;
  /** Counts the calls of the watchers started with the default onChange. */
  calls: Calls;
  /** Starts a FileWatcher over `paths()`; it is stopped when the test ends, whatever happens. */
  watch(paths: () => string[], interval?: number, onChange?: () => void): FileWatcher;
}

/** A test with the op and resource sanitizers on, so a poll left running fails it. */
function watcherTest(name: string, body: (t: Watching) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: true,
    sanitizeResources: true,
    async fn() {
      await using dir = await makeTempDir("edgemux-watch-");
      const calls = new Calls();
      const started: FileWatcher[] = [];
      const watch = (paths: () => string[], interval = INTERVAL_MS, onChange = calls.onChange) => {
        const watcher = new FileWatcher(paths, interval, onChange);
        started.push(watcher);
        watcher.start();
        return watcher;
      };
      try {
        await body({ dir: dir.path, calls, watch });
      } finally {
        for (const watcher of started) await watcher.stop();
      }
    },
  });
}

watcherTest(
  "FileWatcher calls onChange once when a file is modified",
  async ({ dir, calls, watch }) => {
    const file = `${dir}/site.pem`;
    await Deno.writeTextFile(file, "one");
    watch(() => [file]);
    await polls(3);
    assert.equal(calls.count, 0);
    await Deno.writeTextFile(file, "two, longer");
    await calls.reach(1);
    await polls(6);
    assert.equal(calls.count, 1, "one change, one call");
    await Deno.writeTextFile(file, "three, longer still");
    await calls.reach(2);
  },
);

watcherTest(
  "FileWatcher calls onChange once when a symlink is pointed at another file",
  async ({ dir, calls, watch }) => {
    // As certbot renews: a new archive file of the same size and age, and the link replaced.
    await Deno.writeTextFile(`${dir}/fullchain1.pem`, "certificate A");
    await Deno.writeTextFile(`${dir}/fullchain2.pem`, "certificate B");
    const stamp = new Date("2026-01-01T00:00:00Z");
    await Deno.utime(`${dir}/fullchain1.pem`, stamp, stamp);
    await Deno.utime(`${dir}/fullchain2.pem`, stamp, stamp);
    const link = `${dir}/fullchain.pem`;
    await Deno.symlink("fullchain1.pem", link);

    watch(() => [link]);
    await polls(3);
    await Deno.symlink("fullchain2.pem", `${link}.new`);
    await Deno.rename(`${link}.new`, link);
    await calls.reach(1);
    await polls(6);
    assert.equal(calls.count, 1);
  },
);

watcherTest(
  "FileWatcher does not call onChange when nothing changes",
  async ({ dir, calls, watch }) => {
    await Deno.writeTextFile(`${dir}/a.pem`, "a");
    await Deno.symlink("a.pem", `${dir}/b.pem`);
    watch(() => [dir, `${dir}/a.pem`, `${dir}/b.pem`, `${dir}/missing.pem`]);
    await polls(12);
    assert.equal(calls.count, 0);
  },
);

watcherTest(
  "FileWatcher calls onChange when a file appears in or vanishes from a directory",
  async ({ dir, calls, watch }) => {
    const file = `${dir}/new.pem`;
    watch(() => [dir, file]);
    await polls(3);
    await Deno.writeTextFile(file, "new");
    await calls.reach(1);
    await Deno.remove(file);
    await calls.reach(2);
    await polls(6);
    assert.equal(calls.count, 2);
  },
);

watcherTest(
  "FileWatcher waits while a file keeps changing and fires once it has settled",
  async ({ dir, calls, watch }) => {
    const file = `${dir}/growing.pem`;
    await Deno.writeTextFile(file, "");
    // A longer interval here, so a pause of the writer on a busy machine is not mistaken for
    // the end of the writes.
    const interval = 50;
    watch(() => [file], interval);
    await polls(3);
    // A slow writer: the file changes several times between any two polls.
    for (let i = 0; i < 60; i++) {
      await Deno.writeTextFile(file, "x", { append: true });
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    const duringWrites = calls.count;
    await calls.reach(1);
    await new Promise((resolve) => setTimeout(resolve, 4 * interval));
    assert.equal(duringWrites, 0, "no call while the file was still being written");
    assert.equal(calls.count, 1);
  },
);

watcherTest(
  "FileWatcher takes paths added to the list as they are, without calling onChange",
  async ({ dir, calls, watch }) => {
    await Deno.writeTextFile(`${dir}/a.pem`, "a");
    await Deno.writeTextFile(`${dir}/b.pem`, "b");
    const paths = [`${dir}/a.pem`];
    watch(() => paths);
    await polls(3);
    paths.push(`${dir}/b.pem`);
    await polls(6);
    assert.equal(calls.count, 0);
    await Deno.writeTextFile(`${dir}/b.pem`, "b changed");
    await calls.reach(1);
  },
);

watcherTest(
  "FileWatcher keeps watching after onChange throws or rejects",
  async ({ dir, calls, watch }) => {
    const file = `${dir}/a.pem`;
    await Deno.writeTextFile(file, "a");
    watch(() => [file], INTERVAL_MS, () => {
      calls.onChange();
      if (calls.count === 1) throw new Error("reload failed");
      return Promise.reject(new Error("async reload failed")) as unknown as void;
    });
    await polls(3);
    await Deno.writeTextFile(file, "bb");
    await calls.reach(1);
    await Deno.writeTextFile(file, "ccc");
    await calls.reach(2);
    await Deno.writeTextFile(file, "dddd");
    await calls.reach(3);
  },
);

watcherTest(
  "FileWatcher stops cleanly, even right after starting, and never calls onChange after",
  async ({ dir, calls, watch }) => {
    const file = `${dir}/a.pem`;
    await Deno.writeTextFile(file, "a");
    const watcher = watch(() => [file]);
    await watcher.stop();
    watcher.start();
    watcher.start(); // a second start while running does nothing
    await polls(3);
    // Stopping without waiting and starting again leaves one poller, not two.
    void watcher.stop();
    watcher.start();
    await polls(3);
    await watcher.stop();
    await watcher.stop();
    await Deno.writeTextFile(file, "changed");
    await polls(6);
    assert.equal(calls.count, 0);
  },
);
