/**
 * What the `process_*` metrics report about this process, without /proc file reads: Deno 2.9.6
 * allows reading /proc only with `--allow-all`, which neither the compiled binary nor the
 * `start` task grants. CPU time and memory come from the runtime (getrusage, RSS); descriptors
 * from libc through the FFI permission edgemux already holds for it (the same libc paths as
 * ../_deno_internals.ts), where opendir() is not subject to Deno's file permissions.
 *
 * @module
 */

import process from "node:process";
import { LIBC_PATHS } from "../_deno_internals.ts";

/** One reading of the process's resources; null where it could not be read. */
export interface ProcessStats {
  /** User plus system CPU time, in seconds. */
  cpuSeconds: number;
  /** Resident set size, in bytes. */
  residentBytes: number;
  /** When the runtime started, in Unix seconds (the process's first moments). */
  startSeconds: number;
  /** Open file descriptors. */
  openFds: number | null;
  /** The soft limit on open file descriptors (RLIMIT_NOFILE), as a float (as client_golang). */
  maxFds: number | null;
}

const RLIMIT_NOFILE = 7;

const SYMBOLS = {
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  for (const path of LIBC_PATHS) {
    try {
      libc = Deno.dlopen(path, SYMBOLS);
      break;
    } catch {
      // Not there, or no --allow-ffi for it: try the next one.
    }
  }
  return libc;
}

const FD_DIR = new TextEncoder().encode("/proc/self/fd\0");

/** Entries of /proc/self/fd, less ".", ".." and the descriptor opendir() itself holds. */
function countOpenFds(c: Libc): number | null {
  const dir = c.symbols.opendir(FD_DIR);
  if (dir === null) return null;
  let n = 0;
  try {
    while (c.symbols.readdir(dir) !== null) n++;
  } finally {
    c.symbols.closedir(dir);
  }
  return n - 3;
}

function maxOpenFds(c: Libc): number | null {
  // struct rlimit { rlim_t rlim_cur; rlim_t rlim_max; }, two 64-bit values.
  const buf = new BigUint64Array(2);
  if (c.symbols.getrlimit(RLIMIT_NOFILE, buf) !== 0) return null;
  // RLIM_INFINITY (all bits set) becomes 1.8e19, a finite number that survives JSON between
  // workers and supervisor, where Infinity would not.
  return Number(buf[0]);
}

/** Reads the process's resources now. */
export function processStats(): ProcessStats {
  const cpu = process.cpuUsage();
  const c = loadLibc();
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentBytes: Deno.memoryUsage().rss,
    startSeconds: performance.timeOrigin / 1000,
    openFds: c === null ? null : countOpenFds(c),
    maxFds: c === null ? null : maxOpenFds(c),
  };
}
