/**
 * Video files through ffmpeg/ffprobe (their paths come from src/config.ts): probe, decode to numbered PNGs,
 * encode numbered PNGs to a video. ffmpeg missing → E_FFMPEG with how to fix it; a file ffmpeg cannot read →
 * E_BAD_INPUT naming it and quoting ffmpeg's reason. Outputs are written to a hidden partial file and renamed
 * into place, so a failed encode never leaves a truncated video under the requested name.
 */
import { spawn } from 'node:child_process';
import { readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { config } from '../config.js';
import { VidpriorError } from '../errors.js';
import type { FrameFile } from './frames.js';
import { naturalCompare } from './frames.js';

export const VIDEO_EXTENSIONS: readonly string[] = ['.mp4', '.mov', '.mkv', '.webm', '.avi', '.m4v'];

export function isVideoFile(path: string): boolean {
  return VIDEO_EXTENSIONS.includes(extname(path).toLowerCase());
}

/** Names of decoded frames: frame_000001.png, frame_000002.png, … */
export const DECODED_FRAME_PATTERN = 'frame_%06d.png';
export function decodedFrameName(index: number): string {
  return `frame_${String(index + 1).padStart(6, '0')}.png`;
}

export interface VideoInfo {
  path: string;
  /** Display size (rotation metadata applied, as ffmpeg's decoder applies it). */
  width: number;
  height: number;
  /** Frames per second, and the exact rational ffprobe gave (e.g. "30000/1001"). */
  fps: number;
  fpsRational: string;
  frameCount: number;
  /** Seconds. */
  duration: number;
  codec: string;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool; ENOENT becomes E_FFMPEG naming the executable and the setting that chooses it. */
function run(tool: 'ffmpeg' | 'ffprobe', args: string[], onStdout?: (chunk: string) => void): Promise<RunResult> {
  const exe = config()[tool];
  return new Promise((resolve, reject) => {
    const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      if (onStdout) onStdout(c);
      else stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr = (stderr + c).slice(-8000);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      const hint = tool === 'ffmpeg' ? 'VIDPRIOR_FFMPEG' : 'VIDPRIOR_FFPROBE';
      reject(
        new VidpriorError(
          'E_FFMPEG',
          err.code === 'ENOENT'
            ? `${tool} not found (looked for ${JSON.stringify(exe)}): install ffmpeg, or set ${hint} to its path`
            : `${tool} could not start: ${err.message}`,
          { executable: exe },
          { cause: err },
        ),
      );
    });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function lastLine(text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines[lines.length - 1] ?? 'no message';
}

function parseRational(r: string | undefined): number {
  if (!r) return 0;
  const [n, d] = r.split('/').map(Number);
  if (d === undefined) return Number.isFinite(n) ? n! : 0;
  return d ? n! / d : 0;
}

/** Size, frame rate, frame count and duration of the first video stream. */
export async function probeVideo(path: string): Promise<VideoInfo> {
  const base = ['-v', 'error', '-select_streams', 'v:0', '-of', 'json'];
  const r = await run('ffprobe', [
    ...base,
    '-show_entries',
    'stream=width,height,r_frame_rate,avg_frame_rate,nb_frames,duration,codec_name:stream_tags=rotate:stream_side_data=rotation:format=duration',
    path,
  ]);
  if (r.code !== 0) {
    throw new VidpriorError('E_BAD_INPUT', `cannot read video ${path}: ${lastLine(r.stderr)}`, { path });
  }
  const json = JSON.parse(r.stdout || '{}') as {
    streams?: Record<string, unknown>[];
    format?: { duration?: string };
  };
  const s = json.streams?.[0];
  if (!s?.width || !s.height) throw new VidpriorError('E_BAD_INPUT', `no video stream in ${path}`, { path });
  const avg = s.avg_frame_rate as string | undefined;
  const fpsRational = avg && parseRational(avg) > 0 ? avg : ((s.r_frame_rate as string | undefined) ?? '25/1');
  const fps = parseRational(fpsRational);
  const duration = Number(s.duration ?? json.format?.duration ?? 0) || 0;
  let frameCount = Number(s.nb_frames ?? 0) || 0;
  if (!frameCount) {
    // Matroska/WebM do not store a frame count: count packets (demuxing only, no decoding).
    const c = await run('ffprobe', [...base, '-count_packets', '-show_entries', 'stream=nb_read_packets', path]);
    const n = Number(
      (JSON.parse(c.stdout || '{}') as { streams?: { nb_read_packets?: string }[] }).streams?.[0]?.nb_read_packets ?? 0,
    );
    frameCount = n || Math.round(duration * fps);
  }
  const sideData = (s.side_data_list as { rotation?: number }[] | undefined) ?? [];
  const rotation = Number(
    sideData.find((d) => d.rotation !== undefined)?.rotation ??
      (s.tags as { rotate?: string } | undefined)?.rotate ??
      0,
  );
  const quarter = Math.abs(Math.round(rotation / 90)) % 2 === 1;
  const width = Number(s.width);
  const height = Number(s.height);
  return {
    path,
    width: quarter ? height : width,
    height: quarter ? width : height,
    fps,
    fpsRational,
    frameCount,
    duration,
    codec: String(s.codec_name ?? 'unknown'),
  };
}

/**
 * Decodes every frame of the first video stream to 8-bit RGB PNGs frame_000001.png… in `outDir` (which must
 * exist), one per decoded frame (no frame-rate conversion). Returns the frames in order.
 */
export async function decodeVideo(
  path: string,
  outDir: string,
  onProgress?: (framesDone: number) => void,
): Promise<FrameFile[]> {
  const r = await run(
    'ffmpeg',
    [
      '-v',
      'error',
      '-nostdin',
      '-i',
      path,
      '-map',
      '0:v:0',
      '-fps_mode',
      'passthrough',
      '-pix_fmt',
      'rgb24',
      '-start_number',
      '1',
      '-progress',
      'pipe:1',
      join(outDir, DECODED_FRAME_PATTERN),
    ],
    (chunk) => {
      const m = chunk.match(/frame=(\d+)/g);
      if (m && onProgress) onProgress(Number(m[m.length - 1]!.slice(6)));
    },
  );
  const names = (await readdir(outDir)).filter((n) => /^frame_\d{6}\.png$/.test(n)).sort(naturalCompare);
  if (r.code !== 0 || names.length === 0) {
    throw new VidpriorError(
      'E_BAD_INPUT',
      `cannot decode video ${path}: ${r.code !== 0 ? lastLine(r.stderr) : 'no frames decoded'}`,
      { path },
    );
  }
  return names.map((name) => ({ name, path: join(outDir, name) }));
}

export interface EncodeOptions {
  /** Frame rate: a number or an exact rational such as "30000/1001". */
  fps: number | string;
  /** Constant rate factor (libx264 0–51, VP9 0–63): lower is better; default 18. */
  crf?: number;
  /** Index of the first frame file in the pattern (default 1). */
  startNumber?: number;
  /** A video whose first audio stream (if any) is copied in, re-encoded for the container, cut to the video. */
  audioFrom?: string;
  onProgress?: (framesDone: number) => void;
}

/** The encoder arguments for an output file, chosen by its extension. */
export function encoderArgs(outPath: string, crf: number): string[] {
  const ext = extname(outPath).toLowerCase();
  if (ext === '.webm') return ['-c:v', 'libvpx-vp9', '-crf', String(crf), '-b:v', '0', '-pix_fmt', 'yuv420p'];
  if (['.mp4', '.mov', '.m4v'].includes(ext))
    return ['-c:v', 'libx264', '-crf', String(crf), '-pix_fmt', 'yuv420p', '-movflags', '+faststart'];
  if (['.mkv', '.avi'].includes(ext)) return ['-c:v', 'libx264', '-crf', String(crf), '-pix_fmt', 'yuv420p'];
  throw new VidpriorError(
    'E_BAD_REQUEST',
    `cannot write a video named ${outPath}: use .mp4, .mov, .mkv, .webm, .avi or .m4v`,
    { output: outPath },
  );
}

/** The audio encoder for an output container. */
function audioArgs(outPath: string): string[] {
  const ext = extname(outPath).toLowerCase();
  if (ext === '.webm') return ['-c:a', 'libopus', '-b:a', '128k'];
  if (ext === '.avi') return ['-c:a', 'libmp3lame', '-b:a', '192k'];
  return ['-c:a', 'aac', '-b:a', '192k'];
}

/**
 * Encodes numbered PNGs (`pattern` in `frameDir`, e.g. frame_%06d.png) to `outPath` (libx264 yuv420p, or VP9
 * for .webm). Odd sizes are padded by one pixel (yuv420p needs even sizes).
 */
export async function encodeVideo(
  frameDir: string,
  pattern: string,
  outPath: string,
  options: EncodeOptions,
): Promise<void> {
  const crf = options.crf ?? 18;
  if (!Number.isFinite(crf) || crf < 0 || crf > 63) {
    throw new VidpriorError('E_BAD_REQUEST', `crf must be a number from 0 to 63, got ${crf}`, { crf });
  }
  const fps = String(options.fps);
  if (!(parseRational(fps) > 0)) throw new VidpriorError('E_BAD_REQUEST', `fps must be positive, got ${fps}`, { fps });
  const codec = encoderArgs(outPath, crf);
  const partial = join(dirname(outPath), `.${basename(outPath, extname(outPath))}.partial${extname(outPath)}`);
  // The audio input is optional (`?`): a source without sound just gives a silent output.
  const audio = options.audioFrom
    ? ['-i', options.audioFrom, '-map', '0:v:0', '-map', '1:a:0?', ...audioArgs(outPath), '-shortest']
    : [];
  const r = await run(
    'ffmpeg',
    [
      '-v',
      'error',
      '-nostdin',
      '-y',
      '-framerate',
      fps,
      '-start_number',
      String(options.startNumber ?? 1),
      '-i',
      join(frameDir, pattern),
      ...audio,
      '-vf',
      'pad=ceil(iw/2)*2:ceil(ih/2)*2',
      ...codec,
      '-r',
      fps,
      '-progress',
      'pipe:1',
      partial,
    ],
    (chunk) => {
      const m = chunk.match(/frame=(\d+)/g);
      if (m && options.onProgress) options.onProgress(Number(m[m.length - 1]!.slice(6)));
    },
  );
  if (r.code !== 0) {
    await rm(partial, { force: true });
    throw new VidpriorError('E_FFMPEG', `ffmpeg could not write ${outPath}: ${lastLine(r.stderr)}`, {
      output: outPath,
    });
  }
  await rename(partial, outPath);
}
