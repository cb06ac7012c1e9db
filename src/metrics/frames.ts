/**
 * Frame sequences for the metrics commands: a folder of images (PNG/JPEG/WebP/TIFF, natural order, read
 * with sharp) or a video file (decoded by ffmpeg to raw RGB and streamed in order). Frames come out as
 * planar RGB in [0, 1]. Only what the metrics need: sequential reading, frame count and size up front.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Readable } from 'node:stream';
import sharp from 'sharp';
import { VidpriorError } from '../errors.js';
import type { FrameSequence } from './consistency.js';
import type { RgbImage } from './image.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff']);

export interface ClosableSequence extends FrameSequence {
  close(): Promise<void>;
}

/** Opens a folder of images or a video file. */
export async function openSequence(path: string): Promise<ClosableSequence> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new VidpriorError('E_BAD_INPUT', `${path} does not exist`, { path });
  }
  return info.isDirectory() ? openImageFolder(path) : openVideo(path);
}

/** Interleaved 8-bit RGB → planar float RGB in [0, 1]. */
function toPlanar(buf: Uint8Array, width: number, height: number): RgbImage {
  const n = width * height;
  const data = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    data[i] = buf[3 * i] / 255;
    data[n + i] = buf[3 * i + 1] / 255;
    data[2 * n + i] = buf[3 * i + 2] / 255;
  }
  return { width, height, data };
}

async function readImage(file: string): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion to RGB`);
    return toPlanar(data, info.width, info.height);
  } catch (err) {
    throw new VidpriorError('E_BAD_INPUT', `cannot read image ${file}: ${(err as Error).message}`, { path: file }, { cause: err });
  }
}

async function openImageFolder(dir: string): Promise<ClosableSequence> {
  const names = (await readdir(dir)).filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase()) && !n.startsWith('.'));
  names.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (names.length === 0) throw new VidpriorError('E_BAD_INPUT', `${dir} holds no PNG/JPEG/WebP/TIFF images`, { path: dir });
  const first = await readImage(join(dir, names[0]));
  return {
    path: dir,
    count: names.length,
    width: first.width,
    height: first.height,
    read: async (i) => (i === 0 ? first : readImage(join(dir, names[i]))),
    close: async () => {},
  };
}

interface VideoProbe {
  width: number;
  height: number;
  count: number;
}

function probeVideo(path: string): VideoProbe {
  const r = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=width,height,nb_read_packets', '-of', 'json', path], { encoding: 'utf8' });
  if (r.error) throw new VidpriorError('E_FFMPEG', `ffprobe could not run (${r.error.message}); install ffmpeg to read videos`, { path });
  const stream = r.status === 0 ? (JSON.parse(r.stdout || '{}').streams ?? [])[0] : undefined;
  if (!stream || !stream.width || !stream.height) {
    throw new VidpriorError('E_BAD_INPUT', `${path} is neither a folder of images nor a readable video${r.stderr ? `: ${r.stderr.trim().split('\n')[0]}` : ''}`, { path });
  }
  return { width: stream.width, height: stream.height, count: Number(stream.nb_read_packets) || 0 };
}

/** A video decoded in order by one ffmpeg process; frames must be read 0, 1, 2, … */
async function openVideo(path: string): Promise<ClosableSequence> {
  const probe = probeVideo(path);
  const frameBytes = probe.width * probe.height * 3;
  let proc: ChildProcessByStdio<null, Readable, Readable> | undefined;
  let pending: Buffer = Buffer.alloc(0);
  let ended = false;
  let stderr = '';
  let waiter: (() => void) | undefined;
  let next = 0;

  const start = () => {
    proc = spawn('ffmpeg', ['-v', 'error', '-i', path, '-map', '0:v:0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-vsync', 'passthrough', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      // Back-pressure: hold ffmpeg once a few frames are buffered.
      if (pending.length > 4 * frameBytes) proc?.stdout.pause();
      waiter?.();
    });
    proc.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    proc.on('close', () => { ended = true; waiter?.(); });
    proc.on('error', (err) => { stderr += err.message; ended = true; waiter?.(); });
  };

  const read = async (i: number): Promise<RgbImage> => {
    if (i !== next) throw new VidpriorError('E_INTERNAL', `video frames must be read in order: asked for ${i}, next is ${next}`);
    if (!proc) start();
    while (pending.length < frameBytes && !ended) {
      proc?.stdout.resume();
      await new Promise<void>((resolve) => { waiter = resolve; });
      waiter = undefined;
    }
    if (pending.length < frameBytes) {
      throw new VidpriorError('E_BAD_INPUT', `${path}: ffmpeg gave ${i} frames, expected ${probe.count}${stderr ? ` (${stderr.trim().split('\n')[0]})` : ''}`, { path });
    }
    const frame = toPlanar(pending.subarray(0, frameBytes), probe.width, probe.height);
    pending = pending.subarray(frameBytes);
    next++;
    return frame;
  };

  return {
    path,
    count: probe.count,
    width: probe.width,
    height: probe.height,
    read,
    close: async () => {
      if (proc && !ended) proc.kill('SIGTERM');
    },
  };
}
