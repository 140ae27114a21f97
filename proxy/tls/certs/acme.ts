/**
 * Ordering and renewing certificates from an ACME CA (RFC 8555), one certificate per name.
 *
 * The protocol is npm `acme-client` (5.x), which runs on Deno's Node compatibility: it signs
 * the requests (ES256 account keys), follows orders and authorizations, and makes the
 * TLS-ALPN-01 certificate (`crypto.createAlpnCertificate`: the critical id-pe-acmeIdentifier
 * extension, OID 1.3.6.1.5.5.7.1.31, holding the SHA-256 of the key authorization, RFC 8737
 * §3). edgemux adds what a long-running proxy needs around it: the schedule, the lock, the
 * state directory, back-off, and answering the challenges on its own listeners.
 *
 * Schedule, per name:
 * - a stored certificate is reused while it is younger than about two thirds of its lifetime
 *   (with a little jitter, so that certificates issued together do not all renew at once);
 * - otherwise the name's lock is taken (acme_state.ts), the stored certificate read again (a
 *   worker or another instance may just have renewed it), and a new one ordered;
 * - a failure is retried after `retry_interval`, doubling up to a day, never sooner than the
 *   CA's `Retry-After` (RFC 8555 §6.6) and not sooner than an hour after a `rateLimited` error
 *   that gave no `Retry-After`; the certificate in use keeps serving meanwhile.
 *
 * @module
 */

import "./_lenient_env.ts"; // before acme-client: see there
import acme from "acme-client";
import https from "node:https";
import type { AcmeConfig, AcmeKeyType } from "../../../config/types.ts";
import type { AcmeChallenges } from "../acme_challenges.ts";
import { log } from "../../observe/log.ts";
import type { AcmeState } from "./acme_state.ts";
import type { InspectedCert } from "./certificate.ts";

/** What the status page and metrics show for one name. */
export interface AcmeNameStatus {
  /** The DNS name the certificate is ordered for. */
  name: string;
  /**
   * `valid`: a current certificate is in hand; `ordering`: an order is under way here;
   * `waiting`: another worker or instance holds the lock; `failed`: the last attempt failed.
   */
  state: "starting" | "valid" | "ordering" | "waiting" | "failed";
  /** The stored certificate's expiry, ISO 8601; null when there is none. */
  notAfter: string | null;
  /** When the next renewal (or retry) is due, ISO 8601. */
  nextAttempt: string | null;
  /** The reason the last attempt failed, as the CA gave it; null after a success. */
  lastError: string | null;
  /** Consecutive failures. */
  failures: number;
  /** Certificates this process has ordered for the name. */
  issued: number;
}

/** Options for {@link AcmeManager}. */
export interface AcmeManagerOptions {
  /** Called when a new certificate for a name is stored (here or by another process). */
  onCertificate: () => void;
  /** Whether the listeners already serve the certificate with this fingerprint. */
  serving: (fingerprint: string) => boolean;
  now?: () => number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;
/** How long a stop waits for an order under way. */
const STOP_WAIT_MS = 2_000;
/** How soon to look again when another process holds a name's lock. */
const LOCKED_RECHECK_MS = 2_000;

interface Entry {
  status: AcmeNameStatus;
  due: number;
  /** The fingerprint of the stored certificate last seen. */
  known: string | null;
}

/** The HTTP facts of the last error response from the CA (acme-client drops them). */
let lastProblem: { retryAfterMs: number | null; type: string | null } | null = null;
let axiosConfiguredFor: string | null = null;

/** The parts of an axios error this module reads. */
interface AxiosLikeError {
  code?: string;
  message?: string;
  config?: { url?: string };
  response?: {
    status: number;
    headers?: Record<string, string | undefined>;
    data?: { type?: unknown };
  };
}

/**
 * Points acme-client's HTTP client (a process-wide axios instance) at the configured CA file,
 * and turns its own in-request retries off: a `Retry-After` of hours must not block the
 * schedule inside one request; the manager waits instead.
 */
async function configureHttp(cfg: AcmeConfig): Promise<void> {
  const key = cfg.caFile ?? "";
  if (axiosConfiguredFor === key) return;
  const ca = cfg.caFile === null ? undefined : await Deno.readTextFile(cfg.caFile);
  const defaults = acme.axios.defaults as unknown as Record<string, unknown> & {
    acmeSettings: { retryMaxAttempts: number };
  };
  defaults.httpsAgent = new https.Agent({ ca, keepAlive: false });
  defaults.timeout = 30_000;
  defaults.acmeSettings.retryMaxAttempts = 0;
  if (axiosConfiguredFor === null) {
    // acme-client's own response interceptor sees every response as an error (it checks the
    // status itself), and turns a connection failure into a TypeError once its retries are
    // off. This one runs first: it keeps the CA's Retry-After and problem type, and replaces
    // a failure without a response by an error that says what happened.
    const handlers = (acme.axios.interceptors.response as unknown as { handlers: unknown[] })
      .handlers;
    handlers.unshift({
      fulfilled: (response: unknown) => response,
      rejected: (error: AxiosLikeError) => {
        const response = error?.response;
        if (response === undefined) {
          const url = error?.config?.url ?? "the CA";
          throw new Error(`cannot reach ${url}: ${error?.code ?? error?.message ?? error}`);
        }
        if (response.status >= 400) {
          lastProblem = {
            retryAfterMs: parseRetryAfter(response.headers?.["retry-after"]),
            type: typeof response.data?.type === "string" ? response.data.type : null,
          };
        }
        throw error;
      },
      synchronous: false,
      runWhen: null,
    });
    acme.setLogger((message: string) => log.debug("acme-client", { message }));
  }
  axiosConfiguredFor = key;
}

/**
 * RFC 9110 §10.2.3: delay seconds, or an HTTP date (IMF-fixdate, §5.6.7). Returns milliseconds
 * from `now` (0 for a date in the past), or null for anything else.
 */
export function parseRetryAfter(value: unknown, now: number = Date.now()): number | null {
  if (typeof value !== "string" || value.trim() === "") return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return null;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * When a certificate should be renewed: two thirds into its lifetime, moved by up to a
 * twentieth of the lifetime either way (`jitter` in [-1, 1]).
 */
export function renewalTime(cert: Pick<InspectedCert, "notBefore" | "notAfter">, jitter: number) {
  const start = cert.notBefore.getTime();
  const life = cert.notAfter.getTime() - start;
  return Math.round(start + life * (2 / 3) + jitter * life / 20);
}

/**
 * The wait before retry number `failures` (1 for the first): `base`, doubling, at most a day;
 * never less than the CA's Retry-After; at least an hour after a rate limit without one.
 */
export function retryDelay(
  base: number,
  failures: number,
  retryAfterMs: number | null,
  rateLimited: boolean,
): number {
  let delay = Math.min(base * 2 ** Math.min(failures - 1, 30), DAY_MS);
  if (retryAfterMs !== null) delay = Math.max(delay, retryAfterMs);
  else if (rateLimited) delay = Math.max(delay, HOUR_MS);
  return delay;
}

/** Orders and renews the certificates of a set of names, one at a time. */
export class AcmeManager {
  readonly state: AcmeState;
  #cfg: AcmeConfig;
  readonly #challenges: AcmeChallenges;
  readonly #onCertificate: () => void;
  readonly #serving: (fingerprint: string) => boolean;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | null = null;
  #stopped = false;
  #client: { key: string; client: acme.Client } | null = null;

  constructor(cfg: AcmeConfig, challenges: AcmeChallenges, opts: AcmeManagerOptions) {
    this.#cfg = cfg;
    this.state = challenges.state;
    this.#challenges = challenges;
    this.#onCertificate = opts.onCertificate;
    this.#serving = opts.serving;
    this.#now = opts.now ?? Date.now;
  }

  /** The config in force (a reload may change it: a new CA or key type applies from then on). */
  update(cfg: AcmeConfig, names: readonly string[]): void {
    if (
      JSON.stringify({ ...cfg, position: null }) !==
        JSON.stringify({ ...this.#cfg, position: null })
    ) {
      this.#client = null;
    }
    this.#cfg = cfg;
    this.#challenges.setNames(names);
    for (const name of names) {
      if (this.#entries.has(name)) continue;
      this.#entries.set(name, {
        status: {
          name,
          state: "starting",
          notAfter: null,
          nextAttempt: null,
          lastError: null,
          failures: 0,
          issued: 0,
        },
        due: this.#now(),
        known: null,
      });
    }
    for (const name of [...this.#entries.keys()]) {
      if (!names.includes(name)) this.#entries.delete(name);
    }
    this.#arm();
  }

  /** Each managed name's state, sorted by name. */
  status(): AcmeNameStatus[] {
    return [...this.#entries.values()].map((e) => ({ ...e.status })).sort((a, b) =>
      a.name < b.name ? -1 : 1
    );
  }

  /**
   * Stops the schedule: nothing new starts. An order under way (which may wait on the CA for
   * minutes) is given {@link STOP_WAIT_MS} to finish; after that a stop does not wait for it,
   * and its lock, if the process then exits, is taken over once stale.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running === null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#running,
      new Promise<void>((r) => timer = setTimeout(r, STOP_WAIT_MS)),
    ]);
    clearTimeout(timer);
  }

  #arm(): void {
    if (this.#stopped || this.#running !== null) return;
    clearTimeout(this.#timer);
    let next = Infinity;
    for (const e of this.#entries.values()) next = Math.min(next, e.due);
    if (next === Infinity) return;
    // setTimeout holds at most 2^31-1 ms; a longer wait is re-armed when it ends.
    const wait = Math.min(Math.max(0, next - this.#now()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#work().finally(() => {
        this.#running = null;
        this.#arm();
      });
    }, wait);
  }

  async #work(): Promise<void> {
    for (const [name, entry] of this.#entries) {
      if (this.#stopped) return;
      if (entry.due > this.#now()) continue;
      try {
        await this.#check(name, entry);
      } catch (e) {
        this.#failed(name, entry, e);
      }
    }
  }

  /** Reuses the stored certificate while it is fresh; orders a new one otherwise. */
  async #check(name: string, entry: Entry): Promise<void> {
    await this.state.init();
    if (this.#fresh(name, entry, await this.state.readCert(name))) return;
    const lock = await this.state.lock(name, this.#now);
    if (lock === null) {
      entry.status.state = "waiting";
      entry.due = this.#now() + LOCKED_RECHECK_MS;
      entry.status.nextAttempt = new Date(entry.due).toISOString();
      return;
    }
    try {
      // Another worker or instance may have renewed it between the first look and the lock.
      if (this.#fresh(name, entry, await this.state.readCert(name))) return;
      entry.status.state = "ordering";
      log.info("ordering a certificate", { name, directory: this.#cfg.directoryUrl });
      const { chain, key } = await this.#order(name);
      await this.state.writeCert(name, chain, key);
      const stored = await this.state.readCert(name);
      if (stored === null) throw new Error("the CA's certificate cannot be read back");
      entry.status.issued++;
      entry.status.failures = 0;
      entry.status.lastError = null;
      this.#fresh(name, entry, stored);
      log.info("certificate issued", {
        name,
        not_after: stored.notAfter.toISOString(),
        next_renewal: entry.status.nextAttempt,
      });
    } finally {
      await lock.release();
    }
  }

  /**
   * Records a stored certificate and schedules its renewal. Returns false when there is none,
   * or it is due for renewal.
   */
  #fresh(name: string, entry: Entry, cert: InspectedCert | null): boolean {
    if (cert === null || !cert.names.includes(name)) return false;
    const renewAt = renewalTime(cert, Math.random() * 2 - 1);
    const now = this.#now();
    if (now >= renewAt || now >= cert.notAfter.getTime()) return false;
    entry.status.state = "valid";
    entry.status.notAfter = cert.notAfter.toISOString();
    entry.due = renewAt;
    entry.status.nextAttempt = new Date(renewAt).toISOString();
    if (entry.known !== cert.fingerprint) {
      entry.known = cert.fingerprint;
      // New here, or stored by another worker or instance: have the listeners load it.
      if (!this.#serving(cert.fingerprint)) this.#onCertificate();
    }
    return true;
  }

  #failed(name: string, entry: Entry, e: unknown): void {
    const reason = e instanceof Error ? e.message : String(e);
    const problem = lastProblem;
    lastProblem = null;
    entry.status.failures++;
    entry.status.state = "failed";
    const delay = retryDelay(
      this.#cfg.retryInterval,
      entry.status.failures,
      problem?.retryAfterMs ?? null,
      problem?.type === "urn:ietf:params:acme:error:rateLimited",
    );
    entry.due = this.#now() + delay;
    entry.status.nextAttempt = new Date(entry.due).toISOString();
    // Logged once per reason; repeats of the same failure only at debug level.
    const fields = { name, error: reason, retry_in_ms: delay, failures: entry.status.failures };
    if (entry.status.lastError !== reason) {
      log.error("cannot get a certificate from the CA", fields);
    } else log.debug("cannot get a certificate from the CA (again)", fields);
    entry.status.lastError = reason;
  }

  async #account(): Promise<acme.Client> {
    const cfg = this.#cfg;
    await configureHttp(cfg);
    const key = await this.state.accountKey(async () =>
      (await acme.crypto.createPrivateEcdsaKey("P-256")).toString()
    );
    if (this.#client?.key === key) return this.#client.client;
    const client = new acme.Client({
      directoryUrl: cfg.directoryUrl,
      accountKey: key,
      backoffAttempts: 10,
      backoffMin: 500,
      backoffMax: 10_000,
    });
    this.#client = { key, client };
    return client;
  }

  async #order(name: string): Promise<{ chain: string; key: string }> {
    const client = await this.#account();
    const key = (await createKey(this.#cfg.keyType)).toString();
    const [, csr] = await acme.crypto.createCsr(
      name.length <= 64 ? { commonName: name, altNames: [name] } : { altNames: [name] },
      key,
    );
    const challenges = this.#challenges;
    const placed: (() => Promise<void>)[] = [];
    try {
      const chain = await client.auto({
        csr,
        email: this.#cfg.email,
        termsOfServiceAgreed: true,
        challengePriority: [...this.#cfg.challenges],
        // acme-client's own pre-check fetches the challenge through public DNS from here;
        // edgemux answers on its own listeners, and the CA's view is the one that counts.
        skipChallengeVerification: true,
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
          const host = authz.identifier.value;
          // acme-client's types list only http-01 and dns-01; it does offer tls-alpn-01.
          const type = challenge.type as string;
          if (type === "http-01") {
            await challenges.addHttp(challenge.token, keyAuthorization);
            placed.push(() => challenges.removeHttp(challenge.token));
          } else if (type === "tls-alpn-01") {
            const alpnKey = (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
            const [, cert] = await acme.crypto.createAlpnCertificate(
              authz,
              keyAuthorization,
              alpnKey,
            );
            await challenges.addAlpn(host, cert.toString(), alpnKey);
            placed.push(() => challenges.removeAlpn(host));
          } else {
            throw new Error(`edgemux cannot answer ${type} challenges`);
          }
        },
        challengeRemoveFn: async () => {},
      });
      return { chain, key };
    } finally {
      for (const remove of placed) await remove().catch(() => {});
    }
  }
}

function createKey(type: AcmeKeyType): Promise<Buffer> {
  switch (type) {
    case "ec-p256":
      return acme.crypto.createPrivateEcdsaKey("P-256");
    case "ec-p384":
      return acme.crypto.createPrivateEcdsaKey("P-384");
    case "rsa-2048":
      return acme.crypto.createPrivateRsaKey(2048);
    case "rsa-4096":
      return acme.crypto.createPrivateRsaKey(4096);
  }
}
