// The host's side of a forward: on a fresh agent connection, one `connect` call; once the agent
// answers it, the connection's bytes are those of a TCP connection to a port on the sandbox's
// loopback. The answer is untrusted like any other: size-limited and schema-checked.
import type * as net from 'node:net';
import { HutchError } from '../errors.js';
import { checkResponse, encodeJsonFrame, FrameType, parseJsonPayload, resultChecks, type ConnectParams } from './protocol.js';

/** Largest answer to a `connect` accepted (an error message of 8 KiB and its envelope fit). */
const MAX_CONNECT_ANSWER = 16 * 1024;
/** The request id of the one call of a forward's connection. */
const CONNECT_ID = 1;

/**
 * Sends `connect` over `sock` (an agent connection nothing else reads) and resolves to `sock` once
 * the agent answered: from then on it is the byte pipe (bytes that came after the answer are put
 * back to be read first). An error answer rejects with the agent's code (ENETWORK: nothing listens).
 */
export function forwardOver(sock: net.Socket, params: ConnectParams, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const fail = (e: HutchError): void => {
      cleanup();
      sock.destroy();
      reject(e);
    };
    // Read in paused mode ('readable'), so that once the listener goes the socket is neither flowing
    // (bytes would be lost) nor paused for good (its next reader's 'data' listener starts it).
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (!settled && (chunk = sock.read() as Buffer | null) !== null) onData(chunk);
    };
    let settled = false;
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < 5) return;
      const length = buffered.readUInt32BE(0);
      if (length === 0 || length > MAX_CONNECT_ANSWER || buffered.readUInt8(4) !== FrameType.RESPONSE) {
        return fail(new HutchError('EPROTO', `the agent answered connect with a frame of type ${buffered.readUInt8(4)} and ${length} bytes`));
      }
      if (buffered.length < 4 + length) return;
      let answer;
      try {
        answer = checkResponse(parseJsonPayload(buffered.subarray(5, 4 + length)), 'connect response');
        if (answer.id !== CONNECT_ID) throw new HutchError('EPROTO', `the agent answered call ${answer.id}, not connect`);
        if ('result' in answer) resultChecks.connect(answer.result, 'connect result');
      } catch (e) {
        return fail(e instanceof HutchError ? e : new HutchError('EPROTO', `the agent answered connect wrongly: ${(e as Error).message}`, { cause: e }));
      }
      if ('error' in answer) {
        // An agent from before forwards answers as it does any method it does not know.
        if (answer.error.code === 'EINVAL' && /^unknown method connect/.test(answer.error.message)) {
          return fail(new HutchError('EUNSUPPORTED', 'its agent predates port forwards: a sandbox made by this hutch version has one that forwards'));
        }
        return fail(new HutchError(answer.error.code, answer.error.message));
      }
      cleanup();
      const rest = buffered.subarray(4 + length);
      if (rest.length > 0) sock.unshift(rest);
      // The caller may end its side (its request sent) and still read the answer.
      sock.allowHalfOpen = true;
      resolve(sock);
    };
    const onEnd = (): void => fail(new HutchError('EPROTO', 'the agent closed the connection before answering connect'));
    const onError = (e: Error): void => fail(new HutchError('EPROTO', `agent connection: ${e.message}`, { cause: e }));
    const timer = setTimeout(() => fail(new HutchError('ETIMEDOUT', `the agent did not answer connect to port ${params.port} within ${timeoutMs} ms`)), timeoutMs);
    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      sock.off('readable', onReadable);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
    };
    sock.on('readable', onReadable);
    sock.on('end', onEnd);
    sock.on('close', onEnd);
    sock.on('error', onError);
    sock.write(encodeJsonFrame(FrameType.REQUEST, { id: CONNECT_ID, method: 'connect', params }));
  });
}
