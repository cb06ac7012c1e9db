/**
 * Text clean-up before CLIP's pre-tokenization, mirroring HF transformers' CLIPTokenizer when `ftfy` is not
 * installed (the usual diffusers set-up): it runs BERT's BasicTokenizer with strip_accents=False and
 * do_split_on_punc=False, i.e.
 *   1. drop NUL, U+FFFD and every "control" character (Unicode category C*: Cc, Cf such as the emoji
 *      zero-width joiner, Cs, Co, Cn) except \t \n \r; turn \t \n \r and category Zs into a plain space;
 *   2. put spaces around CJK ideographs (the CJK Unified Ideographs blocks only: not kana, not hangul);
 *   3. NFC-normalize;
 *   4. split on whitespace, lower-case each piece (Python's str.lower: full case mapping, final sigma),
 *      join with single spaces.
 * Accents are kept (café stays café) and punctuation is not split here: the CLIP regex does that next.
 */

const CONTROL = /\p{C}/u;
const SPACE_SEPARATOR = /\p{Zs}/u;
// What Python's str.split() treats as whitespace (str.isspace), for the split in step 4.
// biome-ignore lint/suspicious/noControlCharactersInRegex: Python's str.split() whitespace set includes \x1c-\x1f
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

/** BERT's _is_chinese_char: the CJK Unified Ideographs blocks and their compatibility/extension blocks. */
export function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** Steps 1–2: control characters out, whitespace to spaces, spaces around CJK ideographs. */
export function cleanText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\t' || ch === '\n' || ch === '\r' || SPACE_SEPARATOR.test(ch)) {
      out += ' ';
      continue;
    }
    if (cp === 0 || cp === 0xfffd || CONTROL.test(ch)) continue;
    out += isCjkIdeograph(cp) ? ` ${ch} ` : ch;
  }
  return out;
}

/** The whole clean-up: the text the CLIP pre-tokenization regex runs on. */
export function normalizeForClip(text: string): string {
  const normalized = cleanText(text).normalize('NFC');
  return normalized
    .split(PY_WHITESPACE)
    .filter((piece) => piece.length > 0)
    .map((piece) => piece.toLowerCase())
    .join(' ');
}

/**
 * The text the word pattern runs on. One difference between Python's `regex` module and JavaScript's /iu has to
 * be bridged: U+0345 COMBINING GREEK YPOGEGRAMMENI case-folds to a letter (ι), so under IGNORECASE the `regex`
 * module matches it with no alternative (findall skips it, splitting the words around it), while JS /iu counts it
 * as a letter. A space has exactly the reference's effect. (Checked over every code point: it is the only one.)
 */
export function prepareForWordPattern(normalized: string): string {
  return normalized.includes('\u0345') ? normalized.replace(/\u0345/g, ' ') : normalized;
}

/**
 * CLIP's pre-tokenization pattern (compiled case-insensitively like the reference): the two special tokens,
 * English contractions, runs of letters, single digits, runs of other non-space characters.
 */
export function clipWordPattern(): RegExp {
  return /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
}
