import { deepEqual, equal, match, throws } from "node:assert/strict";
import { parseConfig } from "./parse.ts";
import {
  parseStarterPorts,
  renderStarter,
  STARTER_DEFAULTS,
  type StarterOptions,
  starterProblem,
  SYSTEM_STARTER,
} from "./starter.ts";

Deno.test("deploy/starter.yaml is exactly what `edgemux init --system` writes (deno task starter)", async () => {
  const shipped = await Deno.readTextFile(new URL("../deploy/starter.yaml", import.meta.url));
  equal(
    shipped,
    renderStarter(SYSTEM_STARTER),
    "deploy/starter.yaml differs from the starter template: run `deno task starter`",
  );
});

Deno.test("every port layout init offers renders a config that parses, with the routes it says", () => {
  const layouts = ["80,443", "8080,8443", "22,80,443", "2222,8080,8443", "1,65535"];
  for (const system of [false, true]) {
    for (const layout of layouts) {
      const opts: StarterOptions = {
        ...(system ? SYSTEM_STARTER : STARTER_DEFAULTS),
        ports: parseStarterPorts(layout),
      };
      const text = renderStarter(opts);
      const { config, warnings } = parseConfig(text, `starter-${layout}.yaml`);
      const ports = layout.split(",").map(Number);
      deepEqual(config.listeners.map((l) => l.binds[0].port), ports, text);
      deepEqual(
        config.listeners.map((l) => l.name),
        ports.length === 3 ? ["ssh", "http", "https"] : ["http", "https"],
      );
      equal(warnings.length, 0, JSON.stringify(warnings));
      // With port 22 taken by edgemux, sshd must be somewhere else.
      const ssh = config.backends.get("ssh");
      if (ssh !== undefined) {
        equal(ssh.servers[0].label, ports[0] === 22 ? "127.0.0.1:10022" : "127.0.0.1:22");
      }
      // Nothing in it refers to a file that init does not write.
      equal(/testdata|config\.example/.test(text), false);
      match(text, system ? /directory: \/etc\/edgemux\/certs/ : /\n {2}development: true\n/);
    }
  }
});

Deno.test("renderStarter() without an admin listener leaves the admin section out", () => {
  const text = renderStarter({ ...STARTER_DEFAULTS, admin: null });
  equal(text.includes("admin:"), false);
  equal(parseConfig(text).config.admin, null);
});

Deno.test("parseStarterPorts() reads HTTP,HTTPS and SSH,HTTP,HTTPS, and names what is wrong", () => {
  deepEqual(parseStarterPorts("80,443"), { ssh: null, http: 80, https: 443 });
  deepEqual(parseStarterPorts("22, 80, 443"), { ssh: 22, http: 80, https: 443 });
  throws(() => parseStarterPorts("443"), /HTTP,HTTPS or SSH,HTTP,HTTPS/);
  throws(() => parseStarterPorts("1,2,3,4"), /HTTP,HTTPS or SSH,HTTP,HTTPS/);
  throws(() => parseStarterPorts("0,443"), /"0" is not a port number from 1 to 65535/);
  throws(() => parseStarterPorts("80,65536"), /"65536" is not a port number/);
  throws(() => parseStarterPorts("80,x"), /"x" is not a port number/);
  throws(() => parseStarterPorts("443,443"), /names a port twice/);
});

Deno.test("starterProblem() refuses a backend or admin port that a listener uses, and a bad name", () => {
  equal(starterProblem(STARTER_DEFAULTS), null);
  match(
    starterProblem({ ...STARTER_DEFAULTS, backend: "127.0.0.1:8443" }) ?? "",
    /uses port 8443, which edgemux itself listens on/,
  );
  match(starterProblem({ ...STARTER_DEFAULTS, backend: "localhost" }) ?? "", /host:port/);
  match(
    starterProblem({ ...STARTER_DEFAULTS, admin: "127.0.0.1:8080" }) ?? "",
    /uses port 8080, which a listener uses/,
  );
  equal(starterProblem({ ...STARTER_DEFAULTS, admin: "127.0.0.1:0" }), null);
  match(starterProblem({ ...STARTER_DEFAULTS, name: "a_b.example" }) ?? "", /lowercase DNS name/);
});
