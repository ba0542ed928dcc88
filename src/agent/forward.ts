// The agent's side of a forward: a TCP connection to a port on the sandbox's loopback (the agent
// runs in the sandbox's network namespace, so 127.0.0.1 here is the sandbox's own), then the bytes
// of the host's connection and of that TCP connection spliced together, half-closes kept.
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { errnoCode, HutchError } from '../errors.js';
import type { ConnectParams } from './protocol.js';
import { connectedWithin } from './socket-connect.js';

/** How long a connect to the loopback may take (it is answered at once unless the sandbox is overloaded). */
export const LOOPBACK_CONNECT_TIMEOUT_MS = 5_000;

/** Connects to `port` on the sandbox's loopback; ENETWORK when nothing listens there, ETIMEDOUT when it does not answer. */
export function connectLoopback(params: ConnectParams, timeoutMs = LOOPBACK_CONNECT_TIMEOUT_MS): Promise<net.Socket> {
  // localhost is not looked up: the sandbox's /etc/hosts could name any address.
  const host = params.host === 'localhost' ? '127.0.0.1' : params.host;
  const where = `${host.includes(':') ? `[${host}]` : host}:${params.port}`;
  return connectedWithin(net.connect({ host, port: params.port, allowHalfOpen: true }), timeoutMs,
    () => new HutchError('ETIMEDOUT', `connecting to ${where} timed out after ${timeoutMs} ms`),
    (e) => {
      const c = errnoCode(e);
      if (c === 'ECONNREFUSED') return new HutchError('ENETWORK', `nothing listens on port ${params.port} (${where} refused the connection)`, { cause: e });
      return new HutchError('ENETWORK', `cannot connect to ${where}: ${c ?? e.message}`, { cause: e });
    });
}

/**
 * Pipes `input` into `tcp` and `tcp` into `output` with backpressure; an end on one side ends the
 * other's writing (a half-close), an error or a close of either tears both down. `done` runs once.
 */
export function splice(input: Readable, output: Writable, tcp: net.Socket, done: () => void): void {
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    tcp.destroy();
    input.destroy();
    output.destroy();
    done();
  };
  input.pipe(tcp);
  tcp.pipe(output);
  tcp.on('error', finish);
  input.on('error', finish);
  if ((output as unknown) !== input) output.on('error', finish);
  // tcp closes once both of its directions are done (or on an error): the host's connection has
  // then had everything (tcp's end was piped into it) and goes too, after its writes are flushed.
  tcp.on('close', (hadError) => {
    if (hadError || output.writableFinished) return finish();
    output.once('finish', finish);
    output.end();
    setTimeout(finish, 5000).unref();
  });
  // The host's socket closes once both its directions are done, or when it is cut: nothing more
  // can be delivered. (A separate input stream, --stdio's, closes after its end: that is a half-close.)
  input.on('close', () => {
    if ((output as unknown) === input || !input.readableEnded) finish();
  });
}
