// The profile hutch fills into an OCI caller's spec (engine/oci/bundle.ts): what the seccomp
// filter it adds allows, from the caller's capabilities and annotations.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { privateSpec } from '../src/engine/oci/bundle.js';
import type { Spec } from '../src/oci/index.js';

function allowed(spec: Spec): Set<string> {
  return new Set((spec.linux?.seccomp?.syscalls ?? []).filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
}

test('the filled-in seccomp profile: io_uring only by annotation, the ptrace family only with CAP_SYS_PTRACE', () => {
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-private-spec-'));
  try {
    fs.mkdirSync(path.join(bundle, 'rootfs'));
    const base = (caps: string[], annotations?: Record<string, string>): Spec => ({
      ociVersion: '1.0.2', root: { path: 'rootfs' }, ...(annotations ? { annotations } : {}),
      process: { cwd: '/', args: ['true'], user: { uid: 0, gid: 0 }, capabilities: { bounding: caps } },
      linux: { namespaces: [{ type: 'mount' }] },
    });
    const asked = { 'dev.hutch.profile': 'default' };
    const plain = allowed(privateSpec(base(['CAP_KILL'], asked), bundle));
    assert.ok(plain.has('read') && !plain.has('io_uring_setup') && !plain.has('pidfd_getfd') && !plain.has('process_vm_readv'));
    assert.ok(allowed(privateSpec(base(['CAP_KILL'], { ...asked, 'dev.hutch.seccomp.io_uring': 'allow' }), bundle)).has('io_uring_enter'));
    const traced = allowed(privateSpec(base(['CAP_SYS_PTRACE'], asked), bundle));
    assert.ok(traced.has('ptrace') && traced.has('pidfd_getfd') && !traced.has('io_uring_setup'));
  } finally {
    fs.rmSync(bundle, { recursive: true, force: true });
  }
});

test('without dev.hutch.profile an absent seccomp, maskedPaths or readonlyPaths stays absent (the caller\'s choice, as CRI privileged/unconfined)', () => {
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-private-spec-'));
  try {
    fs.mkdirSync(path.join(bundle, 'rootfs'));
    const spec = (annotations?: Record<string, string>): Spec => ({
      ociVersion: '1.2.0', root: { path: 'rootfs' }, ...(annotations ? { annotations } : {}),
      process: { cwd: '/', args: ['true'], user: { uid: 0, gid: 0 } },
      linux: { namespaces: [{ type: 'mount' }] },
    });
    const cases: (Record<string, string> | undefined)[] = [undefined, { 'io.kubernetes.cri.container-type': 'container' }, { 'dev.hutch.profile': 'off' }];
    for (const annotations of cases) {
      const linux = privateSpec(spec(annotations), bundle).linux!;
      assert.deepEqual([linux.seccomp, linux.maskedPaths, linux.readonlyPaths], [undefined, undefined, undefined], JSON.stringify(annotations));
    }
    for (const profile of ['default', 'strict']) {
      const filled = privateSpec(spec({ 'dev.hutch.profile': profile }), bundle);
      assert.ok(filled.linux!.seccomp && filled.linux!.maskedPaths?.includes('/proc/keys') && filled.linux!.readonlyPaths?.includes('/proc/sys'), profile);
      assert.equal(filled.process!.noNewPrivileges, profile === 'strict' ? true : undefined);
    }
    // What the caller wrote is kept under any profile: an empty list is a list.
    const own = spec({ 'dev.hutch.profile': 'strict' });
    own.linux!.maskedPaths = [];
    assert.deepEqual(privateSpec(own, bundle).linux!.maskedPaths, []);
  } finally {
    fs.rmSync(bundle, { recursive: true, force: true });
  }
});
