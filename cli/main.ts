#!/usr/bin/env node
/**
 * The `vidprior` command line. Each command lives in cli/commands/<name>.ts and is listed in
 * cli/commands/index.ts. This file is the CLI's error boundary: a VidpriorError becomes one line on
 * stderr and a non-zero exit code; only bugs print a stack trace.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { reportCliError } from './commands/output.js';
import { stopAllProgress } from './commands/progress.js';

async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('vidprior')
    .usage('$0 <command> [options]\n\nTemporally consistent video stylization with Stable Diffusion.')
    .strict()
    .demandCommand(1, 'Give a command; `vidprior --help` lists them.')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err; // handled below
      process.stderr.write(`vidprior: ${msg}\nRun with --help for usage.\n`);
      process.exit(2);
    });
  for (const command of commands) cli = cli.command(command);
  await cli.parseAsync();
}

main(hideBin(process.argv))
  .catch((err: unknown) => {
    process.exitCode = reportCliError(err);
  })
  .finally(stopAllProgress);
