/**
 * Every `vidprior` command, in the order `--help` lists them. Add a command by writing
 * cli/commands/<name>.ts (a yargs CommandModule) and listing it here.
 */
import type { CommandModule } from 'yargs';
import { tokenizeCommand } from './tokenize.js';
import { modelsCommand } from './models.js';
import { adapterCommand } from './adapter.js';
import { metricsCommand } from './metrics.js';
import { compareCommand } from './compare.js';
import { serveCommand } from './serve.js';
import { watchCommand } from './watch.js';
import { submitCommand } from './submit.js';
import { jobsCommand } from './jobs.js';
import { stylizeCommand } from './stylize.js';
import { editKeyframeCommand } from './edit-keyframe.js';
import { finetuneCommand } from './finetune.js';
import { runCommand } from './run.js';
import { deflickerCommand } from './deflicker.js';
import { farmCommand } from './farm.js';

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules differ in their argument types; the list holds them all
export const commands: CommandModule<any, any>[] = [
  stylizeCommand,
  editKeyframeCommand,
  finetuneCommand,
  runCommand,
  deflickerCommand,
  tokenizeCommand,
  modelsCommand,
  adapterCommand,
  metricsCommand,
  compareCommand,
  serveCommand,
  watchCommand,
  submitCommand,
  jobsCommand,
  farmCommand,
];
