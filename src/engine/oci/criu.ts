// Whether CRIU (what runc checkpoints and restores with) works on this host.
import { spawnSync } from 'node:child_process';

/** What `criu check` says on this host: null when CRIU works, else the reason it cannot. */
export function criuProblem(criu: string): string | null {
  const r = spawnSync(criu, ['check'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return `${criu} is not available (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
  if (r.status === 0) return null;
  const lines = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim()).filter(Boolean);
  return `criu check failed: ${lines.find((l) => /^Error/.test(l)) ?? lines[lines.length - 1] ?? `exit code ${r.status}`}`;
}
