// The set-up of the tests that drive the image store through the CLI: a state root and a private
// image store (HUTCH_IMAGE_ROOT) made before the file's tests and swept after them, the busybox base
// layer built once, and `hutch` calls against both.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanRoot, hutch, leftovers, makeRoot, type Result } from './helpers.js';
import { buildImage, busyboxEntries, type BuiltImage } from './image-store-kit.js';

/** What a test file gets: its dirs (set once its `before` hooks run) and CLI calls. */
export interface ImageCliFixture {
  root: string;
  tmp: string;
  store: string;
  base: BuiltImage['layers'][number];
  /** `hutch --root ROOT ARGS` with the private image store. */
  h(args: string[]): Promise<Result>;
  /** The same, insisting on exit code 0; returns stdout. */
  ok(args: string[]): Promise<string>;
}

/**
 * Registers the file's before/after hooks (call at module level) and returns the fixture. Its
 * `before` is synchronous on purpose: node 20 runs top-level hooks without awaiting one before the
 * next, and the test files copy the dirs out in a `before` of their own.
 */
export function imageCliFixture(tag: string): ImageCliFixture {
  const fx = {
    root: '', tmp: '', store: '', base: undefined as unknown as BuiltImage['layers'][number],
    h: (args: string[]): Promise<Result> => hutch(fx.root, args, { env: { HUTCH_IMAGE_ROOT: fx.store }, timeoutMs: 120_000 }),
    async ok(args: string[]): Promise<string> {
      const r = await fx.h(args);
      assert.equal(r.code, 0, `hutch ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
  };
  before(() => {
    fx.root = makeRoot(tag);
    fx.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `hutch-${tag}-`));
    fx.store = path.join(fx.tmp, 'store');
    fx.base = buildImage([busyboxEntries()]).layers[0]!;
  });
  after(async () => {
    await cleanRoot(fx.root);
    fs.rmSync(fx.tmp, { recursive: true, force: true });
    assert.deepEqual(leftovers(fx.root), []);
  });
  return fx;
}
