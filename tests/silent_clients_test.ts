/**
 * One address cannot use up a forward backend: on a `protocol: [ssh, silent]` route, clients
 * that connect and send nothing each become a backend connection after `sniff.silent_after`,
 * and with the default `max_connections_per_client` (10 for a backend a `forward` route uses)
 * the backend never holds more than 10 of them from one address, while another address still
 * reaches it. The backend behaves like sshd where it matters: it speaks first (its version
 * line), and it counts the connections it holds.
 *
 * The attacker also passes `limits.per_client.max_connections`, so the test shows as well that a
 * client refused at accept takes nothing from other clients.
 */

import { equal, ok } from "node:assert/strict";
import { serveTcp } from "./_helpers/backends.ts";
import { startEdgemux } from "./_helpers/edgemux.ts";
import { connectFrom, type SourceConn } from "./_helpers/source_address.ts";

const BANNER = "SSH-2.0-counting_backend\r\n";
/** Long enough for every attacker connection to be open before the first is forwarded. */
const SILENT_AFTER = 1500;
const ATTACKERS = 300;
const PER_CLIENT = 250;
/** The documented default of max_connections_per_client for a forward backend (docs/config.md). */
const BACKEND_CAP = 10;
const ATTACKER = "127.0.0.1";
const OTHER_CLIENT = "127.0.0.2";

/** A TCP server that sends an SSH version line on accept and counts what it holds. */
function startCountingSshLike() {
  let open = 0;
  let most = 0;
  const server = serveTcp(Deno.listen({ hostname: "127.0.0.1", port: 0 }), async (conn) => {
    open++;
    most = Math.max(most, open);
    try {
      await conn.write(new TextEncoder().encode(BANNER));
      const buf = new Uint8Array(1024);
      // Like sshd before authentication: hold the connection until the client goes.
      while (await conn.read(buf) !== null) { /* discard */ }
    } finally {
      open--;
    }
  });
  return {
    server,
    get open() {
      return open;
    },
    get most() {
      return most;
    },
  };
}

Deno.test({
  name: "one address's silent clients hold at most max_connections_per_client of a forward " +
    "backend; another address still reaches it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const backend = startCountingSshLike();
    await using _server = backend.server;
    await using edgemux = await startEdgemux(`
version: 1
limits:
  per_client: { max_connections: ${PER_CLIENT} }
backends:
  ssh: { servers: ["127.0.0.1:${backend.server.port}"] }
listeners:
  ssh:
    bind: "127.0.0.1:0"
    sniff: { timeout: 5s, silent_after: ${SILENT_AFTER}ms }
    routes:
      - { protocol: [ssh, silent], forward: ssh }
`);
    // The cap is not set in the config: this is the default at work.
    equal(edgemux.config.backends.get("ssh")!.maxConnectionsPerClient, BACKEND_CAP);
    const port = edgemux.port("ssh");

    // The attacker: hundreds of connections that never send a byte.
    const attackers: SourceConn[] = [];
    const refusedAtConnect: number[] = [];
    try {
      for (let i = 0; i < ATTACKERS; i += 50) {
        const batch = await Promise.allSettled(
          Array.from({ length: 50 }, () => connectFrom(ATTACKER, port)),
        );
        for (const b of batch) {
          if (b.status === "fulfilled") attackers.push(b.value);
          else refusedAtConnect.push(i);
        }
      }
      // Every attacker connection is past silent_after; the ones over a cap are closed.
      const settled = Date.now() + 10_000;
      while (Date.now() < settled) {
        const closed = edgemux.records.filter((r) => r.client.startsWith(`${ATTACKER}:`)).length;
        if (closed >= ATTACKERS - BACKEND_CAP && backend.open >= BACKEND_CAP) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      console.log(`    backend holds ${backend.open}, at most ${backend.most}`);
      ok(backend.most <= BACKEND_CAP, `the backend held ${backend.most} connections at once`);
      equal(backend.open, BACKEND_CAP);

      const ends = new Map<string, number>();
      for (const r of edgemux.records) ends.set(r.end, (ends.get(r.end) ?? 0) + 1);
      console.log(`    attacker connections ended: ${JSON.stringify(Object.fromEntries(ends))}`);
      equal(ends.get("limit-client"), ATTACKERS - PER_CLIENT);
      equal(ends.get("limit-backend-client"), PER_CLIENT - BACKEND_CAP);
      const limited = edgemux.records.find((r) => r.end === "limit-backend-client")!;
      equal(limited.backend, "ssh");
      equal(limited.protocol, "silent");

      // The other address is served while the attacker holds its share: silent, like an
      // attacker, and speaking first, like an SSH client.
      for (const speaksFirst of [false, true]) {
        const other = await connectFrom(OTHER_CLIENT, port);
        try {
          if (speaksFirst) await other.write("SSH-2.0-other\r\n");
          ok(await other.waitForText(BANNER, 5000), "the other address got no banner");
        } finally {
          other.destroy();
        }
      }
      ok(backend.most <= BACKEND_CAP + 1, `the backend held ${backend.most} connections at once`);

      // Once the attacker goes, its slots are free again.
      for (const a of attackers) a.destroy();
      attackers.length = 0;
      const freed = Date.now() + 5000;
      while (backend.open > 0 && Date.now() < freed) await new Promise((r) => setTimeout(r, 50));
      equal(backend.open, 0);
      const again = await connectFrom(ATTACKER, port);
      try {
        ok(await again.waitForText(BANNER, 5000), "the attacker's address is served again");
      } finally {
        again.destroy();
      }
    } finally {
      for (const a of attackers) a.destroy();
    }
  },
});
