/**
 * `vidprior jobs list|show|cancel|attach|delete|models`: the daemon's jobs from a terminal or a script (--json).
 */
import type { CommandModule } from 'yargs';
import { JOB_STATES, type JobState, type JobSummary } from '../../protocol/messages.js';
import { clientOptions, connectFromArgs, follow, reporterFor, type ClientArgs } from './client-common.js';

interface JobsArgs extends ClientArgs {
  action: 'list' | 'show' | 'cancel' | 'attach' | 'delete' | 'models';
  id?: string;
  state?: JobState;
  limit: number;
  output?: string;
  'from-index': number;
}

function line(j: JobSummary): string {
  const pct = `${Math.round(j.fraction * 100)}%`.padStart(4);
  const err = j.error ? `  [${j.error.code}] ${j.error.message}` : '';
  // Training jobs count iterations (a run job also has frames to stylize afterwards).
  const work = [
    ...(j.iterations_total !== undefined ? [`${j.iterations_done ?? 0}/${j.iterations_total} iterations`] : []),
    ...(j.frames_total > 0 || j.iterations_total === undefined ? [`${j.frames_done}/${j.frames_total} frames`] : []),
  ].join(', ');
  return `${j.id}  ${j.kind.padEnd(13)} ${j.state.padEnd(9)} ${pct}  ${work}  ${j.name ?? ''}${err}`;
}

export const jobsCommand: CommandModule<object, JobsArgs> = {
  command: 'jobs <action> [id]',
  describe: "List, show, cancel, attach to or delete the daemon's jobs; list its models and adapters",
  builder: (yargs) =>
    clientOptions(yargs)
      .positional('action', {
        type: 'string',
        choices: ['list', 'show', 'cancel', 'attach', 'delete', 'models'] as const,
        demandOption: true,
      })
      .positional('id', { type: 'string', describe: 'the job id (show, cancel, attach, delete)' })
      .option('state', { type: 'string', choices: JOB_STATES, describe: 'list: only jobs in this state' })
      .option('limit', { type: 'number', default: 50, describe: 'list: at most this many (newest first)' })
      .option('output', { type: 'string', describe: 'attach: write the frames (replayed and new) to this folder' })
      .option('from-index', { type: 'number', default: 0, describe: 'attach: replay frames from this output index' })
      .check((a) =>
        ['show', 'cancel', 'attach', 'delete'].includes(a.action as string) && !a.id
          ? `jobs ${a.action} needs a job id`
          : true,
      )
      .example('$0 jobs list --state running', '')
      .example('$0 jobs attach j-20261125-142301-3fa9c2 --output styled/', 'follow a job, writing its frames') as never,
  handler: async (argv) => {
    const reporter = reporterFor(argv);
    const client = await connectFromArgs(argv);
    try {
      switch (argv.action) {
        case 'list': {
          const jobs = await client.listJobs({ ...(argv.state ? { state: argv.state } : {}), limit: argv.limit });
          reporter.result({ jobs }, jobs.length ? jobs.map(line).join('\n') : 'no jobs');
          break;
        }
        case 'show': {
          const job = await client.getJob(argv.id!);
          reporter.result(
            { job },
            `${line(job)}\nparams: ${JSON.stringify(job.params)}\ninputs: ${job.inputs.length}  outputs done: ${job.outputs.filter(Boolean).length}${job.position !== undefined ? `  queue position: ${job.position}` : ''}`,
          );
          break;
        }
        case 'cancel':
          await client.cancel(argv.id!);
          reporter.result({ job: argv.id, cancelled: true }, `cancel sent to ${argv.id}`);
          break;
        case 'attach': {
          const job = await client.attach(argv.id!, { fromIndex: argv['from-index'] });
          const done = await follow(job, reporter, argv.output);
          reporter.result(
            { job: job.id, outputs: done.outputs, elapsed_s: done.elapsed_s },
            `job ${job.id} done: ${done.outputs.frames} frame(s)`,
          );
          break;
        }
        case 'delete':
          await client.deleteJob(argv.id!);
          reporter.result({ job: argv.id, deleted: true }, `deleted ${argv.id}`);
          break;
        case 'models': {
          const { models, adapters } = await client.listModels();
          reporter.result(
            { models, adapters },
            [
              ...models.map(
                (m) =>
                  `model    ${m.name}${m.default ? ' (default)' : ''}${m.loaded ? ' (loaded)' : ''}: ${m.description}`,
              ),
              ...adapters.map((a) => `adapter  ${a.name}  ${a.bytes} bytes${a.job ? `  from ${a.job}` : ''}`),
            ].join('\n'),
          );
          break;
        }
      }
    } finally {
      await client.close();
    }
  },
};
