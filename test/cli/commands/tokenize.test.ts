import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';

const CLI = 'dist/cli/main.js';
const MODEL = '../shared/fixtures/tiny-sd-torch';

function vidprior(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

test('vidprior tokenize prints the 77 ids as JSON and warns on stderr when truncated', {
  skip: existsSync(MODEL) ? false : 'needs ../shared/fixtures',
}, () => {
  const r = vidprior(['tokenize', '--model', MODEL, 'A photo of a CAT!!']);
  assert.equal(r.status, 0, r.stderr);
  const ids = JSON.parse(r.stdout) as number[];
  assert.equal(ids.length, 77);
  assert.deepEqual(ids.slice(0, 8), [49406, 320, 1125, 539, 320, 2368, 748, 49407]);
  assert.equal(r.stderr, '');
  const long = vidprior(['tokenize', '--model', join(MODEL, 'tokenizer'), Array(80).fill('cat').join(' ')]);
  assert.equal(long.status, 0);
  assert.match(
    long.stderr,
    /warning: the prompt is longer than 75 tokens; this part was dropped: "cat cat cat cat cat"/,
  );
});

test('vidprior tokenize without --model uses the embedded default; a bad --model exits 2 naming it', () => {
  const cache = mkdtempSync(join(tmpdir(), 'vidprior-cache-'));
  try {
    const r = vidprior(['tokenize', 'hello world'], { VIDPRIOR_CACHE_DIR: cache });
    assert.equal(r.status, 0, r.stderr);
    const ids = JSON.parse(r.stdout) as number[];
    assert.equal(ids.length, 77);
    assert.match(r.stderr, /embedded default/);
    const bad = vidprior(['tokenize', '--model', join(cache, 'nowhere'), 'x']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /E_MODEL_MISSING.*nowhere/);
    assert.doesNotMatch(bad.stderr, /at .*\.js/);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
