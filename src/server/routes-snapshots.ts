// Snapshots (checkpoint, restore, fork): POST /v1/sandboxes/{id}/snapshot, and /v1/snapshots to
// list, inspect, restore from (several restores of one snapshot are a fork) and delete.
import type { SnapshotInfo } from '../engine/index.js';
import { HutchError } from '../errors.js';
import { optBool, optString, optStringMap, readJson, sendJson } from './http.js';
import type { Route } from './router.js';
import { RESERVED_LABEL_PREFIX, servedSandbox, viewOf, type Services } from './services.js';
import { ttlOf } from './routes-sandboxes.js';

/** A snapshot as the API shows it (its dir is the server's business). */
interface SnapshotView { id: string; createdAt: string; source: { id: string; name: string }; platform: string; sizeBytes: number; labels: Record<string, string> }

function snapshotView(s: SnapshotInfo): SnapshotView {
  const labels = Object.fromEntries(Object.entries(s.labels ?? {}).filter(([k]) => !k.startsWith(RESERVED_LABEL_PREFIX)));
  return { id: s.id, createdAt: s.createdAt, source: s.source, platform: s.platform, sizeBytes: s.sizeBytes, labels };
}

/** A snapshot id from a path (never a host path: the CLI's restore DIR is not the API's). */
function snapshotId(raw: string): string {
  if (!/^[0-9a-f]{16}$/.test(raw)) throw new HutchError('ENOTFOUND', `snapshot ${raw.slice(0, 80)} not found`, { id: raw });
  return raw;
}

function checkKeys(body: Record<string, unknown>, keys: string[], what: string): void {
  for (const k of Object.keys(body)) if (!keys.includes(k)) throw new HutchError('EINVAL', `unknown field ${k.slice(0, 80)} in ${what} (fields: ${keys.join(', ')})`);
}

/** The routes. */
export function snapshotRoutes(s: Services): Route[] {
  const snapshots = () => s.engine.snapshots();
  return [
    {
      method: 'POST', path: '/v1/sandboxes/{id}/snapshot', handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        checkKeys(body, ['leaveRunning'], 'snapshot request');
        const info = await servedSandbox(s, params['id']!);
        const leaveRunning = optBool(body, 'leaveRunning') ?? false;
        const snap = await snapshots().checkpoint(info.id, { leaveRunning });
        s.events.publish({ type: 'snapshotted', sandboxId: info.id, data: { snapshotId: snap.id, leaveRunning } });
        if (!leaveRunning) s.events.publish({ type: 'stopped', sandboxId: info.id, data: { reason: 'snapshot' } });
        sendJson(res, 201, snapshotView(snap));
      },
    },
    {
      method: 'GET', path: '/v1/snapshots', handle: async ({ res }) => {
        sendJson(res, 200, { snapshots: snapshots().store.list().map(snapshotView) });
      },
    },
    {
      method: 'GET', path: '/v1/snapshots/{id}', handle: async ({ res, params }) => {
        sendJson(res, 200, snapshotView(snapshots().store.read(snapshotId(params['id']!))));
      },
    },
    {
      method: 'DELETE', path: '/v1/snapshots/{id}', handle: async ({ res, params }) => {
        snapshots().store.remove(snapshotId(params['id']!));
        res.writeHead(204).end();
      },
    },
    {
      method: 'POST', path: '/v1/snapshots/{id}/sandboxes', handle: async ({ req, res, params }) => {
        const body = await readJson(req, s.limits.maxJsonBytes);
        checkKeys(body, ['name', 'labels', 'ttlMs'], 'restore request');
        const id = snapshotId(params['id']!);
        const userLabels = optStringMap(body, 'labels') ?? {};
        for (const k of Object.keys(userLabels)) {
          if (k.startsWith(RESERVED_LABEL_PREFIX)) throw new HutchError('EINVAL', `label ${k.slice(0, 80)}: keys starting with ${RESERVED_LABEL_PREFIX} are hutch's own`);
        }
        const name = optString(body, 'name', 63);
        // The source's lifetime labels are replaced: a restored sandbox's TTL starts now.
        const labels = { ...userLabels, ...s.lifetime.labelsFor(ttlOf(s, body)) };
        const info = await snapshots().restore(id, { ...(name ? { name } : {}), labels });
        s.events.publish({ type: 'restored', sandboxId: info.id, data: { snapshotId: id } });
        sendJson(res, 201, viewOf(info));
      },
    },
  ];
}
