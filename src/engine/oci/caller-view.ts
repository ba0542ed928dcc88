// How the executor is handed the private spec while it tells hooks (and `state`) the caller's
// bundle. crun takes the config file apart from the bundle (`--config`). runc reads
// `<bundle>/config.json` and records as the bundle the dir it chdir'd into, as Go's os.Getwd gives
// it: $PWD when $PWD names that same dir. So for a spec with hooks hutch gives runc a view of the
// caller's bundle, `<container dir>/caller-bundle`: a private, read-only bind of the caller's bundle
// dir (the same dir, so $PWD = the caller's path passes Go's check) with the private config.json
// bound over the caller's, which only that view shows. The view lives while runc's create or run
// does; a view left by a crash is taken down before the container's dir is removed.
import fs from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../../errors.js';
import { bindMount, makePrivate, unmountTree } from '../../linux/mounts.js';
import { CALLER_VIEW_DIR } from './store.js';

const CAP_SYS_ADMIN = 21n;

/** True when this process may mount (CAP_SYS_ADMIN in its user namespace). */
export function canMount(): boolean {
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
  return capEff !== undefined && ((BigInt(`0x${capEff}`) >> CAP_SYS_ADMIN) & 1n) === 1n;
}

/** The view's path for a container dir (resolved: the root may be reached through a link, /var/run). */
export function callerViewPath(containerDir: string): string {
  return path.join(fs.realpathSync(containerDir), CALLER_VIEW_DIR);
}

/** Makes the view of `callerBundle` with `privateConfig` as its config.json; returns its path. */
export function mountCallerView(containerDir: string, callerBundle: string, privateConfig: string): string {
  const view = callerViewPath(containerDir);
  fs.mkdirSync(view, { mode: 0o700 });
  try {
    bindMount(fs.realpathSync(callerBundle), view, { readonly: true });
    // Private before the config goes on it: the config mount must not reach the caller's tree.
    makePrivate(view);
    bindMount(privateConfig, path.join(view, 'config.json'), { readonly: true });
  } catch (e) {
    releaseCallerView(containerDir);
    throw e;
  }
  return view;
}

/** Takes the view down (lazily if busy) and removes its mount point; nothing when there is none. */
export function releaseCallerView(containerDir: string): void {
  let view: string;
  try {
    view = callerViewPath(containerDir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return; // the container's dir is gone: so is any view
    throw e;
  }
  if (!fs.existsSync(view)) return;
  unmountTree(view);
  fs.rmdirSync(view);
}
