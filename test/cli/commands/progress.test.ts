// The CLI's one progress view (cli/commands/progress.ts through makeReporter): on a terminal one line redrawn in
// place with percentage and ETA; with --json one JSON line per event; otherwise occasional plain lines and the
// one that reaches the end. Progress texts say "frame 7/40, step 2/4", and fractions reach 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { makeReporter } from '../../../cli/commands/output.js';
import { describeStylizeProgress, stylizeFraction } from '../../../cli/commands/stylize.js';
import { describeProgress } from '../../../cli/commands/client-common.js';
import { formatSeconds, stopAllProgress } from '../../../cli/commands/progress.js';

/** A stream that keeps what is written; `tty` makes it look like a terminal to cli-progress. */
function sink(tty: boolean): Writable & { text: () => string; isTTY?: boolean; columns?: number } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  }) as Writable & { text: () => string; isTTY?: boolean; columns?: number };
  w.text = () => chunks.join('');
  if (tty) {
    w.isTTY = true;
    w.columns = 100;
  }
  return w;
}

test('on a terminal: one bar redrawn in place, with an ETA, not a line per update', () => {
  const err = sink(true);
  const out = sink(false);
  let now = 0;
  const r = makeReporter(false, { interactive: true, streams: { out, err }, now: () => now });
  for (let i = 1; i <= 40; i++) {
    now += 1000;
    r.progress({ event: 'progress', frame: i }, `frame ${i}/40, step 4/4`, i / 40);
  }
  r.result({}, 'wrote 40 frames');
  stopAllProgress();
  const drawn = err.text();
  assert.match(drawn, /ETA/);
  assert.match(drawn, /frame \d+\/40, step 4\/4/);
  // Redrawn in place: no newline per update (the bar's line is cleared at the end).
  assert.ok(drawn.split('\n').length <= 3, JSON.stringify(drawn.slice(0, 400)));
  assert.equal(out.text(), 'wrote 40 frames\n');
});

test('with --json: one JSON object per event on stdout, nothing on stderr', () => {
  const err = sink(true);
  const out = sink(false);
  const r = makeReporter(true, { interactive: true, streams: { out, err } });
  r.progress({ event: 'progress', frame: 1, frames: 2 }, 'frame 1/2', 0.5);
  r.progress({ event: 'progress', frame: 2, frames: 2 }, 'frame 2/2', 1);
  r.note('a note');
  r.result({ frames: 2 }, 'done');
  const lines = out
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => l.event),
    ['progress', 'progress', 'note', 'result'],
  );
  assert.equal(err.text(), '');
});

test('not a terminal: plain lines now and then, with percentage and ETA, and the last one', () => {
  const err = sink(false);
  const out = sink(false);
  let now = 0;
  const r = makeReporter(false, { interactive: false, streams: { out, err }, now: () => now, plainIntervalMs: 5000 });
  for (let i = 1; i <= 40; i++) {
    now += 1000;
    r.progress({ event: 'progress' }, `frame ${i}/40`, i / 40);
  }
  const lines = err.text().trimEnd().split('\n');
  assert.ok(lines.length >= 8 && lines.length <= 10, lines.join('\n'));
  assert.equal(lines[0], '  2% frame 1/40');
  assert.equal(lines[1], ' 15% frame 6/40, ETA 28s');
  assert.equal(lines.at(-1), '100% frame 40/40');
  assert.ok(!err.text().includes('\u001b'), 'no terminal escapes in plain lines');
});

test('stylize progress reads "frame 7/40, step 2/4"; batches name their frames; fractions reach 1', () => {
  const p = { phase: 'denoise' as const, frame: 7, frames: 40, step: 2, steps: 4 };
  assert.equal(describeStylizeProgress(p, 1), 'frame 7/40, step 2/4');
  assert.equal(describeStylizeProgress({ ...p, frame: 8 }, 4), 'frames 5–8/40, step 2/4');
  assert.equal(describeStylizeProgress({ ...p, frame: 40 }, 3), 'frame 40/40, step 2/4'); // the last batch of one
  assert.equal(describeStylizeProgress({ ...p, phase: 'frame', frame: 40, step: 4 }, 1), 'frame 40/40 done');
  assert.equal(stylizeFraction({ ...p, phase: 'frame', frame: 40, step: 4 }, 1), 1);
  assert.equal(stylizeFraction({ ...p, frame: 8 }, 4), (4 + 4 * 0.5) / 40);
  assert.equal(formatSeconds(3725), '1h02m');
  assert.equal(formatSeconds(65), '1m05s');
});

test('daemon progress reads "denoising: frame 7/40, step 2/4"; training counts iterations; frames received count', () => {
  const base = {
    type: 'progress' as const,
    job: 'j',
    state: 'running' as const,
    fraction: 0.5,
    frames_done: 6,
    frames_total: 40,
  };
  assert.equal(
    describeProgress({ ...base, stage: 'denoising', frame: 6, step: 2, steps: 4 }),
    'denoising: frame 7/40, step 2/4',
  );
  assert.equal(
    describeProgress({
      ...base,
      stage: 'training',
      frames_total: 0,
      frames_done: 0,
      iteration: 30,
      iterations: 200,
      loss: 0.12345,
    }),
    'training: iteration 30/200, loss 0.1235',
  );
  assert.equal(describeProgress({ ...base, stage: 'saving' }, 40), 'saving: 40/40 frames done');
  assert.equal(describeProgress({ ...base, state: 'queued', stage: 'queued', position: 2 }), 'queued (position 2)');
  assert.equal(
    describeProgress({
      ...base,
      stage: 'denoising',
      frame: 12,
      step: 3,
      steps: 8,
      message: 'candidate 2 of 4 (seed 8)',
    }),
    'denoising: candidate 2 of 4 (seed 8), step 3/8',
  );
});
