import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { measureConsistency, memorySequence } from '../../src/metrics/consistency.js';
import { ThumbnailStore, writeReport } from '../../src/metrics/report.js';
import { sheetFrames, worstPairs } from '../../src/metrics/report-svg.js';
import { consistentStyle, renderShifted, scaleBrightness, smoothTexture } from './helpers.js';

const tex = smoothTexture(8, 8, 40);
const frames = Array.from({ length: 6 }, (_, t) => renderShifted(tex, 48, 40, 0.8 * t, 0.3 * t));
// Version "bad" flickers only on the pair 3 → 4: that pair must come out worst and be marked.
const bad = frames.map((f, t) => (t === 4 ? scaleBrightness(consistentStyle(f), 1.4) : consistentStyle(f)));

test('the worst pairs and the contact-sheet frames', async () => {
  const r = await measureConsistency(memorySequence('o', frames), [memorySequence('s', bad)]);
  const worst = worstPairs(r, 2);
  assert.deepEqual([...worst].sort(), [3, 4]); // pairs 3→4 and 4→5 both see the bright frame 4
  assert.deepEqual(sheetFrames(6, [3, 4], 4), [0, 3, 4, 5]); // both worst pairs, then one spread-out frame
  assert.deepEqual(sheetFrames(20, [7], 5), [0, 7, 8, 10, 19]);
});

test('the thumbnail store keeps the worst pairs and the spread frames only', () => {
  const img = frames[0];
  const store = new ThumbnailStore(200, 16);
  for (let t = 0; t < 200; t++) {
    store.add(t, img, [img]);
    if (t > 0) store.pairDone(t - 1, t - 1 === 57 ? 9 : t - 1 === 123 ? 8 : 0.001 * ((t * 37) % 11));
  }
  assert.ok(store.get(57) && store.get(58) && store.get(123) && store.get(124), 'frames of the worst pairs kept');
  assert.ok(store.get(0) && store.get(199), 'spread frames kept');
  assert.ok(store.size < 50, `holds ${store.size} frames`);
});

test('reports are written as SVG, HTML and PNG with the plot and the marked worst pair', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-report-'));
  try {
    const thumbs = new ThumbnailStore(frames.length, 64);
    const r = await measureConsistency(
      memorySequence('o', frames),
      [memorySequence('s', bad), memorySequence('t', frames.map(consistentStyle))],
      {
        labels: ['flickers', 'steady'],
        onFrame: (i, o, s) => thumbs.add(i, o, s),
        onPair: (t, errors) => thumbs.pairDone(t, Math.max(...errors)),
      },
    );
    await writeReport(join(dir, 'r.svg'), r, thumbs, 'Test <clip>');
    const svg = readFileSync(join(dir, 'r.svg'), 'utf8');
    assert.match(svg, /Test &lt;clip&gt;/);
    assert.match(svg, /#1 \((3→4|4→5)\)/);
    assert.equal((svg.match(/<polyline/g) ?? []).length, 3); // original + two versions
    assert.equal((svg.match(/<image /g) ?? []).length, 3 * 6); // every frame fits on the sheet: 3 rows × 6
    await writeReport(join(dir, 'r.html'), r, thumbs, 'Test');
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    assert.match(html, /<td>3→4<\/td>/);
    assert.match(html, /flickers E_warp/);
    await writeReport(join(dir, 'r.png'), r, thumbs, 'Test');
    const meta = await sharp(join(dir, 'r.png')).metadata();
    assert.equal(meta.format, 'png');
    assert.ok((meta.width ?? 0) >= 1200, `png width ${meta.width}`);
    await assert.rejects(writeReport(join(dir, 'r.txt'), r, thumbs, 'x'), /must end in \.html, \.png or \.svg/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
