/**
 * `vidprior watch <dir>`: watched-folder mode without the websocket server. Each sub-folder that gets a
 * job.json (written last) becomes a job; status.json, out/ and error.json appear beside it.
 */
import type { CommandModule } from 'yargs';
import { daemonOptions, makeLog, runUntilSignal, startFromArgs, type DaemonArgs } from './serve.js';

interface WatchArgs extends DaemonArgs {
  dir: string;
}

export const watchCommand: CommandModule<object, WatchArgs> = {
  command: 'watch <dir>',
  describe: 'Take jobs from sub-folders of <dir> (frames + job.json); results are written beside them',
  builder: (yargs) =>
    daemonOptions(yargs)
      .positional('dir', { type: 'string', demandOption: true, describe: 'the folder to watch' })
      .example(
        '$0 watch ~/inbox',
        'then: mkdir ~/inbox/shot1, copy frames, write job.json last: {"kind":"stylize","params":{"prompt":"ink"}}',
      ) as never,
  handler: async (argv) => {
    const log = makeLog(argv.json);
    const daemon = await startFromArgs({ ...argv, watch: [argv.dir, ...(argv.watch ?? [])] });
    await runUntilSignal(daemon, log);
  },
};
