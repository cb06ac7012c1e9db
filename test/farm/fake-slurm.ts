/**
 * A stand-in for Slurm's client commands, for tests that need a daemon with a Slurm target but not a cluster
 * (the add-on's farm test): `sbatch` runs the batch script at once, in the foreground (each array task in turn,
 * with SLURM_ARRAY_TASK_ID set), and prints a job id; `squeue` then has nothing queued; `sacct` and `scontrol`
 * know nothing (as Slurm without accounting, after MinJobAge). Submission order is dependency order, so
 * `--dependency` needs no handling. The real one-node Slurm is in slurm-cluster.ts.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SBATCH = `#!/bin/bash
# fake sbatch: runs the script now
dir="$(dirname "$0")"
array=""; script=""
for a in "$@"; do
  case "$a" in
    --version) echo "slurm 0.0.0 (fake)"; exit 0 ;;
    --array=*) array="\${a#--array=}" ;;
    -*) ;;
    *) script="$a" ;;
  esac
done
id=$(cat "$dir/next-id" 2>/dev/null || echo 100)
echo $((id + 1)) > "$dir/next-id"
run() { SLURM_JOB_ID=$id SLURM_ARRAY_TASK_ID=$1 bash "$script" >> "$dir/jobs.log" 2>&1 || { echo "sbatch (fake): $script failed" >&2; exit 1; }; }
if [ -n "$array" ]; then
  IFS=, read -ra parts <<< "$array"
  for p in "\${parts[@]}"; do
    if [[ "$p" == *-* ]]; then for k in $(seq "\${p%-*}" "\${p#*-}"); do run "$k"; done; else run "$p"; fi
  done
else
  run ""
fi
echo "$id"
`;

/** Writes sbatch, squeue, sacct, scontrol and scancel into `dir`; put it first on PATH. */
export function writeFakeSlurm(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const scripts: Record<string, string> = {
    sbatch: SBATCH,
    squeue: '#!/bin/sh\nexit 0\n',
    sacct: '#!/bin/sh\necho "Slurm accounting storage is disabled" >&2\nexit 1\n',
    scontrol: '#!/bin/sh\necho "slurm_load_jobs error: Invalid job id specified" >&2\nexit 1\n',
    scancel: '#!/bin/sh\nexit 0\n',
  };
  for (const [name, text] of Object.entries(scripts)) {
    writeFileSync(join(dir, name), text);
    chmodSync(join(dir, name), 0o755);
  }
}
