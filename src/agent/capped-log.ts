// The agent's own log (its stderr: init.log, a host file in the sandbox's state dir). Sandbox
// processes can make the agent log (a connection to its socket that sends garbage is one line), so
// the log stops at a cap: the host file stays bounded whatever the sandbox does.

/** Bytes the agent logs at most; one last line says that it stopped. */
export const AGENT_LOG_CAP_BYTES = 256 * 1024;

const MAX_LINE = 4096;

/** A logger that writes lines through `write` until `capBytes` have been written, then one notice, then nothing: at most `capBytes` and one notice. */
export function cappedLog(write: (line: string) => void, prefix: string, capBytes = AGENT_LOG_CAP_BYTES): (msg: string) => void {
  let written = 0;
  return (msg) => {
    if (written >= capBytes) return;
    let line = `${prefix}${msg.length > MAX_LINE ? `${msg.slice(0, MAX_LINE)}…` : msg}\n`;
    written += Buffer.byteLength(line);
    if (written >= capBytes) {
      line = `${prefix}log cap of ${capBytes} bytes reached: nothing more is logged\n`;
      written = capBytes;
    }
    write(line);
  };
}
