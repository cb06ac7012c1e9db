/**
 * The picture of a consistency measurement, as one SVG: a summary table, a plot of the per-pair warping
 * error over time (one line per version, the original dashed for scale, the worst pairs marked), and a
 * contact sheet of original / stylized thumbnails with the frames of the worst pairs framed in red.
 * Pure string building: report.ts embeds the thumbnails (PNG data URIs) and writes SVG, PNG or HTML.
 */
import type { ConsistencyResult, SeriesMetrics } from './consistency.js';

export interface SheetThumb {
  /** data:image/png;base64,… */
  href: string;
  width: number;
  height: number;
}

export interface ReportLayout {
  /** Pair indices t (pair t → t+1), worst first. */
  worst: number[];
  /** Frame indices shown on the contact sheet, in order. */
  frames: number[];
  /** thumbs[row][column]: row 0 the original, then each stylized version; column = position in `frames`. */
  thumbs: SheetThumb[][];
}

const WIDTH = 1200;
const MARGIN = 24;
const SERIES_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
const ORIGINAL_COLOUR = '#7f7f7f';
const WORST_COLOUR = '#d62728';

export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string,
  );
}

/** The pairs with the largest warping error (the largest over the versions), worst first. */
export function worstPairs(result: ConsistencyResult, k: number): number[] {
  const score = result.original.pairWarpError.map((_, t) =>
    Math.max(...result.stylized.map((s) => s.pairWarpError[t])),
  );
  return score
    .map((v, t) => [v, t])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, t]) => t);
}

/** Frames for the contact sheet: both frames of each worst pair, then evenly spaced ones up to `max`. */
export function sheetFrames(frameCount: number, worst: number[], max: number): number[] {
  const chosen = new Set<number>();
  for (const t of worst) {
    if (chosen.size + 2 > max) break;
    chosen.add(t);
    chosen.add(t + 1);
  }
  const spare = max - chosen.size;
  for (let k = 0; k < spare && chosen.size < Math.min(max, frameCount); k++) {
    chosen.add(Math.round((k * (frameCount - 1)) / Math.max(1, spare - 1)));
  }
  return [...chosen].sort((a, b) => a - b);
}

export function fmt(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 0.01 && Math.abs(v) < 1000) return v.toFixed(4);
  return v.toExponential(3);
}

function colourOf(k: number): string {
  return SERIES_COLOURS[k % SERIES_COLOURS.length];
}

export function renderReportSvg(result: ConsistencyResult, layout: ReportLayout, title: string): string {
  const parts: string[] = [];
  let y = MARGIN;
  // 1. Header and summary table.
  parts.push(`<text x="${MARGIN}" y="${y + 20}" font-size="22" font-weight="bold">${escapeXml(title)}</text>`);
  y += 44;
  parts.push(
    `<text x="${MARGIN}" y="${y}" font-size="13" fill="#444">${result.frames} frames, ${result.width}×${result.height}; flow on the original: ${escapeXml(result.flowMethod)}</text>`,
  );
  y += 30;
  const cols = [MARGIN, MARGIN + 360, MARGIN + 520, MARGIN + 680, MARGIN + 840];
  const head = ['version', 'E_warp (mean)', 'E_warp ÷ original', 'flicker (mean |Δ|)', 'worst pair'];
  head.forEach((h, c) => {
    parts.push(`<text x="${cols[c]}" y="${y}" font-size="13" font-weight="bold">${h}</text>`);
  });
  y += 8;
  parts.push(`<line x1="${MARGIN}" x2="${WIDTH - MARGIN}" y1="${y}" y2="${y}" stroke="#999"/>`);
  const rows: [SeriesMetrics, string][] = [
    [result.original, ORIGINAL_COLOUR],
    ...result.stylized.map((s, k) => [s, colourOf(k)] as [SeriesMetrics, string]),
  ];
  for (const [s, colour] of rows) {
    y += 20;
    const worstT = s.pairWarpError.indexOf(Math.max(...s.pairWarpError));
    const ratio = result.original.warpError > 0 ? (s.warpError / result.original.warpError).toFixed(2) : '—';
    const label = s.resizedFrom ? `${s.label} (resized from ${s.resizedFrom.width}×${s.resizedFrom.height})` : s.label;
    parts.push(`<rect x="${cols[0]}" y="${y - 11}" width="12" height="12" fill="${colour}"/>`);
    parts.push(`<text x="${cols[0] + 18}" y="${y}" font-size="13">${escapeXml(label)}</text>`);
    parts.push(`<text x="${cols[1]}" y="${y}" font-size="13">${fmt(s.warpError)}</text>`);
    parts.push(`<text x="${cols[2]}" y="${y}" font-size="13">${ratio}</text>`);
    parts.push(`<text x="${cols[3]}" y="${y}" font-size="13">${fmt(s.flicker)}</text>`);
    parts.push(
      `<text x="${cols[4]}" y="${y}" font-size="13">${worstT}→${worstT + 1} (${fmt(s.pairWarpError[worstT])})</text>`,
    );
  }
  y += 30;
  // 2. Plot of the per-pair warping error over time.
  y = plot(parts, result, layout.worst, y);
  // 3. Contact sheet.
  y = contactSheet(parts, result, layout, y + 20);
  const height = y + MARGIN;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    ...parts,
    '</svg>',
  ].join('\n');
}

function plot(parts: string[], result: ConsistencyResult, worst: number[], top: number): number {
  const left = MARGIN + 70;
  const right = WIDTH - MARGIN - 10;
  const plotTop = top + 24;
  const plotH = 300;
  const bottom = plotTop + plotH;
  const pairs = result.original.pairWarpError.length;
  const all = [result.original, ...result.stylized].flatMap((s) => s.pairWarpError);
  const xOf = (t: number) => left + (pairs === 1 ? (right - left) / 2 : ((right - left) * t) / (pairs - 1));
  // A logarithmic axis when the versions differ by orders of magnitude (a consistent version next to a
  // flickering one would otherwise lie flat on zero).
  const maxV = Math.max(...all, 1e-12);
  const positive = all.filter((v) => v > 0);
  const minV = positive.length ? Math.min(...positive) : maxV;
  const logScale = maxV / minV > 30;
  const lo = Math.floor(Math.log10(minV));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(maxV)));
  const yMax = niceCeil(maxV * 1.08);
  const yOf = logScale
    ? (v: number) => bottom - (plotH * (Math.log10(Math.max(v, 10 ** lo)) - lo)) / (hi - lo)
    : (v: number) => bottom - (plotH * v) / yMax;
  parts.push(
    `<text x="${MARGIN}" y="${top + 8}" font-size="15" font-weight="bold">Warping error per frame pair (flow and occlusion from the original)${logScale ? ', log scale' : ''}</text>`,
  );
  const gridValues = logScale
    ? Array.from({ length: hi - lo + 1 }, (_, k) => 10 ** (lo + k))
    : Array.from({ length: 6 }, (_, k) => (yMax * k) / 5);
  for (const v of gridValues) {
    const yy = yOf(v);
    parts.push(`<line x1="${left}" x2="${right}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    parts.push(
      `<text x="${left - 6}" y="${yy + 4}" font-size="11" text-anchor="end">${logScale ? v.toExponential(0) : Number(v.toPrecision(3))}</text>`,
    );
  }
  const ticks = pairs <= 25 ? pairs : 12;
  for (let k = 0; k < ticks; k++) {
    const t = Math.round((k * (pairs - 1)) / Math.max(1, ticks - 1));
    parts.push(`<text x="${xOf(t)}" y="${bottom + 16}" font-size="11" text-anchor="middle">${t}</text>`);
  }
  parts.push(
    `<text x="${(left + right) / 2}" y="${bottom + 34}" font-size="12" text-anchor="middle">pair t → t+1</text>`,
  );
  parts.push(`<line x1="${left}" x2="${left}" y1="${plotTop}" y2="${bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
  worst.forEach((t, rank) => {
    const x = xOf(t);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${plotTop}" y2="${bottom}" stroke="${WORST_COLOUR}" stroke-dasharray="4 3" stroke-width="1"/>`,
    );
    const nearRight = x > right - 90;
    parts.push(
      `<text x="${nearRight ? x - 3 : x + 3}" y="${plotTop + 10 + 12 * rank}" font-size="11" fill="${WORST_COLOUR}"${nearRight ? ' text-anchor="end"' : ''}>#${rank + 1} (${t}→${t + 1})</text>`,
    );
  });
  const line = (s: SeriesMetrics, colour: string, dashed: boolean) => {
    const pts = s.pairWarpError.map((v, t) => `${xOf(t).toFixed(1)},${yOf(v).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline points="${pts}" fill="none" stroke="${colour}" stroke-width="2"${dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    if (pairs <= 60)
      for (const p of pts.split(' '))
        parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${colour}"/>`);
  };
  line(result.original, ORIGINAL_COLOUR, true);
  result.stylized.forEach((s, k) => {
    line(s, colourOf(k), false);
  });
  for (const t of worst) {
    for (const s of result.stylized)
      parts.push(
        `<circle cx="${xOf(t)}" cy="${yOf(s.pairWarpError[t])}" r="6" fill="none" stroke="${WORST_COLOUR}" stroke-width="2"/>`,
      );
  }
  return bottom + 44;
}

function contactSheet(parts: string[], result: ConsistencyResult, layout: ReportLayout, top: number): number {
  parts.push(`<text x="${MARGIN}" y="${top}" font-size="15" font-weight="bold">Frames (red: the worst pairs)</text>`);
  if (layout.frames.length === 0 || layout.thumbs.length === 0) return top + 10;
  const labelW = 130;
  const gap = 6;
  const cellW = Math.floor((WIDTH - 2 * MARGIN - labelW - gap * (layout.frames.length - 1)) / layout.frames.length);
  const t0 = layout.thumbs[0][0];
  const cellH = Math.round((cellW * t0.height) / t0.width);
  const worstRank = new Map<number, number>();
  layout.worst.forEach((t, r) => {
    if (!worstRank.has(t)) worstRank.set(t, r);
    if (!worstRank.has(t + 1)) worstRank.set(t + 1, r);
  });
  let y = top + 26;
  layout.frames.forEach((f, c) => {
    const x = MARGIN + labelW + c * (cellW + gap);
    const r = worstRank.get(f);
    parts.push(
      `<text x="${x + cellW / 2}" y="${y}" font-size="12" text-anchor="middle"${r !== undefined ? ` fill="${WORST_COLOUR}" font-weight="bold"` : ''}>frame ${f}${r !== undefined ? ` (#${r + 1})` : ''}</text>`,
    );
  });
  y += 8;
  const names = [result.original.label, ...result.stylized.map((s) => s.label)];
  layout.thumbs.forEach((row, rIdx) => {
    const name = names[rIdx].length > 17 ? `${names[rIdx].slice(0, 16)}…` : names[rIdx];
    parts.push(`<text x="${MARGIN}" y="${y + cellH / 2 + 4}" font-size="13">${escapeXml(name)}</text>`);
    row.forEach((thumb, c) => {
      const x = MARGIN + labelW + c * (cellW + gap);
      parts.push(
        `<image x="${x}" y="${y}" width="${cellW}" height="${cellH}" preserveAspectRatio="none" href="${thumb.href}" xlink:href="${thumb.href}"/>`,
      );
      if (worstRank.has(layout.frames[c]))
        parts.push(
          `<rect x="${x - 1.5}" y="${y - 1.5}" width="${cellW + 3}" height="${cellH + 3}" fill="none" stroke="${WORST_COLOUR}" stroke-width="3"/>`,
        );
    });
    y += cellH + gap;
  });
  return y;
}

/** A round number ≥ v (1, 2 or 5 times a power of ten) for the plot's axis. */
function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
