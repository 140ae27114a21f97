import assert from "node:assert/strict";
import { AcmeState, isStateName, isToken, LOCK_STALE_MS } from "./acme_state.ts";
import { createSelfSignedCertificate } from "./dev_cert.ts";

async function withState(fn: (state: AcmeState) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "edgemux-acme-state-" });
  try {
    const state = new AcmeState(`${dir}/acme`);
    await state.init();
    await fn(state);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("AcmeState: one lock per name; released, it can be taken again", async () => {
  await withState(async (state) => {
    const first = await state.lock("app.example.test");
    assert.ok(first);
    assert.equal(await state.lock("app.example.test"), null);
    // Another name is independent.
    const other = await state.lock("api.example.test");
    assert.ok(other);
    await first.release();
    const again = await state.lock("app.example.test");
    assert.ok(again);
    await again.release();
    await other.release();
  });
});

Deno.test("AcmeState: of many lockers racing for a name, exactly one wins", async () => {
  await withState(async (state) => {
    const got = await Promise.all(Array.from({ length: 20 }, () => state.lock("race.test")));
    assert.equal(got.filter((l) => l !== null).length, 1);
    for (const l of got) await l?.release();
  });
});

Deno.test("AcmeState: a lock file not touched for the stale time is taken over", async () => {
  await withState(async (state) => {
    const held = await state.lock("app.example.test");
    assert.ok(held);
    const path = `${state.dir}/locks/app.example.test.lock`;
    const old = new Date(Date.now() - LOCK_STALE_MS - 1000);
    await Deno.utime(path, old, old);
    const taken = await state.lock("app.example.test");
    assert.ok(taken, "a stale lock must be taken over");
    await taken.release();
    await held.release();
  });
});

Deno.test("AcmeState: certificates are written atomically with private permissions and read back", async () => {
  await withState(async (state) => {
    const { certPem, keyPem } = await createSelfSignedCertificate(["app.example.test"]);
    const path = await state.writeCert("app.example.test", certPem, keyPem);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const cert = await state.readCert("app.example.test");
    assert.deepEqual(cert?.names, ["app.example.test"]);
    // Replacing leaves no temporary file behind.
    await state.writeCert("app.example.test", certPem, keyPem);
    const names = [];
    for await (const e of Deno.readDir(state.certsDir)) names.push(e.name);
    assert.deepEqual(names, ["app.example.test.pem"]);
    assert.equal(await state.readCert("other.example.test"), null);
  });
});

Deno.test("AcmeState: the account key is made once, even by two starting together", async () => {
  await withState(async (state) => {
    let made = 0;
    const create = () => Promise.resolve(`key ${++made}\n`);
    const [a, b] = await Promise.all([state.accountKey(create), state.accountKey(create)]);
    assert.equal(a, b);
    assert.equal(await state.accountKey(create), a);
    assert.equal((await Deno.stat(`${state.dir}/account.key`)).mode! & 0o777, 0o600);
  });
});

Deno.test("AcmeState: challenges round-trip; tokens and names that could leave the directory are refused", async () => {
  await withState(async (state) => {
    const token = "abcdefghijklmnop_-0123456789";
    await state.writeHttpChallenge(token, `${token}.thumbprint`);
    assert.equal(await state.readHttpChallenge(token), `${token}.thumbprint`);
    await state.removeHttpChallenge(token);
    assert.equal(await state.readHttpChallenge(token), null);
    for (
      const bad of ["../../etc/passwd", "a/b", "", "short", "x".repeat(300), "tok en.abcdefghijkl"]
    ) {
      assert.equal(isToken(bad), false, bad);
      assert.equal(await state.readHttpChallenge(bad), null, bad);
    }
    for (
      const bad of ["../x", "a/b.test", ".hidden", "a..b", "-a.test", "A.test", "a_b.test", ""]
    ) {
      assert.equal(isStateName(bad), false, bad);
      assert.equal(await state.readAlpnChallenge(bad), null, bad);
    }
    assert.ok(isStateName("app.example.test") && isStateName("xn--bcher-kva.example"));
  });
});
