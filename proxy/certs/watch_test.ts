import assert from "node:assert/strict";
import { FileWatcher } from "./watch.ts";
import { makeTempDir } from "../../tests/_helpers/tmp.ts";

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

const sanitized = { sanitizeOps: true, sanitizeResources: true };

Deno.test({
  name: "FileWatcher calls onChange once when a file is modified",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    const file = `${dir.path}/site.pem`;
    await Deno.writeTextFile(file, "one");
    const calls = new Calls();
    const watcher = new FileWatcher(() => [file], INTERVAL_MS, calls.onChange);
    watcher.start();
    try {
      await polls(3);
      assert.equal(calls.count, 0);
      await Deno.writeTextFile(file, "two, longer");
      await calls.reach(1);
      await polls(6);
      assert.equal(calls.count, 1, "one change, one call");
      await Deno.writeTextFile(file, "three, longer still");
      await calls.reach(2);
    } finally {
      await watcher.stop();
    }
  },
});

Deno.test({
  name: "FileWatcher calls onChange once when a symlink is pointed at another file",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    // As certbot renews: a new archive file of the same size and age, and the link replaced.
    await Deno.writeTextFile(`${dir.path}/fullchain1.pem`, "certificate A");
    await Deno.writeTextFile(`${dir.path}/fullchain2.pem`, "certificate B");
    const stamp = new Date("2026-01-01T00:00:00Z");
    await Deno.utime(`${dir.path}/fullchain1.pem`, stamp, stamp);
    await Deno.utime(`${dir.path}/fullchain2.pem`, stamp, stamp);
    const link = `${dir.path}/fullchain.pem`;
    await Deno.symlink("fullchain1.pem", link);

    const calls = new Calls();
    const watcher = new FileWatcher(() => [link], INTERVAL_MS, calls.onChange);
    watcher.start();
    try {
      await polls(3);
      await Deno.symlink("fullchain2.pem", `${link}.new`);
      await Deno.rename(`${link}.new`, link);
      await calls.reach(1);
      await polls(6);
      assert.equal(calls.count, 1);
    } finally {
      await watcher.stop();
    }
  },
});

Deno.test({
  name: "FileWatcher does not call onChange when nothing changes",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    await Deno.writeTextFile(`${dir.path}/a.pem`, "a");
    await Deno.symlink("a.pem", `${dir.path}/b.pem`);
    const calls = new Calls();
    const watcher = new FileWatcher(
      () => [dir.path, `${dir.path}/a.pem`, `${dir.path}/b.pem`, `${dir.path}/missing.pem`],
      INTERVAL_MS,
      calls.onChange,
    );
    watcher.start();
    try {
      await polls(12);
      assert.equal(calls.count, 0);
    } finally {
      await watcher.stop();
    }
  },
});

Deno.test({
  name: "FileWatcher calls onChange when a file appears in or vanishes from a directory",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    const calls = new Calls();
    const file = `${dir.path}/new.pem`;
    const watcher = new FileWatcher(() => [dir.path, file], INTERVAL_MS, calls.onChange);
    watcher.start();
    try {
      await polls(3);
      await Deno.writeTextFile(file, "new");
      await calls.reach(1);
      await Deno.remove(file);
      await calls.reach(2);
      await polls(6);
      assert.equal(calls.count, 2);
    } finally {
      await watcher.stop();
    }
  },
});

Deno.test({
  name: "FileWatcher waits while a file keeps changing and fires once it has settled",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    const file = `${dir.path}/growing.pem`;
    await Deno.writeTextFile(file, "");
    const calls = new Calls();
    // A longer interval here, so a pause of the writer on a busy machine is not mistaken for
    // the end of the writes.
    const interval = 50;
    const watcher = new FileWatcher(() => [file], interval, calls.onChange);
    watcher.start();
    try {
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
    } finally {
      await watcher.stop();
    }
  },
});

Deno.test({
  name: "FileWatcher takes paths added to the list as they are, without calling onChange",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    await Deno.writeTextFile(`${dir.path}/a.pem`, "a");
    await Deno.writeTextFile(`${dir.path}/b.pem`, "b");
    const paths = [`${dir.path}/a.pem`];
    const calls = new Calls();
    const watcher = new FileWatcher(() => paths, INTERVAL_MS, calls.onChange);
    watcher.start();
    try {
      await polls(3);
      paths.push(`${dir.path}/b.pem`);
      await polls(6);
      assert.equal(calls.count, 0);
      await Deno.writeTextFile(`${dir.path}/b.pem`, "b changed");
      await calls.reach(1);
    } finally {
      await watcher.stop();
    }
  },
});

Deno.test({
  name: "FileWatcher keeps watching after onChange throws or rejects",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    const file = `${dir.path}/a.pem`;
    await Deno.writeTextFile(file, "a");
    const calls = new Calls();
    const watcher = new FileWatcher(() => [file], INTERVAL_MS, () => {
      calls.onChange();
      if (calls.count === 1) throw new Error("reload failed");
      return Promise.reject(new Error("async reload failed")) as unknown as void;
    });
    watcher.start();
    try {
      await polls(3);
      await Deno.writeTextFile(file, "bb");
      await calls.reach(1);
      await Deno.writeTextFile(file, "ccc");
      await calls.reach(2);
      await Deno.writeTextFile(file, "dddd");
      await calls.reach(3);
    } finally {
      await watcher.stop();
    }
  },
});

Deno.test({
  name: "FileWatcher stops cleanly, even right after starting, and never calls onChange after",
  ...sanitized,
  async fn() {
    await using dir = await makeTempDir("edgemux-watch-");
    const file = `${dir.path}/a.pem`;
    await Deno.writeTextFile(file, "a");
    const calls = new Calls();
    const watcher = new FileWatcher(() => [file], INTERVAL_MS, calls.onChange);
    watcher.start();
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
});
