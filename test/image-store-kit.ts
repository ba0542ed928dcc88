// Builds images at test time for the store, load and pull tests: a busybox-static base layer plus
// files, as a docker-archive, an oci-archive or an OCI layout dir (plain or gzip).
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { ImageManifest, ImageRuntimeConfig } from '../src/image/types.js';
import { makeLayer, sha256, tarOf, type Compression, type LayerEntry } from './image/tar-kit.js';

/** Applets linked to busybox in the base layer. */
const APPLETS = ['sh', 'cat', 'env', 'pwd', 'sleep', 'ls', 'echo', 'id', 'test', 'true', 'false', 'wc', 'head', 'stat', 'readlink'];

/** The base layer's entries: busybox-static, a few applets, /etc/passwd and group, the usual dirs. */
export function busyboxEntries(): LayerEntry[] {
  return [
    ...['bin/', 'etc/', 'proc/', 'sys/', 'dev/', 'root/', 'run/', 'var/', 'usr/', 'usr/bin/'].map((name) => ({ name })),
    { name: 'tmp/', mode: 0o1777 },
    { name: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
    ...APPLETS.map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
    { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' },
    { name: 'etc/group', content: 'root:x:0:\napp:x:2345:\nnogroup:x:65534:\n' },
  ];
}

/** An image built in memory. */
export interface BuiltImage {
  layers: { blob: Buffer; digest: string; diffId: string; mediaType: string }[];
  configBytes: Buffer;
  id: string;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
}

const MEDIA_OF: Record<Compression, string> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

/** Builds an image from layers (entries, or finished blobs with their diffIds) and a runtime config. */
export function buildImage(layers: (LayerEntry[] | { blob: Buffer; diffId: string })[], runtime: ImageRuntimeConfig = {}, compression: Compression = 'gzip'): BuiltImage {
  const built = layers.map((l) => {
    if (!Array.isArray(l)) return { blob: l.blob, digest: sha256(l.blob), diffId: l.diffId, mediaType: MEDIA_OF.gzip };
    const tar = tarOf(l);
    const blob = makeLayer(l, compression);
    return { blob, digest: sha256(blob), diffId: sha256(tar), mediaType: MEDIA_OF[compression] };
  });
  const configBytes = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2024-05-01T00:00:00Z',
    config: { Env: ['PATH=/bin:/usr/bin'], Cmd: ['/bin/sh'], ...runtime },
    rootfs: { type: 'layers', diff_ids: built.map((b) => b.diffId) },
  }));
  const manifest: ImageManifest = {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(configBytes), size: configBytes.length },
    layers: built.map((b) => ({ mediaType: b.mediaType, digest: b.digest, size: b.blob.length })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { layers: built, configBytes, id: sha256(configBytes), manifest, manifestBytes, manifestDigest: sha256(manifestBytes) };
}

const hex = (d: string): string => d.slice('sha256:'.length);

/** A docker-archive (`docker save` layout: <id>/layer.tar, <config hex>.json, manifest.json). Layers are stored uncompressed, as docker does. */
export function dockerArchive(images: { image: BuiltImage; tags: string[] }[], opts: { gzip?: boolean; extra?: LayerEntry[] } = {}): Buffer {
  const entries: LayerEntry[] = [];
  const written = new Map<string, string>(); // diffId → dir that holds it
  const manifest = images.map(({ image, tags }, n) => {
    const layerFiles = image.layers.map((l) => {
      const tar = l.mediaType.endsWith('+gzip') ? gunzipSync(l.blob) : l.blob;
      const first = written.get(l.diffId);
      // A layer seen before gets a dir of its own whose layer.tar is a symlink, as old `docker save` wrote.
      const dir = hex(sha256(Buffer.from(`${l.diffId} ${first ? n : ''}`)));
      if (first) entries.push({ name: `${dir}/` }, { name: `${dir}/layer.tar`, type: 'symlink', linkname: `../${first}/layer.tar` });
      else entries.push({ name: `${dir}/` }, { name: `${dir}/layer.tar`, content: tar }, { name: `${dir}/VERSION`, content: '1.0' });
      if (!first) written.set(l.diffId, dir);
      return `${dir}/layer.tar`;
    });
    entries.push({ name: `${hex(image.id)}.json`, content: image.configBytes });
    return { Config: `${hex(image.id)}.json`, RepoTags: tags.length ? tags : null, Layers: layerFiles };
  });
  entries.push(...(opts.extra ?? []), { name: 'manifest.json', content: JSON.stringify(manifest) });
  const tar = tarOf(entries);
  return opts.gzip ? gzipSync(tar) : tar;
}

/** The entries of an OCI layout holding `images` (index.json names each by `org.opencontainers.image.ref.name`). */
export function ociLayoutEntries(images: { image: BuiltImage; refName?: string }[]): LayerEntry[] {
  const blobs = new Map<string, Buffer>();
  for (const { image } of images) {
    blobs.set(image.id, image.configBytes);
    blobs.set(image.manifestDigest, image.manifestBytes);
    for (const l of image.layers) blobs.set(l.digest, l.blob);
  }
  const index = {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: images.map(({ image, refName }) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: image.manifestBytes.length,
      ...(refName ? { annotations: { 'org.opencontainers.image.ref.name': refName } } : {}),
    })),
  };
  return [
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', content: JSON.stringify(index) },
    { name: 'blobs/' }, { name: 'blobs/sha256/' },
    ...[...blobs].map(([d, b]) => ({ name: `blobs/sha256/${hex(d)}`, content: b })),
  ];
}

/** An oci-archive: a tar of an OCI layout. */
export function ociArchive(images: { image: BuiltImage; refName?: string }[], opts: { gzip?: boolean } = {}): Buffer {
  const tar = tarOf(ociLayoutEntries(images));
  return opts.gzip ? gzipSync(tar) : tar;
}

/** Writes an OCI layout dir at `dir`. */
export function writeOciLayout(dir: string, images: { image: BuiltImage; refName?: string }[]): void {
  for (const e of ociLayoutEntries(images)) {
    const p = path.join(dir, e.name);
    if (e.name.endsWith('/')) fs.mkdirSync(p, { recursive: true });
    else { fs.mkdirSync(path.dirname(p), { recursive: true }); fs.writeFileSync(p, e.content ?? ''); }
  }
}

/** Every entry below `dir` (relative paths), for "nothing left behind" checks. */
export function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

/** Temp-ish leftovers in a store: anything in tmp/, `.partial`/`.tmp-` files, non-hex entries in layers/. */
export function storeLeftovers(root: string): string[] {
  const out: string[] = [];
  for (const e of listTree(path.join(root, 'tmp'))) out.push(`tmp/${e}`);
  for (const e of listTree(path.join(root, 'blobs', 'sha256'))) if (!/^[0-9a-f]{64}$/.test(e)) out.push(`blobs/${e}`);
  if (fs.existsSync(path.join(root, 'layers'))) for (const e of fs.readdirSync(path.join(root, 'layers'))) if (!/^[0-9a-f]{64}$/.test(e)) out.push(`layers/${e}`);
  for (const e of listTree(path.join(root, 'images'))) if (!/^[0-9a-f]{64}\.json$/.test(e)) out.push(`images/${e}`);
  return out;
}
