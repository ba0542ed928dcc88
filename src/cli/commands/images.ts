// hutch images: the images in the store, one row per name (like podman images).
import { bool } from '../args.js';
import type { Command } from '../command.js';
import { formatBytes } from '../progress.js';
import { table } from './ls.js';

export const command: Command = {
  usage: 'hutch images [--json] [-q]',
  summary: 'List stored images: REPOSITORY TAG IMAGE ID CREATED SIZE (SIZE = unpacked on disk, as docker shows it). Images without a name show as <none>.',
  flags: [
    { name: 'json', kind: 'bool', help: 'print the image records as JSON, with size (unpacked), compressedSize, sharedSize, uniqueSize and per-layer sizes' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'print image ids only' },
  ],
  async run(ctx, args) {
    const store = (await (await ctx.engine()).images()).store;
    if (bool(args.flags, 'json')) {
      ctx.out(JSON.stringify(store.withSizes(), null, 2) + '\n');
      return 0;
    }
    if (bool(args.flags, 'quiet')) {
      ctx.out(store.list().map((i) => `${shortId(i.id)}\n`).join(''));
      return 0;
    }
    const images = store.withSizes();
    const rows = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']];
    const now = Date.now();
    for (const i of images) {
      const when = ago(i.created ?? i.storedAt, now);
      // A damaged store (a layer dir gone) shows what is there and says so.
      const size = i.missingLayers ? `${formatBytes(i.size)} (${i.missingLayers} layer${i.missingLayers === 1 ? '' : 's'} missing)` : formatBytes(i.size);
      const named = i.names.map(splitName);
      if (named.length === 0) named.push(['<none>', '<none>']);
      for (const [repo, tag] of named) rows.push([repo, tag, shortId(i.id), when, size]);
    }
    ctx.out(table(rows));
    return 0;
  },
};

/** The first 12 hex digits of an id. */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

/** `host/repo:tag` → [host/repo, tag] (the colon of a port is not a tag's); `repo@digest` has no tag. */
function splitName(name: string): [string, string] {
  if (name.includes('@')) return [name.slice(0, name.indexOf('@')), '<none>'];
  const at = name.lastIndexOf(':');
  return at > name.lastIndexOf('/') ? [name.slice(0, at), name.slice(at + 1)] : [name, '<none>'];
}

/** `5 minutes ago`, as podman shows times. */
function ago(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  const steps: [number, string][] = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [4.35, 'week'], [12, 'month'], [Infinity, 'year']];
  let v = s;
  for (const [n, unit] of steps) {
    if (v < n) return v <= 1 && unit === 'second' ? 'Less than a second ago' : `${Math.floor(v)} ${unit}${Math.floor(v) === 1 ? '' : 's'} ago`;
    v /= n;
  }
  return '';
}
