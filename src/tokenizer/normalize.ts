/**
 * Text clean-up before CLIP's pre-tokenization, as CLIP's ORIGINAL tokenizer does it (openai/CLIP
 * simple_tokenizer.py, what the text encoder was trained with):
 *   1. basic_clean: ftfy.fix_text (ftfy.ts), then html.unescape twice (html-unescape.ts), then strip;
 *   2. whitespace_clean: every run of Unicode White_Space becomes one space, then strip;
 *   3. lower-case (Python's str.lower: full case mapping, final sigma).
 * Accents are kept (café stays café), ideographs are NOT split one per word (that is HF's ftfy-less fallback,
 * which CLIP never saw), and punctuation is not split here: the CLIP regex does that next.
 */
import { fixText } from './ftfy.js';
import { pythonUnescape } from './html-unescape.js';

// Python's str.strip() strips str.isspace() characters; the `regex` module's \s is Unicode White_Space, which
// lacks \x1c-\x1f (ftfy removes those first, so the two sets agree on what is left).
const PY_STRIP =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Python's str.isspace() set includes \x1c-\x1f
  /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/gu;
const WHITE_SPACE = /[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/gu;

/** The whole clean-up: the text the CLIP pre-tokenization regex runs on. */
export function normalizeForClip(text: string): string {
  const cleaned = pythonUnescape(pythonUnescape(fixText(text))).replace(PY_STRIP, '');
  return cleaned.replace(WHITE_SPACE, ' ').replace(PY_STRIP, '').toLowerCase();
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
