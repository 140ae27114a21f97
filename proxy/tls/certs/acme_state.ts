/**
 * The ACME state directory: the account key, one certificate per name, the challenges being
 * answered, and the locks that keep several workers (or several edgemux instances sharing the
 * directory over a network filesystem) from ordering the same certificate twice.
 *
 * ```
 * STATE/account.key                     the account's private key (PKCS#8, 0600)
 * STATE/certs/NAME.pem                  chain, leaf first, then its key (0600)
 * STATE/challenges/http-01/TOKEN        an HTTP-01 key authorization (RFC 8555 §8.3)
 * STATE/challenges/tls-alpn-01/NAME.pem a TLS-ALPN-01 certificate and key (RFC 8737 §3)
 * STATE/locks/NAME.lock                 held while NAME is being ordered
 * ```
 *
 * Every file is written to a temporary name in the same directory, synced, and renamed over
 * the old one, so a reader (another worker, a crash) sees the old file or the new one, never
 * half of one. Challenges are on disk as well as in memory because with `workers` the CA's
 * validation request may reach any worker, not the one that placed the order.
 *
 * @module
 */

import { inspectCertificate, type InspectedCert } from "./certificate.ts";

/** A held lock; release it when the order is done. */
export interface AcmeLock {
  release(): Promise<void>;
}

/** A lock file older than this is taken to be left over by a process that died holding it. */
export const LOCK_STALE_MS = 10 * 60 * 1000;
/** How often a held lock's file is touched, so others can tell it is alive. */
const LOCK_REFRESH_MS = 60 * 1000;

/** RFC 8555 §8.1: a token is base64url, at least 128 bits of entropy. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;
/** A normalised DNS name (certificate.ts normalizeName); nothing that could leave a directory. */
const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** Whether `name` may be used as a file name in the state directory. */
export function isStateName(name: string): boolean {
  return name.length <= 253 && NAME.test(name);
}

/** Whether `token` is a well-formed ACME challenge token. */
export function isToken(token: string): boolean {
  return TOKEN.test(token);
}

/** Files in one ACME state directory. */
export class AcmeState {
  constructor(readonly dir: string) {}

  /** Creates the directory and its subdirectories (0700). */
  async init(): Promise<void> {
    for (const sub of ["", "/certs", "/challenges/http-01", "/challenges/tls-alpn-01", "/locks"]) {
      await Deno.mkdir(this.dir + sub, { recursive: true, mode: 0o700 });
    }
  }

  get certsDir(): string {
    return `${this.dir}/certs`;
  }

  certPath(name: string): string {
    checkName(name);
    return `${this.dir}/certs/${name}.pem`;
  }

  /** The stored certificate for `name`, or null when there is none (or it is unreadable). */
  async readCert(name: string): Promise<InspectedCert | null> {
    const path = this.certPath(name);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch {
      return null;
    }
    const inspected = inspectCertificate(text, text, { cert: path, key: path });
    return "problem" in inspected ? null : inspected;
  }

  /** Stores a new certificate chain and its key for `name`, replacing the old one at once. */
  async writeCert(name: string, chainPem: string, keyPem: string): Promise<string> {
    const path = this.certPath(name);
    await writeFileAtomic(path, `${chainPem.trim()}\n${keyPem.trim()}\n`, 0o600);
    return path;
  }

  /** The account key, created by `create` and stored (0600) the first time. */
  async accountKey(create: () => Promise<string>): Promise<string> {
    const path = `${this.dir}/account.key`;
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const key = await create();
    // Two workers starting together: the first key in place wins, the other is discarded. A
    // hard link of a complete temporary file puts it in place whole, and fails if one is there.
    const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await writeFileNew(tmp, key, 0o600);
      await Deno.link(tmp, path);
      return key;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return await Deno.readTextFile(path);
      throw e;
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
  }

  /**
   * Takes the lock for ordering `name`: creates `locks/NAME.lock` with O_EXCL, which is atomic
   * on local filesystems and on NFS v3 and later. A lock file not touched for
   * {@link LOCK_STALE_MS} belonged to a process that died, and is taken over.
   *
   * @returns the lock, or null when another process holds it
   */
  async lock(name: string, now: () => number = Date.now): Promise<AcmeLock | null> {
    checkName(name);
    const path = `${this.dir}/locks/${name}.lock`;
    const owner = JSON.stringify({ pid: Deno.pid, id: crypto.randomUUID(), at: now() }) + "\n";
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFileNew(path, owner, 0o600);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
        let mtime: number;
        try {
          mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
        } catch {
          continue; // released meanwhile: try again
        }
        if (now() - mtime < LOCK_STALE_MS) return null;
        // Stale: remove and try once more; if another process is quicker, it holds the lock.
        // Two processes that both judged the same dead lock stale within one stat of each other
        // could both end up holding one; that needs a holder dead for LOCK_STALE_MS first, and
        // costs at worst one duplicate order.
        await Deno.remove(path).catch(() => {});
        continue;
      }
      const refresh = setInterval(() => {
        const t = new Date(now());
        Deno.utime(path, t, t).catch(() => {});
      }, LOCK_REFRESH_MS);
      let released = false;
      return {
        release: async () => {
          if (released) return;
          released = true;
          clearInterval(refresh);
          await Deno.remove(path).catch(() => {});
        },
      };
    }
    return null;
  }

  async writeHttpChallenge(token: string, keyAuthorization: string): Promise<void> {
    await writeFileAtomic(this.#httpPath(token), keyAuthorization, 0o644);
  }

  async readHttpChallenge(token: string): Promise<string | null> {
    if (!isToken(token)) return null;
    try {
      return await Deno.readTextFile(this.#httpPath(token));
    } catch {
      return null;
    }
  }

  async removeHttpChallenge(token: string): Promise<void> {
    await Deno.remove(this.#httpPath(token)).catch(() => {});
  }

  async writeAlpnChallenge(name: string, certPem: string, keyPem: string): Promise<void> {
    await writeFileAtomic(this.#alpnPath(name), `${certPem.trim()}\n${keyPem.trim()}\n`, 0o600);
  }

  async readAlpnChallenge(name: string): Promise<{ cert: string; key: string } | null> {
    if (!isStateName(name)) return null;
    let text: string;
    try {
      text = await Deno.readTextFile(this.#alpnPath(name));
    } catch {
      return null;
    }
    const at = text.indexOf("-----BEGIN PRIVATE KEY-----");
    if (at < 0) return null;
    return { cert: text.slice(0, at), key: text.slice(at) };
  }

  async removeAlpnChallenge(name: string): Promise<void> {
    await Deno.remove(this.#alpnPath(name)).catch(() => {});
  }

  #httpPath(token: string): string {
    if (!isToken(token)) throw new TypeError(`not an ACME token: ${JSON.stringify(token)}`);
    return `${this.dir}/challenges/http-01/${token}`;
  }

  #alpnPath(name: string): string {
    checkName(name);
    return `${this.dir}/challenges/tls-alpn-01/${name}.pem`;
  }
}

function checkName(name: string): void {
  if (!isStateName(name)) throw new TypeError(`not a DNS name: ${JSON.stringify(name)}`);
}

/** Writes `text` to `path` through a temporary file and a rename, synced first. */
export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await writeFileNew(tmp, text, mode);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Creates `path` (failing with AlreadyExists if it is there), writes and syncs it. */
async function writeFileNew(path: string, text: string, mode: number): Promise<void> {
  const file = await Deno.open(path, { createNew: true, write: true, mode });
  try {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    // The mode given to open() is reduced by the umask; a private key must end up 0600.
    await Deno.chmod(path, mode);
    await file.sync();
  } finally {
    file.close();
  }
}
