// The OpenAPI 3.1 description of hutchd, written by hand. Every route of the router must have an
// operation here (a test checks it); a route without one is served but listed as undocumented.
type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json): Json => ({ content: { 'application/json': { schema } } });
const ok = (description: string, schema?: Json, status = '200'): Json => ({ [status]: { description, ...(schema ? json(schema) : {}) } });
const idParam = { name: 'id', in: 'path', required: true, description: 'sandbox id or name', schema: { type: 'string' } };
const snapParam = { name: 'id', in: 'path', required: true, description: 'snapshot id', schema: { type: 'string' } };
const pidParam = { name: 'pid', in: 'path', required: true, description: 'process id inside the sandbox', schema: { type: 'integer' } };
const pathQuery = { name: 'path', in: 'query', required: true, description: 'absolute path inside the sandbox', schema: { type: 'string' } };
const q = (name: string, description: string, type = 'string'): Json => ({ name, in: 'query', required: false, description, schema: { type } });
const ws = (description: string): Json => ({ '101': { description: `WebSocket upgrade. ${description}` } });

const portParam = { name: 'port', in: 'path', required: true, description: 'TCP port on the sandbox\'s loopback, 1-65535', schema: { type: 'integer', minimum: 1, maximum: 65535 } };
const restParam = { name: 'path', in: 'path', required: true, description: 'the rest of the path (may be empty or hold slashes), passed on undecoded with the query string', schema: { type: 'string' } };
/** The methods a route of method ANY is listed under. */
const ANY_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'];
/** A router path as OpenAPI writes it: /{name...} (the rest of the path) is /{name}. */
const docPath = (p: string): string => p.replace(/\{(\w+)\.\.\.\}$/, '{$1}');

/** Operations by "METHOD path". */
const OPERATIONS: Record<string, Json> = {
  'POST /v1/sandboxes': {
    summary: 'Create and start a sandbox (a warm pool claim when one is ready for the image)',
    requestBody: json(ref('CreateSandbox')), responses: ok('the running sandbox', ref('Sandbox'), '201'),
  },
  'GET /v1/sandboxes': {
    summary: 'List sandboxes of this hutchd',
    parameters: [q('label', 'KEY or KEY=VALUE; repeatable, all must match'), q('state', 'comma-separated states (ready, running, paused, stopped)')],
    responses: ok('the sandboxes', { type: 'object', properties: { sandboxes: { type: 'array', items: ref('Sandbox') } } }),
  },
  'GET /v1/sandboxes/{id}': { summary: 'Get a sandbox', parameters: [idParam], responses: ok('the sandbox', ref('Sandbox')) },
  'DELETE /v1/sandboxes/{id}': { summary: 'Remove a sandbox (killing what runs in it)', parameters: [idParam], responses: { '204': { description: 'removed' } } },
  'POST /v1/sandboxes/{id}/pause': { summary: 'Freeze every process of a sandbox', parameters: [idParam], responses: ok('the sandbox', ref('Sandbox')) },
  'POST /v1/sandboxes/{id}/resume': { summary: 'Thaw a paused sandbox', parameters: [idParam], responses: ok('the sandbox', ref('Sandbox')) },
  'POST /v1/sandboxes/{id}/ttl': {
    summary: 'Set the time to live from now (the sandbox is removed when it runs out)', parameters: [idParam],
    requestBody: json({ type: 'object', required: ['ttlMs'], properties: { ttlMs: { type: 'integer', minimum: 1000 } } }),
    responses: ok('the new expiry', { type: 'object', properties: { id: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } } }),
  },
  'POST /v1/sandboxes/{id}/snapshot': {
    summary: 'Checkpoint a running sandbox (its processes\' memory and writable layer; gvisor platform) into a snapshot; it stops unless leaveRunning', parameters: [idParam],
    requestBody: json({ type: 'object', properties: { leaveRunning: { type: 'boolean', default: false } } }), responses: ok('the snapshot', ref('Snapshot'), '201'),
  },
  'GET /v1/snapshots': { summary: 'List snapshots', responses: ok('the snapshots', { type: 'object', properties: { snapshots: { type: 'array', items: ref('Snapshot') } } }) },
  'GET /v1/snapshots/{id}': { summary: 'Get a snapshot', parameters: [snapParam], responses: ok('the snapshot', ref('Snapshot')) },
  'DELETE /v1/snapshots/{id}': { summary: 'Remove a snapshot (sandboxes restored from it stay)', parameters: [snapParam], responses: { '204': { description: 'removed' } } },
  'POST /v1/snapshots/{id}/sandboxes': {
    summary: 'Restore: a new running sandbox from a snapshot, its processes going on where they were (several from one snapshot: a fork)', parameters: [snapParam],
    requestBody: json({ type: 'object', properties: { name: { type: 'string' }, labels: { type: 'object', additionalProperties: { type: 'string' } }, ttlMs: { type: 'integer', minimum: 1000 } } }),
    responses: ok('the running sandbox', ref('Sandbox'), '201'),
  },
  'ANY /v1/sandboxes/{id}/ports/{port}/{path...}': {
    summary: 'Forward: the request (any method, headers but hop-by-hop ones and Authorization, body streamed both ways) to http://127.0.0.1:PORT/PATH inside the sandbox, through its agent (every network mode, none included); a WebSocket upgrade is forwarded too',
    parameters: [idParam, portParam, restParam],
    responses: { default: { description: 'the answer of the server in the sandbox, with via: 1.1 hutchd' }, '502': { description: 'nothing listens on the port (ENETWORK)', ...json(ref('Error')) }, '101': { description: 'WebSocket upgrade answered by the server in the sandbox' } },
  },
  'GET /v1/sandboxes/{id}/stats': { summary: 'cpu, memory, pids and disk of a sandbox', parameters: [idParam], responses: ok('stats', ref('SandboxStats')) },
  'POST /v1/sandboxes/{id}/processes': {
    summary: 'Start a process; with wait: true, run it to its end and return its output', parameters: [idParam],
    requestBody: json(ref('StartProcess')), responses: { ...ok('started (wait: false)', { type: 'object', properties: { pid: { type: 'integer' } } }, '201'), ...ok('finished (wait: true)', ref('ExecResult')) },
  },
  'GET /v1/sandboxes/{id}/processes': { summary: 'Processes of a sandbox as its agent sees them', parameters: [idParam], responses: ok('processes', { type: 'object' }) },
  'GET /v1/sandboxes/{id}/processes/started': {
    summary: 'Processes that this hutchd started in a sandbox (running, and exited ones it still keeps)', parameters: [idParam],
    responses: ok('processes', { type: 'object', properties: { processes: { type: 'array', items: ref('StartedProcess') } } }),
  },
  'GET /v1/sandboxes/{id}/processes/{pid}/wait': {
    summary: 'Wait for a process to exit', parameters: [idParam, pidParam],
    responses: ok('its exit', { type: 'object', properties: { pid: { type: 'integer' }, exitCode: { type: ['integer', 'null'] }, signal: { type: ['string', 'null'] } } }),
  },
  'POST /v1/sandboxes/{id}/processes/{pid}/signal': {
    summary: 'Send a signal to a process (or its group)', parameters: [idParam, pidParam],
    requestBody: json({ type: 'object', properties: { signal: { type: 'string', default: 'SIGTERM' }, group: { type: 'boolean' } } }), responses: { '204': { description: 'sent' } },
  },
  'GET /v1/sandboxes/{id}/exec': {
    summary: 'WebSocket: start a process and attach to it (first message: {"type":"start", ...StartProcess}); the process is killed when the client disconnects unless the start has detached: true',
    parameters: [idParam], responses: ws('See docs/api.md for the frames.'),
  },
  'GET /v1/sandboxes/{id}/processes/{pid}/attach': {
    summary: 'WebSocket: attach to a process started with POST .../processes (its held output comes first); it keeps running when the client disconnects',
    parameters: [idParam, pidParam], responses: ws('See docs/api.md for the frames.'),
  },
  'GET /v1/sandboxes/{id}/files': {
    summary: 'Read a file (raw bytes)', parameters: [idParam, pathQuery],
    responses: { '200': { description: 'the content', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } } },
  },
  'PUT /v1/sandboxes/{id}/files': {
    summary: 'Write a file (raw bytes in the body)', parameters: [idParam, pathQuery, q('mode', 'octal file mode, e.g. 644'), q('append', 'true to append', 'boolean'), q('parents', 'true to make missing parent directories first (0755)', 'boolean')],
    requestBody: { content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
    responses: ok('written', { type: 'object', properties: { path: { type: 'string' }, written: { type: 'integer' } } }),
  },
  'DELETE /v1/sandboxes/{id}/files': { summary: 'Remove a file, link or directory', parameters: [idParam, pathQuery, q('recursive', 'remove a whole tree', 'boolean')], responses: { '204': { description: 'removed' } } },
  'GET /v1/sandboxes/{id}/files/list': {
    summary: 'List a directory', parameters: [idParam, pathQuery],
    responses: ok('entries', { type: 'object', properties: { path: { type: 'string' }, entries: { type: 'array', items: ref('DirEntry') } } }),
  },
  'GET /v1/sandboxes/{id}/files/stat': { summary: 'Stat a path', parameters: [idParam, pathQuery, q('follow', 'follow a symlink', 'boolean')], responses: ok('its stat', ref('FileStat')) },
  'POST /v1/sandboxes/{id}/files/mkdir': {
    summary: 'Make a directory', parameters: [idParam],
    requestBody: json({ type: 'object', required: ['path'], properties: { path: { type: 'string' }, parents: { type: 'boolean' }, mode: { type: 'integer' } } }),
    responses: ok('made', { type: 'object', properties: { path: { type: 'string' } } }, '201'),
  },
  'GET /v1/sandboxes/{id}/archive': {
    summary: 'Download a file or tree as a tar stream', parameters: [idParam, pathQuery],
    responses: { '200': { description: 'tar', content: { 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } } },
  },
  'PUT /v1/sandboxes/{id}/archive': {
    summary: 'Upload a tar stream into a directory (absolute names, .. and hard links leaving the directory are refused; symlinks and hard links made; a device or fifo is refused)', parameters: [idParam, pathQuery],
    requestBody: { content: { 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } },
    responses: ok('unpacked', { type: 'object', properties: { files: { type: 'integer' }, dirs: { type: 'integer' }, bytes: { type: 'integer' }, links: { type: 'integer' } } }),
  },
  'GET /v1/sandboxes/{id}/files/watch': {
    summary: 'WebSocket: changes under a path (inotify in the agent; polling for older agents, inotify limits or mode=poll)',
    parameters: [idParam, pathQuery, q('recursive', 'also subdirectories', 'boolean'), q('mode', 'auto (default), inotify or poll', 'string'), q('intervalMs', 'poll interval when polling (min 100)', 'integer')],
    responses: ws('Messages: ready {mode}, change {kind, path}, error.'),
  },
  'GET /v1/sandboxes/{id}/network/policy': {
    summary: 'The egress policy of a sandbox on bridge or a named network (409 ESTATE on none and host)', parameters: [idParam], responses: ok('its policy', ref('EgressPolicy')),
  },
  'PUT /v1/sandboxes/{id}/network/policy': {
    summary: 'Replace the egress policy of a running sandbox (takes effect at once; absent default: allow, absent lists: [])', parameters: [idParam],
    requestBody: json(ref('EgressPolicy')), responses: ok('the policy as kept', ref('EgressPolicy')),
  },
  'GET /v1/networks': { summary: 'List networks (bridge and the named ones)', responses: ok('the networks', { type: 'object', properties: { networks: { type: 'array', items: ref('Network') } } }) },
  'POST /v1/networks': {
    summary: 'Make a named network: its sandboxes reach each other (by name) and the internet',
    requestBody: json({ type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', description: 'lower-case letters, digits, - and _; not none, host or bridge' }, subnet: { type: 'string', description: 'IPv4 block A.B.C.D/N (default: the next free /24 of 10.78.0.0/16)' } } }),
    responses: ok('the network', ref('Network'), '201'),
  },
  'DELETE /v1/networks/{name}': {
    summary: 'Remove a named network (409 ESTATE while sandboxes are on it)', parameters: [{ name: 'name', in: 'path', required: true, description: 'network name', schema: { type: 'string' } }],
    responses: { '204': { description: 'removed' } },
  },
  'GET /v1/events': {
    summary: 'Lifecycle events as server-sent events (event: TYPE, data: JSON)', parameters: [q('sandbox', 'only events of this sandbox id')],
    responses: { '200': { description: 'an endless event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
  },
  'GET /metrics': { summary: 'Prometheus metrics', responses: { '200': { description: 'text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } } },
  'GET /healthz': { summary: 'Liveness (no token needed)', security: [], responses: ok('alive', { type: 'object' }) },
  'GET /openapi.json': { summary: 'This document', responses: ok('OpenAPI 3.1', { type: 'object' }) },
};

const SCHEMAS: Record<string, Json> = {
  Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', examples: ['ENOTFOUND', 'EINVAL', 'ESTATE', 'EAUTH'] }, message: { type: 'string' } } } } },
  Limits: {
    type: 'object', description: 'absent: the server\'s default (hutchd --default-memory, --default-cpus, --default-disk); 0 = no limit',
    properties: {
      memoryBytes: { type: 'integer' }, cpus: { type: 'number' }, pids: { type: 'integer' },
      diskBytes: { type: 'integer', description: 'size of the writable layer (a tmpfs: counts against memory); ENOSPC inside past it' },
      diskInodes: { type: 'integer', description: 'files the writable layer may hold (with diskBytes; default one per 4 KiB, at least 4096)' },
    },
  },
  CreateSandbox: {
    type: 'object', additionalProperties: false,
    properties: {
      image: { type: 'string', default: 'busybox', description: 'busybox or an image reference' }, name: { type: 'string' }, limits: ref('Limits'),
      platform: { type: 'string', description: 'what isolates it: container (namespaces) or gvisor (gVisor\'s user-space kernel); default: hutchd --platform' },
      env: { type: 'object', additionalProperties: { type: 'string' } }, cwd: { type: 'string' }, labels: { type: 'object', additionalProperties: { type: 'string' } },
      ttlMs: { type: 'integer', minimum: 1000, description: 'time to live (default: the server\'s --default-ttl)' },
      cmd: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], description: 'the main command (a string runs under /bin/sh -c): replaces the image\'s Cmd, follows its Entrypoint; the sandbox stops when it exits' },
      entrypoint: { type: 'array', items: { type: 'string' }, description: 'replaces the image\'s Entrypoint and drops its Cmd; [] with no cmd: no main command, the sandbox waits for exec' },
      network: { type: 'string', description: 'none (loopback only), bridge (the internet through NAT), a named network, or host (403 EPERM unless hutchd --allow-host-network); default: hutchd --network (none unless given)' },
      ports: { type: 'array', maxItems: 64, description: 'host ports forwarded to the sandbox (bridge or a named network)', items: { oneOf: [{ type: 'string', description: '[HOSTIP:]HOSTPORT:PORT[/udp]' }, ref('PortMapping')] } },
      policy: ref('EgressPolicy'),
    },
  },
  EgressRule: {
    type: 'object', additionalProperties: false, description: 'a destination (cidr or name, not both; neither: any) and optionally a protocol and ports',
    properties: {
      cidr: { type: 'string', description: 'IPv4 block A.B.C.D/N or an address' }, name: { type: 'string', description: 'DNS name or *.name: the addresses it resolves to' },
      protocol: { type: 'string', enum: ['tcp', 'udp'] }, ports: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 }, minItems: 2, maxItems: 2, description: '[LOW, HIGH] inclusive; absent: every port' },
    },
  },
  EgressPolicy: {
    type: 'object', additionalProperties: false, description: 'what a sandbox may connect to: deny rules first, then allow rules, then the default (the default policy allows the internet, not the host\'s networks)',
    properties: { default: { type: 'string', enum: ['allow', 'deny'], default: 'allow' }, allow: { type: 'array', items: ref('EgressRule') }, deny: { type: 'array', items: ref('EgressRule') } },
  },
  PortMapping: {
    type: 'object', required: ['hostPort', 'port'],
    properties: { hostIp: { type: 'string', default: '0.0.0.0' }, hostPort: { type: 'integer', minimum: 1, maximum: 65535 }, port: { type: 'integer', minimum: 1, maximum: 65535 }, protocol: { type: 'string', enum: ['tcp', 'udp'], default: 'tcp' } },
  },
  Network: {
    type: 'object', required: ['name', 'subnet', 'gateway', 'isolated', 'sandboxes'],
    properties: {
      name: { type: 'string' }, subnet: { type: 'string' }, gateway: { type: 'string' }, sandboxes: { type: 'integer', description: 'how many sandboxes are on it' },
      isolated: { type: 'boolean', description: 'its sandboxes cannot reach each other (bridge); on a named network they can' },
    },
  },
  Snapshot: {
    type: 'object', required: ['id', 'createdAt', 'source', 'platform', 'sizeBytes'],
    properties: {
      id: { type: 'string' }, createdAt: { type: 'string', format: 'date-time' }, platform: { type: 'string' }, sizeBytes: { type: 'integer' },
      source: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' } }, description: 'the sandbox it was taken of' },
      labels: { type: 'object', additionalProperties: { type: 'string' }, description: 'the source\'s labels, which a restored sandbox gets' },
    },
  },
  Sandbox: {
    type: 'object', required: ['id', 'name', 'image', 'platform', 'status', 'createdAt', 'labels'],
    properties: {
      id: { type: 'string' }, name: { type: 'string' }, image: { type: 'string' }, platform: { type: 'string' }, status: { type: 'string', enum: ['ready', 'running', 'paused', 'stopped', 'creating', 'deleting'] },
      createdAt: { type: 'string', format: 'date-time' }, startedAt: { type: 'string', format: 'date-time' }, expiresAt: { type: 'string', format: 'date-time' },
      labels: { type: 'object', additionalProperties: { type: 'string' } }, limits: ref('Limits'), note: { type: 'string' },
      finishedAt: { type: 'string', format: 'date-time' },
      exitCode: { type: 'integer', description: 'how its main command ended: its code, 128+N for a signal N' },
      signal: { type: 'string', description: 'the signal that ended the main command (SIGKILL...)' },
      oomKilled: { type: 'boolean', description: 'the main command was killed by the OOM killer' },
      agentDied: { type: 'boolean', description: 'the agent died (killed or crashed) without an exit record: see note' },
      network: { type: 'object', required: ['name'], description: 'none, host, bridge or a named network; address and ports on the last two', properties: { name: { type: 'string' }, address: { type: 'string' }, ports: { type: 'array', items: ref('PortMapping') } } },
    },
  },
  StartProcess: {
    type: 'object', required: ['cmd'],
    properties: {
      cmd: { oneOf: [{ type: 'string', description: 'run by /bin/sh -c' }, { type: 'array', items: { type: 'string' } }] },
      env: { type: 'object', additionalProperties: { type: 'string' } }, cwd: { type: 'string' },
      user: { type: 'string', description: 'NAME or UID, optionally :GROUP or :GID, names from the sandbox\'s /etc/passwd and /etc/group (default: the sandbox\'s user)' },
      tty: { oneOf: [{ type: 'boolean' }, { type: 'object', properties: { cols: { type: 'integer' }, rows: { type: 'integer' } } }] },
      stdin: { oneOf: [{ type: 'boolean', description: 'keep stdin open (attach to write it)' }, { type: 'string', description: 'this text, then end of input' }] },
      wait: { type: 'boolean' }, timeoutMs: { type: 'integer', description: 'with wait: kill the process after this long (504 ETIMEDOUT)' },
      detached: { type: 'boolean', description: 'it outlives its clients and never blocks on unread output: the last 1 MiB is kept for the next client' },
    },
  },
  SandboxStats: {
    type: 'object', description: 'from the sandbox\'s cgroup; null where the kernel does not say',
    properties: {
      cpuUsageNs: { type: ['integer', 'null'] }, memoryBytes: { type: ['integer', 'null'] }, memoryLimitBytes: { type: ['integer', 'null'], description: 'null: no limit' },
      memoryMaxBytes: { type: 'integer', description: 'peak memory (absent on kernels before 5.19 with cgroup v2)' },
      pids: { type: ['integer', 'null'] }, pidsLimit: { type: ['integer', 'null'], description: 'null: no limit' },
      oomKills: { type: ['integer', 'null'], description: 'processes the OOM killer killed in it' },
      diskBytes: { type: ['integer', 'null'], description: 'bytes used in the writable layer; null: no disk limit' },
      diskLimitBytes: { type: ['integer', 'null'], description: 'null: no disk limit' },
      diskInodes: { type: ['integer', 'null'], description: 'inodes used in the writable layer; null: no disk limit' },
      diskInodesLimit: { type: ['integer', 'null'], description: 'null: no disk limit' },
    },
  },
  StartedProcess: {
    type: 'object',
    properties: {
      pid: { type: 'integer' }, argv: { type: 'array', items: { type: 'string' } }, tty: { type: 'boolean' },
      detached: { type: 'boolean', description: 'runs on when its client leaves' }, attached: { type: 'boolean', description: 'a client is attached' },
      startedAt: { type: 'string', format: 'date-time' }, running: { type: 'boolean' },
      exitCode: { type: ['integer', 'null'] }, signal: { type: ['string', 'null'] },
    },
  },
  ExecResult: {
    type: 'object',
    properties: { pid: { type: 'integer' }, exitCode: { type: ['integer', 'null'] }, signal: { type: ['string', 'null'] }, stdout: { type: 'string' }, stderr: { type: 'string' }, truncated: { type: 'boolean' } },
  },
  FileStat: { type: 'object', properties: { path: { type: 'string' }, type: { type: 'string', enum: ['file', 'dir', 'symlink', 'other'] }, size: { type: 'integer' }, mode: { type: 'integer' }, uid: { type: 'integer' }, gid: { type: 'integer' }, mtimeMs: { type: 'number' }, linkTarget: { type: ['string', 'null'] } } },
  DirEntry: { type: 'object', properties: { name: { type: 'string' }, type: { type: 'string' }, size: { type: 'integer' }, mode: { type: 'integer' }, mtimeMs: { type: 'number' } } },
};

const ERROR_RESPONSES = Object.fromEntries(
  [['400', 'bad request (EINVAL)'], ['401', 'missing or wrong token (EAUTH)'], ['404', 'not found (ENOTFOUND)'], ['403', 'not allowed by this server (EPERM)'], ['409', 'wrong state (ESTATE, EEXIST)'], ['413', 'body too large'], ['500', 'internal error']]
    .map(([s, d]) => [s, { description: d, ...json(ref('Error')) }]),
);

/** The document for `routes` (operations from OPERATIONS, with the shared error answers). */
export function openApiDocument(routes: { method: string; path: string }[]): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of routes) {
    // The forward's WebSocket route shares the path with its ANY route, which describes both.
    const op = OPERATIONS[`${r.method} ${r.path}`] ?? OPERATIONS[`ANY ${r.path}`] ?? { summary: 'undocumented', responses: {} };
    const ops = (paths[docPath(r.path)] ??= {});
    for (const m of r.method === 'ANY' ? ANY_METHODS : [r.method.toLowerCase()]) ops[m] = { ...op, responses: { ...(op['responses'] as Json), ...ERROR_RESPONSES } };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'hutchd', version: '0.1.0', description: 'Sandboxes for untrusted code: create, exec with streamed output, files, pause, TTL. See docs/api.md.' },
    servers: [{ url: 'http://localhost', description: 'unix socket /run/hutch/hutchd.sock by default' }],
    security: [{ bearer: [] }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas: SCHEMAS },
    paths,
  };
}

/** The operations this document knows ("METHOD path"), for the test that compares it with the router. */
export function documentedOperations(): string[] {
  return Object.keys(OPERATIONS).flatMap((k) => {
    const [method, p] = k.split(' ') as [string, string];
    return (method === 'ANY' ? ANY_METHODS.map((m) => m.toUpperCase()) : [method]).map((m) => `${m} ${docPath(p)}`);
  });
}
