/**
 * edgemux in a child process of its own, started from a YAML config through the library API
 * (see {@linkcode ./edgemux_host.ts}), for tests that measure what edgemux itself holds: open
 * file descriptors and resident memory, read from the child's `/proc/self`. The test's own
 * clients and backends stay in the test process, so they never blur those figures.
 *
 * The child is spawned `detached` (its own process group), stopped by its PID only, and killed
 * when the test process unloads, so a failing test never leaves it behind.
 *
 * @module
 */

import type { AccessRecord, RequestRecord } from "../../mod.ts";
import { RecordLog } from "./record_log.ts";

/** What the child reports about itself. */
export interface HostStats {
  /** Open file descriptors of the edgemux process. */
  fds: number;
  /** VmRSS of the edgemux process, KiB. */
  rssKiB: number;
  /** V8 heap in use, KiB. */
  heapUsedKiB: number;
  /** `ProxyHandle.activeConnections`. */
  active: number;
  /** Access records so far (connections that ended). */
  access: number;
  /** Request records so far. */
  requests: number;
  /** Access records by `end`. */
  accessEnds: Record<string, number>;
  /** Request records by `"<status> <end>"`. */
  requestEnds: Record<string, number>;
  /** Warnings and errors edgemux logged, and internal-error records (the last 100). */
  problems: string[];
  /** Rejections and errors nobody handled (swallowed as main.ts does, but counted). */
  uncaught: string[];
}

/** A running edgemux child. */
export interface HostedEdgemux extends AsyncDisposable {
  readonly pid: number;
  /** Bound port of each listener's first bind. */
  readonly ports: Readonly<Record<string, number>>;
  /** Access records, in the order connections ended (only when started with `stream`). */
  readonly records: AccessRecord[];
  /** Request records (only when started with `stream`). */
  readonly requests: RequestRecord[];
  port(listener: string): number;
  /** Asks the child for its figures; `gc` collects garbage first (steadier RSS). */
  stats(gc?: boolean): Promise<HostStats>;
  /** Every open descriptor of the child, sockets with their addresses and TCP state. */
  describeFds(): Promise<string[]>;
  /** Reloads with a new config (parsed and prepared in the child); resolves with its time. */
  reload(yaml: string): Promise<number>;
  /** The first access record (past or future) that satisfies `match`. */
  waitForRecord(match: (r: AccessRecord) => boolean, timeoutMs?: number): Promise<AccessRecord>;
  /** The first request record (past or future) that satisfies `match`. */
  waitForRequest(match: (r: RequestRecord) => boolean, timeoutMs?: number): Promise<RequestRecord>;
  /**
   * Polls until no connection is active and the descriptor count is at most `fds`, or until
   * `timeoutMs`; resolves with the last figures either way (the caller judges them).
   */
  settle(fds: number, timeoutMs: number): Promise<{ stats: HostStats; ms: number }>;
  /** The child's stderr so far (edgemux's warnings and errors), for messages. */
  stderr(): string;
  /** Graceful stop with `timeoutMs` for open connections, then the child exits. */
  stop(timeoutMs?: number): Promise<void>;
}

/** Options for {@linkcode startHostedEdgemux}. */
export interface HostOptions {
  /** Send every access and request record to the test (default false: count them only). */
  stream?: boolean;
  /** Extra V8 flags, e.g. a heap cap. */
  v8Flags?: string[];
}

const HOST = new URL("./edgemux_host.ts", import.meta.url).pathname;
const STDERR_KEPT = 64 * 1024;
const live = new Set<number>();

globalThis.addEventListener("unload", () => {
  for (const pid of live) {
    try {
      Deno.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

interface Pending {
  resolve(value: Record<string, unknown>): void;
  reject(error: Error): void;
}

/**
 * Starts edgemux on `yaml` in a child process and waits until every listener is bound.
 *
 * @throws {Error} when the child cannot start or the config is refused (with its stderr)
 */
export async function startHostedEdgemux(
  yaml: string,
  opts: HostOptions = {},
): Promise<HostedEdgemux> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--v8-flags=${["--expose-gc", ...(opts.v8Flags ?? [])].join(",")}`,
      HOST,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const pid = child.pid;
  live.add(pid);
  const records = new RecordLog<AccessRecord>("access");
  const requests = new RecordLog<RequestRecord>("request");
  const pending = new Map<number, Pending>();
  let stderrText = "";
  let exited = false;
  let nextId = 1;

  const stderrDone = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderrText += decoder.decode(chunk, { stream: true });
      if (stderrText.length > STDERR_KEPT) stderrText = stderrText.slice(-STDERR_KEPT);
    }
  })().catch(() => {});

  const stdoutDone = (async () => {
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of child.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const message = JSON.parse(line) as Record<string, unknown>;
        if (message.event === "access") {
          records.push(message.record as AccessRecord);
        } else if (message.event === "request") {
          requests.push(message.record as RequestRecord);
        } else {
          const p = pending.get(message.id as number);
          pending.delete(message.id as number);
          if (message.ok) p?.resolve(message);
          else p?.reject(new Error(`edgemux child: ${message.error}`));
        }
      }
    }
  })().catch(() => {});

  const status = child.status.then(async (s) => {
    exited = true;
    live.delete(pid);
    await Promise.all([stdoutDone, stderrDone]);
    for (const p of pending.values()) {
      p.reject(
        new Error(
          `the edgemux child (pid ${pid}) exited with code ${s.code} signal ${s.signal}; ` +
            `stderr:\n${stderrText}`,
        ),
      );
    }
    pending.clear();
    return s;
  });

  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const call = async (command: Record<string, unknown>): Promise<Record<string, unknown>> => {
    if (exited) throw new Error(`the edgemux child (pid ${pid}) is gone; stderr:\n${stderrText}`);
    const id = nextId++;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      pending.set(id, { resolve, reject });
    });
    await writer.write(encoder.encode(JSON.stringify({ id, ...command }) + "\n"));
    return await answer;
  };

  const kill = () => {
    try {
      Deno.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };

  let started: Record<string, unknown>;
  try {
    started = await withTimeout(
      call({ cmd: "start", yaml, stream: opts.stream ?? false }),
      30_000,
      "edgemux child start",
    );
  } catch (e) {
    kill();
    await status;
    throw new Error(`${e instanceof Error ? e.message : e}\nstderr:\n${stderrText}`);
  }
  const ports = started.ports as Record<string, number>;

  let stopping: Promise<void> | null = null;
  const stop = (timeoutMs = 1000): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        try {
          await withTimeout(call({ cmd: "stop", timeoutMs }), timeoutMs + 10_000, "stop");
        } catch {
          // It failed to stop on its own; the kill below ends it.
        }
      }
      const done = await Promise.race([status.then(() => true), sleep(3000).then(() => false)]);
      if (!done) kill();
      await status;
      await writer.close().catch(() => {});
    })();
    return stopping;
  };

  const stats = async (gc = false) => (await call({ cmd: "stats", gc })).stats as HostStats;

  return {
    pid,
    ports,
    records: records.items,
    requests: requests.items,
    port(listener: string): number {
      const p = ports[listener];
      if (p === undefined) throw new Error(`no listener named "${listener}"`);
      return p;
    },
    stats,
    async describeFds(): Promise<string[]> {
      return (await call({ cmd: "fds" })).fds as string[];
    },
    async reload(yaml: string): Promise<number> {
      return (await call({ cmd: "reload", yaml })).ms as number;
    },
    waitForRecord: (match, timeoutMs = 10_000) => records.waitFor(match, timeoutMs),
    waitForRequest: (match, timeoutMs = 10_000) => requests.waitFor(match, timeoutMs),
    async settle(fds: number, timeoutMs: number) {
      const from = performance.now();
      for (;;) {
        const s = await stats(false);
        const ms = Math.round(performance.now() - from);
        if ((s.active === 0 && s.fds <= fds) || ms >= timeoutMs) return { stats: s, ms };
        await sleep(100);
      }
    },
    stderr: () => stderrText,
    stop,
    [Symbol.asyncDispose]: () => stop(),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
