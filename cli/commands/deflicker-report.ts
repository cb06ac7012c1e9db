/**
 * The report of `vidprior deflicker --report`: the original, the processed and the deflickered video measured on
 * the same flow and occlusion mask of the original (src/metrics, Lai et al.'s E_warp), one table and one plot,
 * with a contact sheet that shows the three side by side. The same as
 * `vidprior compare --original O --stylized P --stylized D --labels processed deflickered`.
 */
import { measureConsistency } from '../../src/metrics/consistency.js';
import { DisWorkerPool } from '../../src/metrics/flow-worker.js';
import { type ClosableSequence, openSequence } from '../../src/metrics/frames.js';
import { ThumbnailStore, writeReport } from '../../src/metrics/report.js';
import type { Reporter } from './output.js';

export interface DeflickerMeasurement {
  /** E_warp (mean over frame pairs, RGB in [0, 1]) of each video. */
  original: number;
  processed: number;
  deflickered: number;
  flicker: { original: number; processed: number; deflickered: number };
  report: string;
}

export async function measureDeflicker(
  paths: { original: string; processed: string; deflickered: string; report: string },
  psnrToProcessed: number,
  reporter: Reporter,
): Promise<DeflickerMeasurement> {
  const opened: ClosableSequence[] = [];
  const flow = new DisWorkerPool(2, { finestLevel: 0 });
  try {
    for (const p of [paths.original, paths.processed, paths.deflickered]) opened.push(await openSequence(p));
    const [original, ...versions] = opened as [ClosableSequence, ClosableSequence, ClosableSequence];
    const thumbs = new ThumbnailStore(original.count);
    const result = await measureConsistency(original, versions, {
      flow,
      labels: ['processed', 'deflickered'],
      onNote: (m) => reporter.note(m),
      onFrame: (i, o, s) => thumbs.add(i, o, s),
      onPair: (t, errors) => thumbs.pairDone(t, Math.max(...errors)),
      onProgress: (done, total) =>
        reporter.progress({ event: 'measure', done, total }, `measuring E_warp: pair ${done}/${total}`, done / total),
    });
    const [processed, deflickered] = result.stylized as [(typeof result.stylized)[0], (typeof result.stylized)[0]];
    await writeReport(
      paths.report,
      result,
      thumbs,
      `Deflicker: E_warp ${processed.warpError.toFixed(4)} → ${deflickered.warpError.toFixed(4)} (original ${result.original.warpError.toFixed(4)}), PSNR to processed ${psnrToProcessed.toFixed(1)} dB`,
    );
    reporter.note(`report written to ${paths.report}`);
    return {
      original: result.original.warpError,
      processed: processed.warpError,
      deflickered: deflickered.warpError,
      flicker: { original: result.original.flicker, processed: processed.flicker, deflickered: deflickered.flicker },
      report: paths.report,
    };
  } finally {
    for (const s of opened) await s.close().catch(() => {});
    await flow.close();
  }
}
