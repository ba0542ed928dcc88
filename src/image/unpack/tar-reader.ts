// A push parser for tar streams (ustar, GNU long names, pax extended headers). Bytes go
// in as they arrive; entries and their bodies come out through a sink, synchronously, so the caller's
// read loop is the only place with backpressure. Nothing is allocated from a declared size except
// meta headers, which are capped; a body's bytes are handed on as slices of the input chunks.
import { HutchError } from '../../errors.js';

/** One tar entry, after its pax/GNU headers are applied. The name is raw: the writer checks it. */
export interface TarEntry {
  name: string;
  /** The typeflag: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo... */
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch, possibly fractional (pax). */
  mtime: number;
  atime: number | undefined;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** xattrs from pax `SCHILY.xattr.*` records, by xattr name. */
  xattrs: Map<string, Buffer> | undefined;
  /** Keys of xattr pax records in other forms (LIBARCHIVE.xattr.*): not applied, reported. */
  otherPax: string[] | undefined;
  /** Byte offset of the entry's header in the uncompressed stream. */
  offset: number;
}

/** Receives what the reader finds. */
export interface TarSink {
  /** A new entry; its body (entry.size bytes, if the type has one) follows through `data`. */
  entry(e: TarEntry): void;
  /** The next slice of the current entry's body. */
  data(chunk: Buffer): void;
  /** The current entry's body is complete. */
  endEntry(): void;
}

/** Limits on what a stream may make the reader hold. */
export interface TarReaderLimits {
  /** Largest pax or GNU long-name header body, in bytes. */
  maxMetaBytes: number;
  /** Most meta headers in a row before an entry. */
  maxMetaRun: number;
}

const BLOCK = 512;
/** Types whose size field is not followed by data (as Go's archive/tar reads them). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
const META = new Set(['x', 'g', 'L', 'K']);

type State = 'header' | 'body' | 'meta' | 'pad' | 'end';

/** Parses a tar stream written to it chunk by chunk; throws a HutchError naming the layer on bad input. */
export class TarReader {
  private state: State = 'header';
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private remaining = 0;
  private padRemaining = 0;
  private meta: Buffer | undefined;
  private metaFill = 0;
  private metaType = '';
  private metaRun = 0;
  private local = new Map<string, Buffer>();
  private longName: string | undefined;
  private longLink: string | undefined;
  private offset = 0;
  private headerOffset = 0;
  private current: string | undefined;
  private last: string | undefined;
  /** Entries seen (meta headers not counted). */
  entries = 0;

  constructor(private readonly sink: TarSink, private readonly label: string, private readonly limits: TarReaderLimits) {}

  /** Where the stream is, for error messages: `at entry X`, `after entry X` or `at the start`. */
  where(): string {
    if (this.current !== undefined) return `at entry ${JSON.stringify(this.current)}`;
    return this.last === undefined ? 'at the start' : `after entry ${JSON.stringify(this.last)}`;
  }

  /** Feeds the next bytes of the stream. */
  write(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case 'end':
          this.offset += len - pos;
          return;
        case 'header': {
          if (this.headerFill === 0 && len - pos >= BLOCK) {
            this.headerOffset = this.offset;
            this.offset += BLOCK;
            this.parseHeader(chunk.subarray(pos, pos + BLOCK));
            pos += BLOCK;
            break;
          }
          if (this.headerFill === 0) this.headerOffset = this.offset;
          const n = Math.min(BLOCK - this.headerFill, len - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + n);
          this.headerFill += n;
          pos += n;
          this.offset += n;
          if (this.headerFill === BLOCK) {
            this.headerFill = 0;
            this.parseHeader(this.header);
          }
          break;
        }
        case 'body': {
          const n = Math.min(this.remaining, len - pos);
          this.sink.data(pos === 0 && n === len ? chunk : chunk.subarray(pos, pos + n));
          pos += n;
          this.offset += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finishBody();
          break;
        }
        case 'meta': {
          const n = Math.min(this.remaining, len - pos);
          chunk.copy(this.meta!, this.metaFill, pos, pos + n);
          this.metaFill += n;
          pos += n;
          this.offset += n;
          this.remaining -= n;
          if (this.remaining === 0) this.finishMeta();
          break;
        }
        case 'pad': {
          const n = Math.min(this.padRemaining, len - pos);
          pos += n;
          this.offset += n;
          this.padRemaining -= n;
          if (this.padRemaining === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** The stream ended: throws unless it ended at the end-of-archive marker. */
  finish(): void {
    if (this.state === 'end') return;
    if (this.offset === 0) throw this.fail('EINTEGRITY', 'is empty (not a tar archive)');
    if (this.state === 'header' && this.headerFill === 0 && this.current === undefined) {
      throw this.fail('EINTEGRITY', `is truncated ${this.where()} (no end-of-archive marker)`);
    }
    throw this.fail('EINTEGRITY', `is truncated ${this.where()} (offset ${this.offset})`);
  }

  private fail(code: 'EINTEGRITY' | 'EINVAL' | 'EUNSUPPORTED', what: string): HutchError {
    return new HutchError(code, `layer ${this.label} ${what}`, { id: this.label });
  }

  private parseHeader(h: Buffer): void {
    if (isZeroBlock(h)) {
      // The end-of-archive marker (two zero blocks; one is accepted). Anything after it is padding.
      if (this.metaRun > 0) throw this.fail('EINTEGRITY', `is corrupt: it ends right after a pax/GNU header ${this.where()}`);
      this.state = 'end';
      return;
    }
    if (!checksumOk(h)) {
      throw this.fail('EINTEGRITY', this.offset === BLOCK
        ? 'is not a tar archive (bad header checksum at offset 0)'
        : `is corrupt: bad tar header checksum at offset ${this.headerOffset}, ${this.where()}`);
    }
    const type = String.fromCharCode(h[156]!) === '\0' ? '0' : String.fromCharCode(h[156]!);
    const size = this.number(h, 124, 12, 'size');
    if (META.has(type)) {
      if (++this.metaRun > this.limits.maxMetaRun) throw this.fail('EINVAL', `has more than ${this.limits.maxMetaRun} pax/GNU headers in a row ${this.where()}`);
      if (size > this.limits.maxMetaBytes) {
        throw this.fail('EINVAL', `has a ${type === 'x' || type === 'g' ? 'pax' : 'GNU long name'} header of ${size} bytes ${this.where()} (limit ${this.limits.maxMetaBytes})`);
      }
      this.metaType = type;
      this.meta = Buffer.allocUnsafe(size);
      this.metaFill = 0;
      this.remaining = size;
      this.padRemaining = padOf(size);
      if (size === 0) this.finishMeta();
      else this.state = 'meta';
      return;
    }
    this.metaRun = 0;
    const ustar = h.toString('latin1', 257, 263) === 'ustar\0';
    let name = cString(h, 0, 100);
    if (ustar) {
      const prefix = cString(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const pax = this.local;
    const e: TarEntry = {
      name: this.longName ?? name,
      type,
      size: HEADER_ONLY.has(type) ? 0 : size,
      mode: this.number(h, 100, 8, 'mode') & 0o7777,
      uid: this.number(h, 108, 8, 'uid'),
      gid: this.number(h, 116, 8, 'gid'),
      mtime: this.number(h, 136, 12, 'mtime'),
      atime: undefined,
      linkname: this.longLink ?? cString(h, 157, 100),
      devmajor: this.number(h, 329, 8, 'devmajor'),
      devminor: this.number(h, 337, 8, 'devminor'),
      xattrs: undefined,
      otherPax: undefined,
      offset: this.headerOffset,
    };
    if (pax.size) this.applyPax(e, pax);
    this.local = new Map();
    this.longName = this.longLink = undefined;
    if (type === 'S') throw this.fail('EUNSUPPORTED', `entry ${JSON.stringify(e.name)} is a GNU sparse file (not supported)`);
    this.entries++;
    this.current = e.name;
    this.sink.entry(e);
    this.remaining = e.size;
    this.padRemaining = padOf(e.size);
    if (e.size === 0) this.finishBody();
    else this.state = 'body';
  }

  private finishBody(): void {
    this.sink.endEntry();
    this.last = this.current;
    this.current = undefined;
    this.state = this.padRemaining ? 'pad' : 'header';
  }

  private finishMeta(): void {
    const body = this.meta!;
    this.meta = undefined;
    this.state = this.padRemaining ? 'pad' : 'header';
    if (this.metaType === 'L') this.longName = cString(body, 0, body.length, 'utf8');
    else if (this.metaType === 'K') this.longLink = cString(body, 0, body.length, 'utf8');
    else if (this.metaType === 'x') for (const [k, v] of this.paxRecords(body)) this.local.set(k, v);
    // A global header ('g', e.g. git archive's commit id) is checked but not applied: Docker and
    // containerd ignore them too, and a layer must unpack the same here as there.
    else this.paxRecords(body);
  }

  /** `len key=value\n` records; a malformed one is an error (a lying length must not be trusted). */
  private paxRecords(body: Buffer): [string, Buffer][] {
    const out: [string, Buffer][] = [];
    let pos = 0;
    while (pos < body.length) {
      if (body[pos] === 0) break; // some writers pad the body with NULs
      const space = body.indexOf(0x20, pos);
      const len = space > pos && space - pos <= 20 ? Number(body.toString('latin1', pos, space)) : NaN;
      if (!Number.isSafeInteger(len) || len <= space - pos || pos + len > body.length || body[pos + len - 1] !== 0x0a) {
        throw this.fail('EINTEGRITY', `is corrupt: malformed pax record at offset ${pos} of the pax header ${this.where()}`);
      }
      const eq = body.indexOf(0x3d, space + 1);
      if (eq < 0 || eq >= pos + len - 1) throw this.fail('EINTEGRITY', `is corrupt: pax record without "=" ${this.where()}`);
      out.push([body.toString('utf8', space + 1, eq), body.subarray(eq + 1, pos + len - 1)]);
      pos += len;
    }
    return out;
  }

  private applyPax(e: TarEntry, pax: Map<string, Buffer>): void {
    for (const [key, raw] of pax) {
      const value = (): string => raw.toString('utf8');
      switch (key) {
        case 'path': e.name = value(); break;
        case 'linkpath': e.linkname = value(); break;
        case 'size': if (!HEADER_ONLY.has(e.type)) e.size = this.paxNumber(value(), 'size', e.name); break;
        case 'uid': e.uid = this.paxNumber(value(), 'uid', e.name); break;
        case 'gid': e.gid = this.paxNumber(value(), 'gid', e.name); break;
        case 'mtime': e.mtime = this.paxTime(value(), e.name); break;
        case 'atime': e.atime = this.paxTime(value(), e.name); break;
        case 'uname': case 'gname': case 'ctime': case 'comment': case 'charset': case 'hdrcharset': break;
        default:
          if (key.startsWith('SCHILY.xattr.')) (e.xattrs ??= new Map()).set(key.slice('SCHILY.xattr.'.length), raw);
          else if (key.startsWith('GNU.sparse.')) throw this.fail('EUNSUPPORTED', `entry ${JSON.stringify(e.name)} is a GNU sparse file (not supported)`);
          else if (key.includes('.xattr.')) (e.otherPax ??= []).push(key);
      }
    }
  }

  private paxNumber(v: string, field: string, name: string): number {
    const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw this.fail('EINTEGRITY', `is corrupt: entry ${JSON.stringify(name)} has a bad pax ${field} ${JSON.stringify(v.slice(0, 40))}`);
    return n;
  }

  private paxTime(v: string, name: string): number {
    const n = /^-?\d{1,16}(\.\d*)?$/.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(n)) throw this.fail('EINTEGRITY', `is corrupt: entry ${JSON.stringify(name)} has a bad pax time ${JSON.stringify(v.slice(0, 40))}`);
    return n;
  }

  /** A numeric header field: octal text, or GNU base-256 when the first byte's high bit is set. */
  private number(h: Buffer, offset: number, width: number, field: string): number {
    const first = h[offset]!;
    if (first & 0x80) {
      let v = first === 0xff ? -1n : BigInt(first & 0x7f);
      for (let i = 1; i < width; i++) v = (v << 8n) | BigInt(h[offset + i]!);
      if (first === 0xff) v = -(BigInt.asUintN((width - 1) * 8, ~v) + 1n);
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
        throw this.fail('EINTEGRITY', `has a ${field} too large to be real at offset ${this.headerOffset}, ${this.where()}`);
      }
      const n = Number(v);
      if (n < 0 && field === 'size') throw this.fail('EINTEGRITY', `is corrupt: negative size at offset ${this.headerOffset}, ${this.where()}`);
      return n;
    }
    let n = 0;
    let i = offset;
    const end = offset + width;
    while (i < end && (h[i] === 0x20 || h[i] === 0)) i++;
    for (; i < end; i++) {
      const c = h[i]!;
      if (c >= 0x30 && c <= 0x37) n = n * 8 + (c - 0x30);
      else if (c === 0x20 || c === 0) break;
      else throw this.fail('EINTEGRITY', `is corrupt: bad ${field} field at offset ${this.headerOffset}, ${this.where()}`);
    }
    return n;
  }
}

function padOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function isZeroBlock(h: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

/** The header checksum: the sum of its bytes with the checksum field read as spaces (unsigned or signed). */
function checksumOk(h: Buffer): boolean {
  let unsigned = 0, signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const text = h.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').replace(/^[ ]+/, '');
  if (!/^[0-7]{1,8}$/.test(text)) return false;
  const stored = parseInt(text, 8);
  return stored === unsigned || stored === signed;
}

/** A NUL-terminated string field. */
function cString(b: Buffer, offset: number, width: number, encoding: BufferEncoding = 'utf8'): string {
  const end = b.indexOf(0, offset);
  return b.toString(encoding, offset, end < 0 || end > offset + width ? offset + width : end);
}
