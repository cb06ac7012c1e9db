/**
 * ftfy's `fix_text` (ftfy 6, default settings) as CLIP's original tokenizer runs it on every prompt, without one
 * part: `fix_encoding`, the mojibake repair ("cafÃ©" → "café"), which needs ftfy's statistical "badness" model.
 * Prompts typed in Blender or a terminal are valid Unicode, so this is the rare case; everything else matches:
 * HTML entities (unless the text looks like HTML), C1 controls read as Windows-1252, Latin ligatures split,
 * full-width and half-width forms to their usual width, curly quotes straightened, line breaks unified, lone
 * surrogates replaced, terminal escapes and stray control characters removed, NFC — repeated until nothing changes.
 */
import { cp1252C1, ftfyUnescape } from './html-unescape.js';

const LIGATURES: Record<string, string> = {
  Ĳ: 'IJ',
  ĳ: 'ij',
  ŉ: 'ʼn',
  Ǳ: 'DZ',
  ǲ: 'Dz',
  ǳ: 'dz',
  Ǆ: 'DŽ',
  ǅ: 'Dž',
  ǆ: 'dž',
  Ǉ: 'LJ',
  ǈ: 'Lj',
  ǉ: 'lj',
  Ǌ: 'NJ',
  ǋ: 'Nj',
  ǌ: 'nj',
  ﬀ: 'ff',
  ﬁ: 'fi',
  ﬂ: 'fl',
  ﬃ: 'ffi',
  ﬄ: 'ffl',
  ﬅ: 'ſt',
  ﬆ: 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'g');

/** ftfy's width map: U+3000 to a space, and every form in U+FF01–U+FFEF that NFKC changes, to its NFKC form. */
function fixCharacterWidth(text: string): string {
  return text.replace(/[\u3000\uff01-\uffef]/g, (ch) => (ch === '\u3000' ? ' ' : ch.normalize('NFKC')));
}

// ftfy's CONTROL_CHARS: C0 controls but \t \n \f \r, DEL, deprecated Arabic format controls, the BOM,
// interlinear annotation marks and the object replacement character. Joiners, bidi marks and C1 stay.
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const CONTROL_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: an ANSI escape starts with ESC
const TERMINAL_ESCAPE_RE = /\x1b\[((?:\d|;)*)([a-zA-Z])/g;

function fixStep(text: string, unescapeHtml: boolean): string {
  let t = unescapeHtml ? ftfyUnescape(text) : text;
  t = t.replace(/[\x80-\x9f]/g, (ch) => cp1252C1(ch.codePointAt(0)!));
  t = t.replace(LIGATURE_RE, (ch) => LIGATURES[ch]!);
  t = fixCharacterWidth(t);
  t = t.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
  t = t.replace(/\r\n/g, '\n').replace(/[\r\u2028\u2029\u0085]/g, '\n');
  // Surrogate pairs are already one character in JavaScript; a lone surrogate becomes U+FFFD.
  t = t.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  t = t.replace(TERMINAL_ESCAPE_RE, '').replace(CONTROL_RE, '');
  return t.normalize('NFC');
}

/** ftfy.fix_text(text) with default settings, mojibake repair aside (see above). */
export function fixText(text: string): string {
  // "auto": text with a "<" may be HTML, whose entities are not ftfy's to decode.
  const unescapeHtml = !text.includes('<');
  for (;;) {
    const fixed = fixStep(text, unescapeHtml);
    if (fixed === text) return fixed;
    text = fixed;
  }
}
