// The two archive formats, read into plans (manifest, config, names; blobs put into the store):
// docker-archive (`docker save`: manifest.json with Config, RepoTags, Layers) and an OCI image layout
// (oci-layout, index.json, blobs/sha256/*; as a dir or as an oci-archive tar).
import fs from 'node:fs';
import { HutchError } from '../../errors.js';
import { formatReference, parseReference } from '../reference.js';
import { MEDIA, type Descriptor, type ImageIndex, type ImageManifest } from '../types.js';
import { hexOf, isDigest, sha256Of, type StoreLayout } from '../store/layout.js';
import type { ImportSource } from './source.js';

/** One image found in an archive, its blobs already in the store. */
export interface LoadPlan { manifestBytes: Buffer; manifest: ImageManifest; configBytes: Buffer; names: string[] }

/** Parses JSON from an archive, EINVAL naming the file when it is not JSON. */
function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new HutchError('EINVAL', `${what} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** The canonical name of a reference text from an archive. */
export function canonicalName(text: string, what: string): string {
  const ref = parseReference(text);
  if (ref.digest) throw new HutchError('EINVAL', `${what}: name ${text} has a digest; a name needs a tag`);
  return formatReference({ registry: ref.registry, repository: ref.repository, tag: ref.tag ?? 'latest' });
}

/** The media type of a layer blob in the store, from its first bytes. */
function layerMediaType(layout: StoreLayout, digest: string): string {
  const fd = fs.openSync(layout.blob(digest), 'r');
  const head = Buffer.alloc(4);
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return MEDIA.ociLayerGzip;
  if (head.readUInt32BE(0) === 0x28b52ffd) return MEDIA.ociLayerZstd;
  return MEDIA.ociLayer;
}

interface DockerEntry { Config?: unknown; RepoTags?: unknown; Layers?: unknown }

/** The images of a docker-archive. */
export async function dockerPlans(source: ImportSource, layout: StoreLayout): Promise<LoadPlan[]> {
  const what = `${source.label}: manifest.json`;
  const entries = parseJson<DockerEntry[]>(await source.read('manifest.json'), what);
  if (!Array.isArray(entries)) throw new HutchError('EINVAL', `${what} is not a list of images`);
  const plans: LoadPlan[] = [];
  for (const [n, e] of entries.entries()) {
    if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw new HutchError('EINVAL', `${what}: image ${n + 1} has no Config file or no Layers list`);
    }
    const tags = e.RepoTags === null || e.RepoTags === undefined ? [] : e.RepoTags;
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new HutchError('EINVAL', `${what}: image ${n + 1} has a bad RepoTags list`);
    const configBytes = await source.read(e.Config);
    const config = await source.importBlob(e.Config);
    const layers: Descriptor[] = [];
    for (const l of e.Layers as string[]) {
      const b = await source.importBlob(l);
      layers.push({ mediaType: layerMediaType(layout, b.digest), digest: b.digest, size: b.size });
    }
    const manifest: ImageManifest = {
      schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: config.digest, size: config.size }, layers,
    };
    plans.push({ manifestBytes: Buffer.from(JSON.stringify(manifest)), manifest, configBytes, names: tags.map((t) => canonicalName(t, source.label)) });
  }
  return plans;
}

/** The platform this machine runs (an index's entry for it is the one loaded). */
function hostArchitecture(): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
}

/** Names an index entry's annotations give: a full reference; a bare tag (`1.0`) names nothing by itself. */
function annotatedNames(d: Descriptor, label: string): string[] {
  const full = d.annotations?.['io.containerd.image.name'];
  if (full) return [canonicalName(full, label)];
  const ref = d.annotations?.['org.opencontainers.image.ref.name'];
  if (ref && (ref.includes('/') || ref.includes(':'))) return [canonicalName(ref, label)];
  return [];
}

/** The images of an OCI layout: index.json entries, an index among them resolved to this machine's platform. */
export async function ociPlans(source: ImportSource): Promise<LoadPlan[]> {
  const label = source.label;
  if (!source.has('oci-layout')) throw new HutchError('EINVAL', `${label}: index.json without an oci-layout file: not an OCI image layout`);
  const marker = parseJson<{ imageLayoutVersion?: unknown }>(await source.read('oci-layout', 4096), `${label}: oci-layout`);
  if (typeof marker.imageLayoutVersion !== 'string' || !marker.imageLayoutVersion.startsWith('1.')) {
    throw new HutchError('EUNSUPPORTED', `${label}: OCI layout version ${String(marker.imageLayoutVersion)} is not supported (1.x is)`);
  }
  const index = parseJson<ImageIndex>(await source.read('index.json'), `${label}: index.json`);
  if (!Array.isArray(index?.manifests)) throw new HutchError('EINVAL', `${label}: index.json has no manifests list`);
  const plans: LoadPlan[] = [];
  const blobJson = async (d: Descriptor): Promise<{ bytes: Buffer; json: ImageManifest & ImageIndex }> => {
    if (!isDigest(d.digest)) throw new HutchError('EUNSUPPORTED', `${label}: descriptor digest ${String(d.digest).slice(0, 80)} is not sha256`);
    const bytes = await source.read(`blobs/sha256/${hexOf(d.digest)}`);
    if (sha256Of(bytes) !== d.digest) throw new HutchError('EINTEGRITY', `${label}: blob ${d.digest} does not match its digest; refusing it`);
    if (d.size !== undefined && bytes.length !== d.size) throw new HutchError('EINTEGRITY', `${label}: blob ${d.digest} is ${bytes.length} bytes, but its descriptor says ${d.size}`);
    return { bytes, json: parseJson(bytes, `${label}: blob ${d.digest}`) };
  };
  const visit = async (d: Descriptor, names: string[], depth: number): Promise<void> => {
    if (depth > 4) throw new HutchError('EINVAL', `${label}: indexes nested more than 4 deep`);
    const { bytes, json } = await blobJson(d);
    const type = d.mediaType ?? json.mediaType;
    if (type === MEDIA.ociIndex || type === MEDIA.dockerManifestList || (type === undefined && Array.isArray(json.manifests))) {
      const arch = hostArchitecture();
      const fits = json.manifests.filter((m) => !m.platform || (m.platform.os === 'linux' && m.platform.architecture === arch));
      if (fits.length === 0) {
        const has = json.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ');
        throw new HutchError('EUNSUPPORTED', `${label}: no image for linux/${arch} in index ${d.digest} (it has ${has})`);
      }
      await visit(fits[0]!, names, depth + 1);
      return;
    }
    if (type !== MEDIA.ociManifest && type !== MEDIA.dockerManifest && type !== undefined) return; // not an image (e.g. an artifact)
    const manifest = json;
    if (!manifest.config || !Array.isArray(manifest.layers)) throw new HutchError('EINVAL', `${label}: manifest ${d.digest} has no config or no layers`);
    const configBytes = await source.read(`blobs/sha256/${hexOf(manifest.config.digest)}`);
    await source.importBlob(`blobs/sha256/${hexOf(manifest.config.digest)}`, manifest.config);
    for (const l of manifest.layers) await source.importBlob(`blobs/sha256/${hexOf(l.digest)}`, l);
    plans.push({ manifestBytes: bytes, manifest, configBytes, names });
  };
  for (const d of index.manifests) await visit(d, annotatedNames(d, label), 0);
  return plans;
}
