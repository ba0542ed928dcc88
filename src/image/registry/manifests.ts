// Manifests: what the registry sent (an image manifest or an index), checked before anything uses it,
// and the choice of one platform's entry in an index.
import { HutchError } from '../../errors.js';
import { MEDIA, type Descriptor, type ImageIndex, type ImageManifest, type ImagePlatform } from '../types.js';

/** The largest manifest or index read (registries themselves cap them at a few MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The Accept header of a manifest request: image manifests and indexes, OCI and Docker schema 2. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerManifestList, MEDIA.dockerManifest].join(', ');

const SCHEMA1 = ['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws'];
const INDEX_TYPES = new Set<string>([MEDIA.ociIndex, MEDIA.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MEDIA.ociManifest, MEDIA.dockerManifest]);
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A manifest document, sorted into an image manifest or an index. */
export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

/** Checks one descriptor's fields; `what` names where it is for the error. */
export function checkDescriptor(d: unknown, what: string): Descriptor {
  const desc = d as Partial<Descriptor> | null;
  if (!desc || typeof desc !== 'object') throw new HutchError('EPROTO', `${what} is not a descriptor`, { id: what });
  if (typeof desc.digest !== 'string') throw new HutchError('EPROTO', `${what} has no digest`, { id: what });
  if (!DIGEST.test(desc.digest)) {
    if (/^[a-z0-9]+:/.test(desc.digest) && !desc.digest.startsWith('sha256:')) {
      throw new HutchError('EUNSUPPORTED', `${what} uses digest ${desc.digest}; only sha256 is supported`, { id: what });
    }
    throw new HutchError('EPROTO', `${what} has a malformed digest ${desc.digest}`, { id: what });
  }
  if (typeof desc.size !== 'number' || !Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new HutchError('EPROTO', `${what} (${desc.digest}) has no valid size`, { id: what });
  }
  if (typeof desc.mediaType !== 'string') throw new HutchError('EPROTO', `${what} (${desc.digest}) has no media type`, { id: what });
  return desc as Descriptor;
}

/** Parses and checks a manifest body; `contentType` is the response's Content-Type. Schema 1 is EUNSUPPORTED. */
export function parseManifest(bytes: Buffer, contentType: string | undefined, what: string): ParsedManifest {
  const header = (contentType ?? '').split(';')[0]!.trim();
  if (SCHEMA1.includes(header)) throw schema1(what);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new HutchError('EPROTO', `manifest of ${what} is not JSON`, { id: what });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new HutchError('EPROTO', `manifest of ${what} is not a JSON object`, { id: what });
  if (doc.schemaVersion === 1 || (typeof doc.mediaType === 'string' && SCHEMA1.includes(doc.mediaType))) throw schema1(what);
  if (doc.schemaVersion !== 2) throw new HutchError('EUNSUPPORTED', `manifest of ${what} has schemaVersion ${String(doc.schemaVersion)}; only 2 is supported`, { id: what });
  // The document's own mediaType wins; the header decides for documents without one.
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : header;
  const isIndex = INDEX_TYPES.has(mediaType) || (!MANIFEST_TYPES.has(mediaType) && Array.isArray(doc.manifests));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw new HutchError('EPROTO', `index of ${what} has no manifests list`, { id: what });
    doc.manifests.forEach((m, i) => checkDescriptor(m, `entry ${i} of the index of ${what}`));
    return { kind: 'index', mediaType: mediaType || MEDIA.ociIndex, index: doc as unknown as ImageIndex };
  }
  if (mediaType && !MANIFEST_TYPES.has(mediaType)) {
    throw new HutchError('EUNSUPPORTED', `manifest of ${what} has media type ${mediaType}, not an image manifest or index`, { id: what });
  }
  checkDescriptor(doc.config, `config of ${what}`);
  if (!Array.isArray(doc.layers)) throw new HutchError('EPROTO', `manifest of ${what} has no layers list`, { id: what });
  doc.layers.forEach((l, i) => checkDescriptor(l, `layer ${i} of ${what}`));
  return { kind: 'manifest', mediaType: mediaType || MEDIA.ociManifest, manifest: doc as unknown as ImageManifest };
}

function schema1(what: string): HutchError {
  return new HutchError('EUNSUPPORTED', `${what} has a Docker schema 1 manifest, which is deprecated and not supported; push it again with a current tool`, { id: what });
}

/** Parses `linux/amd64`, `linux/arm64/v8`, `arm64` (os defaults to linux). */
export function parsePlatform(text: string): ImagePlatform {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length === 1 && parts[0]) return normalisePlatform({ os: 'linux', architecture: parts[0] });
  if ((parts.length === 2 || parts.length === 3) && parts.every((p) => /^[a-z0-9_.-]+$/.test(p))) {
    return normalisePlatform({ os: parts[0]!, architecture: parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) });
  }
  throw new HutchError('EINVAL', `invalid platform "${text}": expected os/arch[/variant], e.g. linux/arm64`, { id: text });
}

/** `linux/arm64/v8`. */
export function formatPlatform(p: ImagePlatform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

// Aliases the field uses (GOARCH names are canonical).
const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm', i386: '386', i686: '386' };
// The variant an architecture has when none is written.
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7' };

/** Canonical names: x86_64 → amd64, aarch64 → arm64. */
export function normalisePlatform(p: ImagePlatform): ImagePlatform {
  const architecture = ARCH_ALIASES[p.architecture] ?? p.architecture;
  const out: ImagePlatform = { os: p.os, architecture };
  if (p.variant) out.variant = p.variant;
  return out;
}

/** The platform of this machine, as an index names it. */
export function hostPlatform(): ImagePlatform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

/**
 * True when an image of platform `have` serves `want`: os and architecture match (by their canonical
 * names); a wanted variant must match, a missing one counting as the architecture's default.
 */
export function platformMatches(have: ImagePlatform, want: ImagePlatform): boolean {
  const [h, w] = [normalisePlatform(have), normalisePlatform(want)];
  const variantOf = (p: ImagePlatform): string | undefined => p.variant ?? DEFAULT_VARIANT[p.architecture];
  if (h.os !== w.os || h.architecture !== w.architecture) return false;
  return !w.variant || variantOf(h) === variantOf(w);
}

/**
 * The index entry for `want`: os and architecture must match; a wanted variant must match (an entry
 * without one counts as the architecture's default); with none wanted, the default or lowest variant wins.
 * None fits → ENOTFOUND listing the platforms the index has.
 */
export function selectPlatform(index: ImageIndex, want: ImagePlatform, what: string): Descriptor {
  const w = normalisePlatform(want);
  const candidates = index.manifests.filter((d) => d.platform && isImageManifestType(d.mediaType) && platformMatches(d.platform, w));
  if (candidates.length) {
    const rank = (d: Descriptor): string => {
      const v = d.platform!.variant;
      return !v || v === DEFAULT_VARIANT[w.architecture] ? '' : v;
    };
    return [...candidates].sort((a, b) => rank(a).localeCompare(rank(b)))[0]!;
  }
  const have = index.manifests
    .filter((d) => d.platform && d.platform.os !== 'unknown')
    .map((d) => formatPlatform(d.platform!));
  throw new HutchError('ENOTFOUND', `${what} has no image for ${formatPlatform(w)} (it has ${have.length ? [...new Set(have)].join(', ') : 'no platforms listed'})`, { id: what });
}

function isImageManifestType(mediaType: string): boolean {
  // Attestations and other artifacts in an index carry other types; an entry without a known type is allowed.
  return !mediaType || MANIFEST_TYPES.has(mediaType);
}
