/**
 * `vidprior compare --original <…> --stylized <a> --stylized <b> … [--labels …] [--json] [--report …]`:
 * several stylized versions of one clip (say per-frame img2img and the fine-tuned method at the same
 * strength) measured on the same flow and occlusion mask, in one table and one plot.
 */
import type { CommandModule } from 'yargs';
import { type MeasureArgs, measureOptions, runMeasurement } from './metrics.js';

/** The same arguments as `metrics` (several --stylized versions instead of one). */
type CompareArgs = MeasureArgs;

export const compareCommand: CommandModule<object, CompareArgs> = {
  command: 'compare',
  describe: 'Compare the temporal consistency of several stylized versions of one video, side by side',
  builder: (yargs) =>
    measureOptions(yargs)
      .option('stylized', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'a stylized version (folder of frames or video); repeat for each version',
      })
      .option('labels', {
        type: 'string',
        array: true,
        describe: 'a name for each --stylized, in the same order (default: their folder or file names)',
      })
      .example(
        '$0 compare --original clip/ --stylized img2img/ --stylized finetuned/ --labels img2img fine-tuned --report cmp.png',
        'one table and one plot for both versions',
      ) as never,
  handler: async (argv) => {
    await runMeasurement(
      { ...argv, stylized: argv.stylized.map(String), labels: argv.labels?.map(String) },
      'Temporal consistency: comparison',
    );
  },
};
