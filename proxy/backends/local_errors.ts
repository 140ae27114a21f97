/**
 * Errors that are this machine's fault, not a peer's: out of file descriptors (`EMFILE`,
 * `ENFILE`), out of socket buffers (`ENOBUFS`) or memory (`ENOMEM`), no local address or
 * ephemeral port left (`EADDRNOTAVAIL`). When a connect fails with one of them, the backend was
 * never asked, so passive health, active checks and retries must not hold it against the server.
 * They are counted per cause for `edgemux_local_errors_total` and logged at most once per
 * interval per cause and place, because under exhaustion they come by the thousand.
 *
 * Deno 2.9.6 reports them as a plain `Error` whose `code` is the errno name (`"EMFILE"`) and
 * whose message ends in `(os error N)`, from `Deno.connect`, `Deno.connectTls` and
 * `Listener.accept` alike; `EADDRNOTAVAIL` also comes as `Deno.errors.AddrNotAvailable`.
 *
 * @module
 */

import { log } from "../observe/log.ts";

/** A local resource that ran out. */
export type LocalCause = "EMFILE" | "ENFILE" | "ENOBUFS" | "ENOMEM" | "EADDRNOTAVAIL";

/** Linux errno numbers, for errors that carry only the `(os error N)` text. */
const BY_ERRNO: Record<number, LocalCause> = {
  24: "EMFILE",
  23: "ENFILE",
  105: "ENOBUFS",
  12: "ENOMEM",
  99: "EADDRNOTAVAIL",
};

const CAUSES = new Set<string>(Object.values(BY_ERRNO));

/** What each cause means, for the log. */
const MEANING: Record<LocalCause, string> = {
  EMFILE: "edgemux is out of file descriptors (the process limit, see LimitNOFILE/ulimit -n)",
  ENFILE: "the system is out of file descriptors (fs.file-max)",
  ENOBUFS: "the system is out of socket buffer space",
  ENOMEM: "the system is out of memory",
  EADDRNOTAVAIL: "no local address or ephemeral port is free for a new connection",
};

/** The local cause of `e`, or null when the error may well be the peer's. */
export function localCause(e: unknown): LocalCause | null {
  if (e instanceof Deno.errors.AddrNotAvailable) return "EADDRNOTAVAIL";
  if (!(e instanceof Error)) return null;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && CAUSES.has(code)) return code as LocalCause;
  const m = /\(os error (\d+)\)/.exec(e.message);
  return m === null ? null : BY_ERRNO[Number(m[1])] ?? null;
}

/** How often one cause at one place is logged while it keeps happening. */
export const LOCAL_ERROR_LOG_INTERVAL = 5_000;

const counts = new Map<LocalCause, number>();
const logged = new Map<string, { at: number; suppressed: number }>();

/** Local errors seen by this process since it started, by cause. */
export function localErrorCounts(): ReadonlyMap<LocalCause, number> {
  return counts;
}

/**
 * Counts a local error and logs it, unless the same cause at the same place was logged less
 * than {@link LOCAL_ERROR_LOG_INTERVAL} ago (the next line then says how many were not logged).
 *
 * @param where What was being done: `connect`, `accept`, `health check`.
 * @param fields More context for the log line (backend, server, listener).
 */
export function noteLocalError(
  cause: LocalCause,
  where: string,
  fields: Record<string, unknown> = {},
): void {
  counts.set(cause, (counts.get(cause) ?? 0) + 1);
  const key = `${cause} ${where}`;
  const now = Date.now();
  const last = logged.get(key);
  if (last !== undefined && now - last.at < LOCAL_ERROR_LOG_INTERVAL) {
    last.suppressed++;
    return;
  }
  logged.set(key, { at: now, suppressed: 0 });
  log.error("local resource error (not the peer's fault)", {
    where,
    cause,
    meaning: MEANING[cause],
    ...fields,
    not_logged_since_last: last?.suppressed ?? 0,
  });
}
