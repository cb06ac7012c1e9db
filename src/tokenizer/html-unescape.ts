/**
 * HTML character references decoded as Python does it, for the CLIP tokenizer's text clean-up: `pythonUnescape`
 * is `html.unescape` (Python 3.11: numeric references with the HTML5 replacement rules, named references from the
 * HTML5 table, the legacy names that need no semicolon, the longest-prefix rule), and `ftfyUnescape` is ftfy's
 * stricter `unescape_html` (only references that end in ";", plus ALL-CAPS forms of lower-case names). The
 * entity table is the HTML5 one, from the character-entities packages (the same 2,125 + 106 names as Python's).
 */
import { characterEntities } from 'character-entities';
import { characterEntitiesLegacy } from 'character-entities-legacy';

const NAMED = characterEntities as Record<string, string>;
const LEGACY = new Set(characterEntitiesLegacy);

/** Python's html.entities.html5 lookup: names with ";" for every entity, without it for the legacy ones. */
function html5(name: string): string | undefined {
  if (name.endsWith(';')) return Object.hasOwn(NAMED, name.slice(0, -1)) ? NAMED[name.slice(0, -1)] : undefined;
  return LEGACY.has(name) ? NAMED[name] : undefined;
}

// Windows-1252 for 0x80–0x9F (HTML5's numeric-reference replacements; ftfy's "sloppy" decoding of C1 controls
// keeps the five undefined bytes as they are).
const CP1252_C1 = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

/** The character Windows-1252 gives a C1 control's byte (U+0080–U+009F). */
export function cp1252C1(cp: number): string {
  return String.fromCodePoint(CP1252_C1[cp - 0x80]!);
}

/** Python's html._invalid_codepoints: references to these decode to nothing. */
function invalidCodepoint(n: number): boolean {
  return (
    (n >= 0x1 && n <= 0x8) ||
    n === 0xb ||
    (n >= 0xe && n <= 0x1f) ||
    (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe
  );
}

function numericReference(body: string): string {
  const hex = body[1] === 'x' || body[1] === 'X';
  const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
  const n = Number.parseInt(digits, hex ? 16 : 10);
  if (n === 0) return '\ufffd';
  if (n === 0x0d) return '\r';
  if (n >= 0x80 && n <= 0x9f) return cp1252C1(n);
  if ((n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff) return '\ufffd';
  if (invalidCodepoint(n)) return '';
  return String.fromCodePoint(n);
}

const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Python's `html.unescape`. */
export function pythonUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (whole, body: string) => {
    if (body[0] === '#') return numericReference(body);
    const exact = html5(body);
    if (exact !== undefined) return exact;
    // The longest name the reference starts with (legacy names need no ";"), as the HTML standard says.
    for (let x = body.length - 1; x > 1; x--) {
      const prefix = html5(body.slice(0, x));
      if (prefix !== undefined) return prefix + body.slice(x);
    }
    return whole;
  });
}

const FTFY_ENTITY = /&#?[0-9A-Za-z]{1,24};/g;

/** ftfy's entity table entry for `&name;`: the HTML5 name, or the upper-cased form of a lower-case one. */
function ftfyEntity(reference: string): string | undefined {
  const name = reference.slice(1);
  const exact = html5(name);
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  if (lower.toUpperCase() !== name || lower === name) return undefined;
  const char = html5(lower);
  // ftfy adds the ALL-CAPS form only where Python's html.unescape leaves it alone.
  if (char === undefined || pythonUnescape(reference) !== reference) return undefined;
  return char.toUpperCase();
}

/** ftfy's `unescape_html`: references that end in ";" only (so "this&not that" stays). */
export function ftfyUnescape(text: string): string {
  return text.replace(FTFY_ENTITY, (reference) => {
    const named = ftfyEntity(reference);
    if (named !== undefined) return named;
    if (reference.startsWith('&#')) {
      const decoded = pythonUnescape(reference);
      return decoded.includes(';') ? reference : decoded;
    }
    return reference;
  });
}
