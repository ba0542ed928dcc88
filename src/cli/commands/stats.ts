// hutch stats: cpu, memory and pids of a sandbox, from its cgroups; its writable layer's use with a disk limit.
import { HutchError } from '../../errors.js';
import { bool } from '../args.js';
import type { Command } from '../command.js';
import { table } from './ls.js';

const mib = (n: number | null | undefined) => (n === null || n === undefined ? '-' : `${(n / 1048576).toFixed(1)}MiB`);

export const command: Command = {
  usage: 'hutch stats [--json] ID|NAME...',
  summary: 'Show cpu time, memory and pids of sandboxes (from their cgroups), and disk use and inodes of a writable layer with a --disk limit.',
  flags: [{ name: 'json', kind: 'bool', help: 'print JSON' }],
  async run(ctx, args) {
    if (args.operands.length === 0) throw new HutchError('EINVAL', 'stats: missing sandbox ID');
    const calls = await ctx.calls();
    const engine = await ctx.engine();
    const rows = [['ID', 'CPU TIME', 'MEMORY', 'LIMIT', 'PIDS', 'PIDS LIMIT', 'DISK', 'DISK LIMIT', 'INODES', 'INODES LIMIT']];
    const json: unknown[] = [];
    for (const ref of args.operands) {
      const s = await calls.stats(ref);
      const id = engine.store.resolve(ref);
      json.push({ id, ...s });
      rows.push([id, s.cpuUsageNs === null ? '-' : `${(s.cpuUsageNs / 1e9).toFixed(3)}s`, mib(s.memoryBytes), mib(s.memoryLimitBytes), String(s.pids ?? '-'), String(s.pidsLimit ?? '-'),
        mib(s.diskBytes), mib(s.diskLimitBytes), String(s.diskInodes ?? '-'), String(s.diskInodesLimit ?? '-')]);
    }
    ctx.out(bool(args.flags, 'json') ? JSON.stringify(json.length === 1 ? json[0] : json, null, 2) + '\n' : table(rows));
    return 0;
  },
};
