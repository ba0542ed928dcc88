// Kubernetes' side of containerd, for the e2e tests: a CRI v1 client (gRPC over containerd's
// socket, the calls and fields the kubelet sends; test/e2e/cri-v1.proto) and a harness around a
// private containerd with its CRI plugin on, runtime handlers of the test's choosing (`runc`,
// `hutch`, a RuntimeClass's handler), a local pod sandbox image and host-network pods, so that no
// CNI, registry or kubelet is needed. Teardown removes every pod through CRI, then stops containerd
// and its shims and removes what is left (test/e2e/containerd.ts), also after a failed case.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CRI_NAMESPACE, PrivateContainerd } from './containerd.js';
import type { TestImage } from './oci-image.js';

const PROTO = fileURLToPath(new URL('../../../test/e2e/cri-v1.proto', import.meta.url));

/** What the kubelet sends as masked and read-only paths for a container without `procMount: Unmasked`. */
export const KUBELET_MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const KUBELET_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** A pod's seccompProfile type, as the kubelet passes it. */
export type SeccompProfileType = 'RuntimeDefault' | 'Unconfined';

/** A CRI message as proto-loader reads and writes it (snake_case fields, enums as names). */
type Message = Record<string, unknown>;
type Unary = (request: Message, options: grpc.CallOptions, done: (err: grpc.ServiceError | null, res: Message) => void) => void;

/** ExecSync's answer, as text. */
export interface ExecResult { stdout: string; stderr: string; exitCode: number }

/** The RuntimeService of a CRI endpoint (a unix socket). */
export class CriClient {
  private readonly service: grpc.Client & Record<string, Unary>;

  constructor(socket: string) {
    const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };
    this.service = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Unary>;
  }

  /** One unary call; its error names the method and gRPC's reason. */
  call(method: string, request: Message, timeoutMs = 60_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const rpc = this.service[method];
      if (typeof rpc !== 'function') { reject(new Error(`CRI has no method ${method}`)); return; }
      rpc.call(this.service, request, { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
        if (err) reject(new Error(`CRI ${method}: ${err.details || err.message}`));
        else resolve(res);
      });
    });
  }

  /** Version: the runtime's name and CRI version. */
  async version(): Promise<{ runtime_name: string; runtime_version: string; runtime_api_version: string }> {
    return await this.call('Version', { version: 'v1' }) as { runtime_name: string; runtime_version: string; runtime_api_version: string };
  }

  async runPodSandbox(config: Message, runtimeHandler: string): Promise<string> {
    return (await this.call('RunPodSandbox', { config, runtime_handler: runtimeHandler }, 120_000)).pod_sandbox_id as string;
  }

  async createContainer(podSandboxId: string, config: Message, sandboxConfig: Message): Promise<string> {
    return (await this.call('CreateContainer', { pod_sandbox_id: podSandboxId, config, sandbox_config: sandboxConfig }, 120_000)).container_id as string;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call('StartContainer', { container_id: containerId });
  }

  /** ExecSync with a timeout in seconds (the CRI's unit). */
  async execSync(containerId: string, cmd: string[], timeoutS = 30): Promise<ExecResult> {
    const r = await this.call('ExecSync', { container_id: containerId, cmd, timeout: timeoutS }, (timeoutS + 30) * 1000);
    return { stdout: (r.stdout as Buffer).toString(), stderr: (r.stderr as Buffer).toString(), exitCode: r.exit_code as number };
  }

  /** ContainerStatus: its state (CONTAINER_RUNNING...) and exit code. */
  async containerStatus(containerId: string): Promise<{ id: string; state: string; exit_code: number }> {
    return (await this.call('ContainerStatus', { container_id: containerId })).status as { id: string; state: string; exit_code: number };
  }

  async stopContainer(containerId: string, timeoutS = 10): Promise<void> {
    await this.call('StopContainer', { container_id: containerId, timeout: timeoutS }, (timeoutS + 30) * 1000);
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.call('RemoveContainer', { container_id: containerId });
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call('StopPodSandbox', { pod_sandbox_id: podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call('RemovePodSandbox', { pod_sandbox_id: podSandboxId });
  }

  async listPodSandboxIds(): Promise<string[]> {
    return ((await this.call('ListPodSandbox', {})).items as { id: string }[]).map((p) => p.id);
  }

  async listContainerIds(): Promise<string[]> {
    return ((await this.call('ListContainers', {})).containers as { id: string }[]).map((c) => c.id);
  }

  close(): void {
    this.service.close();
  }
}

/** What a pod asks for: privileged, its pod-level seccomp profile, its annotations. */
export interface PodOptions { privileged?: boolean; seccomp?: SeccompProfileType; annotations?: Record<string, string> }

/** What a container asks for (the kubelet's securityContext): privileged and seccompProfile. */
export interface ContainerOptions { privileged?: boolean; seccomp?: SeccompProfileType }

/** A pod the harness made: its id, the config it was made from, its handler. */
export interface Pod { id: string; config: Message; handler: string }

/**
 * A private containerd with its CRI plugin on: `images[0]` is the pod sandbox image (its command
 * must keep running), every image is loaded into the CRI's k8s.io namespace.
 */
export class CriHarness {
  readonly containerd: PrivateContainerd;
  private client?: CriClient;
  private podCount = 0;

  constructor(readonly dir: string, handlers: Record<string, string>, private readonly images: TestImage[], podAnnotations: string[] = []) {
    if (images.length === 0) throw new Error('CriHarness needs a pod sandbox image');
    this.containerd = new PrivateContainerd(dir, { handlers, sandboxImage: images[0]!.name, podAnnotations });
  }

  /** The CRI client (after start). */
  get cri(): CriClient {
    if (!this.client) throw new Error('CriHarness not started');
    return this.client;
  }

  /** Starts containerd, loads the images into k8s.io and connects; resolves once CRI answers. */
  async start(): Promise<void> {
    await this.containerd.start();
    for (const image of this.images) {
      const r = await this.containerd.ctr(['images', 'import', image.archivePath], { namespace: CRI_NAMESPACE });
      if (r.code !== 0) throw new Error(`ctr -n ${CRI_NAMESPACE} images import ${image.archivePath}: ${r.stderr.trim()}`);
    }
    this.client = new CriClient(this.containerd.socket);
    await this.client.version();
  }

  /** The config of a host-network pod named `name` (the kubelet's fields), its cgroup under containerd's parent. */
  podConfig(name: string, opts: PodOptions = {}): Message {
    const uid = `${name}-${process.pid}-${++this.podCount}`;
    return {
      metadata: { name, uid, namespace: 'hutch-e2e', attempt: 0 },
      labels: { 'io.kubernetes.pod.name': name },
      annotations: opts.annotations ?? {},
      linux: {
        cgroup_parent: `/${this.containerd.cgroupParent}/pod-${uid}`,
        security_context: {
          namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' },
          privileged: opts.privileged ?? false,
          ...(opts.seccomp ? { seccomp: { profile_type: opts.seccomp } } : {}),
        },
      },
    };
  }

  /** RunPodSandbox with `handler` (a RuntimeClass's handler name). */
  async runPod(name: string, handler: string, opts: PodOptions = {}): Promise<Pod> {
    const config = this.podConfig(name, opts);
    return { id: await this.cri.runPodSandbox(config, handler), config, handler };
  }

  /**
   * Creates and starts container `name` of `image` in `pod`, running `command`, with the
   * securityContext the kubelet would send (its default masked and read-only paths included).
   */
  async runContainer(pod: Pod, name: string, image: string, command: string[], opts: ContainerOptions = {}): Promise<string> {
    const config: Message = {
      metadata: { name, attempt: 0 },
      image: { image },
      command,
      labels: { 'io.kubernetes.container.name': name },
      linux: {
        security_context: {
          privileged: opts.privileged ?? false,
          namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' },
          masked_paths: KUBELET_MASKED_PATHS,
          readonly_paths: KUBELET_READONLY_PATHS,
          ...(opts.seccomp ? { seccomp: { profile_type: opts.seccomp } } : {}),
        },
      },
    };
    const id = await this.cri.createContainer(pod.id, config, pod.config);
    await this.cri.startContainer(id);
    return id;
  }

  /** Stops and removes a pod and its containers, as the kubelet does when a pod goes. */
  async removePod(pod: Pod): Promise<void> {
    await this.cri.stopPodSandbox(pod.id);
    await this.cri.removePodSandbox(pod.id);
  }

  /**
   * Removes every pod and container through CRI, stops containerd and its shims, and removes the
   * dir, cgroups and mounts; returns what went wrong or was left (and removes that too).
   */
  async destroy(): Promise<string[]> {
    const problems: string[] = [];
    if (this.client) {
      try {
        for (const id of await this.client.listPodSandboxIds()) {
          await this.client.stopPodSandbox(id).catch((e: Error) => problems.push(e.message));
          await this.client.removePodSandbox(id).catch((e: Error) => problems.push(e.message));
        }
        const left = await this.client.listContainerIds();
        if (left.length) problems.push(`containers left after their pods were removed: ${left.join(' ')}`);
      } catch (e) {
        problems.push(`CRI teardown: ${(e as Error).message}`);
      }
      this.client.close();
    }
    problems.push(...await this.containerd.destroy());
    return problems;
  }
}

/**
 * The containers a runtime handler still keeps state for under the shim's --root: the entries of
 * that root, and for hutch those its executor keeps in `.executor/NAME/` (hutch's own dir there).
 */
export function handlerContainers(harness: CriHarness, handler: string): string[] {
  const root = path.join(harness.containerd.runtimeRoot, handler, CRI_NAMESPACE);
  const list = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);
  const executors = path.join(root, '.executor');
  return [
    ...list(root).filter((e) => e !== '.executor'),
    ...list(executors).flatMap((name) => list(path.join(executors, name)).map((id) => `.executor/${name}/${id}`)),
  ];
}
