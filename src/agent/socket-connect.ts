// One socket connect with a deadline, shared by the host's client (the agent's unix socket) and the
// agent's port forward (a TCP port on the sandbox's loopback).
import type * as net from 'node:net';
import type { HutchError } from '../errors.js';

/** Resolves with `sock` once it connects; rejects (destroying it) with `timedOut()` after `timeoutMs` or with `failed(e)` on an error. */
export function connectedWithin(sock: net.Socket, timeoutMs: number, timedOut: () => HutchError, failed: (e: NodeJS.ErrnoException) => HutchError): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const fail = (e: HutchError): void => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(timedOut()), timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(sock);
    });
    sock.once('error', (e) => fail(failed(e)));
  });
}
