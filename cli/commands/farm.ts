/**
 * `vidprior farm slurm submit|status|cancel|resume|assemble`: the method on a Slurm cluster. The fine-tune is
 * one job, the stylize a job array of frame chunks after it, the assembly one job after the array; every task
 * runs this same command line on its part (see src/farm/). The options of `run` mean what they mean there, and
 * the frames come out byte-identical to `vidprior run` with the same settings.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { config } from '../../src/config.js';
import { assembleFarm } from '../../src/farm/assemble.js';
import { prepareFarm } from '../../src/farm/prepare.js';
import { Slurm } from '../../src/farm/slurm.js';
import { readSpec } from '../../src/farm/spec.js';
import { type FarmStatus, farmStatus, findFarmFolder } from '../../src/farm/state.js';
import { cancelFarm, resumeFarm, submitFarm, type SubmitOutcome } from '../../src/farm/submit.js';
import { finetuneOptions } from './finetune.js';
import { parseEdit } from './keyframes.js';
import { lastValues } from './model-session.js';
import { makeReporter, type Reporter } from './output.js';

/** The program every task runs: this node and this CLI (installed where the compute nodes see it). */
export const VIDPRIOR_COMMAND = [process.execPath, fileURLToPath(new URL('../main.js', import.meta.url))];

/** `run` options handed on to `vidprior finetune`, and to `vidprior stylize`, as they were given. */
const FINETUNE_PASS = [
  'prompt',
  'frames',
  'iters',
  'lr',
  'rank',
  'alpha',
  'max-timestep',
  'conditional-share',
  'convs',
  'full',
  'accumulate',
  'precision',
  'recompute',
  'memory-limit',
  'seed',
  'checkpoint-every',
  'model',
  'model-config',
  'dtype',
  'lora',
  'ep',
  'fit',
];
const STYLIZE_PASS = [
  'work-size',
  'memory-limit',
  'prompt',
  'negative-prompt',
  'strength',
  'steps',
  'guidance',
  'seed',
  'noise-file',
  'model',
  'model-config',
  'dtype',
  'lora',
  'ep',
  'fit',
];
/** Options whose value is a file: made absolute, since tasks run in the shared folder. */
const PATH_OPTIONS = ['model', 'model-config', 'noise-file'];

function absoluteIfFile(value: string): string {
  return existsSync(value) ? resolve(value) : value; // a hub repo id (owner/name) stays as it is
}

/** `--name=value` words for the options in `names` that have a value. */
export function passArgs(argv: Record<string, unknown>, names: string[]): string[] {
  const words: string[] = [];
  for (const name of names) {
    const value = argv[name];
    if (value === undefined || value === null) continue;
    if (typeof value === 'boolean') words.push(value ? `--${name}` : `--no-${name}`);
    else if (Array.isArray(value)) {
      for (const v of value) {
        const m = /^(.*?)(:[0-9.]+)?$/.exec(String(v))!; // file.safetensors[:weight]
        words.push(`--${name}=${absoluteIfFile(m[1]!)}${m[2] ?? ''}`);
      }
    } else words.push(`--${name}=${PATH_OPTIONS.includes(name) ? absoluteIfFile(String(value)) : String(value)}`);
  }
  return words;
}

const slurmOptions = (y: Argv) =>
  y
    .option('chunk', { type: 'number', default: 25, describe: 'frames per stylize task (one array element)' })
    .option('shared-dir', {
      type: 'string',
      describe: 'the folder every node sees, for inputs, frames and logs (default: beside the output, <output>.farm)',
    })
    .option('partition', { type: 'string', describe: 'Slurm partition (sbatch --partition)' })
    .option('gres', { type: 'string', describe: 'generic resources of the GPU stages, e.g. gpu:1 (sbatch --gres)' })
    .option('account', { type: 'string', describe: 'Slurm account (sbatch --account)' })
    .option('time', { type: 'string', describe: 'time limit of each task, e.g. 02:00:00 (sbatch --time)' })
    .option('cpus-per-task', { type: 'number', describe: 'CPUs of each task (sbatch --cpus-per-task)' })
    .option('sbatch-arg', {
      type: 'string',
      array: true,
      default: [],
      describe: 'a further sbatch argument (repeatable)',
    });

function describeOutcome(o: SubmitOutcome): string {
  const s = o.submission;
  if (!s) return 'nothing to submit: every frame is stylized and the output is assembled';
  const parts = [
    s.finetune ? `fine-tune ${s.finetune}` : null,
    s.stylize ? `stylize array ${s.stylize.job} (${s.stylize.chunks.length} tasks)` : null,
    `assembly ${s.assemble}`,
  ].filter(Boolean);
  return `submitted ${parts.join(', ')}`;
}

function describeStatus(s: FarmStatus): string {
  const p = s.progress;
  const lines = [
    `farm job ${s.shared}: ${s.phase}${s.phase === 'stopped' ? ' (`vidprior farm slurm resume` submits what is missing)' : ''}`,
    `  adapter ${p.adapterReady ? 'ready' : 'not yet'}, frames ${p.framesDone}/${p.framesTotal}${p.assembled ? `, output ${s.output}` : ''}`,
  ];
  for (const t of s.tasks) lines.push(`  ${t.id} ${t.state}${t.reason && t.reason !== 'None' ? ` (${t.reason})` : ''}`);
  return lines.join('\n');
}

interface JobArgs {
  job: string;
  json: boolean;
}

const jobPositional = (y: Argv) =>
  y
    .positional('job', { type: 'string', demandOption: true, describe: 'the shared folder, or one of its job ids' })
    .option('json', { type: 'boolean', default: false, describe: 'the result as a JSON line on stdout' });

async function specFor(job: string) {
  return readSpec(await findFarmFolder(job, config().dataDir));
}

const submitCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'submit',
  describe: 'Copy the clip to the shared folder and submit fine-tune → stylize array → assembly',
  builder: (yargs) =>
    slurmOptions(
      finetuneOptions(yargs)
        .option('output', {
          alias: 'o',
          type: 'string',
          demandOption: true,
          describe: 'stylized frames: a folder or a video file (written by the assembly job)',
        })
        .option('adapter', { type: 'string', describe: 'a ready adapter (.safetensors): no fine-tune job' })
        .option('negative-prompt', { type: 'string', default: '', describe: 'what to steer away from' })
        .option('strength', { type: 'number', default: 0.45, describe: 'stylize strength' })
        .option('steps', { type: 'number', default: 50, describe: 'DDIM steps before strength' })
        .option('guidance', { type: 'number', default: 7.5, describe: 'classifier-free guidance scale' })
        .option('noise-file', { type: 'string', describe: 'the initial noise as .npy (default: from --seed)' })
        .option('work-size', {
          type: 'number',
          describe:
            "short side the model works at in the stylize tasks (0: the frames' own; default: the model's native size)",
        }),
    ).example(
      '$0 farm slurm submit -i shot.mp4 --edit 0=edit.png -p "a watercolor" -o styled.mp4 --partition gpu --gres gpu:1',
      'fine-tune on one GPU, then stylize 25 frames per task',
    ) as never,
  handler: async (argv) => {
    const a = lastValues(argv, ['edit', 'lora', 'sbatch-arg']) as Record<string, unknown>;
    const reporter = makeReporter(Boolean(a.json));
    const slurm = new Slurm();
    const spec = await prepareFarm(
      {
        input: String(a.input),
        output: String(a.output),
        shared: a['shared-dir'] as string | undefined,
        edits: (a.edit as string[]).map(parseEdit).map((e) => ({ frame: e.frame, path: resolve(e.path) })),
        adapter: a.adapter as string | undefined,
        chunk: Number(a.chunk),
        command: VIDPRIOR_COMMAND,
        finetuneArgs: passArgs(a, FINETUNE_PASS),
        stylizeArgs: passArgs(a, STYLIZE_PASS),
        scheduler: {
          partition: a.partition as string | undefined,
          gres: a.gres as string | undefined,
          account: a.account as string | undefined,
          time: a.time as string | undefined,
          cpusPerTask: a['cpus-per-task'] as number | undefined,
          extra: a['sbatch-arg'] as string[],
        },
        onNote: (t) => reporter.note(t),
      },
      slurm,
    );
    const outcome = await submitFarm(spec, slurm, config().dataDir);
    reportOutcome(reporter, spec.shared, outcome);
  },
};

function reportOutcome(reporter: Reporter, shared: string, outcome: SubmitOutcome): void {
  reporter.result(
    { shared, submission: outcome.submission, stages: outcome.stages },
    `${describeOutcome(outcome)}\nfarm job: ${shared} (\`vidprior farm slurm status ${shared}\`)`,
  );
}

const statusCommand: CommandModule<object, JobArgs> = {
  command: 'status <job>',
  describe: "A farm job's progress: frames done, Slurm's state of each task",
  builder: jobPositional as never,
  handler: async (argv) => {
    const s = await farmStatus(await specFor(argv.job), new Slurm());
    makeReporter(argv.json).result({ ...s }, describeStatus(s));
  },
};

const cancelCommand: CommandModule<object, JobArgs> = {
  command: 'cancel <job>',
  describe: "Cancel a farm job's queued and running tasks (finished frames stay for resume)",
  builder: jobPositional as never,
  handler: async (argv) => {
    const jobs = await cancelFarm(await specFor(argv.job), new Slurm());
    makeReporter(argv.json).result(
      { cancelled: jobs },
      jobs.length ? `cancelled ${jobs.join(', ')}` : 'nothing was queued',
    );
  },
};

const resumeCommand: CommandModule<object, JobArgs> = {
  command: 'resume <job>',
  describe: 'Submit again only what is missing (the adapter, the chunks that lack frames, the assembly)',
  builder: jobPositional as never,
  handler: async (argv) => {
    const spec = await specFor(argv.job);
    reportOutcome(makeReporter(argv.json), spec.shared, await resumeFarm(spec, new Slurm(), config().dataDir));
  },
};

const assembleCommand: CommandModule<object, JobArgs> = {
  command: 'assemble <job>',
  describe: false as unknown as string, // the assembly task runs it; not for people
  builder: jobPositional as never,
  handler: async (argv) => {
    const reporter = makeReporter(argv.json);
    const s = await assembleFarm(await readSpec(argv.job), (t) => reporter.note(t));
    reporter.result({ ...s }, `assembled ${s.frames} frames into ${s.output}`);
  },
};

export const farmCommand: CommandModule = {
  command: 'farm',
  describe: 'Run the method on a cluster scheduler (Slurm): fine-tune, a job array of stylize chunks, assembly',
  builder: (yargs) =>
    yargs
      .command({
        command: 'slurm',
        describe: 'Submit to, and follow, a Slurm cluster (sbatch, squeue, sacct, scancel)',
        builder: (y) =>
          y
            .command(submitCommand)
            .command(statusCommand)
            .command(cancelCommand)
            .command(resumeCommand)
            .command(assembleCommand)
            .demandCommand(1, 'Give a farm slurm command: submit, status, cancel or resume.'),
        handler: () => {},
      })
      .demandCommand(1, 'Give a scheduler: `vidprior farm slurm …`.'),
  handler: () => {},
};
