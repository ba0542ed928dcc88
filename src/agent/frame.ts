// Framing of the agent protocol: every message is [u32 BE length][u8 type][payload], where length counts
// the type byte and the payload. Many calls and byte streams share one duplex stream this way.
import { HutchError } from '../errors.js';

/** Largest frame (type byte + payload) either side sends or accepts. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Largest byte count in one data frame; bigger writes are split. */
export const MAX_DATA_CHUNK = 256 * 1024;

/** The frame types. JSON frames carry UTF-8 JSON; DATA and CREDIT are binary. */
export const FrameType = {
  /** host → agent: {id, method, params} */
  REQUEST: 1,
  /** agent → host: {id, result} or {id, error: {code, message, path?}} */
  RESPONSE: 2,
  /** agent → host: {event: 'exit', ...} or {event: 'error', ...} */
  EVENT: 3,
  /** both ways: u32 pid, u8 fd, bytes; zero bytes means end of that stream */
  DATA: 4,
  /** both ways: u32 pid, u8 fd, u32 bytes: the receiver consumed that many bytes of the stream */
  CREDIT: 5,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** One decoded frame. */
export interface Frame { type: FrameTypeCode; payload: Buffer }

const HEADER = 5;

/** Encodes one frame; throws EINVAL if it would exceed MAX_FRAME_BYTES. */
export function encodeFrame(type: FrameTypeCode, payload: Buffer): Buffer {
  if (payload.length + 1 > MAX_FRAME_BYTES) {
    throw new HutchError('EINVAL', `frame of ${payload.length + 1} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
  }
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32BE(payload.length + 1, 0);
  out.writeUInt8(type, 4);
  payload.copy(out, HEADER);
  return out;
}

/** Encodes a JSON control frame (REQUEST, RESPONSE or EVENT). */
export function encodeJsonFrame(type: FrameTypeCode, message: unknown): Buffer {
  return encodeFrame(type, Buffer.from(JSON.stringify(message), 'utf8'));
}

/** The 10-byte head of a DATA frame carrying `length` bytes; the bytes follow it on the wire. */
export function encodeDataHeader(pid: number, fd: number, length: number): Buffer {
  if (length > MAX_DATA_CHUNK) throw new HutchError('EINVAL', `data chunk of ${length} bytes exceeds ${MAX_DATA_CHUNK}`);
  const out = Buffer.allocUnsafe(HEADER + 5);
  out.writeUInt32BE(6 + length, 0);
  out.writeUInt8(FrameType.DATA, 4);
  out.writeUInt32BE(pid, 5);
  out.writeUInt8(fd, 9);
  return out;
}

/** Encodes a whole DATA frame for stream (pid, fd); an empty `bytes` ends the stream. */
export function encodeDataFrame(pid: number, fd: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([encodeDataHeader(pid, fd, bytes.length), bytes]);
}

/** Encodes a CREDIT frame: `bytes` more may be sent on stream (pid, fd). */
export function encodeCreditFrame(pid: number, fd: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER + 9);
  out.writeUInt32BE(10, 0);
  out.writeUInt8(FrameType.CREDIT, 4);
  out.writeUInt32BE(pid, 5);
  out.writeUInt8(fd, 9);
  out.writeUInt32BE(bytes, 10);
  return out;
}

/** A decoded DATA payload. */
export interface DataPayload { pid: number; fd: number; bytes: Buffer }

/** Decodes a DATA payload; EPROTO if it is too short or names an fd other than 0-2. */
export function decodeData(payload: Buffer): DataPayload {
  if (payload.length < 5) throw new HutchError('EPROTO', `data frame of ${payload.length} bytes is too short`);
  const fd = payload.readUInt8(4);
  if (fd > 2) throw new HutchError('EPROTO', `data frame for fd ${fd}: only 0, 1 and 2 exist`);
  if (payload.length - 5 > MAX_DATA_CHUNK) throw new HutchError('EPROTO', `data frame carries more than ${MAX_DATA_CHUNK} bytes`);
  return { pid: payload.readUInt32BE(0), fd, bytes: payload.subarray(5) };
}

/** A decoded CREDIT payload. */
export interface CreditPayload { pid: number; fd: number; bytes: number }

/** Decodes a CREDIT payload; EPROTO unless it is exactly 9 bytes with fd 0-2 and a non-zero count. */
export function decodeCredit(payload: Buffer): CreditPayload {
  if (payload.length !== 9) throw new HutchError('EPROTO', `credit frame of ${payload.length} bytes, expected 9`);
  const fd = payload.readUInt8(4);
  const bytes = payload.readUInt32BE(5);
  if (fd > 2 || bytes === 0) throw new HutchError('EPROTO', `bad credit frame (fd ${fd}, ${bytes} bytes)`);
  return { pid: payload.readUInt32BE(0), fd, bytes };
}

/** Parses a JSON frame payload; EPROTO if it is not valid UTF-8 JSON. */
export function parseJsonPayload(payload: Buffer): unknown {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    return JSON.parse(decoder.decode(payload));
  } catch (e) {
    throw new HutchError('EPROTO', `control frame is not valid JSON: ${(e as Error).message.slice(0, 80)}`, { cause: e });
  }
}

/**
 * Splits a byte stream into frames. Holds at most one incomplete frame (≤ MAX_FRAME_BYTES + 4),
 * and fails for good with EPROTO on an oversized, empty or unknown-type frame: after garbage the
 * stream cannot be resynchronised, so the connection must be dropped.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: HutchError | undefined;

  /** `accepted` lists the frame types the receiving side allows. */
  constructor(private readonly accepted: readonly FrameTypeCode[], private readonly maxFrame = MAX_FRAME_BYTES) {}

  /** Feeds bytes; returns the frames completed by them. Throws EPROTO on bad input. */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw this.failed;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    while (this.buffered >= 4) {
      const length = this.peekLength();
      if (length === 0 || length > this.maxFrame) {
        return this.fail(`frame length ${length} outside 1..${this.maxFrame}`);
      }
      if (this.buffered >= HEADER) {
        const type = this.peekByte(4);
        if (!(this.accepted as readonly number[]).includes(type)) return this.fail(`unexpected frame type ${type}`);
      }
      if (this.buffered < 4 + length) break;
      const whole = this.take(4 + length);
      frames.push({ type: whole.readUInt8(4) as FrameTypeCode, payload: whole.subarray(HEADER) });
    }
    return frames;
  }

  private fail(message: string): never {
    this.failed = new HutchError('EPROTO', message);
    this.chunks = [];
    this.buffered = 0;
    throw this.failed;
  }

  private peekByte(i: number): number {
    for (const c of this.chunks) {
      if (i < c.length) return c[i]!;
      i -= c.length;
    }
    throw new RangeError('peek past buffered bytes');
  }

  private peekLength(): number {
    return ((this.peekByte(0) << 24) >>> 0) + (this.peekByte(1) << 16) + (this.peekByte(2) << 8) + this.peekByte(3);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
