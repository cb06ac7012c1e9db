/**
 * A watched-folder job whose input was a video gets a video back: once the job is done, its output frames
 * (in the data dir, where the daemon wrote them) are encoded at the source's frame rate, with its sound, into
 * `out/<video name>` beside the PNGs, as `vidprior stylize` makes a video from a video.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { DECODED_FRAME_PATTERN, VIDEO_EXTENSIONS, encodeVideo } from '../src/io/video.js';
import type { PinnedDir } from '../src/io/pinned-dir.js';
import type { JobKind } from '../protocol/params.js';
import type { JobRecord } from './jobs/store.js';

/** The video a job was decoded from, and what its output video is called. */
export interface VideoOrigin {
  /** The source video (its sound is copied into the output). */
  video: string;
  /** The source's exact frame rate, e.g. "30000/1001". */
  fps: string;
  /** The output file's name in out/: the source's name (.mp4 when its container cannot be written). */
  name: string;
}

/** Job kinds with one output frame per input frame: their outputs make a video again. */
export const VIDEO_KINDS: readonly JobKind[] = ['stylize', 'run', 'deflicker'];

export function videoOrigin(kind: JobKind, video: string, fps: string | number | undefined): VideoOrigin | null {
  if (!VIDEO_KINDS.includes(kind)) return null;
  const ext = extname(video).toLowerCase();
  const name = VIDEO_EXTENSIONS.includes(ext) ? basename(video) : `${basename(video, extname(video))}.mp4`;
  return { video, fps: String(fps ?? 24), name };
}

/**
 * Encodes the job's outputs (named like the decoded frames, frame_000001.png…) from the data dir and writes the
 * video into `out`. The encode goes to a temporary folder first: only a whole video lands in the job folder.
 */
export async function writeJobVideo(job: JobRecord, origin: VideoOrigin, out: PinnedDir): Promise<void> {
  const temp = await mkdtemp(join(tmpdir(), 'vidprior-watch-video-'));
  try {
    const file = join(temp, origin.name);
    await encodeVideo(join(job.dir, 'outputs'), DECODED_FRAME_PATTERN, file, {
      fps: origin.fps,
      audioFrom: origin.video,
    });
    await out.writeFile(origin.name, await readFile(file));
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
