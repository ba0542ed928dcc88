// runc's verbs that report or adjust: state, list, ps, events, update, spec, features, and
// checkpoint/restore (refused with the reason when CRIU cannot work on this host).
import fs from 'node:fs';
import path from 'node:path';
import { HutchError } from '../../errors.js';
import { bool, str, type FlagSpec } from '../args.js';
import type { OciState } from '../../engine/oci/index.js';
import type { OciVerb } from './verb.js';

const UPDATE_FLAGS: FlagSpec[] = [
  { name: 'resources', short: 'r', kind: 'string', value: 'FILE', help: 'resources JSON (- for stdin); other flags are then ignored' },
  ...['blkio-weight', 'cpu-period', 'cpu-quota', 'cpu-share', 'cpu-rt-period', 'cpu-rt-runtime', 'cpuset-cpus', 'cpuset-mems',
    'memory', 'memory-reservation', 'memory-swap', 'pids-limit', 'l3-cache-schema', 'mem-bw-schema']
    .map((name): FlagSpec => ({ name, kind: 'string', value: 'VALUE', help: `set ${name}` })),
];

/** runc's `list` table: tab-separated columns padded to at least 12, three spaces apart. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length + 3), 12));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('') + '\n').join('');
}

/** The state's fields in runc's order (annotations, when there are any, before owner). */
function stateJson(s: OciState): object {
  const out: Record<string, unknown> = {
    ociVersion: s.ociVersion, id: s.id, pid: s.pid, status: s.status, bundle: s.bundle, rootfs: s.rootfs, created: s.created,
  };
  if (s.annotations && Object.keys(s.annotations).length > 0) out.annotations = s.annotations;
  out.owner = s.owner;
  return out;
}

/** The verbs that report and adjust, by name. */
export const INSPECT_VERBS: Record<string, OciVerb> = {
  state: {
    usage: 'ID', summary: 'print the OCI state of a container (JSON)', flags: [], operands: [1, 1],
    run: async ({ runtime, args }) => {
      process.stdout.write(`${JSON.stringify(stateJson(await runtime.state(args.operands[0]!)), null, 2)}\n`);
      return 0;
    },
  },
  list: {
    usage: '[--format table|json] [--quiet]', summary: 'list the containers under the root', operands: [0, 0],
    flags: [
      { name: 'format', short: 'f', kind: 'string', value: 'FORMAT', help: 'table (default) or json' },
      { name: 'quiet', short: 'q', kind: 'bool', help: 'print only the ids' },
    ],
    run: async ({ runtime, args }) => {
      const format = str(args.flags, 'format') ?? 'table';
      if (format !== 'table' && format !== 'json') throw new HutchError('EINVAL', `invalid format option: ${format}`);
      const states = await runtime.list();
      if (bool(args.flags, 'quiet')) process.stdout.write(states.map((s) => `${s.id}\n`).join(''));
      else if (format === 'json') process.stdout.write(`${JSON.stringify(states.length ? states.map(stateJson) : null)}\n`);
      else {
        process.stdout.write(table([['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'],
          ...states.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created, s.owner])]));
      }
      return 0;
    },
  },
  ps: {
    usage: '[--format table|json] ID [PS-OPTIONS...]', summary: 'list the processes of a container', operands: [1, 1], stopAfter: 1,
    flags: [{ name: 'format', short: 'f', kind: 'string', value: 'FORMAT', help: 'table (default) or json' }],
    run: ({ runtime, args, raw }) => runtime.passThrough(args.operands[0]!, raw),
  },
  events: {
    usage: '[--stats] [--interval DURATION] ID', summary: 'print events (or one set of stats) of a container as JSON lines', operands: [1, 1],
    flags: [
      { name: 'stats', kind: 'bool', help: 'print the stats once and exit' },
      { name: 'interval', kind: 'string', value: 'DURATION', help: 'how often to collect stats (default 5s)' },
    ],
    run: ({ runtime, args, raw }) => runtime.passThrough(args.operands[0]!, raw),
  },
  update: {
    usage: '[OPTIONS] ID', summary: 'change the resource limits of a container', flags: UPDATE_FLAGS, operands: [1, 1],
    run: ({ runtime, args, raw }) => runtime.passThrough(args.operands[0]!, raw),
  },
  spec: {
    usage: '[--rootless] [--bundle DIR]', summary: 'write a starting-point config.json', operands: [0, 0],
    flags: [
      { name: 'bundle', short: 'b', kind: 'string', value: 'DIR', help: 'where to write config.json (default: the working directory)' },
      { name: 'rootless', kind: 'bool', help: 'a spec for a rootless container (user namespace)' },
    ],
    run: async ({ args }) => {
      const { specTemplate, specToJson } = await import('../../oci/index.js');
      const file = path.join(str(args.flags, 'bundle') ?? '.', 'config.json');
      const text = specToJson(specTemplate({ rootless: bool(args.flags, 'rootless') }));
      try {
        fs.writeFileSync(file, text, { flag: 'wx', mode: 0o644 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HutchError('EEXIST', 'File config.json exists. Remove it first.', { path: file });
        throw new HutchError('EINVAL', `cannot write ${file}: ${(e as Error).message}`, { path: file, cause: e });
      }
      return 0;
    },
  },
  features: {
    usage: '', summary: 'print what this runtime supports (JSON)', flags: [], operands: [0, 0],
    run: async ({ runtime }) => {
      const features = await import('./features.js');
      process.stdout.write(`${JSON.stringify(await features.runtimeFeatures(runtime), null, 4)}\n`);
      return 0;
    },
  },
  checkpoint: {
    usage: '[OPTIONS] ID', summary: 'checkpoint a container (gvisor: runsc\'s; runc\'s needs a working CRIU)', operands: [1, 1], lenient: true,
    flags: [],
    run: async ({ runtime, globals, raw }) => {
      const id = raw.filter((a) => !a.startsWith('-')).at(-1)!;
      const { criuProblem } = await import('../../engine/oci/criu.js');
      const v = valuedFlags(raw, ['image-path', 'work-path']);
      const paths = { ...(v['image-path'] ? { imagePath: v['image-path'] } : {}), ...(v['work-path'] ? { workPath: v['work-path'] } : {}) };
      return runtime.checkpoint(id, { ...paths, leaveRunning: raw.some((a) => /^--?leave-running$/.test(a)) }, () => criuProblem(globals.criu ?? 'criu'));
    },
  },
  restore: {
    usage: '[OPTIONS] ID', summary: 'create and start a container from a checkpoint (gvisor: runsc\'s; runc\'s needs a working CRIU)', operands: [1, 1], lenient: true,
    flags: [],
    run: async ({ runtime, raw }) => {
      const id = raw.filter((a) => !a.startsWith('-')).at(-1)!;
      const v = valuedFlags(raw, ['image-path', 'work-path', 'bundle', 'pid-file', 'console-socket']);
      return runtime.create('restore', {
        id, bundle: v['bundle'] ?? '.', ...(v['image-path'] ? { imagePath: v['image-path'] } : {}), ...(v['work-path'] ? { workPath: v['work-path'] } : {}),
        ...(v['pid-file'] ? { pidFile: v['pid-file'] } : {}), ...(v['console-socket'] ? { consoleSocket: v['console-socket'] } : {}),
        ...(raw.some((a) => /^(--?detach|-d)$/.test(a)) ? { detach: true } : {}),
      });
    },
  },
};

/** The values of `names` among runc-style flags (`--name V`, `--name=V`, one or two dashes; `-b` for bundle). */
function valuedFlags(raw: string[], names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < raw.length; i++) {
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(raw[i]!);
    const name = m?.[1] === 'b' ? 'bundle' : m?.[1];
    if (!m || name === undefined || !names.includes(name)) continue;
    const value = m[2] ?? raw[++i];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
