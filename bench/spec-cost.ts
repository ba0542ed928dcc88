// What each part of hutch's config.json costs runc: `runc run` of `true` with the config exactly as hutch
// writes it, against the same config with one part changed at a time, interleaved. This is runc's own
// time (no hutch code runs), so it shows what a change to hutch's spec generation would save on every
// sandbox start, and on every `runc exec` (which loads the seccomp filter again).
// Usage: node dist/bench/spec-cost.js [--n 20]
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine/index.js';
import { interleave, intOption, makeBenchRoot, ms, printTable, runBench, summarize, timeCommand, timingRow } from './common.js';
import { hutchSpec, RuncPeer, type Spec } from './runc-peer.js';

/** The parts of the spec this benchmark edits; the rest stays as hutch wrote it. */
type Editable = Spec & {
  linux: Spec['linux'] & {
    seccomp?: { architectures?: string[]; syscalls?: { names: string[] }[] };
    namespaces?: { type: string }[];
    uidMappings?: unknown;
    gidMappings?: unknown;
    maskedPaths?: string[];
    readonlyPaths?: string[];
  };
};

/** Each variant: a name and the change it makes to a copy of hutch's spec. */
const EDITS: { name: string; edit: (s: Editable) => void }[] = [
  { name: 'as hutch writes it', edit: () => undefined },
  { name: 'seccomp: native arch only (SCMP_ARCH_X86_64)', edit: (s) => { if (s.linux.seccomp) s.linux.seccomp.architectures = ['SCMP_ARCH_X86_64']; } },
  { name: 'seccomp removed', edit: (s) => { delete s.linux.seccomp; } },
  {
    name: 'user namespace removed',
    edit: (s) => {
      s.linux.namespaces = (s.linux.namespaces ?? []).filter((n) => n.type !== 'user');
      delete s.linux.uidMappings;
      delete s.linux.gidMappings;
    },
  },
  { name: 'masked and read-only /proc paths removed', edit: (s) => { delete s.linux.maskedPaths; delete s.linux.readonlyPaths; } },
];

runBench('spec-cost: what each part of hutch\'s config.json costs runc', async () => {
  const n = intOption('n', 20);
  const br = makeBenchRoot();
  const engine = new Engine({ root: br.root });
  const peer = new RuncPeer(br);
  const spec = await hutchSpec(engine, 'direct') as Editable;
  const seccomp = spec.linux.seccomp;
  if (seccomp) {
    const names = (seccomp.syscalls ?? []).reduce((a, r) => a + r.names.length, 0);
    console.log(`hutch's seccomp profile: ${seccomp.syscalls?.length ?? 0} rules naming ${names} syscalls, architectures ${(seccomp.architectures ?? []).join(' ')}\n`);
  }
  const variants = EDITS.map((e) => ({
    name: e.name,
    once: async () => {
      const c = peer.prepare(spec, ['true']);
      const file = path.join(c.bundle, 'config.json');
      const edited = JSON.parse(fs.readFileSync(file, 'utf8')) as Editable;
      e.edit(edited);
      fs.writeFileSync(file, JSON.stringify(edited));
      try {
        return (await timeCommand(peer.runCmd(c))).ms;
      } finally {
        await peer.remove(c);
      }
    },
  }));
  await interleave(2, variants);
  const results = await interleave(n, variants);
  const s = variants.map((v) => summarize(results.get(v.name)!));
  const base = s[0]!;
  printTable(['runc run of `true`, ms', 'n', 'p50', 'p90', 'mean', 'saves (p50)'], variants.map((v, i) => [
    ...timingRow(v.name, s[i]!), i === 0 ? '–' : ms(base.p50 - s[i]!.p50),
  ]));
  console.log('');
});
