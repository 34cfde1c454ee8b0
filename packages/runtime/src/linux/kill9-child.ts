// Test helper: a "server" process that creates one sandbox, writes a file in it, prints "ready"
// and waits to be killed with SIGKILL (driver.test.ts then adopts the sandbox).
//   node --conditions=hangar-source --import tsx kill9-child.ts <driver-name> <net> <id>
import { LinuxDriver } from "./driver.js";
import { testDriverOptions, spec, agentSh } from "./testkit.js";

const [name, net, id] = process.argv.slice(2) as [string, string, string];
const d = new LinuxDriver(testDriverOptions(name, Number(net)));
await d.preflight();
const h = await d.create(spec(id));
await agentSh(h, "echo before-kill > /blaxel/mark; nohup sleep 100000 >/dev/null 2>&1 &");
process.stdout.write("ready\n");
setInterval(() => {}, 1 << 30);
