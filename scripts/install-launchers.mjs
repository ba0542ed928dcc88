// Writes the `hutch` and `hutchd` commands into a bin dir (default /usr/local/bin), pointing at this
// checkout's bundle and at the node that runs this script. Called by scripts/setup.sh.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const binDir = process.argv[2] ?? '/usr/local/bin';
const boot = path.join(repo, 'dist', 'bundle', 'boot.cjs');
/** A word for sh inside single quotes. */
const quoted = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

function install(name, text) {
  const target = path.join(binDir, name);
  const tmp = `${target}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o755 });
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, target);
}

const launcher = fs.readFileSync(path.join(repo, 'scripts', 'launcher.sh'), 'utf8')
  .replace(/^node_bin=.*$/m, `node_bin=${quoted(process.execPath)}`)
  .replace(/^boot=.*$/m, `boot=${quoted(boot)}`);
install('hutch', launcher);
// `hutch-gvisor` = hutch as an OCI runtime on the gvisor platform, for a client that takes only a
// binary's path (containerd's runc shim BinaryName: the hutch-gvisor RuntimeClass; docs/kubernetes.md).
install('hutch-gvisor', `#!/bin/sh\nexec ${quoted(path.join(binDir, 'hutch'))} --platform gvisor "$@"\n`);
// `hutchd` = `hutch serve`: the API server (docs/api.md).
install('hutchd', `#!/bin/sh\nunset NODE_EXTRA_CA_CERTS\nexec ${quoted(process.execPath)} ${quoted(boot)} serve "$@"\n`);
