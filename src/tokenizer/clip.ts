/**
 * The CLIP BPE tokenizer of Stable Diffusion 1.x. Prompt text is cleaned as CLIP's ORIGINAL tokenizer does it
 * (ftfy, HTML unescaping, whitespace, lower case: normalize.ts), the tokenizer the text encoder was trained with;
 * special tokens and padding follow HF transformers' `CLIPTokenizer` as diffusers calls it,
 * `tokenizer(prompt, padding="max_length", max_length=77, truncation=True)`:
 *   1. split the raw prompt on the special ("added") tokens: bos, eos, unk, pad and any `added_tokens_decoder`
 *      entry, matched exactly and case-sensitively. With SD 2.x's pad token "!" every "!" becomes id 0 this way,
 *      which is what diffusers does (diffusers issue #4153);
 *   2. clean up and lower-case each other piece (normalize.ts), cut it with CLIP's regex, byte-encode each
 *      piece and run BPE on it (bpe.ts);
 *   3. look the symbols up in vocab.json (unknown → unk id), keep the first maxLength − 2, add BOS and EOS,
 *      pad with the pad id to maxLength.
 * For SD 1.x's vocabulary this gives the original tokenizer's ids (test/tokenizer/clip-original.py writes the
 * expected ones). Special ids are read from vocab.json, never assumed; the vocabulary may be any size.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VidpriorError } from '../errors.js';
import { BytePairEncoder, byteDecode, byteEncode, END_OF_WORD, parseMerges } from './bpe.js';
import { clipWordPattern, normalizeForClip, prepareForWordPattern } from './normalize.js';

export interface EncodedPrompt {
  /** maxLength ids: BOS, content, EOS, padding. */
  ids: Int32Array;
  /** True when content tokens were dropped to fit. */
  truncated: boolean;
  /** The content tokens kept (vocabulary strings, without BOS/EOS/padding). */
  tokens: string[];
  /** The text of the dropped tokens, as the reference's truncation warning shows it ('' when none). */
  removedText: string;
}

/** One special token as tokenizer_config.json / special_tokens_map.json describe it. */
export interface SpecialToken {
  content: string;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

export interface ClipTokenizerOptions {
  bos?: string | SpecialToken;
  eos?: string | SpecialToken;
  unk?: string | SpecialToken;
  pad?: string | SpecialToken;
  /** Extra added tokens (content → id), e.g. from tokenizer_config.json's added_tokens_decoder. */
  added?: Map<string, { id: number; token: SpecialToken }>;
  maxLength?: number;
}

const DEFAULT_MAX_LENGTH = 77;

function special(t: string | SpecialToken | undefined, fallback: string): SpecialToken {
  if (t === undefined) return { content: fallback, lstrip: false, rstrip: false, singleWord: false };
  return typeof t === 'string' ? { content: t, lstrip: false, rstrip: false, singleWord: false } : t;
}

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  private readonly vocab: Map<string, number>;
  private readonly idToToken: Map<number, string>;
  private readonly bpe: BytePairEncoder;
  /** Added tokens that are never split (content → id and strip behaviour), longest first for matching. */
  private readonly added: { content: string; id: number; token: SpecialToken }[];

  constructor(
    vocab: Record<string, number>,
    merges: readonly ([string, string] | null)[],
    options: ClipTokenizerOptions = {},
    source = 'vocab.json',
  ) {
    this.vocab = new Map(Object.entries(vocab));
    this.idToToken = new Map([...this.vocab].map(([t, i]) => [i, t]));
    const bos = special(options.bos, '<|startoftext|>');
    const eos = special(options.eos, '<|endoftext|>');
    const unk = special(options.unk, '<|endoftext|>');
    const pad = special(options.pad, '<|endoftext|>');
    const idOf = (t: SpecialToken, role: string): number => {
      const id = this.vocab.get(t.content) ?? options.added?.get(t.content)?.id;
      if (id === undefined) {
        throw new VidpriorError('E_MODEL_INPUT', `${source} has no ${role} token ${JSON.stringify(t.content)}`, {
          file: source,
          token: t.content,
        });
      }
      return id;
    };
    this.bosId = idOf(bos, 'start-of-text (bos)');
    this.eosId = idOf(eos, 'end-of-text (eos)');
    this.unkId = idOf(unk, 'unknown (unk)');
    this.padId = idOf(pad, 'padding (pad)');
    const added = new Map<string, { content: string; id: number; token: SpecialToken }>();
    for (const t of [bos, eos, unk, pad])
      added.set(t.content, { content: t.content, id: this.vocab.get(t.content)!, token: t });
    for (const [content, a] of options.added ?? []) added.set(content, { content, id: a.id, token: a.token });
    for (const a of added.values()) if (a.id === undefined) a.id = idOf(a.token, 'added');
    this.added = [...added.values()]
      .filter((a) => a.content.length > 0)
      .sort((a, b) => b.content.length - a.content.length);
    for (const a of this.added) this.idToToken.set(a.id, a.content);
    // The reference seeds its BPE cache with the two special strings so the regex can match them inside text.
    this.bpe = new BytePairEncoder(merges, {
      '<|startoftext|>': ['<|startoftext|>'],
      '<|endoftext|>': ['<|endoftext|>'],
    });
    const max = options.maxLength ?? DEFAULT_MAX_LENGTH;
    if (!Number.isInteger(max) || max < 2) {
      throw new VidpriorError('E_MODEL_INPUT', `${source}: model_max_length must be an integer ≥ 2, got ${max}`, {
        model_max_length: max,
      });
    }
    this.maxLength = max;
  }

  /** Loads `<dir>/vocab.json` and `<dir>/merges.txt` (+ tokenizer_config.json, special_tokens_map.json if present). */
  static async fromFolder(dir: string): Promise<ClipTokenizer> {
    const vocabPath = join(dir, 'vocab.json');
    const mergesPath = join(dir, 'merges.txt');
    for (const p of [vocabPath, mergesPath]) {
      if (!existsSync(p)) throw new VidpriorError('E_MODEL_MISSING', `tokenizer file missing: ${p}`, { file: p });
    }
    const vocab = await readJson(vocabPath);
    if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) {
      throw new VidpriorError('E_MODEL_INPUT', `${vocabPath} is not a JSON object of token → id`, { file: vocabPath });
    }
    const merges = parseMerges(await readFile(mergesPath, 'utf8'));
    const options = await readTokenizerOptions(dir);
    return new ClipTokenizer(vocab as Record<string, number>, merges, options, vocabPath);
  }

  /** The vocabulary tokens of a prompt, before truncation and without BOS/EOS. */
  tokenize(prompt: string): string[] {
    const out: string[] = [];
    for (const piece of this.splitOnAddedTokens(prompt)) {
      if (typeof piece !== 'string') {
        out.push(piece.content);
        continue;
      }
      for (const match of prepareForWordPattern(normalizeForClip(piece)).matchAll(clipWordPattern())) {
        out.push(...this.bpe.encodeWord(byteEncode(match[0])));
      }
    }
    return out;
  }

  /** The model input for a prompt: maxLength ids, BOS first, EOS after the content, then padding. */
  encode(prompt: string): EncodedPrompt {
    const all = this.tokenize(prompt);
    const room = this.maxLength - 2;
    const tokens = all.slice(0, room);
    const ids = new Int32Array(this.maxLength).fill(this.padId);
    ids[0] = this.bosId;
    tokens.forEach((t, i) => {
      ids[i + 1] = this.tokenId(t);
    });
    ids[tokens.length + 1] = this.eosId;
    const dropped = all.slice(room);
    return { ids, truncated: dropped.length > 0, tokens, removedText: this.decodeTokens(dropped) };
  }

  /** The id of one vocabulary token (the unk id when absent, as the reference does). */
  tokenId(token: string): number {
    return this.addedId(token) ?? this.vocab.get(token) ?? this.unkId;
  }

  /** Text of a list of ids (special tokens kept as their strings), like the reference's decode. */
  decode(ids: ArrayLike<number>, skipSpecial = true): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (skipSpecial && this.added.some((a) => a.id === id)) continue;
      const t = this.idToToken.get(id);
      if (t !== undefined) tokens.push(t);
    }
    return this.decodeTokens(tokens);
  }

  private decodeTokens(tokens: string[]): string {
    // As the reference: bytes back to UTF-8 (invalid sequences replaced), then `</w>` → space, then strip.
    const text = new TextDecoder('utf-8', { fatal: false }).decode(byteDecode(tokens.join('')));
    return text.split(END_OF_WORD).join(' ').trim();
  }

  private addedId(token: string): number | undefined {
    for (const a of this.added) if (a.content === token) return a.id;
    return undefined;
  }

  /**
   * The reference's split on added tokens (PreTrainedTokenizer.tokenize with its trie): leftmost match, longest
   * first; an added token with rstrip/lstrip eats the spaces on that side, single_word only matches whole words.
   */
  private splitOnAddedTokens(text: string): (string | { content: string })[] {
    const parts: (string | { content: string; token: SpecialToken })[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const hit = this.added.find((a) => text.startsWith(a.content, i));
      if (!hit) {
        i++;
        continue;
      }
      if (i > start) parts.push(text.slice(start, i));
      parts.push({ content: hit.content, token: hit.token });
      i += hit.content.length;
      start = i;
    }
    if (start < text.length) parts.push(text.slice(start));
    // Apply the strip/single_word rules on the neighbours exactly as the reference's loop does.
    for (let k = 0; k < parts.length; k++) {
      const p = parts[k]!;
      if (typeof p === 'string') continue;
      const left = k > 0 ? parts[k - 1] : undefined;
      const right = k < parts.length - 1 ? parts[k + 1] : undefined;
      if (p.token.rstrip && typeof right === 'string' && right) parts[k + 1] = right.replace(/^\s+/u, '');
      if (p.token.lstrip && typeof left === 'string' && left) parts[k - 1] = left.replace(/\s+$/u, '');
      const l = parts[k - 1];
      const r = parts[k + 1];
      if (p.token.singleWord && typeof l === 'string' && l && !l.endsWith(' ')) {
        parts[k - 1] = l + p.content;
        parts[k] = '';
      } else if (p.token.singleWord && typeof r === 'string' && r && !r.startsWith(' ')) {
        parts[k] = p.content + r;
        parts[k + 1] = '';
      }
    }
    return parts.filter((p) => typeof p !== 'string' || p.length > 0);
  }
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new VidpriorError(
      'E_MODEL_INPUT',
      `${path} is not valid JSON: ${(err as Error).message}`,
      { file: path },
      { cause: err },
    );
  }
}

function asSpecial(value: unknown): SpecialToken | undefined {
  if (typeof value === 'string') return { content: value, lstrip: false, rstrip: false, singleWord: false };
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    const v = value as { content: string; lstrip?: boolean; rstrip?: boolean; single_word?: boolean };
    return {
      content: v.content,
      lstrip: Boolean(v.lstrip),
      rstrip: Boolean(v.rstrip),
      singleWord: Boolean(v.single_word),
    };
  }
  return undefined;
}

/**
 * Special tokens and max length from tokenizer_config.json, overridden by special_tokens_map.json (the order
 * in which the reference's from_pretrained applies them).
 */
async function readTokenizerOptions(dir: string): Promise<ClipTokenizerOptions> {
  const options: ClipTokenizerOptions = {};
  const roles = [
    ['bos_token', 'bos'],
    ['eos_token', 'eos'],
    ['unk_token', 'unk'],
    ['pad_token', 'pad'],
  ] as const;
  const configPath = join(dir, 'tokenizer_config.json');
  if (existsSync(configPath)) {
    const cfg = (await readJson(configPath)) as Record<string, unknown>;
    for (const [key, role] of roles) {
      const t = asSpecial(cfg[key]);
      if (t) options[role] = t;
    }
    const max = cfg.model_max_length;
    // Some exports write a huge sentinel (1e30) meaning "no limit": SD's text encoder has 77 positions.
    if (typeof max === 'number' && Number.isInteger(max) && max >= 2 && max <= 4096) options.maxLength = max;
    const decoder = cfg.added_tokens_decoder;
    if (decoder && typeof decoder === 'object') {
      options.added = new Map();
      for (const [id, value] of Object.entries(decoder as Record<string, unknown>)) {
        const t = asSpecial(value);
        if (t && Number.isInteger(Number(id))) options.added.set(t.content, { id: Number(id), token: t });
      }
    }
  }
  const mapPath = join(dir, 'special_tokens_map.json');
  if (existsSync(mapPath)) {
    const map = (await readJson(mapPath)) as Record<string, unknown>;
    for (const [key, role] of roles) {
      const t = asSpecial(map[key]);
      if (t) options[role] = t;
    }
  }
  return options;
}
