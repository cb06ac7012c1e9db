/**
 * How `vidprior submit` gets frames to the daemon and results back:
 *   - in: a folder of frames, one image, or a video (decoded to frames here, as `stylize` does); sent as paths
 *     (--by-path, a daemon on this machine), as bytes in the submit, or — when they would not fit in one
 *     message — as chunked uploads named in the submit (protocol §4);
 *   - out: a folder of frames, or a video file encoded from the streamed frames at the input's frame rate
 *     (or --fps), like `stylize`.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { VidpriorError } from '../../src/errors.js';
import { isImageFile, listFrameFiles } from '../../src/io/frames.js';
import { openFrameSource } from '../../src/io/inputs.js';
import { DECODED_FRAME_PATTERN, decodedFrameName, encodeVideo, isVideoFile } from '../../src/io/video.js';
import type { VidpriorClient } from '../../protocol/client.js';
import type { FrameInput } from '../../protocol/messages.js';
import type { Reporter } from './output.js';

export interface InputFiles {
  files: { name: string; path: string }[];
  /** The input video, when the input was one (its frame rate and sound go to a video output). */
  video?: { path: string; fps: string };
  cleanup(): Promise<void>;
}

/** The frames of --input: a folder's images, one image, or a video decoded to frames in a temporary folder. */
export async function inputFiles(input: string, reporter: Reporter): Promise<InputFiles> {
  const st = await stat(input).catch(() => null);
  if (!st) throw new VidpriorError('E_BAD_INPUT', `--input ${input} does not exist`, { input });
  if (st.isDirectory()) return { files: await listFrameFiles(input), cleanup: async () => {} };
  if (isImageFile(input)) return { files: [{ name: basename(input), path: input }], cleanup: async () => {} };
  const source = await openFrameSource(input, {
    onDecodeProgress: (n, total) =>
      reporter.progress(
        { event: 'decode', frame: n, frames: total },
        `decoding ${basename(input)}: frame ${n}/${total}`,
        total ? n / total : undefined,
      ),
  });
  return {
    files: source.frames,
    video: { path: resolve(input), fps: String(source.fpsRational ?? source.fps ?? 24) },
    cleanup: () => source.cleanup(),
  };
}

/** MessagePack's cost around each frame's bytes (map, keys, name), generously. */
const PER_FRAME_OVERHEAD = 512;

export type SendMode = 'path' | 'bytes' | 'upload';

/** How the frames go: paths when asked, bytes when the whole submit fits in one message, else uploads. */
export async function sendMode(
  client: VidpriorClient,
  files: { path: string }[],
  byPath: boolean,
  decoded: boolean,
): Promise<SendMode> {
  // Decoded frames live in this process's temporary folder, which the daemon may not read: they go as bytes.
  if (byPath && !decoded) return 'path';
  let total = 64 * 1024; // the params, edits' framing and the rest of the message
  for (const f of files) total += (await stat(f.path)).size + PER_FRAME_OVERHEAD;
  const limit = client.welcome.limits.max_message_bytes;
  if (total <= limit) return 'bytes';
  if (!client.welcome.capabilities.includes('upload'))
    throw new VidpriorError(
      'E_TOO_LARGE',
      `the frames (${total} bytes) do not fit in one message (the daemon takes ${limit}) and this daemon takes no uploads: send fewer frames at a time`,
      { bytes: total, limit },
    );
  return 'upload';
}

/** The files as protocol inputs, uploading them one by one in 'upload' mode (with progress). */
export async function frameInputs(
  client: VidpriorClient,
  files: { name: string; path: string }[],
  mode: SendMode,
  reporter: Reporter,
  what = 'frame',
): Promise<FrameInput[]> {
  const out: FrameInput[] = [];
  for (const [i, f] of files.entries()) {
    if (mode === 'path') out.push({ name: f.name, path: resolve(f.path) });
    else if (mode === 'bytes') out.push({ name: f.name, png: await readFile(f.path) });
    else {
      const upload = await client.upload(await readFile(f.path), { name: f.name });
      reporter.progress(
        { event: 'upload', index: i, name: f.name, upload },
        `uploading ${what}s: ${i + 1}/${files.length}`,
        (i + 1) / files.length,
      );
      out.push({ name: f.name, upload });
    }
  }
  return out;
}

/** A video output: frames kept in a temporary folder by index, encoded when the job is done. */
export class VideoOutput {
  private constructor(
    readonly path: string,
    private readonly dir: string,
  ) {}

  static async open(path: string): Promise<VideoOutput> {
    return new VideoOutput(path, await mkdtemp(join(tmpdir(), 'vidprior-submit-')));
  }

  static wanted(output: string | undefined): output is string {
    return output !== undefined && isVideoFile(output);
  }

  async write(index: number, png: Uint8Array): Promise<void> {
    await writeFile(join(this.dir, decodedFrameName(index)), png);
  }

  async finish(fps: string | number, audioFrom: string | undefined, reporter: Reporter, frames: number) {
    await encodeVideo(this.dir, DECODED_FRAME_PATTERN, this.path, {
      fps,
      ...(audioFrom ? { audioFrom } : {}),
      onProgress: (n) =>
        reporter.progress(
          { event: 'encode', frame: n, frames },
          `encoding ${basename(this.path)}: frame ${n}/${frames}`,
          n / Math.max(1, frames),
        ),
    });
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
