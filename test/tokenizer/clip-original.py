#!/usr/bin/env python3
"""Expected ids for test/tokenizer/clip-cases.json from CLIP's ORIGINAL tokenizer (openai/CLIP simple_tokenizer.py,
the one the text encoder was trained with): ftfy.fix_text, html.unescape twice, strip, whitespace collapsed,
lower-cased, CLIP's regex (the `regex` module, IGNORECASE), byte-level BPE. No CJK splitting (that is HF's
ftfy-less fallback, not CLIP). Written out here from the algorithm, with the vocabulary and merges of the shared
fixture (the same BPE as bpe_simple_vocab_16e6.txt.gz).

usage: python3 test/tokenizer/clip-original.py > test/tokenizer/clip-cases.json   (needs: pip install ftfy regex)
The prompts are read from the JSON file itself (its "prompt" fields), so adding a case is: add a prompt, rerun."""
import html, json, os, sys
import ftfy, regex

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, '..', '..', '..', 'shared', 'fixtures', 'tiny-sd-torch', 'tokenizer')

def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))

def basic_clean(text):
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()

def whitespace_clean(text):
    return regex.sub(r'\s+', ' ', text).strip()

class Original:
    PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)

    def __init__(self):
        self.encoder = json.load(open(os.path.join(TOKENIZER, 'vocab.json'), encoding='utf-8'))
        merges = open(os.path.join(TOKENIZER, 'merges.txt'), encoding='utf-8').read().split('\n')[1:]
        merges = [tuple(m.split()) for m in merges if m]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.cache = {'<|startoftext|>': '<|startoftext|>', '<|endoftext|>': '<|endoftext|>'}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
        if not pairs:
            return token + '</w>'
        while True:
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float('inf')))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
        out = ' '.join(word)
        self.cache[token] = out
        return out

    def ids(self, text, length=77):
        text = whitespace_clean(basic_clean(text)).lower()
        content = []
        for token in regex.findall(self.PAT, text):
            token = ''.join(self.byte_encoder[b] for b in token.encode('utf-8'))
            content.extend(self.encoder[t] for t in self.bpe(token).split(' '))
        bos, eos = self.encoder['<|startoftext|>'], self.encoder['<|endoftext|>']
        content = content[:length - 2]
        return [bos] + content + [eos] * (length - 1 - len(content))

if __name__ == '__main__':
    cases = json.load(open(os.path.join(HERE, 'clip-cases.json'), encoding='utf-8'))
    tok = Original()
    print('[')
    print(',\n'.join(json.dumps({'prompt': c['prompt'], 'ids': tok.ids(c['prompt'])}, ensure_ascii=False,
                                separators=(',', ':')) for c in cases))
    print(']')
