import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ClipTokenizer } from '../../src/tokenizer/clip.js';
import { VidpriorError } from '../../src/errors.js';

const VOCAB_DIR = '../shared/fixtures/tiny-sd-torch/tokenizer';
const REFERENCE = '../shared/fixtures/clip-tokenizer/reference.json';
const haveShared = existsSync(join(VOCAB_DIR, 'vocab.json')) && existsSync(REFERENCE);
const skip = haveShared ? false : 'needs ../shared/fixtures (CLIP vocabulary and reference ids)';

let real: ClipTokenizer | undefined;
async function clip(): Promise<ClipTokenizer> {
  real ??= await ClipTokenizer.fromFolder(VOCAB_DIR);
  return real;
}

test('every prompt of the shared reference gets exactly the reference ids', { skip }, async () => {
  const tok = await clip();
  const cases = JSON.parse(readFileSync(REFERENCE, 'utf8')) as { prompt: string; input_ids: number[] }[];
  assert.ok(cases.length > 0);
  for (const c of cases) {
    const { ids } = tok.encode(c.prompt);
    assert.deepEqual([...ids], c.input_ids, `prompt ${JSON.stringify(c.prompt)}`);
  }
});

// Ids from CLIP's original tokenizer written out in clip-original.py (ftfy 6.3.1, html.unescape, the `regex`
// module): accents, decomposed accents (NFC), CJK (no splitting per ideograph), hangul, Cyrillic/Greek/Hebrew/
// Arabic, emoji with ZWJ and skin tones, control and zero-width characters, exotic spaces, full- and half-width
// forms, ligatures, curly quotes, HTML entities, terminal escapes, C1 controls, contractions, digits, special
// tokens typed in the prompt (exact and upper case), final sigma, and prompts of 75, 76 and many more tokens.
const CASES = 'test/tokenizer/clip-cases.json';

test("CJK, emoji, accented, mixed-script, HTML-entity and over-long prompts get the original CLIP tokenizer's ids (clip-original.py)", {
  skip,
}, async () => {
  const tok = await clip();
  const cases = JSON.parse(readFileSync(CASES, 'utf8')) as { prompt: string; ids: number[] }[];
  for (const c of cases) {
    const { ids } = tok.encode(c.prompt);
    assert.deepEqual([...ids], c.ids, `prompt ${JSON.stringify(c.prompt)}`);
  }
});

test('truncation keeps 75 content tokens, then EOS, and reports what was dropped', { skip }, async () => {
  const tok = await clip();
  const fits = tok.encode(Array(75).fill('word').join(' '));
  assert.equal(fits.truncated, false);
  assert.equal(fits.tokens.length, 75);
  assert.equal(fits.ids[76], tok.eosId);
  const over = tok.encode(`${Array(75).fill('word').join(' ')} extra tail`);
  assert.equal(over.truncated, true);
  assert.equal(over.tokens.length, 75);
  assert.equal(over.ids.length, 77);
  assert.equal(over.ids[0], tok.bosId);
  assert.equal(over.ids[76], tok.eosId);
  assert.equal(over.removedText, 'extra tail');
  assert.equal(tok.maxLength, 77);
});

test('ids of the special tokens come from vocab.json', { skip }, async () => {
  const tok = await clip();
  const vocab = JSON.parse(readFileSync(join(VOCAB_DIR, 'vocab.json'), 'utf8')) as Record<string, number>;
  assert.equal(tok.bosId, vocab['<|startoftext|>']);
  assert.equal(tok.eosId, vocab['<|endoftext|>']);
  assert.equal(tok.padId, vocab['<|endoftext|>']);
  assert.equal(tok.decode(tok.encode('A photo of a CAT!!').ids), 'a photo of a cat !!');
});

test('pad_token "!" from special_tokens_map.json pads with id 0 and splits "!" like the reference (diffusers #4153)', {
  skip,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-tok-'));
  try {
    copyFileSync(join(VOCAB_DIR, 'vocab.json'), join(dir, 'vocab.json'));
    copyFileSync(join(VOCAB_DIR, 'merges.txt'), join(dir, 'merges.txt'));
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ model_max_length: 77, pad_token: '<|endoftext|>' }),
    );
    writeFileSync(
      join(dir, 'special_tokens_map.json'),
      JSON.stringify({ pad_token: { content: '!', lstrip: false, rstrip: false } }),
    );
    const tok = await ClipTokenizer.fromFolder(dir);
    assert.equal(tok.padId, 0);
    // The reference output quoted in diffusers issue #4153 for SD 2.x / XL's tokenizer.
    const expected = [49406, 0, 0, 0, 0, 0, 0, 49407, ...Array(69).fill(0)];
    assert.deepEqual([...tok.encode('! !! !!!').ids], expected);
    const cat = tok.encode('a cat');
    assert.deepEqual([...cat.ids.slice(0, 5)], [49406, 320, 2368, 49407, 0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A byte-level vocabulary like the one the model builder writes for the tiny default model. */
function syntheticVocab(): { vocab: Record<string, number>; merges: string } {
  const chars: string[] = [];
  for (let b = 0x21; b <= 0x7e; b++) chars.push(String.fromCharCode(b));
  for (let b = 0xa1; b <= 0xac; b++) chars.push(String.fromCharCode(b));
  for (let b = 0xae; b <= 0xff; b++) chars.push(String.fromCharCode(b));
  for (let n = 0; chars.length < 256; n++) chars.push(String.fromCharCode(256 + n));
  const vocab: Record<string, number> = {};
  for (const c of chars) vocab[c] = Object.keys(vocab).length;
  for (const c of chars) vocab[`${c}</w>`] = Object.keys(vocab).length;
  const merges = [
    ['h', 'e'],
    ['he', 'l'],
    ['hel', 'l'],
    ['hell', 'o</w>'],
  ];
  for (const [a, b] of merges) vocab[a! + b!] = Object.keys(vocab).length;
  vocab['<|startoftext|>'] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  return { vocab, merges: `#version: 0.2\n${merges.map((m) => m.join(' ')).join('\n')}\n` };
}

test('a small synthetic byte-level vocabulary works (no assumption on vocabulary size)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-tok-'));
  try {
    const { vocab, merges } = syntheticVocab();
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
    writeFileSync(join(dir, 'merges.txt'), merges);
    const tok = await ClipTokenizer.fromFolder(dir);
    assert.equal(tok.bosId, 516);
    assert.equal(tok.eosId, 517);
    const r = tok.encode('Hello hi, é');
    assert.deepEqual(r.tokens, ['hello</w>', 'h', 'i</w>', ',</w>', 'Ã', '©</w>']);
    assert.deepEqual(
      [...r.ids.slice(0, 8)],
      [516, vocab['hello</w>'], vocab.h, vocab['i</w>'], vocab[',</w>'], vocab.Ã, vocab['©</w>'], 517],
    );
    assert.ok(r.ids.slice(8).every((id) => id === 517));
    assert.equal(tok.decode(r.ids), 'hello hi , é');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tokenizer folder without its files or its special tokens gets an error naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vidprior-tok-'));
  try {
    await assert.rejects(
      ClipTokenizer.fromFolder(dir),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_MODEL_MISSING' && e.message.includes('vocab.json'),
    );
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify({ a: 0, 'a</w>': 1 }));
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n');
    await assert.rejects(
      ClipTokenizer.fromFolder(dir),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_MODEL_INPUT' && e.message.includes('<|startoftext|>'),
    );
    writeFileSync(join(dir, 'vocab.json'), '{not json');
    await assert.rejects(
      ClipTokenizer.fromFolder(dir),
      (e: unknown) => e instanceof VidpriorError && e.code === 'E_MODEL_INPUT',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
