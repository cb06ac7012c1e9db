/**
 * A synthetic byte-level CLIP BPE vocabulary for built models, laid out as CLIP's own:
 *   ids 0..255      the 256 byte symbols (bytes_to_unicode order: printable bytes first)
 *   ids 256..511    the same with the word-final marker `</w>`
 *   ids 512..V-3    one token per merge, in merge order
 *   V-2, V-1        `<|startoftext|>`, `<|endoftext|>`
 * so the vocabulary has exactly the text encoder's vocab_size entries and the special tokens sit where SD
 * 1.x has them (49406/49407 for a 49408-token vocabulary). The merges are deterministic: letter pairs by
 * English letter frequency, then longer letter strings, so that ordinary prompts tokenize into fewer tokens
 * than bytes. Never the real CLIP vocabulary (that one is not ours to ship).
 */
import { VidpriorError } from '../../errors.js';
import { bytesToUnicode, END_OF_WORD } from '../../tokenizer/bpe.js';

const LETTERS = 'etaoinsrhldcumfpgwybvkxjqz';

export interface TokenizerFiles {
  vocab: Record<string, number>;
  /** merges.txt content, with the `#version` header line. */
  merges: string;
  bosId: number;
  eosId: number;
}

/** The byte symbols in CLIP's vocabulary order (bytes_to_unicode's dict order). */
function byteSymbols(): string[] {
  const table = bytesToUnicode();
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const order: number[] = [];
  for (let b = 0; b < 256; b++) if (printable(b)) order.push(b);
  for (let b = 0; b < 256; b++) if (!printable(b)) order.push(b);
  return order.map((b) => table[b]!);
}

/** `count` merges: (prefix, letter) and (prefix, letter</w>) for ever longer letter prefixes. */
function syntheticMerges(count: number): [string, string][] {
  const merges: [string, string][] = [];
  const rank = (c: string): number => LETTERS.indexOf(c);
  // Level 1: letter pairs, most frequent letters first.
  const pairs: [string, string][] = [];
  for (const a of LETTERS) for (const b of LETTERS) pairs.push([a, b]);
  pairs.sort((p, q) => rank(p[0]) + rank(p[1]) - (rank(q[0]) + rank(q[1])) || rank(p[0]) - rank(q[0]));
  let prefixes: string[] = [];
  for (const [a, b] of pairs) {
    if (merges.length >= count) return merges;
    merges.push([a, b]);
    if (merges.length >= count) return merges;
    merges.push([a, b + END_OF_WORD]);
    prefixes.push(a + b);
  }
  // Longer levels: every prefix made so far, extended by each letter.
  while (merges.length < count) {
    const next: string[] = [];
    for (const p of prefixes) {
      for (const c of LETTERS) {
        if (merges.length >= count) return merges;
        merges.push([p, c]);
        if (merges.length >= count) return merges;
        merges.push([p, c + END_OF_WORD]);
        next.push(p + c);
      }
    }
    prefixes = next;
  }
  return merges;
}

/** The vocabulary and merges of a `vocabSize`-token synthetic CLIP tokenizer (vocabSize ≥ 514). */
export function syntheticTokenizer(vocabSize: number): TokenizerFiles {
  if (!Number.isInteger(vocabSize) || vocabSize < 514)
    throw new VidpriorError('E_BAD_REQUEST', `a CLIP vocabulary needs at least 514 tokens, got ${vocabSize}`);
  const bytes = byteSymbols();
  const tokens = [...bytes, ...bytes.map((s) => s + END_OF_WORD)];
  const merges = syntheticMerges(vocabSize - tokens.length - 2);
  for (const [a, b] of merges) tokens.push(a + b);
  tokens.push('<|startoftext|>', '<|endoftext|>');
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    vocab[t] = i;
  });
  const lines = ['#version: 0.2', ...merges.map(([a, b]) => `${a} ${b}`)];
  return { vocab, merges: `${lines.join('\n')}\n`, bosId: vocabSize - 2, eosId: vocabSize - 1 };
}
