/**
 * `vidprior metrics --original <dir|video> --stylized <dir|video> [--json] [--report <file.html|png|svg>]`:
 * temporal consistency of a stylized video against its original (Lai et al. 2018's warping error with flow
 * and occlusion from the original, plus flicker), per frame pair and overall, and optionally a visual report.
 * `compare` (compare.ts) runs the same measurement for several stylized versions; both share `runMeasurement`.
 */
import { basename, extname } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { makeReporter, type Reporter } from './output.js';
import { check } from '../../src/errors.js';
import {
  disEstimator,
  measureConsistency,
  type ConsistencyResult,
  type FlowEstimator,
} from '../../src/metrics/consistency.js';
import { DisWorkerPool } from '../../src/metrics/flow-worker.js';
import { OnnxFlowEstimator } from '../../src/metrics/flow-onnx.js';
import type { ExecutionProviderChoice } from '../../src/runtime/index.js';
import { openSequence, type ClosableSequence } from '../../src/metrics/frames.js';
import { ThumbnailStore, checkReportPath, writeReport } from '../../src/metrics/report.js';
import { fmt } from '../../src/metrics/report-svg.js';

export interface MeasureArgs {
  original: string;
  stylized: string[];
  labels?: string[];
  json: boolean;
  report?: string;
  'flow-level': number;
  threads: number;
  'flow-model'?: string;
  'flow-model-range': number;
  ep: string;
}

/** Options shared by `metrics` and `compare`. */
export function measureOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('original', {
      type: 'string',
      demandOption: true,
      describe: 'the original video: a folder of frames or a video file',
    })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'print progress and the result as JSON lines on stdout',
    })
    .option('report', { type: 'string', describe: 'also write a visual report: .html, .png or .svg' })
    .option('threads', {
      type: 'number',
      default: 2,
      describe:
        'worker threads for the optical flow (the two directions of a pair run in parallel); 0 = on the main thread',
    })
    .option('flow-model', {
      type: 'string',
      describe:
        'an ONNX optical-flow network to use instead of the built-in DIS flow: two [1,3,H,W] RGB inputs, a [1,2,h,w] flow output',
    })
    .option('flow-model-range', {
      type: 'number',
      default: 255,
      describe: 'pixel range the flow network expects: 255 (RAFT exports) or 1 (FlowNet2)',
    })
    .option('ep', {
      type: 'string',
      default: 'auto',
      choices: ['auto', 'cuda', 'webgpu', 'cpu'],
      describe: 'execution provider for --flow-model',
    })
    .option('flow-level', {
      type: 'number',
      default: 0,
      describe:
        'finest pyramid level of the optical flow: 0 full resolution, 1 half (about 3× faster, a little less precise)',
    });
}

/** Opens the inputs, measures, prints, writes the report. */
export async function runMeasurement(argv: MeasureArgs, title: string): Promise<ConsistencyResult> {
  const reporter = makeReporter(argv.json);
  check(
    Number.isInteger(argv['flow-level']) && argv['flow-level'] >= 0 && argv['flow-level'] <= 3,
    'flow-level',
    argv['flow-level'],
    'an integer from 0 to 3',
  );
  if (argv.report) checkReportPath(argv.report);
  if (argv.labels)
    check(
      argv.labels.length === argv.stylized.length,
      'labels',
      argv.labels,
      `${argv.stylized.length} labels, one per --stylized`,
    );
  check(
    Number.isInteger(argv.threads) && argv.threads >= 0 && argv.threads <= 64,
    'threads',
    argv.threads,
    'an integer from 0 to 64',
  );
  const opened: ClosableSequence[] = [];
  const flowOptions = { finestLevel: argv['flow-level'] };
  const flow: FlowEstimator = argv['flow-model']
    ? await OnnxFlowEstimator.open({
        model: argv['flow-model'],
        valueRange: argv['flow-model-range'],
        ep: argv.ep as ExecutionProviderChoice,
      })
    : argv.threads > 0
      ? new DisWorkerPool(argv.threads, flowOptions)
      : disEstimator(flowOptions);
  if (argv['flow-model']) reporter.note(`optical flow: ${flow.name}`);
  try {
    // 1. Open the inputs (sizes and counts are checked by measureConsistency).
    const original = await openSequence(argv.original);
    opened.push(original);
    for (const s of argv.stylized) opened.push(await openSequence(s));
    const labels = argv.labels ?? defaultLabels(argv.stylized);
    // 2. Measure, keeping thumbnails only when a report is wanted.
    const thumbs = argv.report ? new ThumbnailStore(original.count) : undefined;
    const result = await measureConsistency(original, opened.slice(1), {
      flow,
      labels,
      onNote: (m) => reporter.note(m),
      onFrame: thumbs ? (i, o, s) => thumbs.add(i, o, s) : undefined,
      onPair: thumbs ? (t, errors) => thumbs.pairDone(t, Math.max(...errors)) : undefined,
      onProgress: (done, total) =>
        reporter.progress({ event: 'progress', done, total }, `measuring: pair ${done}/${total}`, done / total),
    });
    // 3. Report and result.
    if (argv.report && thumbs) {
      await writeReport(argv.report, result, thumbs, title);
      reporter.note(`report written to ${argv.report}`);
    }
    printResult(reporter, result, argv.report);
    return result;
  } finally {
    for (const s of opened) await s.close();
    await flow.close?.();
  }
}

/** Names for the versions when --labels is not given: the folder or file names, or the paths if those clash. */
function defaultLabels(paths: string[]): string[] {
  if (paths.length === 1) return ['stylized'];
  const names = paths.map((p) => basename(p.replace(/[\\/]+$/, ''), extname(p)) || p);
  return new Set(names).size === names.length ? names : paths;
}

function printResult(reporter: Reporter, r: ConsistencyResult, report?: string): void {
  const series = [r.original, ...r.stylized];
  const width = Math.max(10, ...series.map((s) => s.label.length));
  const lines: string[] = [];
  lines.push(
    `${r.frames} frames, ${r.width}x${r.height}; flow on the original: ${r.flowMethod}; ${r.seconds.toFixed(1)} s`,
  );
  lines.push('');
  if (r.frames - 1 <= 200) {
    const head = [
      'pair',
      'occluded',
      ...series.map((s) => `E_warp ${s.label}`),
      ...series.map((s) => `flicker ${s.label}`),
    ];
    lines.push(head.join('\t'));
    for (let t = 0; t < r.frames - 1; t++) {
      lines.push(
        [
          `${t}->${t + 1}`,
          `${(100 * r.occludedFraction[t]).toFixed(1)}%`,
          ...series.map((s) => fmt(s.pairWarpError[t])),
          ...series.map((s) => fmt(s.pairFlicker[t])),
        ].join('\t'),
      );
    }
    lines.push('');
  }
  lines.push(
    `${'version'.padEnd(width)}  ${'E_warp'.padStart(10)}  ${'÷ original'.padStart(10)}  ${'flicker'.padStart(10)}`,
  );
  for (const s of series) {
    const ratio = r.original.warpError > 0 ? (s.warpError / r.original.warpError).toFixed(2) : '-';
    lines.push(
      `${s.label.padEnd(width)}  ${fmt(s.warpError).padStart(10)}  ${ratio.padStart(10)}  ${fmt(s.flicker).padStart(10)}`,
    );
  }
  if (report) lines.push('', `report: ${report}`);
  reporter.result({ ...r, report: report ?? null } as unknown as Record<string, unknown>, lines.join('\n'));
}

/** `compare`'s arguments with one --stylized version. */
type MetricsArgs = Omit<MeasureArgs, 'stylized' | 'labels'> & { stylized: string };

export const metricsCommand: CommandModule<object, MetricsArgs> = {
  command: 'metrics',
  describe: 'Measure the temporal consistency of a stylized video (warping error, flicker) against its original',
  builder: (yargs) =>
    measureOptions(yargs)
      .option('stylized', {
        type: 'string',
        demandOption: true,
        describe:
          'the stylized video: a folder of frames or a video file (same frame count; resized to the original if needed)',
      })
      .example(
        '$0 metrics --original clip/ --stylized out/ --report report.html',
        'numbers per frame pair and overall, and an HTML report',
      )
      .epilogue(
        'E_warp follows Lai et al. 2018 (used by Deep Video Prior): flow and occlusion computed on the original, then the mean squared difference between stylized frame t and frame t+1 warped back, over visible pixels, RGB in [0, 1].',
      ) as never,
  handler: async (argv) => {
    await runMeasurement({ ...argv, stylized: [argv.stylized] }, 'Temporal consistency');
  },
};
