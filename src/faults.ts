// Fault injection for the crash tests: HUTCH_CRASH_AT=<point> makes hutch SIGKILL itself there,
// the way a power cut or an OOM kill would stop it. Costs one env lookup when unset.

/** Kills this process at once if HUTCH_CRASH_AT names `point`. */
export function crashPoint(point: string): void {
  if (process.env.HUTCH_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
