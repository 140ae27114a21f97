/**
 * Choosing a certificate for a server name: pure, built once, read many times.
 *
 * @module
 */

import { type InspectedCert, normalizeName } from "./certificate.ts";
import { certWildcardSuffix, wildcardSuffixOf } from "../../../routing/hosts.ts";

/** Options for {@linkcode CertStore}. */
export interface CertStoreOptions {
  /**
   * A server name whose certificate answers clients that send no SNI or a name no certificate
   * covers; null to answer them with nothing.
   */
  defaultName: string | null;
  /** The clock, in epoch milliseconds; for tests. Default `Date.now`. */
  now?: () => number;
}

/**
 * An immutable set of certificates indexed by the names they cover.
 *
 * Matching (RFC 6125 §6.4.3, as browsers do it; routing/hosts.ts holds the rule, the same as for
 * routes): a certificate name `*.example.test` covers exactly one more label, `a.example.test`,
 * but neither `example.test` nor `a.b.example.test`; only a whole leftmost `*` label counts as a
 * wildcard. Names are compared lowercased with one trailing dot removed.
 *
 * When several certificates cover a name, the choice is, in order of importance:
 * 1. one that is valid right now (so an expired or not-yet-valid copy never hides a good one);
 * 2. one naming the host exactly over a wildcard;
 * 3. the one with the latest `notAfter` (a renewed certificate beats the one it replaces);
 * 4. the earlier one in `certs`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { InspectedCert } from "./certificate.ts";
 *
 * const cert = (names: string[]): InspectedCert => ({
 *   certPem: "", keyPem: "", names, notBefore: new Date(0), notAfter: new Date(8e15),
 *   subject: "", issuer: "", fingerprint: names.join(), selfSigned: false, ca: false,
 *   origin: { cert: "", key: "" },
 * });
 * const wildcard = cert(["*.example.test"]);
 * const store = new CertStore([wildcard], { defaultName: null });
 * assert.equal(store.select("a.example.test"), wildcard);
 * assert.equal(store.select("example.test"), null);
 * ```
 */
export class CertStore {
  /** Every certificate, in the order given. */
  readonly certs: readonly InspectedCert[];
  /** The normalised default name, or null. */
  readonly defaultName: string | null;
  #exact = new Map<string, InspectedCert[]>();
  /** Keyed by the part after `*.`. */
  #wildcard = new Map<string, InspectedCert[]>();
  #now: () => number;

  constructor(certs: readonly InspectedCert[], opts: CertStoreOptions) {
    this.certs = Object.freeze([...certs]);
    this.defaultName = opts.defaultName === null ? null : normalizeName(opts.defaultName);
    this.#now = opts.now ?? Date.now;
    for (const cert of this.certs) {
      for (const raw of cert.names) {
        const name = normalizeName(raw);
        const suffix = certWildcardSuffix(name);
        if (suffix !== null) add(this.#wildcard, suffix, cert);
        else if (!name.includes("*")) add(this.#exact, name, cert);
        // Partial wildcards ("f*.example.test") are not honoured by browsers; skip them.
      }
    }
  }

  /**
   * The certificate to present for a ClientHello's server name.
   *
   * @param sni the server name the client sent; null or "" when it sent none
   * @returns the best certificate covering `sni`; otherwise the one covering the default name;
   * otherwise null
   */
  select(sni: string | null, now: Date = new Date(this.#now())): InspectedCert | null {
    if (sni !== null && sni !== "") {
      const found = this.covers(sni, now);
      if (found !== null) return found;
    }
    return this.defaultName === null ? null : this.covers(this.defaultName, now);
  }

  /**
   * The SNI resolver's answer for `Deno.listenTls` (docs/deno-runtime.md §1): the PEM chain and key
   * of {@linkcode CertStore.select}. Deno calls the resolver with "" when the client sent no
   * server name.
   *
   * @throws {Error} when no certificate applies; the handshake then fails with an alert
   */
  resolve(sni: string): { cert: string; key: string } {
    const cert = this.select(sni);
    if (cert === null) {
      throw new Error(`no certificate for server name "${sni}" and no default certificate`);
    }
    return { cert: cert.certPem, key: cert.keyPem };
  }

  /**
   * The best certificate covering `name` by its own names, without the default.
   *
   * @param name a server name, in any case, with or without a trailing dot
   * @param now the moment validity is judged at; default the store's clock
   */
  covers(name: string, now: Date = new Date(this.#now())): InspectedCert | null {
    const host = normalizeName(name);
    const exact = this.#exact.get(host);
    const suffix = wildcardSuffixOf(host);
    const wildcard = suffix === null ? undefined : this.#wildcard.get(suffix);
    if (exact === undefined && wildcard === undefined) return null;
    return best(exact ?? [], wildcard ?? [], now.getTime());
  }

  /**
   * Certificates in use that expire within `ms` of `now`, already expired ones included. A
   * certificate counts as in use when it would be chosen for at least one of its names (for
   * a wildcard name: among the wildcards for that suffix); one that a renewal has fully
   * replaced is not reported.
   *
   * @returns the certificates, soonest expiry first
   */
  expiringWithin(ms: number, now: Date): InspectedCert[] {
    const t = now.getTime();
    const out: InspectedCert[] = [];
    for (const cert of this.certs) {
      if (cert.notAfter.getTime() - t > ms) continue;
      if (this.inUse(cert, now)) out.push(cert);
    }
    return out.sort((a, b) => a.notAfter.getTime() - b.notAfter.getTime());
  }

  /** Whether `cert` would be chosen for at least one of its names at `now`. */
  inUse(cert: InspectedCert, now: Date): boolean {
    for (const raw of cert.names) {
      const name = normalizeName(raw);
      const suffix = certWildcardSuffix(name);
      const winner = suffix !== null
        ? best([], this.#wildcard.get(suffix) ?? [], now.getTime())
        : this.covers(name, now);
      if (winner === cert) return true;
    }
    return false;
  }
}

function add(map: Map<string, InspectedCert[]>, key: string, cert: InspectedCert): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [cert]);
  else if (!list.includes(cert)) list.push(cert);
}

function best(exact: InspectedCert[], wildcard: InspectedCert[], now: number): InspectedCert {
  let chosen = exact[0] ?? wildcard[0];
  let chosenRank = -1;
  for (const [list, exactBonus] of [[exact, 1], [wildcard, 0]] as const) {
    for (const cert of list) {
      const valid = cert.notBefore.getTime() <= now && now <= cert.notAfter.getTime();
      const rank = (valid ? 2 : 0) + exactBonus;
      if (
        rank > chosenRank ||
        (rank === chosenRank && cert.notAfter.getTime() > chosen.notAfter.getTime())
      ) {
        chosen = cert;
        chosenRank = rank;
      }
    }
  }
  return chosen;
}
