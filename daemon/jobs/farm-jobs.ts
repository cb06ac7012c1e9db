/**
 * farm: the whole method (a `run` job) handed off to Slurm (src/farm) instead of run on the daemon's own
 * worker. Available when the daemon was started with a Slurm target (`vidprior serve --slurm`); clients see
 * `kind:farm` in `welcome.capabilities`.
 *   1. the job's frames and edits (already in its job folder) go to <shared>/<job id>, and the stages are
 *      submitted (fine-tune unless `adapter` names one, the stylize array, the assembly);
 *   2. the daemon polls Slurm (squeue/sacct) and the shared folder: progress follows the adapter and the frames
 *      written, each stylized frame is streamed as soon as its task writes it;
 *   3. the job is done when the assembly is; a farm job that stops short (a task failed or was cancelled
 *      outside) fails with E_SCHEDULER naming the tasks and the logs.
 * Cancelling the job cancels its Slurm jobs; a daemon stopped meanwhile leaves them running and, restarted,
 * picks the job up again from its checkpoint (the shared folder), resuming it on Slurm if it had stopped.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VidpriorError } from '../../src/errors.js';
import { prepareFarm } from '../../src/farm/prepare.js';
import { type RunCommand, Slurm } from '../../src/farm/slurm.js';
import { type FarmSpec, type SchedulerOptions, farmPaths, readSpec } from '../../src/farm/spec.js';
import { type FarmStatus, farmStatus } from '../../src/farm/state.js';
import { cancelFarm, resumeFarm, submitFarm } from '../../src/farm/submit.js';
import { outputFrameName } from '../../src/io/inputs.js';
import type { FarmParams } from '../../protocol/params.js';
import type { ExecutorContext, JobExecutor } from './executor.js';
import { checkSomeSteps, stylizeExecutor } from './img2img-jobs.js';
import { EMBEDDED_MODEL_NAME } from './model-host.js';

/** Where and how a daemon hands farm jobs to Slurm (`vidprior serve --slurm …`). */
export interface SlurmTarget {
  /** A folder every compute node sees; each job gets <sharedDir>/<job id>. */
  sharedDir: string;
  scheduler: SchedulerOptions;
  /** Execution provider of the tasks (default auto: each node picks its GPU). */
  ep?: string;
  /** Seconds between polls of Slurm (default 5). */
  pollSeconds?: number;
  /** The program tasks run (default: this node and this vidprior). */
  command?: string[];
  /** Runs the Slurm commands (tests pass a fake). */
  run?: RunCommand;
}

const VIDPRIOR = [process.execPath, fileURLToPath(new URL('../../cli/main.js', import.meta.url))];

/** The abort reason of a cancel (daemon/queue.ts): only then are the Slurm jobs cancelled too. */
const CANCEL_REASON = 'cancel';

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolvePromise) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolvePromise();
    }
  });
}

function stageArgs(p: FarmParams, model: string, ep: string): { finetune: string[]; stylize: string[] } {
  const common = [`--seed=${p.seed}`, `--ep=${ep}`, ...(model === EMBEDDED_MODEL_NAME ? [] : [`--model=${model}`])];
  return {
    finetune: [
      `--prompt=${p.prompt}`,
      `--frames=${p.train_frames}`,
      `--iters=${p.iters}`,
      ...(p.lr !== undefined ? [`--lr=${p.lr}`] : []),
      `--rank=${p.rank}`,
      p.full ? '--full' : '--no-full',
      `--max-timestep=${p.max_timestep}`,
      `--checkpoint-every=${p.checkpoint_every}`,
      ...common,
    ],
    stylize: [
      `--prompt=${p.prompt}`,
      `--negative-prompt=${p.negative_prompt}`,
      `--strength=${p.strength}`,
      `--steps=${p.steps}`,
      `--guidance=${p.guidance}`,
      ...common,
    ],
  };
}

/** Streams the frames the tasks have written since the last poll. */
async function emitNewFrames(ctx: ExecutorContext, spec: FarmSpec): Promise<void> {
  const frames = farmPaths(spec.shared).frames;
  for (const [i, name] of spec.input.names.entries()) {
    if (ctx.isDone(i)) continue;
    const file = join(frames, outputFrameName(name));
    if (existsSync(file)) await ctx.emitFrame(i, await readFile(file));
  }
}

function failure(status: FarmStatus): VidpriorError {
  const failed = status.failed.map((t) => `${t.id} ${t.state}`).join(', ');
  return new VidpriorError(
    'E_SCHEDULER',
    `the farm job stopped before it finished (${failed || 'its tasks left the queue'}; frames ${status.progress.framesDone}/${status.progress.framesTotal}): see ${join(status.shared, 'logs')}`,
    { shared: status.shared, failed: status.failed.map((t) => t.id) },
  );
}

async function runFarm(ctx: ExecutorContext, target: SlurmTarget): Promise<void> {
  const p = ctx.spec.params as FarmParams;
  const slurm = new Slurm(target.run);
  const shared = join(target.sharedDir, ctx.spec.id);
  let spec: FarmSpec;
  // 1. Submit, or pick up the job submitted before a restart (resubmitting what is missing if it stopped).
  if (ctx.checkpoint?.farm === shared && existsSync(farmPaths(shared).spec)) {
    spec = await readSpec(shared);
    if ((await farmStatus(spec, slurm)).phase === 'stopped') await resumeFarm(spec, slurm);
  } else {
    ctx.progress({ stage: 'submitting', fraction: 0, message: `submitting to Slurm (${shared})` });
    const args = stageArgs(p, ctx.model.name, target.ep ?? 'auto');
    spec = await prepareFarm(
      {
        input: dirname(ctx.inputPath(0)),
        output: join(shared, 'out'),
        shared,
        edits: ctx.spec.edits.map((e, k) => ({ frame: e.frame, path: ctx.editPath(k) })),
        adapter: p.adapter ? await ctx.model.adapterPath(p.adapter) : undefined,
        chunk: p.chunk,
        command: target.command ?? VIDPRIOR,
        finetuneArgs: args.finetune,
        stylizeArgs: args.stylize,
        scheduler: target.scheduler,
      },
      slurm,
    );
    await submitFarm(spec, slurm);
    await ctx.saveCheckpoint({ farm: shared });
  }

  // 2. Follow it: Slurm's word and the shared folder, every pollSeconds.
  const trainShare = spec.adapter.given
    ? 0
    : (3 * p.iters) / (3 * p.iters + 2 * spec.input.names.length * p.steps * p.strength);
  for (;;) {
    const status = await farmStatus(spec, slurm);
    await emitNewFrames(ctx, spec);
    const pr = status.progress;
    const fraction =
      (pr.adapterReady ? trainShare : 0) + (1 - trainShare) * (pr.framesDone / Math.max(1, pr.framesTotal));
    ctx.progress({
      stage: !pr.adapterReady ? 'training' : pr.framesDone < pr.framesTotal ? 'stylizing' : 'assembling',
      fraction: Math.min(0.999, fraction),
      message: `Slurm: ${status.phase}, frames ${pr.framesDone}/${pr.framesTotal}`,
    });
    // 3. Done when assembled; stopped short is a failure.
    if (status.phase === 'done') return;
    if (status.phase === 'stopped') throw failure(status);
    await sleep((target.pollSeconds ?? 5) * 1000, ctx.signal);
    if (ctx.signal.aborted) {
      if (ctx.signal.reason === CANCEL_REASON) await cancelFarm(spec, slurm);
      ctx.signal.throwIfAborted();
    }
  }
}

/** The farm executor; without a target it says how to get one. */
export function farmExecutor(target: SlurmTarget | null): JobExecutor {
  return {
    kind: 'farm',
    unavailable: () =>
      target ? null : 'this daemon has no Slurm target: start it with `vidprior serve --slurm` (see docs/cluster.md)',
    plan(job) {
      const p = job.params as FarmParams;
      if (!p.adapter && job.edits.length === 0)
        throw new VidpriorError(
          'E_BAD_REQUEST',
          'a farm job fine-tunes on the edited keyframes: send at least one in "edits", or name a ready "adapter"',
          { field: 'edits' },
        );
      checkSomeSteps(p);
      return stylizeExecutor.plan(job);
    },
    async run(ctx) {
      await runFarm(ctx, target!);
      return {};
    },
  };
}
