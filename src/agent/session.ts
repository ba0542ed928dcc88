// One host connection to the agent: decodes frames, checks every request, runs calls concurrently
// and writes responses, process output and events back. A connection that breaks the framing or the
// protocol gets an error event and is dropped; the agent itself keeps serving others.
import type { Readable, Writable } from 'node:stream';
import { errnoCode, HutchError, isHutchError } from '../errors.js';
import { fsError } from './files.js';
import { connectLoopback, splice } from './forward.js';
import type * as net from 'node:net';
import type { ProcessOwner } from './output.js';
import {
  checkRequest, decodeCredit, decodeData, encodeCreditFrame, encodeDataHeader, encodeJsonFrame, FrameDecoder,
  FrameType, isMethodName, paramChecks, parseJsonPayload, SchemaError,
  type ConnectParams, type ErrorEvent, type EventMessage, type ExitEvent, type Frame, type MethodName, type ResponseMessage, type WireError,
} from './protocol.js';
import type { ProcessTable } from './processes.js';

/** Calls a session can make of the agent. */
export interface Dispatcher {
  readonly table: ProcessTable;
  call(session: Session, method: MethodName, params: unknown): Promise<unknown>;
  closed(session: Session): void;
  log(msg: string): void;
}

/** Most calls one connection may have in flight. */
export const MAX_IN_FLIGHT = 1024;
/** Above this many unsent bytes the connection counts as congested and output sources pause. */
const CONGESTION_BYTES = 1024 * 1024;

/** A Node error, a schema error or a HutchError as the error part of a response. */
export function toWireError(e: unknown): WireError {
  if (e instanceof SchemaError) return { code: 'EINVAL', message: e.message };
  const h = isHutchError(e) ? e : errnoCode(e) ? fsError('call', '', e) : undefined;
  if (!h) return { code: 'EINTERNAL', message: String((e as Error)?.message ?? e).slice(0, 8192) };
  const out: WireError = { code: h.code, message: h.message.slice(0, 8192) };
  if (h.id !== undefined) out.id = h.id.slice(0, 256);
  if (h.path !== undefined) out.path = h.path.slice(0, 4096);
  return out;
}

/** A connection from the host. */
export class Session implements ProcessOwner {
  private readonly decoder = new FrameDecoder([FrameType.REQUEST, FrameType.DATA, FrameType.CREDIT]);
  private readonly inFlight = new Set<number>();
  private closedFlag = false;
  /** Calls received so far (a `connect` must be the first). */
  private requests = 0;
  /** 'connecting' once a `connect` came; 'raw' once its answer went out and the bytes are spliced. */
  private forward: 'connecting' | 'raw' | undefined;
  /** The forward's TCP connection, in raw mode. */
  private forwardSocket: net.Socket | undefined;
  private readonly onData = (chunk: Buffer): void => this.onBytes(chunk);
  private readonly onEnd = (): void => this.close();
  private readonly onInputError = (e: Error): void => { this.agent.log(`${this.label}: ${e.message}`); this.close(); };
  congested = false;

  constructor(private readonly input: Readable, private readonly output: Writable, private readonly agent: Dispatcher,
    readonly label: string) {
    input.on('data', this.onData);
    input.on('end', this.onEnd);
    input.on('close', this.onEnd);
    input.on('error', this.onInputError);
    if ((output as unknown) !== input) output.on('error', this.onInputError);
    output.on('drain', () => {
      this.congested = false;
      this.agent.table.resumeOwned(this);
    });
  }

  /** True once the connection is gone. */
  get isClosed(): boolean {
    return this.closedFlag;
  }

  private onBytes(chunk: Buffer): void {
    if (this.closedFlag) return;
    try {
      for (const frame of this.decoder.push(chunk)) this.onFrame(frame);
    } catch (e) {
      this.fail(e);
    }
  }

  private onFrame(frame: Frame): void {
    if (this.forward) throw new HutchError('EPROTO', 'the host sent a frame after connect, before its answer');
    if (frame.type === FrameType.REQUEST) return this.onRequest(frame.payload);
    if (frame.type === FrameType.DATA) {
      const d = decodeData(frame.payload);
      if (d.fd !== 0) throw new HutchError('EPROTO', `host sent data for fd ${d.fd}; only stdin (0) flows to the agent`);
      // No process: it finished while the frame was in flight.
      this.agent.table.find(d.pid)?.stdinData(this, d.bytes);
      return;
    }
    const c = decodeCredit(frame.payload);
    if (c.fd === 0) throw new HutchError('EPROTO', 'host sent credit for stdin; only output streams take credit');
    this.agent.table.find(c.pid)?.credit(this, c.fd, c.bytes);
  }

  private onRequest(payload: Buffer): void {
    const { id, method, params } = checkRequest(parseJsonPayload(payload), 'request');
    if (this.inFlight.has(id)) throw new HutchError('EPROTO', `request id ${id} is already in flight`);
    if (this.inFlight.size >= MAX_IN_FLIGHT) throw new HutchError('EPROTO', `more than ${MAX_IN_FLIGHT} calls in flight`);
    this.requests++;
    if (method === 'connect') return this.startForward(id, params);
    this.inFlight.add(id);
    const run = async (): Promise<unknown> => {
      if (!isMethodName(method)) throw new HutchError('EINVAL', `unknown method ${method.slice(0, 64)}`);
      const checked = paramChecks[method](params, `${method} params`);
      return this.agent.call(this, method, checked);
    };
    run().then(
      (result) => this.respond({ id, result: result ?? {} }),
      (e) => {
        if (!isHutchError(e) && !(e instanceof SchemaError)) this.agent.log(`${method}: ${(e as Error)?.stack ?? e}`);
        this.respond({ id, error: toWireError(e) });
      },
    );
  }

  /** A `connect`: once the TCP connection stands and the answer is out, this connection is a byte pipe to it. */
  private startForward(id: number, params: unknown): void {
    if (this.requests !== 1) throw new HutchError('EPROTO', 'connect must be the first call of its connection');
    this.forward = 'connecting';
    let checked: ConnectParams;
    try {
      checked = paramChecks.connect(params, 'connect params');
    } catch (e) {
      // A bad port is the caller's error, answered; the connection can serve nothing else, so it ends.
      this.respond({ id, error: toWireError(e) });
      return this.close();
    }
    connectLoopback(checked).then((tcp) => {
      if (this.closedFlag) return void tcp.destroy();
      this.respond({ id, result: {} });
      this.forward = 'raw';
      this.forwardSocket = tcp;
      this.input.off('data', this.onData);
      this.input.off('end', this.onEnd);
      this.input.off('close', this.onEnd);
      this.input.off('error', this.onInputError);
      this.output.off('error', this.onInputError);
      // The host may end its side first (its request sent) and still read the answer.
      (this.input as Partial<net.Socket>).allowHalfOpen = true;
      splice(this.input, this.output, tcp, () => this.close());
    }, (e: unknown) => {
      this.respond({ id, error: toWireError(e) });
      this.close();
    });
  }

  private respond(msg: ResponseMessage): void {
    this.inFlight.delete(msg.id);
    let frame: Buffer;
    try {
      frame = encodeJsonFrame(FrameType.RESPONSE, msg);
    } catch (e) {
      frame = encodeJsonFrame(FrameType.RESPONSE, { id: msg.id, error: { code: 'EINTERNAL', message: (e as Error).message } });
    }
    this.write(frame);
  }

  private write(frame: Buffer): void {
    if (this.closedFlag) return;
    this.output.write(frame);
    if (this.output.writableLength > CONGESTION_BYTES) this.congested = true;
  }

  /** Sends output bytes of a process (an empty chunk ends the stream). */
  sendData(pid: number, fd: number, bytes: Buffer): void {
    if (this.closedFlag) return;
    // Header and bytes go out as one writev, without copying the bytes into a frame buffer.
    this.output.cork();
    this.output.write(encodeDataHeader(pid, fd, bytes.length));
    if (bytes.length > 0) this.output.write(bytes);
    this.output.uncork();
    if (this.output.writableLength > CONGESTION_BYTES) this.congested = true;
  }

  /** Tells the host it may send `bytes` more of stdin. */
  sendCredit(pid: number, fd: number, bytes: number): void {
    this.write(encodeCreditFrame(pid, fd, bytes));
  }

  /** Sends a process's exit event (after all its output). */
  sendExit(ev: ExitEvent): void {
    this.write(encodeJsonFrame(FrameType.EVENT, ev));
  }

  /** Sends an event (a watch's changes or end). */
  sendEvent(ev: EventMessage): void {
    this.write(encodeJsonFrame(FrameType.EVENT, ev));
  }

  /** Reports a protocol violation to the host and drops the connection. */
  private fail(e: unknown): void {
    const w = toWireError(e);
    this.agent.log(`${this.label}: dropping connection: ${w.message}`);
    const ev: ErrorEvent = { event: 'error', code: w.code === 'EINVAL' ? 'EPROTO' : w.code, message: w.message };
    this.write(encodeJsonFrame(FrameType.EVENT, ev));
    this.close();
  }

  /** Ends the connection after what was written is flushed; resolves when flushed or after `timeoutMs`. */
  flushAndClose(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.output.end(() => { clearTimeout(timer); this.input.destroy(); resolve(); });
      this.close();
    });
  }

  /** Stops the session: its processes keep running unowned. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.agent.table.detach(this);
    this.forwardSocket?.destroy();
    // Flush what is queued (an error event, say), then release both directions; a peer that never
    // reads does not get to hold the connection open.
    if (!this.output.writableEnded) this.output.end(() => this.input.destroy());
    setTimeout(() => { this.input.destroy(); this.output.destroy(); }, 5000).unref();
    this.agent.closed(this);
  }
}
