/**
 * The farm job's last stage: every stylized frame is in <shared>/frames; make the output the user asked for.
 *   1. check no frame is missing (a lost task is named, and `resume` is the way on);
 *   2. a video output: encode the frames in clip order at the source's frame rate with its sound (as
 *      `vidprior run` does); a folder output: copy the PNGs;
 *   3. write summary.json (what was made, from which jobs), which also marks the job done.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VidpriorError } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic-write.js';
import { outputFrameName } from '../io/inputs.js';
import { DECODED_FRAME_PATTERN, decodedFrameName, encodeVideo } from '../io/video.js';
import { type FarmSpec, farmPaths } from './spec.js';
import { jobIds, readState } from './state.js';

export interface FarmSummary {
  output: string;
  kind: 'video' | 'folder';
  frames: number;
  shared: string;
  adapter: string;
  jobs: string[];
  seconds: number;
  finishedAt: string;
}

export async function assembleFarm(spec: FarmSpec, onNote: (text: string) => void = () => {}): Promise<FarmSummary> {
  const started = performance.now();
  const paths = farmPaths(spec.shared);
  // 1. Every frame present.
  const frames = spec.input.names.map((name) => join(paths.frames, outputFrameName(name)));
  const missing = frames.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `${missing.length} of ${frames.length} stylized frames are missing (first: ${missing[0]}): \`vidprior farm slurm resume ${spec.shared}\` redoes them`,
      { missing: missing.length },
    );
  }
  // 2. The output.
  if (spec.output.kind === 'video') {
    // ffmpeg reads a numbered sequence: links named frame_000001.png… in clip order, whatever the inputs' names.
    const seq = await mkdtemp(join(tmpdir(), 'vidprior-assemble-'));
    try {
      for (let i = 0; i < frames.length; i++) await symlink(frames[i]!, join(seq, decodedFrameName(i)));
      onNote(`encoding ${frames.length} frames to ${spec.output.path}`);
      await encodeVideo(seq, DECODED_FRAME_PATTERN, spec.output.path, {
        fps: spec.input.fpsRational ?? 24,
        audioFrom: spec.input.audioFrom,
      });
    } finally {
      await rm(seq, { recursive: true, force: true });
    }
  } else {
    await mkdir(spec.output.path, { recursive: true });
    onNote(`copying ${frames.length} frames to ${spec.output.path}`);
    for (const f of frames) await copyFile(f, join(spec.output.path, f.slice(paths.frames.length + 1)));
  }
  // 3. The summary (its presence says the job is done).
  const state = await readState(spec);
  const summary: FarmSummary = {
    output: spec.output.path,
    kind: spec.output.kind,
    frames: frames.length,
    shared: spec.shared,
    adapter: spec.adapter.path,
    jobs: jobIds(state),
    seconds: Math.round(performance.now() - started) / 1000,
    finishedAt: new Date().toISOString(),
  };
  await writeJsonAtomic(paths.summary, summary);
  return summary;
}
