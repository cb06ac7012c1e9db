/**
 * The batch scripts of a farm job. Each runs the ordinary `vidprior` command line on a compute node:
 *   finetune.sbatch   vidprior finetune … --resume --output <shared>/adapter.safetensors
 *   stylize.sbatch    vidprior stylize … --frame-range <chunk of $SLURM_ARRAY_TASK_ID> --skip-existing
 *   assemble.sbatch   vidprior farm slurm assemble <shared>
 * The stylize writes each frame atomically and skips those present, so a requeued or preempted task redoes only
 * its missing frames. `exec` hands the task's signals (scancel, preemption) straight to vidprior.
 * Per-submission settings (array, dependency) go on sbatch's command line, not in the scripts.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StageName } from './plan.js';
import { type FarmSpec, farmPaths } from './spec.js';

/** Quotes a word for bash (single quotes; a single quote becomes '\''). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function directives(spec: FarmSpec, stage: StageName): string[] {
  const s = spec.scheduler;
  const logs = farmPaths(spec.shared).logs;
  const log = stage === 'stylize' ? `${stage}-%A_%a.log` : `${stage}-%j.log`;
  const lines = [
    `--job-name=vidprior-${stage}-${spec.name}`,
    `--output=${join(logs, log)}`,
    `--chdir=${spec.shared}`,
    '--ntasks=1',
  ];
  if (s.partition) lines.push(`--partition=${s.partition}`);
  if (s.account) lines.push(`--account=${s.account}`);
  if (s.time) lines.push(`--time=${s.time}`);
  if (s.cpusPerTask) lines.push(`--cpus-per-task=${s.cpusPerTask}`);
  // The assembly only copies or encodes frames: it needs no GPU.
  if (s.gres && stage !== 'assemble') lines.push(`--gres=${s.gres}`);
  lines.push(...(s.extra ?? []));
  // A preempted stylize task goes back to the queue and does what is left.
  if (stage === 'stylize') lines.push('--requeue');
  return lines.map((l) => `#SBATCH ${shellQuote(l)}`);
}

function body(spec: FarmSpec, stage: StageName): string[] {
  const run = spec.command.map(shellQuote).join(' ');
  const words = (args: string[]): string => args.map(shellQuote).join(' ');
  if (stage === 'finetune') {
    // --resume: a requeued or preempted fine-tune goes on from its last checkpoint (a fresh one starts at 0).
    return [`exec ${run} finetune ${words(spec.finetuneArgs)} --resume --output=${shellQuote(spec.adapter.path)}`];
  }
  if (stage === 'stylize') {
    return [
      `chunk=${spec.chunk}`,
      `count=${spec.input.names.length}`,
      'first=$(( SLURM_ARRAY_TASK_ID * chunk ))',
      'last=$(( first + chunk - 1 ))',
      'if (( last >= count )); then last=$(( count - 1 )); fi',
      `exec ${run} stylize ${words(spec.stylizeArgs)} --frame-range="$first-$last" --skip-existing`,
    ];
  }
  return [`exec ${run} farm slurm assemble ${shellQuote(spec.shared)}`];
}

export function stageScript(spec: FarmSpec, stage: StageName): string {
  return [
    '#!/bin/bash',
    `# vidprior farm job ${spec.name}: the ${stage} stage (written by \`vidprior farm slurm submit\`).`,
    ...directives(spec, stage),
    'set -euo pipefail',
    ...body(spec, stage),
    '',
  ].join('\n');
}

/** Writes the three scripts into <shared>/scripts; returns their paths. */
export async function writeStageScripts(spec: FarmSpec): Promise<Record<StageName, string>> {
  const paths = farmPaths(spec.shared);
  await mkdir(paths.scripts, { recursive: true });
  await mkdir(paths.logs, { recursive: true });
  const out = {} as Record<StageName, string>;
  for (const stage of ['finetune', 'stylize', 'assemble'] as const) {
    const file = join(paths.scripts, `${stage}.sbatch`);
    await writeFile(file, stageScript(spec, stage));
    await chmod(file, 0o755);
    out[stage] = file;
  }
  return out;
}
