// Builds the e2e test image without the internet: a one-layer OCI image of Debian's busybox-static
// (/bin/busybox and a symlink per applet), as an OCI image layout dir and as an OCI archive (a tar of it).
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { tar, type TarEntry } from './tar.js';

/** Where the test image was written, and the digests that name it. */
export interface TestImage {
  /** OCI image layout directory (oci-layout, index.json, blobs/sha256/...). */
  layoutDir: string;
  /** The same layout as one tar file (podman's and skopeo's `oci-archive:` transport, `ctr images import`). */
  archivePath: string;
  /** The name carried in the index's annotations. */
  name: string;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
}

/** The image's name when loaded from the archive (podman and containerd both read it from index.json). */
export const TEST_IMAGE_NAME = 'localhost/hutch-test/busybox:test';
const BUSYBOX = '/bin/busybox';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** The rootfs layer: a few standard dirs, /etc/passwd and /etc/group for root, busybox and its applets. */
function rootfsEntries(): TarEntry[] {
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox').sort();
  const entries: TarEntry[] = [];
  for (const d of ['bin', 'dev', 'etc', 'proc', 'root', 'sys', 'usr', 'usr/bin', 'var']) entries.push({ kind: 'dir', name: d });
  entries.push({ kind: 'dir', name: 'tmp', mode: 0o1777 });
  entries.push({ kind: 'file', name: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n') });
  entries.push({ kind: 'file', name: 'etc/group', data: Buffer.from('root:x:0:\nnogroup:x:65534:\n') });
  entries.push({ kind: 'file', name: 'bin/busybox', data: fs.readFileSync(BUSYBOX), mode: 0o755 });
  for (const a of applets) entries.push({ kind: 'symlink', name: `bin/${a}`, target: 'busybox' });
  return entries;
}

function writeBlob(layoutDir: string, data: Buffer | string): { digest: string; size: number } {
  const hex = sha256(data);
  fs.writeFileSync(path.join(layoutDir, 'blobs', 'sha256', hex), data);
  return { digest: `sha256:${hex}`, size: Buffer.byteLength(data) };
}

/** What may differ between test images: the name they load as and the command they run. */
export interface TestImageOptions {
  name?: string;
  cmd?: string[];
}

/** Builds the image under `dir` (made if needed) and returns where it is. */
export function buildTestImage(dir: string, opts: TestImageOptions = {}): TestImage {
  const name = opts.name ?? TEST_IMAGE_NAME;
  const layoutDir = path.join(dir, 'oci-layout');
  fs.mkdirSync(path.join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  const layerTar = tar(rootfsEntries());
  const layer = writeBlob(layoutDir, gzipSync(layerTar));
  const config = writeBlob(layoutDir, JSON.stringify({
    created: '1970-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Env: [PATH_ENV], Cmd: opts.cmd ?? ['sh'] },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layerTar)}`] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'hutch e2e: busybox-static from Debian' }],
  }));
  const manifest = writeBlob(layoutDir, JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
  }));
  fs.writeFileSync(path.join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(layoutDir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      // podman/skopeo read ref.name; containerd's import reads its own annotation.
      annotations: { 'org.opencontainers.image.ref.name': name, 'io.containerd.image.name': name },
    }],
  }));
  const archivePath = path.join(dir, 'busybox-oci.tar');
  fs.writeFileSync(archivePath, tar(layoutEntries(layoutDir)));
  return { layoutDir, archivePath, name, manifestDigest: manifest.digest, configDigest: config.digest, layerDigest: layer.digest };
}

/** The layout dir's files as tar entries, in a fixed order. */
function layoutEntries(layoutDir: string): TarEntry[] {
  const entries: TarEntry[] = [
    { kind: 'file', name: 'oci-layout', data: fs.readFileSync(path.join(layoutDir, 'oci-layout')) },
    { kind: 'file', name: 'index.json', data: fs.readFileSync(path.join(layoutDir, 'index.json')) },
    { kind: 'dir', name: 'blobs' },
    { kind: 'dir', name: 'blobs/sha256' },
  ];
  for (const b of fs.readdirSync(path.join(layoutDir, 'blobs', 'sha256')).sort()) {
    entries.push({ kind: 'file', name: `blobs/sha256/${b}`, data: fs.readFileSync(path.join(layoutDir, 'blobs', 'sha256', b)) });
  }
  return entries;
}

/**
 * The same image as a `docker save` archive (manifest.json, the config, the gzipped layer), which
 * `docker load` of Docker 20.10 takes (it does not read OCI archives); written next to the OCI one.
 */
export function writeDockerArchive(image: TestImage, repoTag = image.name): string {
  const blob = (digest: string) => fs.readFileSync(path.join(image.layoutDir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  const configName = `${image.configDigest.slice('sha256:'.length)}.json`;
  const layerName = `${image.layerDigest.slice('sha256:'.length)}/layer.tar`;
  const archivePath = path.join(path.dirname(image.archivePath), 'busybox-docker.tar');
  fs.writeFileSync(archivePath, tar([
    { kind: 'file', name: configName, data: blob(image.configDigest) },
    { kind: 'dir', name: path.dirname(layerName) },
    { kind: 'file', name: layerName, data: blob(image.layerDigest) },
    { kind: 'file', name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [repoTag], Layers: [layerName] }])) },
  ]));
  return archivePath;
}
