// hutch ls: the sandboxes and their observed states.
import { bool } from '../args.js';
import type { Command } from '../command.js';
import { describeEnd } from '../../engine/exit-status.js';

export const command: Command = {
  usage: 'hutch ls [--json]',
  summary: 'List sandboxes with their state as observed now (a sandbox whose init died shows as stopped).',
  flags: [
    { name: 'json', kind: 'bool', help: 'print JSON' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'print ids only' },
  ],
  async run(ctx, args) {
    const engine = await ctx.engine();
    const all = await engine.list();
    // Records made before the platform contract kept the init's pid in the handle.
    const pidOf = (s: (typeof all)[number]) => s.initPid ?? (s.handle?.state['initPid'] as number | undefined);
    if (bool(args.flags, 'json')) {
      ctx.out(JSON.stringify(all.map((s) => ({
        id: s.id, name: s.name, status: s.status, mode: s.mode, platform: s.platform ?? 'container', rootfs: s.rootfs, createdAt: s.createdAt,
        ...(s.startedAt ? { startedAt: s.startedAt } : {}), ...(s.finishedAt ? { finishedAt: s.finishedAt } : {}),
        ...(s.exitCode !== undefined ? { exitCode: s.exitCode } : {}), ...(s.signal ? { signal: s.signal } : {}),
        ...(s.oomKilled ? { oomKilled: true } : {}), ...(s.agentDied ? { agentDied: true } : {}), ...(s.note ? { note: s.note } : {}),
        ...(pidOf(s) ? { pid: pidOf(s) } : {}), limits: s.limits, command: s.command ?? [],
        ...(s.image ? { image: s.image } : {}), ...(s.labels ? { labels: s.labels } : {}),
      })), null, 2) + '\n');
      return 0;
    }
    if (bool(args.flags, 'quiet')) {
      ctx.out(all.map((s) => `${s.id}\n`).join(''));
      return 0;
    }
    const rows = [['ID', 'NAME', 'IMAGE', 'STATUS', 'MODE', 'PLATFORM', 'CREATED', 'COMMAND']];
    for (const s of all) {
      const end = s.status === 'stopped' ? describeEnd(s) : null;
      const status = end !== null ? `stopped (${end})` : s.status;
      const image = s.image?.ref ?? (s.rootfs.endsWith('/rootfs/busybox') ? 'busybox' : s.rootfs);
      rows.push([s.id, s.name, image.length > 40 ? `…${image.slice(-39)}` : image, s.note ? `${status}: ${s.note}` : status, s.mode, s.platform ?? 'container', s.createdAt.replace('T', ' ').slice(0, 19), (s.command ?? []).join(' ').slice(0, 40)]);
    }
    ctx.out(table(rows));
    return 0;
  },
};

/** Left-aligned columns, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n').join('');
}
