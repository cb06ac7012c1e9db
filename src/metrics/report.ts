/**
 * Writes the consistency report a person looks at: an SVG (report-svg.ts) rendered to PNG by sharp, or an
 * HTML page that embeds the same SVG plus a table of every pair's numbers. Thumbnails of every frame are
 * kept small (8-bit) while the measurement streams, since the worst pairs are only known at the end.
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import sharp from 'sharp';
import { VidpriorError } from '../errors.js';
import type { ConsistencyResult } from './consistency.js';
import { resizeRgb, type RgbImage } from './image.js';
import { escapeXml, fmt, renderReportSvg, sheetFrames, worstPairs, type SheetThumb } from './report-svg.js';

interface Thumb {
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits. */
  rgb: Uint8Array;
}

/** How many worst pairs the report marks, and how many frames its contact sheet shows at most. */
export const REPORT_WORST_PAIRS = 3;
export const REPORT_SHEET_FRAMES = 8;

/**
 * Small 8-bit copies of the frames the report may show, filled while the measurement streams (through
 * measureConsistency's onFrame and onPair). The worst pairs are only known at the end, so the store keeps
 * the frames of the worst pairs so far plus every frame an evenly spaced sheet could pick, and drops the
 * rest: memory stays bounded on long videos.
 */
export class ThumbnailStore {
  private readonly frames = new Map<number, Thumb[]>();
  private readonly spread = new Set<number>();
  private worstSoFar: { t: number; score: number }[] = [];

  constructor(
    readonly frameCount: number,
    private readonly maxWidth = 192,
  ) {
    for (let spare = 1; spare <= REPORT_SHEET_FRAMES; spare++) {
      for (const f of sheetFrames(frameCount, [], spare)) this.spread.add(f);
    }
  }

  add(index: number, original: RgbImage, stylized: RgbImage[]): void {
    this.frames.set(
      index,
      [original, ...stylized].map((img) => this.shrink(img)),
    );
  }

  /** After pair t → t+1 is measured, with its score (the largest warping error over the versions). */
  pairDone(t: number, score: number): void {
    this.worstSoFar.push({ t, score });
    this.worstSoFar.sort((a, b) => b.score - a.score || a.t - b.t);
    this.worstSoFar.length = Math.min(this.worstSoFar.length, REPORT_WORST_PAIRS);
    const keep = new Set(this.spread);
    keep.add(t + 1); // the next pair starts from this frame
    for (const w of this.worstSoFar) {
      keep.add(w.t);
      keep.add(w.t + 1);
    }
    for (const f of [...this.frames.keys()]) if (!keep.has(f)) this.frames.delete(f);
  }

  get(index: number): Thumb[] | undefined {
    return this.frames.get(index);
  }

  /** Frames currently held (for tests: stays small whatever the video's length). */
  get size(): number {
    return this.frames.size;
  }

  private shrink(img: RgbImage): Thumb {
    const width = Math.min(this.maxWidth, img.width);
    const height = Math.max(1, Math.round((img.height * width) / img.width));
    const small = resizeRgb(img, width, height);
    const n = width * height;
    const rgb = new Uint8Array(3 * n);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) {
        const v = small.data[c * n + i];
        rgb[3 * i + c] = v <= 0 ? 0 : v >= 1 ? 255 : Math.round(v * 255);
      }
    }
    return { width, height, rgb };
  }
}

async function thumbHref(t: Thumb): Promise<SheetThumb> {
  const jpeg = await sharp(Buffer.from(t.rgb.buffer, t.rgb.byteOffset, t.rgb.byteLength), {
    raw: { width: t.width, height: t.height, channels: 3 },
  })
    .jpeg({ quality: 85 })
    .toBuffer();
  return { href: `data:image/jpeg;base64,${jpeg.toString('base64')}`, width: t.width, height: t.height };
}

/** The report as one SVG string. */
export async function buildReportSvg(
  result: ConsistencyResult,
  thumbs: ThumbnailStore,
  title: string,
): Promise<string> {
  const worst = worstPairs(result, Math.min(REPORT_WORST_PAIRS, result.frames - 1));
  const frames = sheetFrames(result.frames, worst, REPORT_SHEET_FRAMES).filter((f) => thumbs.get(f) !== undefined);
  const rows = 1 + result.stylized.length;
  const sheet: SheetThumb[][] = Array.from({ length: rows }, () => []);
  for (const f of frames) {
    const t = thumbs.get(f) as Thumb[];
    for (let r = 0; r < rows; r++) sheet[r].push(await thumbHref(t[r]));
  }
  return renderReportSvg(result, { worst, frames, thumbs: sheet }, title);
}

/** Throws E_BAD_REQUEST unless the report file ends in .html/.htm, .png or .svg (check before measuring). */
export function checkReportPath(path: string): void {
  if (!['.png', '.svg', '.html', '.htm'].includes(extname(path).toLowerCase())) {
    throw new VidpriorError('E_BAD_REQUEST', `report file ${path} must end in .html, .png or .svg`, { report: path });
  }
}

/** Writes the report to `path`: .png (rendered by sharp), .svg, or .html (SVG + a per-pair table). */
export async function writeReport(
  path: string,
  result: ConsistencyResult,
  thumbs: ThumbnailStore,
  title: string,
): Promise<void> {
  checkReportPath(path);
  const ext = extname(path).toLowerCase();
  const svg = await buildReportSvg(result, thumbs, title);
  await mkdir(dirname(path) || '.', { recursive: true });
  if (ext === '.svg') {
    await writeFile(path, svg);
  } else if (ext === '.png') {
    await sharp(Buffer.from(svg), { density: 96 }).png().toFile(path);
  } else {
    await writeFile(path, reportHtml(result, svg, title));
  }
}

function reportHtml(result: ConsistencyResult, svg: string, title: string): string {
  const series = [result.original, ...result.stylized];
  const head = ['pair', 'occluded', ...series.flatMap((s) => [`${s.label} E_warp`, `${s.label} flicker`])];
  const rows = result.original.pairWarpError.map((_, t) => [
    `${t}→${t + 1}`,
    `${(100 * result.occludedFraction[t]).toFixed(1)}%`,
    ...series.flatMap((s) => [fmt(s.pairWarpError[t]), fmt(s.pairFlicker[t])]),
  ]);
  const cell = (tag: string, v: string) => `<${tag}>${escapeXml(v)}</${tag}>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}svg{max-width:100%;height:auto}
p.note{color:#555;font-size:13px;max-width:70em}</style></head><body>
${svg}
<p class="note">E_warp follows Lai et al. 2018 (as used by Deep Video Prior): flow F (t→t+1) and B (t+1→t) on the
original frames; pixels failing the forward–backward check |F+B̂|² &gt; 0.01(|F|²+|B̂|²)+0.5 or on a motion boundary
|∇F|² &gt; 0.01|F|²+0.002 are left out; E_warp(t) is the mean over the remaining pixels and the three channels of
(S<sub>t+1</sub>(x+F(x)) − S<sub>t</sub>(x))², RGB in [0, 1]; the video's value is the mean over pairs. Flicker is the
mean absolute difference of consecutive frames. Flow: ${escapeXml(result.flowMethod)}.</p>
<table><thead><tr>${head.map((h) => cell('th', h)).join('')}</tr></thead><tbody>
${rows.map((r) => `<tr>${r.map((v) => cell('td', v)).join('')}</tr>`).join('\n')}
</tbody></table></body></html>
`;
}
