// What both client e2e files set up before their cases: a temp dir, the busybox test image, the
// runtimes to run against, and a snapshot of the machine's network links and namespaces to compare with after.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { processVanished } from '../../src/linux/index.js';
import { NewPathsGuard, makeTempDir } from './host.js';
import { buildTestImage, type TestImage } from './oci-image.js';
import { runtimesUnderTest, type RuntimeUnderTest } from './runtimes.js';

/**
 * The network links and the named netns on the machine that no process is in (names only). A netns
 * a live process is in is in use, not left behind: another client on the host may be making one.
 */
export function networkSnapshot(): { links: string[]; netns: string[] } {
  const links = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
    .map((l) => l.split(':')[1]!.trim().split('@')[0]!).sort();
  const named = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0]!);
  const inUse = named.length ? netnsInUse() : new Set<string>();
  const netns = named.filter((n) => !inUse.has(inodeOf(`/run/netns/${n}`))).sort();
  return { links, netns };
}

/** `dev:ino` of a file, '' when it is gone. */
function inodeOf(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** The network namespaces live processes are in, as `dev:ino`. */
function netnsInUse(): Set<string> {
  const out = new Set<string>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = fs.statSync(`/proc/${name}/ns/net`);
      out.add(`${st.dev}:${st.ino}`);
    } catch (e) {
      if (!processVanished(e) && (e as NodeJS.ErrnoException).code !== 'EACCES') throw e;
    }
  }
  return out;
}

/** A test file's shared set-up. */
export interface E2eFixture {
  dir: string;
  image: TestImage;
  runtimes: RuntimeUnderTest[];
  network: { links: string[]; netns: string[] };
  guard: NewPathsGuard;
}

/** Makes the temp dir, builds the image, probes the runtimes; prints what will be skipped and why. */
export async function prepareFixture(tag: string, systemPaths: string[]): Promise<E2eFixture> {
  const guard = new NewPathsGuard(systemPaths);
  const network = networkSnapshot();
  const dir = makeTempDir(tag);
  try {
    const image = buildTestImage(`${dir}/image`);
    const runtimes = await runtimesUnderTest(dir);
    for (const r of runtimes) if (r.skip) console.log(`# ${tag} with ${r.name} (${r.path}): SKIP: ${r.skip}`);
    return { dir, image, runtimes, network, guard };
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
