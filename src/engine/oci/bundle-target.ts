// How create hands the executor the private spec, and what bundle the executor then reports to
// hooks and in `state`. crun takes the config apart from the bundle (`--config`): it is given the
// caller's bundle with the private config. runc is given the private bundle, or, for a spec with
// hooks, the caller view (caller-view.ts), so that hooks see the caller's bundle as under plain
// runc; without CAP_SYS_ADMIN for the view's mounts, runc's hooks see the private bundle.
import path from 'node:path';
import type { OciStore } from './store.js';

/** The executor's bundle flags for one create, and what they leave to undo. */
export interface BundleTarget {
  /** The bundle the executor reports, when not the private one. */
  reported?: string;
  /** Variables for the executor's environment. */
  env?: Record<string, string>;
  /** The --bundle (and --config) flags; may mount what release() takes down. */
  flags(): string[];
  release(): Promise<void>;
}

const nothing = async (): Promise<void> => {};

/** The bundle target for container `id` of `callerBundle` run by executor `executorName`. */
export async function bundleTarget(executorName: string, store: OciStore, id: string, callerBundle: string, hooked: boolean): Promise<BundleTarget> {
  const privateBundle = store.bundleDir(id);
  const privateConfig = path.join(privateBundle, 'config.json');
  if (executorName === 'crun') return { reported: callerBundle, flags: () => ['--bundle', callerBundle, '--config', privateConfig], release: nothing };
  const plain: BundleTarget = { flags: () => ['--bundle', privateBundle], release: nothing };
  if (!hooked) return plain;
  const view = await import('./caller-view.js');
  if (!view.canMount()) return plain;
  const dir = store.dir(id);
  return {
    reported: callerBundle,
    // Go's os.Getwd gives $PWD when it names the dir runc chdir'd into: the view is that dir.
    env: { PWD: callerBundle },
    flags: () => ['--bundle', view.mountCallerView(dir, callerBundle, privateConfig)],
    release: async () => view.releaseCallerView(dir),
  };
}
