// The `hutch` entry: runs dist/bundle/hutch.cjs with a V8 code cache for every bundle it loads.
// Node 20 has no compile cache of its own, and compiling the bundles is a fixed cost of every call
// (~3-5 ms). The cache of a bundle is written next to it, at exit, when it was missing or stale
// (V8 checks the source and flags itself); where the dir is not writable there is simply no cache.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const dir = __dirname;
const fresh = [];
const compile = Module.prototype._compile;

Module.prototype._compile = function compileWithCache(content, filename) {
  if (path.dirname(filename) !== dir && path.dirname(filename) !== path.join(dir, 'verbs')) return compile.call(this, content, filename);
  const cacheFile = `${filename}.v8cache`;
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined; // no cache yet: compile and write one at exit
  }
  const source = content.startsWith('#!') ? `//${content}` : content;
  const script = new vm.Script(Module.wrap(source), { filename, cachedData });
  if (cachedData === undefined || script.cachedDataRejected) fresh.push({ script, cacheFile });
  const fn = script.runInThisContext({ displayErrors: true });
  const require = (id) => this.require(id);
  require.resolve = (request, options) => Module._resolveFilename(request, this, false, options);
  require.cache = Module._cache;
  require.main = process.mainModule;
  return fn.call(this.exports, this.exports, require, this, filename, path.dirname(filename));
};

process.on('exit', () => {
  for (const { script, cacheFile } of fresh) {
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      fs.rmSync(tmp, { force: true }); // a read-only install: run without a cache
    }
  }
});

require('./hutch.cjs');
