// Validation of the `linux` section of config.json.
import {
  NAMESPACE_TYPES, ROOTFS_PROPAGATIONS, SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_FLAGS,
  SECCOMP_OPERATORS,
} from './types.js';
import {
  type JsonObject, type ProblemList, INT64_MAX, INT64_MIN, UINT64_MAX, expectArray, expectBoolean,
  expectInteger, expectObject, expectString, expectStringArray, expectStringMap, expectUint32,
  expectUint64, field, optional, reportDuplicates, required, show,
} from './validate-util.js';

/** Validates one list of ID mappings: uint32 fields, size ≥ 1, no overlapping ranges. */
export function checkIdMappings(p: ProblemList, path: string, value: unknown): void {
  const ranges: { container: [number, number]; host: [number, number]; index: number }[] = [];
  expectArray(p, path, value, (itemPath, item, index) => {
    const m = expectObject(p, itemPath, item);
    if (!m) return;
    let containerID: number | undefined, hostID: number | undefined, size: number | undefined;
    required(p, m, itemPath, 'containerID', (f, v) => { containerID = expectUint32(p, f, v); });
    required(p, m, itemPath, 'hostID', (f, v) => { hostID = expectUint32(p, f, v); });
    required(p, m, itemPath, 'size', (f, v) => { size = expectInteger(p, f, v, 1, 0xffffffff); });
    if (containerID === undefined || hostID === undefined || size === undefined) return;
    if (containerID + size - 1 > 0xffffffff || hostID + size - 1 > 0xffffffff) {
      p.add(itemPath, 'range goes past 4294967295');
      return;
    }
    const mine = { container: [containerID, containerID + size] as [number, number], host: [hostID, hostID + size] as [number, number], index };
    for (const other of ranges) {
      const overlaps = (a: [number, number], b: [number, number]) => a[0] < b[1] && b[0] < a[1];
      if (overlaps(mine.container, other.container)) p.add(itemPath, `container ids overlap ${path}[${other.index}]`);
      else if (overlaps(mine.host, other.host)) p.add(itemPath, `host ids overlap ${path}[${other.index}]`);
    }
    ranges.push(mine);
  });
}

function checkNamespaces(p: ProblemList, path: string, value: unknown): string[] {
  const types: (string | undefined)[] = [];
  expectArray(p, path, value, (itemPath, item) => {
    const ns = expectObject(p, itemPath, item);
    if (!ns) return types.push(undefined);
    let type: string | undefined;
    required(p, ns, itemPath, 'type', (f, v) => {
      const t = expectString(p, f, v);
      if (t !== undefined && !(NAMESPACE_TYPES as readonly string[]).includes(t)) p.add(f, `unknown namespace ${show(t)}`);
      else type = t;
    });
    optional(ns, itemPath, 'path', (f, v) => expectString(p, f, v, { absolute: true }));
    types.push(type);
  });
  reportDuplicates(p, path, types, 'namespace type');
  return types.filter((t): t is string => t !== undefined);
}

function checkDevices(p: ProblemList, path: string, value: unknown): void {
  const paths: (string | undefined)[] = [];
  expectArray(p, path, value, (itemPath, item) => {
    const d = expectObject(p, itemPath, item);
    if (!d) return paths.push(undefined);
    let type: string | undefined;
    required(p, d, itemPath, 'type', (f, v) => { type = expectString(p, f, v, { oneOf: ['c', 'b', 'u', 'p'] }); });
    required(p, d, itemPath, 'path', (f, v) => paths.push(expectString(p, f, v, { absolute: true })));
    for (const key of ['major', 'minor']) {
      if (type === 'p') optional(d, itemPath, key, (f, v) => expectInteger(p, f, v, 0, 2 ** 53));
      else if (type !== undefined) required(p, d, itemPath, key, (f, v) => expectInteger(p, f, v, 0, 2 ** 53));
    }
    for (const key of ['fileMode', 'uid', 'gid']) optional(d, itemPath, key, (f, v) => expectUint32(p, f, v));
  });
  reportDuplicates(p, path, paths, 'device path');
}

function checkDeviceRules(p: ProblemList, path: string, value: unknown): void {
  expectArray(p, path, value, (itemPath, item) => {
    const r = expectObject(p, itemPath, item);
    if (!r) return;
    required(p, r, itemPath, 'allow', (f, v) => expectBoolean(p, f, v));
    optional(r, itemPath, 'type', (f, v) => expectString(p, f, v, { oneOf: ['a', 'c', 'b'] }));
    for (const key of ['major', 'minor']) {
      optional(r, itemPath, key, (f, v) => { if (v !== null) expectInteger(p, f, v, -1, 2 ** 53); });
    }
    optional(r, itemPath, 'access', (f, v) => {
      const a = expectString(p, f, v);
      if (a !== undefined && !/^[rwm]*$/.test(a)) p.add(f, `must be made of r, w and m, got ${show(a)}`);
    });
  });
}

// "Zero means unset", as runc reads a spec: a limit or weight of 0 is not applied (dockerd 20.10
// writes `blockIO.weight: 0` for every container). Memory takes -1 for "unlimited"; a negative pids
// limit, cpu quota or realtime runtime means "no limit" (runc writes `max`, the kernel takes any < 0).
const unlimitedOrCount = (p: ProblemList) => (f: string, v: unknown) => expectInteger(p, f, v, -1, UINT64_MAX);
const anyInt64 = (p: ProblemList) => (f: string, v: unknown) => expectInteger(p, f, v, INT64_MIN, INT64_MAX);

/** A blkio weight: 0 (unset) or the kernel's 10..1000. */
function expectWeight(p: ProblemList, path: string, value: unknown): void {
  const w = expectInteger(p, path, value, 0, UINT64_MAX);
  if (w !== undefined && w !== 0 && (w < 10 || w > 1000)) p.add(path, `must be 0 (unset) or 10 to 1000, got ${w}`);
}

/** Swappiness: 0..100, or 2^64-1 (Go's uint64 of -1), which runc takes as unset. */
function expectSwappiness(p: ProblemList, path: string, value: unknown): void {
  if (value === 2 ** 64) return; // 18446744073709551615 as JSON.parse reads it
  const v = expectInteger(p, path, value, INT64_MIN, UINT64_MAX);
  if (v !== undefined && (v < 0 || v > 100)) p.add(path, `must be 0 to 100 (or 18446744073709551615 for unset), got ${v}`);
}

function checkThrottles(p: ProblemList, blk: JsonObject, path: string): void {
  for (const key of ['throttleReadBpsDevice', 'throttleWriteBpsDevice', 'throttleReadIOPSDevice', 'throttleWriteIOPSDevice']) {
    optional(blk, path, key, (f, v) => expectArray(p, f, v, (itemPath, item) => {
      const t = expectObject(p, itemPath, item);
      if (!t) return;
      for (const k of ['major', 'minor', 'rate']) required(p, t, itemPath, k, (ff, vv) => expectUint64(p, ff, vv));
    }));
  }
}

function checkResources(p: ProblemList, path: string, value: unknown): void {
  const r = expectObject(p, path, value);
  if (!r) return;
  optional(r, path, 'devices', (f, v) => checkDeviceRules(p, f, v));
  optional(r, path, 'memory', (f, v) => {
    const m = expectObject(p, f, v);
    if (!m) return;
    for (const key of ['limit', 'reservation', 'swap', 'kernel', 'kernelTCP']) optional(m, f, key, unlimitedOrCount(p));
    optional(m, f, 'swappiness', (ff, vv) => expectSwappiness(p, ff, vv));
    for (const key of ['disableOOMKiller', 'useHierarchy', 'checkBeforeUpdate']) optional(m, f, key, (ff, vv) => expectBoolean(p, ff, vv));
    const limit = m.limit, swap = m.swap;
    if (typeof limit === 'number' && typeof swap === 'number' && limit > 0 && swap > 0 && swap < limit) {
      p.add(field(f, 'swap'), `(memory+swap) ${swap} must not be below limit ${limit}`);
    }
  });
  optional(r, path, 'cpu', (f, v) => {
    const c = expectObject(p, f, v);
    if (!c) return;
    for (const key of ['shares', 'period', 'realtimePeriod', 'burst']) optional(c, f, key, (ff, vv) => expectUint64(p, ff, vv));
    for (const key of ['quota', 'realtimeRuntime']) optional(c, f, key, anyInt64(p));
    optional(c, f, 'idle', (ff, vv) => expectInteger(p, ff, vv, 0, 1));
    for (const key of ['cpus', 'mems']) {
      optional(c, f, key, (ff, vv) => {
        const s = expectString(p, ff, vv);
        if (s !== undefined && !/^(\d+(-\d+)?)(,\d+(-\d+)?)*$|^$/.test(s)) p.add(ff, `must be a list like "0-3,6", got ${show(s)}`);
      });
    }
  });
  optional(r, path, 'pids', (f, v) => {
    const pids = expectObject(p, f, v);
    if (pids) optional(pids, f, 'limit', anyInt64(p)); // runc reads a missing limit as 0: unset
  });
  optional(r, path, 'blockIO', (f, v) => {
    const blk = expectObject(p, f, v);
    if (!blk) return;
    for (const key of ['weight', 'leafWeight']) optional(blk, f, key, (ff, vv) => expectWeight(p, ff, vv));
    optional(blk, f, 'weightDevice', (ff, vv) => expectArray(p, ff, vv, (itemPath, item) => {
      const w = expectObject(p, itemPath, item);
      if (!w) return;
      for (const k of ['major', 'minor']) required(p, w, itemPath, k, (f3, v3) => expectUint64(p, f3, v3));
      for (const k of ['weight', 'leafWeight']) optional(w, itemPath, k, (f3, v3) => expectWeight(p, f3, v3));
    }));
    checkThrottles(p, blk, f);
  });
  optional(r, path, 'hugepageLimits', (f, v) => {
    const sizes: (string | undefined)[] = [];
    expectArray(p, f, v, (itemPath, item) => {
      const h = expectObject(p, itemPath, item);
      if (!h) return sizes.push(undefined);
      required(p, h, itemPath, 'pageSize', (ff, vv) => {
        const s = expectString(p, ff, vv);
        if (s !== undefined && !/^\d+[KMG]B$/.test(s)) p.add(ff, `must look like "2MB" or "1GB", got ${show(s)}`);
        sizes.push(s);
      });
      required(p, h, itemPath, 'limit', (ff, vv) => expectUint64(p, ff, vv));
    });
    reportDuplicates(p, f, sizes, 'page size');
  });
  optional(r, path, 'network', (f, v) => {
    const n = expectObject(p, f, v);
    if (!n) return;
    optional(n, f, 'classID', (ff, vv) => expectUint32(p, ff, vv));
    optional(n, f, 'priorities', (ff, vv) => expectArray(p, ff, vv, (itemPath, item) => {
      const pr = expectObject(p, itemPath, item);
      if (!pr) return;
      required(p, pr, itemPath, 'name', (f3, v3) => expectString(p, f3, v3, { nonEmpty: true }));
      required(p, pr, itemPath, 'priority', (f3, v3) => expectUint32(p, f3, v3));
    }));
  });
  optional(r, path, 'unified', (f, v) => expectStringMap(p, f, v));
}

function checkSeccomp(p: ProblemList, path: string, value: unknown): void {
  const s = expectObject(p, path, value);
  if (!s) return;
  const action = (f: string, v: unknown) => expectString(p, f, v, { oneOf: SECCOMP_ACTIONS });
  let usesNotify = s.defaultAction === 'SCMP_ACT_NOTIFY';
  required(p, s, path, 'defaultAction', action);
  optional(s, path, 'defaultErrnoRet', (f, v) => expectUint32(p, f, v));
  optional(s, path, 'architectures', (f, v) => expectStringArray(p, f, v, { oneOf: SECCOMP_ARCHES }));
  optional(s, path, 'flags', (f, v) => expectStringArray(p, f, v, { oneOf: SECCOMP_FLAGS }));
  optional(s, path, 'listenerPath', (f, v) => expectString(p, f, v, { absolute: true }));
  optional(s, path, 'listenerMetadata', (f, v) => expectString(p, f, v));
  optional(s, path, 'syscalls', (f, v) => expectArray(p, f, v, (rulePath, item) => {
    const rule = expectObject(p, rulePath, item);
    if (!rule) return;
    required(p, rule, rulePath, 'names', (ff, vv) => {
      const names = expectStringArray(p, ff, vv, { nonEmpty: true });
      if (names && names.length === 0) p.add(ff, 'must name at least one syscall');
    });
    required(p, rule, rulePath, 'action', action);
    if (rule.action === 'SCMP_ACT_NOTIFY') usesNotify = true;
    optional(rule, rulePath, 'errnoRet', (ff, vv) => {
      expectUint32(p, ff, vv);
      if (rule.action !== 'SCMP_ACT_ERRNO' && rule.action !== 'SCMP_ACT_TRACE') p.add(ff, 'only applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE');
    });
    optional(rule, rulePath, 'args', (ff, vv) => {
      const indexes: (string | undefined)[] = [];
      expectArray(p, ff, vv, (argPath, argItem) => {
        const arg = expectObject(p, argPath, argItem);
        if (!arg) return indexes.push(undefined);
        required(p, arg, argPath, 'index', (f3, v3) => indexes.push(expectInteger(p, f3, v3, 0, 5)?.toString()));
        required(p, arg, argPath, 'value', (f3, v3) => expectUint64(p, f3, v3));
        optional(arg, argPath, 'valueTwo', (f3, v3) => expectUint64(p, f3, v3));
        required(p, arg, argPath, 'op', (f3, v3) => expectString(p, f3, v3, { oneOf: SECCOMP_OPERATORS }));
      });
    });
  }));
  if (usesNotify && s.listenerPath === undefined) p.add(field(path, 'listenerPath'), 'is required when an action is SCMP_ACT_NOTIFY');
}

/** Validates the `linux` section: namespaces, mappings, devices, resources, seccomp, paths. */
export function checkLinux(p: ProblemList, path: string, value: unknown): void {
  const linux = expectObject(p, path, value);
  if (!linux) return;
  let namespaces: string[] = [];
  optional(linux, path, 'namespaces', (f, v) => { namespaces = checkNamespaces(p, f, v); });
  optional(linux, path, 'uidMappings', (f, v) => checkIdMappings(p, f, v));
  optional(linux, path, 'gidMappings', (f, v) => checkIdMappings(p, f, v));
  const userNs = Array.isArray(linux.namespaces)
    ? (linux.namespaces as unknown[]).find((n) => (n as JsonObject | null)?.type === 'user') as JsonObject | undefined
    : undefined;
  const hasMappings = linux.uidMappings !== undefined || linux.gidMappings !== undefined;
  if (hasMappings && !namespaces.includes('user')) p.add(field(path, 'uidMappings'), 'needs a "user" entry in linux.namespaces');
  if (userNs && userNs.path === undefined) {
    for (const key of ['uidMappings', 'gidMappings']) {
      const maps = linux[key];
      if (!Array.isArray(maps) || maps.length === 0) p.add(field(path, key), 'is required when a new user namespace is created');
    }
  }
  optional(linux, path, 'devices', (f, v) => checkDevices(p, f, v));
  optional(linux, path, 'cgroupsPath', (f, v) => expectString(p, f, v));
  optional(linux, path, 'resources', (f, v) => checkResources(p, f, v));
  optional(linux, path, 'rootfsPropagation', (f, v) => expectString(p, f, v, { oneOf: ROOTFS_PROPAGATIONS }));
  optional(linux, path, 'seccomp', (f, v) => checkSeccomp(p, f, v));
  optional(linux, path, 'sysctl', (f, v) => expectStringMap(p, f, v));
  optional(linux, path, 'maskedPaths', (f, v) => expectStringArray(p, f, v, { absolute: true }));
  optional(linux, path, 'readonlyPaths', (f, v) => expectStringArray(p, f, v, { absolute: true }));
  optional(linux, path, 'mountLabel', (f, v) => expectString(p, f, v));
  optional(linux, path, 'intelRdt', (f, v) => {
    const rdt = expectObject(p, f, v);
    if (!rdt) return;
    for (const key of ['closID', 'l3CacheSchema', 'memBwSchema']) optional(rdt, f, key, (ff, vv) => expectString(p, ff, vv));
    for (const key of ['enableCMT', 'enableMBM']) optional(rdt, f, key, (ff, vv) => expectBoolean(p, ff, vv));
  });
  optional(linux, path, 'personality', (f, v) => {
    const per = expectObject(p, f, v);
    if (!per) return;
    required(p, per, f, 'domain', (ff, vv) => expectString(p, ff, vv, { oneOf: ['LINUX', 'LINUX32'] }));
    optional(per, f, 'flags', (ff, vv) => expectStringArray(p, ff, vv));
  });
  optional(linux, path, 'timeOffsets', (f, v) => {
    const offsets = expectObject(p, f, v);
    if (!offsets) return;
    if (!namespaces.includes('time')) p.add(f, 'needs a "time" entry in linux.namespaces');
    for (const [clock, off] of Object.entries(offsets)) {
      const cf = `${f}[${show(clock)}]`;
      if (clock !== 'monotonic' && clock !== 'boottime') p.add(cf, 'unknown clock (want monotonic or boottime)');
      const o = expectObject(p, cf, off);
      if (!o) continue;
      optional(o, cf, 'secs', (ff, vv) => expectInteger(p, ff, vv, INT64_MIN, UINT64_MAX));
      optional(o, cf, 'nanosecs', (ff, vv) => expectInteger(p, ff, vv, 0, 999999999));
    }
  });
}
