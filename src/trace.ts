// Phase timings for finding where time goes: HUTCH_TRACE=1 prints each mark with the
// milliseconds since the process started. Costs one env lookup per mark when unset.
const enabled = process.env.HUTCH_TRACE === '1';

/** Prints `label` with the time since process start, when HUTCH_TRACE=1. */
export function traceMark(label: string): void {
  if (enabled) process.stderr.write(`[hutch ${performance.now().toFixed(1)} ms] ${label}\n`);
}
