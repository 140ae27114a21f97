import { equal, match, ok } from "node:assert/strict";
import { parseConfig } from "./parse.ts";
import { missingPermission } from "./permission.ts";

const CONFIG = `version: 1
backends:
  b: { servers: ["127.0.0.1:9"] }
listeners:
  ssh:
    bind: "127.0.0.1:0"
    routes:
      - forward: b
`;

Deno.test({
  name: "parseConfig() needs no permission at all, not even env (npm:yaml reads LOG_TOKENS)",
  permissions: { read: false, env: false, net: false, write: false, run: false },
  fn() {
    const parsed = parseConfig(CONFIG, "edgemux.yaml");
    equal(parsed.config.listeners[0].name, "ssh");
    // And a broken file is still reported as YAML, not as a permission.
    let message = "";
    try {
      parseConfig("version: 1\nlisteners: [\n", "broken.yaml");
    } catch (e) {
      message = String(e);
    }
    match(message, /broken\.yaml:/);
    equal(/NotCapable|env access/.test(message), false, message);
  },
});

Deno.test({
  name: "missingPermission() names the permission, the path and the flag that grants it",
  permissions: { read: false },
  fn() {
    let error: unknown;
    try {
      Deno.readTextFileSync("/etc/hostname");
    } catch (e) {
      error = e;
    }
    const denied = missingPermission(error);
    ok(denied !== null);
    equal(denied.kind, "read");
    equal(denied.target, "/etc/hostname");
    match(denied.message, /Deno did not grant read access to "\/etc\/hostname"/);
    match(denied.fix, /--allow-read=\/etc\/hostname \(or --allow-read\)/);
    equal(missingPermission(new Deno.errors.NotFound("x")), null);
  },
});
