// hutch cp: copy files and directories between the host and a running sandbox.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HutchError, isHutchError } from '../../errors.js';
import type { AgentClient } from '../../agent/index.js';
import type { Command } from '../command.js';

/** `ID:/path` → sandbox side; anything else is a host path. */
function splitRef(arg: string): { sandbox: string; path: string } | null {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}):(.*)$/.exec(arg);
  if (!m) return null;
  if (!m[2]!.startsWith('/')) throw new HutchError('EINVAL', `cp: the path in ${arg} must be absolute inside the sandbox`);
  return { sandbox: m[1]!, path: m[2]! };
}

/** A name that came from the sandbox: it must be one plain path component. */
function safeName(name: string, where: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new HutchError('EPROTO', `cp: the sandbox listed an invalid name under ${where}`, { path: where });
  }
  return name;
}

const O_NOFOLLOW_WRITE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW;

async function copyOut(files: AgentClient, src: string, dst: string, warn: (t: string) => void): Promise<number> {
  const st = await files.stat(src);
  if (st.type === 'dir') {
    try {
      fs.mkdirSync(dst, { mode: st.mode & 0o777 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.lstatSync(dst).isDirectory()) throw e;
    }
    let n = 0;
    for (const entry of await files.list(src)) {
      const name = safeName(entry.name, src);
      n += await copyOut(files, path.posix.join(src, name), path.join(dst, name), warn);
    }
    return n;
  }
  if (st.type === 'symlink') {
    if (st.linkTarget === null || st.linkTarget.includes('\0')) throw new HutchError('EPROTO', `cp: bad link target for ${src}`, { path: src });
    fs.rmSync(dst, { force: true });
    fs.symlinkSync(st.linkTarget, dst); // made, never followed
    return 1;
  }
  if (st.type !== 'file') {
    warn(`hutch: cp: skipping ${src}: not a regular file, directory or symlink\n`);
    return 0;
  }
  // O_NOFOLLOW: a symlink already at dst is an error, not a way to write elsewhere on the host.
  const fd = fs.openSync(dst, O_NOFOLLOW_WRITE, st.mode & 0o777);
  await pipeline(files.createReadStream(src), fs.createWriteStream('', { fd }));
  return 1;
}

async function copyIn(files: AgentClient, src: string, dst: string, warn: (t: string) => void): Promise<number> {
  const st = fs.lstatSync(src);
  if (st.isDirectory()) {
    await files.mkdir(dst, { mode: st.mode & 0o777 }).catch((e: unknown) => {
      if (!(isHutchError(e) && e.code === 'EEXIST')) throw e;
    });
    let n = 0;
    for (const name of fs.readdirSync(src)) n += await copyIn(files, path.join(src, name), path.posix.join(dst, name), warn);
    return n;
  }
  if (!st.isFile()) {
    warn(`hutch: cp: skipping ${src}: not a regular file or directory\n`);
    return 0;
  }
  await files.writeFile(dst, fs.createReadStream(src), { mode: st.mode & 0o777 });
  return 1;
}

export const command: Command = {
  usage: 'hutch cp SRC DST',
  summary: 'Copy a file or directory between the host and a running sandbox; one side is ID:/path (paths inside are resolved in the sandbox\'s own view). A DST that is an existing directory receives SRC under its own name.',
  flags: [],
  async run(ctx, args) {
    const [srcArg, dstArg] = args.operands;
    if (srcArg === undefined || dstArg === undefined || args.operands.length > 2) throw new HutchError('EINVAL', 'cp: need SRC and DST');
    const src = splitRef(srcArg);
    const dst = splitRef(dstArg);
    if ((src === null) === (dst === null)) throw new HutchError('EINVAL', 'cp: exactly one of SRC and DST must be ID:/path');
    const calls = await ctx.calls();
    try {
      if (src) {
        const files = await calls.files(src.sandbox);
        let target = path.resolve(dstArg);
        if (fs.existsSync(target) && fs.statSync(target).isDirectory()) target = path.join(target, path.posix.basename(src.path) || 'root');
        await copyOut(files, src.path, target, ctx.err);
      } else {
        const files = await calls.files(dst!.sandbox);
        const host = path.resolve(srcArg);
        if (!fs.existsSync(host)) throw new HutchError('ENOTFOUND', `cp: ${host} does not exist`, { path: host });
        let target = dst!.path;
        const there = await files.stat(target, { follow: true }).catch((e: unknown) => {
          if (isHutchError(e) && e.code === 'ENOTFOUND') return null;
          throw e;
        });
        if (there?.type === 'dir') target = path.posix.join(target, path.basename(host));
        await copyIn(files, host, target, ctx.err);
      }
      return 0;
    } finally {
      calls.closeAll();
    }
  },
};
