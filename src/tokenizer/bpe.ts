/**
 * Byte-level BPE as CLIP uses it (the same algorithm as OpenAI's simple_tokenizer and HF transformers'
 * CLIPTokenizer.bpe): a word is turned into its UTF-8 bytes, each byte mapped to a printable character
 * (bytes_to_unicode), the last symbol gets the word-final marker `</w>`, and the pair with the lowest merge rank
 * is merged repeatedly until no ranked pair is left.
 */

/** The reversible byte → printable character table of GPT-2/CLIP (printable Latin-1 bytes map to themselves). */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b); // '!'..'~'
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b); // '¡'..'¬'
  for (let b = 0xae; b <= 0xff; b++) bs.push(b); // '®'..'ÿ'
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}

const BYTE_TO_CHAR = bytesToUnicode();
const CHAR_TO_BYTE = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));
const utf8 = new TextEncoder();

/** A piece of text as the byte-level alphabet the vocabulary is written in. */
export function byteEncode(text: string): string {
  let out = '';
  for (const b of utf8.encode(text)) out += BYTE_TO_CHAR[b]!;
  return out;
}

/** The inverse of byteEncode over a sequence of vocabulary tokens (unknown characters are skipped). */
export function byteDecode(symbols: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of symbols) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) bytes.push(b);
  }
  return Uint8Array.from(bytes);
}

/** Word-final marker appended to the last symbol of every word. */
export const END_OF_WORD = '</w>';

/**
 * Merge ranks plus a per-word cache. The key of a pair is `first + ' ' + second` (symbols never contain a
 * space: the byte table maps the space byte to 'Ġ').
 */
export class BytePairEncoder {
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, string[]>();

  /** `merges[i]` has rank i; a null entry (a malformed line) still uses up its rank, as in the reference. */
  constructor(merges: readonly (readonly [string, string] | null)[], preset: Record<string, string[]> = {}) {
    this.ranks = new Map();
    merges.forEach((pair, i) => {
      if (!pair) return;
      // dict(zip(...)) in the reference keeps the LAST rank of a duplicated pair.
      this.ranks.set(`${pair[0]} ${pair[1]}`, i);
    });
    for (const [word, symbols] of Object.entries(preset)) this.cache.set(word, symbols);
  }

  get mergeCount(): number {
    return this.ranks.size;
  }

  /** BPE symbols of one byte-encoded word (non-empty), the last one carrying `</w>`. */
  encodeWord(word: string): string[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const chars = Array.from(word); // code points: the byte alphabet has no surrogates but be safe
    let symbols = chars.slice(0, -1);
    symbols.push(chars[chars.length - 1]! + END_OF_WORD);
    if (symbols.length < 2) {
      // The reference returns early without caching here; the result is the same.
      return symbols;
    }
    for (;;) {
      // 1. Find the ranked pair with the lowest rank (ranks are unique, so there are no ties).
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < symbols.length - 1; i++) {
        const r = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = symbols[best]!;
      const second = symbols[best + 1]!;
      // 2. Merge every non-overlapping occurrence, scanning left to right like the reference.
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; ) {
        if (symbols[i] === first && i < symbols.length - 1 && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]!);
          i += 1;
        }
      }
      symbols = merged;
      if (symbols.length === 1) break;
    }
    this.cache.set(word, symbols);
    return symbols;
  }
}

/**
 * Parses merges.txt as the reference does: drop the `#version` header line, keep at most
 * 49152 − 256 − 2 merges (CLIP's vocabulary budget), split each line on whitespace.
 */
export function parseMerges(text: string, limit = 49152 - 256 - 2): ([string, string] | null)[] {
  const lines = text
    .trim()
    .split('\n')
    .slice(1, 1 + limit);
  return lines.map((line) => {
    const parts = line.trim().split(/\s+/);
    return parts.length === 2 ? ([parts[0]!, parts[1]!] as [string, string]) : null;
  });
}
