// Tests of HfTokenizer (src/data/hf_tokenizer.cpp): token for token against the ids the reference
// implementation gave for fixtures/tokenizers/ (written by make_tokenizer_fixtures.mjs, which says
// where it follows the Rust crate instead of the JavaScript port), hand-checked cases for the
// crate's behaviours the port lacks, errors that name the file, and a no-crash loop on mutated
// files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "../../src/data/hf_tokenizer.h"
#include "edgeforge/error.h"

using namespace edgeforge;
using json = nlohmann::json;

namespace {

const std::string kDir = std::string(EDGEFORGE_TEST_DATA_DIR) + "/fixtures/tokenizers";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const json& expected() {
  static const json j = json::parse(read_text(kDir + "/expected.json"));
  return j;
}

const json& entry(const std::string& name) {
  for (const json& e : expected()["tokenizers"])
    if (e["name"] == name) return e;
  throw std::runtime_error("no expected entry " + name);
}

// A fixture file, or a variant: the file with the entry's JSON merge patch applied.
HfTokenizer load(const json& e) {
  const std::string path = kDir + "/" + e["file"].get<std::string>();
  if (e["patch"].is_null()) return HfTokenizer::from_tokenizer_json(path);
  json config = json::parse(read_text(path));
  config.merge_patch(e["patch"]);
  return HfTokenizer::from_tokenizer_json_text(config.dump(), e["name"].get<std::string>());
}

std::vector<int64_t> ints(const json& j) { return j.get<std::vector<int64_t>>(); }

std::vector<int64_t> types_or_zeros(const json& c, const char* key, size_t n) {
  return c.contains(key) ? ints(c[key]) : std::vector<int64_t>(n, 0);
}

std::string show(const std::string& s) { return json(s).dump(); }

template <typename T>
bool same(const T& got, const T& want, const std::string& label, const char* what) {
  EXPECT_EQ(got, want) << label << " (" << what << ")";
  return got == want;
}

// Checks one text (or pair) in every way the expectations allow; true when all match.
bool check_case(const HfTokenizer& tok, const json& e, const std::string& text,
                const std::string* pair, const std::string& strategy, const json& c) {
  const std::string label =
      e["name"].get<std::string>() + " " + show(text) + (pair ? " / " + show(*pair) : "");
  const auto full_ids = ints(c["f"]);
  const auto full_types = types_or_zeros(c, "ft", full_ids.size());
  bool ok = true;

  TextEncodeOptions whole;
  whole.max_length = 1 << 20;
  whole.truncation = false;
  whole.pad_to_max_length = false;
  const TextEncoding all = tok.encode(text, pair, whole);
  ok &= same(all.input_ids, full_ids, label, "ids");
  ok &= same(all.token_type_ids, full_types, label, "type ids");
  ok &= same(all.attention_mask, std::vector<int64_t>(full_ids.size(), 1), label, "mask");
  ok &= same(all.tokens.size(), full_ids.size(), label, "token count");

  if (!pair) {
    const auto plain = ints(c["p"]);
    ok &= same(tok.encode_plain(text), plain, label, "plain ids");
    const auto tokens = c["t"].get<std::vector<std::string>>();
    auto at = std::search(full_ids.begin(), full_ids.end(), plain.begin(), plain.end());
    ok &= same(plain.empty() || at != full_ids.end(), true, label, "plain ids inside the full ids");
    if (!plain.empty() && at != full_ids.end() && all.tokens.size() == full_ids.size()) {
      const auto k = static_cast<size_t>(at - full_ids.begin());
      ok &= same(
          std::vector<std::string>(all.tokens.begin() + k, all.tokens.begin() + k + tokens.size()),
          tokens, label, "tokens");
    }
  }

  const int64_t max_length = expected()["max_length"].get<int64_t>();
  TextEncodeOptions opts;
  opts.max_length = max_length;
  opts.truncation_strategy = strategy;
  if (c.value("error", false)) {
    bool threw = false;
    try {
      tok.encode(text, pair, opts);
    } catch (const Error&) {
      threw = true;
    }
    return same(threw, true, label, "truncation error") && ok;
  }
  auto ids = c.contains("i") ? ints(c["i"]) : full_ids;
  auto types = c.contains("i") ? types_or_zeros(c, "y", ids.size()) : full_types;
  std::vector<int64_t> mask(ids.size(), 1);
  const auto pad = static_cast<size_t>(max_length) - ids.size();
  ids.insert(ids.end(), pad, e["pad_id"].get<int64_t>());
  types.insert(types.end(), pad, e["pad_type_id"].get<int64_t>());
  mask.insert(mask.end(), pad, 0);
  const TextEncoding cut = tok.encode(text, pair, opts);
  ok &= same(cut.input_ids, ids, label, "ids at max_length");
  ok &= same(cut.token_type_ids, types, label, "type ids at max_length");
  ok &= same(cut.attention_mask, mask, label, "mask at max_length");
  ok &= same(cut.tokens.size(), ids.size(), label, "token count at max_length");
  return ok;
}

// Runs every expected case of `e` through `tok`; returns (matched, total).
std::pair<int, int> check_all(const HfTokenizer& tok, const json& e) {
  const json& texts = expected()["texts"];
  const json& pairs = expected()["pairs"];
  int matched = 0, total = 0;
  for (size_t i = 0; i < texts.size(); ++i, ++total)
    matched +=
        check_case(tok, e, texts[i].get<std::string>(), nullptr, "longest_first", e["singles"][i]);
  for (size_t i = 0; i < pairs.size(); ++i, ++total) {
    const std::string b = pairs[i][1].get<std::string>();
    matched += check_case(tok, e, pairs[i][0].get<std::string>(), &b,
                          pairs[i][2].get<std::string>(), e["pairs"][i]);
  }
  return {matched, total};
}

// The tokenizers in expected.json; listed here because test registration must not read files.
const std::vector<std::string> kTokenizers = {
    "bert_uncased", "bert_misc", "bert_cased_ws",   "roberta",    "roberta_prefix",
    "gpt2",         "unigram",   "unigram_prepend", "bpe_suffix", "bpe_suffix_bytes"};

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A small tokenizer.json around `model`, for hand-checked cases.
HfTokenizer tiny(json model, json pre_tokenizer = nullptr, json normalizer = nullptr,
                 json added = json::array()) {
  json config = {{"version", "1.0"},          {"added_tokens", added},
                 {"normalizer", normalizer},  {"pre_tokenizer", pre_tokenizer},
                 {"post_processor", nullptr}, {"model", model}};
  return HfTokenizer::from_tokenizer_json_text(config.dump(), "tiny");
}

json word_piece(const std::vector<std::string>& tokens) {
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return {{"type", "WordPiece"},
          {"unk_token", "[UNK]"},
          {"continuing_subword_prefix", "##"},
          {"vocab", vocab}};
}

}  // namespace

class HfTokenizerReference : public ::testing::TestWithParam<std::string> {};

TEST_P(HfTokenizerReference, MatchesReferenceIds) {
  const json& e = entry(GetParam());
  const HfTokenizer tok = load(e);
  const auto [matched, total] = check_all(tok, e);
  EXPECT_EQ(matched, total);
  std::printf("[ reference ] %s: %d of %d cases match\n", GetParam().c_str(), matched, total);
}

TEST_P(HfTokenizerReference, RoundTripsThroughToJson) {
  const json& e = entry(GetParam());
  const HfTokenizer tok = load(e);
  const HfTokenizer again = HfTokenizer::from_tokenizer_json_text(tok.to_json(), "model metadata");
  EXPECT_EQ(again.to_json(), tok.to_json());
  EXPECT_EQ(again.vocab_size(), tok.vocab_size());
  const auto [matched, total] = check_all(again, e);
  EXPECT_EQ(matched, total);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfTokenizerReference, ::testing::ValuesIn(kTokenizers),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(HfTokenizer, ExpectedFileCoversEveryTokenizer) {
  std::vector<std::string> names;
  for (const json& e : expected()["tokenizers"]) names.push_back(e["name"].get<std::string>());
  EXPECT_EQ(names, kTokenizers);
}

TEST(HfTokenizer, VocabTxtMatchesBertTokenizerJson) {
  const HfTokenizer tok = HfTokenizer::from_vocab_txt(kDir + "/bert_uncased/vocab.txt");
  EXPECT_EQ(tok.model_type(), "WordPiece");
  const auto [matched, total] = check_all(tok, entry("bert_uncased"));
  EXPECT_EQ(matched, total);
  const HfTokenizer again = HfTokenizer::from_tokenizer_json_text(tok.to_json(), "vocab.txt copy");
  EXPECT_EQ(again.encode_plain("Unaffable Café 北京"), tok.encode_plain("Unaffable Café 北京"));
  const HfTokenizer cased = HfTokenizer::from_vocab_txt(kDir + "/bert_uncased/vocab.txt", false);
  EXPECT_NE(cased.encode_plain("Hello"), tok.encode_plain("Hello"));
}

TEST(HfTokenizer, ReportsVocabularyFacts) {
  const HfTokenizer bert = HfTokenizer::from_tokenizer_json(kDir + "/bert_uncased/tokenizer.json");
  EXPECT_EQ(bert.model_type(), "WordPiece");
  EXPECT_EQ(bert.pad_id(), 0);
  EXPECT_EQ(bert.token_to_id("[CLS]"), 2);
  EXPECT_EQ(bert.token_to_id("no-such-token"), std::nullopt);
  const HfTokenizer roberta = HfTokenizer::from_tokenizer_json(kDir + "/roberta/tokenizer.json");
  EXPECT_EQ(roberta.model_type(), "BPE");
  EXPECT_EQ(roberta.pad_id(), 1);
  EXPECT_EQ(roberta.vocab_size(), *roberta.token_to_id("<mask>") + 1);
  const HfTokenizer unigram = HfTokenizer::from_tokenizer_json(kDir + "/unigram/tokenizer.json");
  EXPECT_EQ(unigram.model_type(), "Unigram");
  EXPECT_EQ(unigram.pad_id(), 0);
}

// One tokenizer shared by threads gives every thread the single-threaded result.
TEST(HfTokenizer, EncodesFromManyThreads) {
  const HfTokenizer roberta = HfTokenizer::from_tokenizer_json(kDir + "/roberta/tokenizer.json");
  const json& texts = expected()["texts"];
  std::vector<std::vector<int64_t>> want;
  for (const json& t : texts) want.push_back(roberta.encode_plain(t.get<std::string>()));
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < bad.size(); ++k) {
    threads.emplace_back([&, k] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          bad[k] += roberta.encode_plain(texts[i].get<std::string>()) != want[i];
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad, std::vector<int>(bad.size(), 0));
}

// The crate's BPE puts the prefix on non-initial characters and drops it when merging.
TEST(HfTokenizer, BpeContinuingSubwordPrefixFollowsTheCrate) {
  const json model = {
      {"type", "BPE"},
      {"continuing_subword_prefix", "##"},
      {"unk_token", "[UNK]"},
      {"vocab",
       {{"[UNK]", 0}, {"a", 1}, {"##b", 2}, {"##c", 3}, {"##bc", 4}, {"abc", 5}, {"b", 6}}},
      {"merges", {"##b ##c", "a ##bc"}}};
  const HfTokenizer tok = tiny(model, {{"type", "WhitespaceSplit"}});
  EXPECT_EQ(tok.encode_plain("abc acb b bc x"), (std::vector<int64_t>{5, 1, 3, 2, 6, 6, 3, 0}));
}

TEST(HfTokenizer, BpeFusesUnknownsWithinAWordOnly) {
  const json model = {{"type", "BPE"},
                      {"unk_token", "<unk>"},
                      {"fuse_unk", true},
                      {"vocab", {{"<unk>", 0}, {"a", 1}}},
                      {"merges", json::array()}};
  const HfTokenizer tok = tiny(model, {{"type", "WhitespaceSplit"}});
  EXPECT_EQ(tok.encode_plain("xxaxx yy"), (std::vector<int64_t>{0, 1, 0, 0}));
}

TEST(HfTokenizer, SingleWordAddedTokensMatchWholeWordsOnly) {
  const json added = json::array({{{"id", 9},
                                   {"content", "ab"},
                                   {"single_word", true},
                                   {"special", false},
                                   {"normalized", false}}});
  const HfTokenizer tok = tiny(word_piece({"[UNK]", "x", "##ab", "abc"}),
                               {{"type", "WhitespaceSplit"}}, nullptr, added);
  EXPECT_EQ(tok.encode_plain("ab abc xab ab"), (std::vector<int64_t>{9, 3, 1, 2, 9}));
}

TEST(HfTokenizer, PunctuationBehaviorsFollowTheCrate) {
  const auto run = [](const char* behavior) {
    const HfTokenizer tok =
        tiny(word_piece({"[UNK]", "a,", "b.", ".", "c", "a", ",b", ".c", ",", "b", ".."}),
             {{"type", "Punctuation"}, {"behavior", behavior}});
    return tok.encode_plain("a,b..c");
  };
  EXPECT_EQ(run("Isolated"), (std::vector<int64_t>{5, 8, 9, 3, 3, 4}));
  EXPECT_EQ(run("Removed"), (std::vector<int64_t>{5, 9, 4}));
  EXPECT_EQ(run("MergedWithPrevious"), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(run("MergedWithNext"), (std::vector<int64_t>{5, 6, 3, 7}));
  EXPECT_EQ(run("Contiguous"), (std::vector<int64_t>{5, 8, 9, 10, 4}));
}

TEST(HfTokenizer, DigitsAreUnicodeNumbers) {
  const HfTokenizer tok = tiny(word_piece({"[UNK]", "ab", "1", "2", "\xd9\xa3", "\xc2\xb2", "12"}),
                               {{"type", "Digits"}, {"individual_digits", true}});
  EXPECT_EQ(tok.encode_plain("ab12\xd9\xa3\xc2\xb2"), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  const HfTokenizer runs =
      tiny(word_piece({"[UNK]", "ab", "12"}), {{"type", "Digits"}, {"individual_digits", false}});
  EXPECT_EQ(runs.encode_plain("ab12"), (std::vector<int64_t>{1, 2}));
}

TEST(HfTokenizer, MetaspaceFirstPrependsOnlyAtTheStart) {
  const json added =
      json::array({{{"id", 9}, {"content", "<s>"}, {"special", true}, {"normalized", false}}});
  const json pre = {
      {"type", "Metaspace"}, {"replacement", "\xe2\x96\x81"}, {"prepend_scheme", "first"}};
  const HfTokenizer tok =
      tiny(word_piece({"[UNK]", "\xe2\x96\x81hello", "\xe2\x96\x81", "world", "\xe2\x96\x81world"}),
           pre, nullptr, added);
  EXPECT_EQ(tok.encode_plain("hello <s>world"), (std::vector<int64_t>{1, 2, 9, 3}));
  EXPECT_EQ(tok.encode_plain("<s>hello world"), (std::vector<int64_t>{9, 0, 4}));
}

// The crate lowercases per character (no final sigma) and spaces out CJK beyond the BMP too.
TEST(HfTokenizer, UnicodeDetailsFollowTheCrate) {
  const json lower = {{"type", "Lowercase"}};
  const HfTokenizer sigma =
      tiny(word_piece({"[UNK]", "\xcf\x83\xce\xb1\xcf\x83"}), {{"type", "WhitespaceSplit"}}, lower);
  EXPECT_EQ(sigma.encode_plain("\xce\xa3\xce\x91\xce\xa3"), (std::vector<int64_t>{1}));
  const HfTokenizer bert = HfTokenizer::from_tokenizer_json(kDir + "/bert_uncased/tokenizer.json");
  const auto ids = bert.encode_plain(
      "a\xf0\xa0\x80\x80"
      "b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], *bert.token_to_id("[UNK]"));
}

// Ill-formed UTF-8 becomes U+FFFD, which BERT's clean_text drops; byte-level BPE keeps its bytes.
TEST(HfTokenizer, InvalidUtf8IsReplacedNotFatal) {
  const HfTokenizer bert = HfTokenizer::from_tokenizer_json(kDir + "/bert_uncased/tokenizer.json");
  EXPECT_EQ(bert.encode_plain("\xff\xfehello\xc3"), bert.encode_plain("hello"));
  EXPECT_EQ(bert.encode_plain("he\xed\xa0\x80llo"), bert.encode_plain("hello"));
  const HfTokenizer roberta = HfTokenizer::from_tokenizer_json(kDir + "/roberta/tokenizer.json");
  EXPECT_EQ(roberta.encode_plain("\xe2\x82"), roberta.encode_plain("\xef\xbf\xbd"));
}

TEST(HfTokenizer, ErrorsNameTheFile) {
  const std::string unsupported = kDir + "/errors/unsupported_pre_tokenizer.json";
  std::string msg = error_of([&] { HfTokenizer::from_tokenizer_json(unsupported); });
  EXPECT_NE(msg.find(unsupported), std::string::npos) << msg;
  EXPECT_NE(msg.find("pre_tokenizer type 'CharDelimiterSplit' is not supported"), std::string::npos)
      << msg;

  const std::string malformed = kDir + "/errors/malformed.json";
  msg = error_of([&] { HfTokenizer::from_tokenizer_json(malformed); });
  EXPECT_NE(msg.find(malformed), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;

  const std::string bad_merge = kDir + "/errors/bad_merge.json";
  msg = error_of([&] { HfTokenizer::from_tokenizer_json(bad_merge); });
  EXPECT_NE(msg.find(bad_merge), std::string::npos) << msg;
  EXPECT_NE(msg.find("'c'"), std::string::npos) << msg;

  const std::string missing = kDir + "/no-such-dir/tokenizer.json";
  msg = error_of([&] { HfTokenizer::from_tokenizer_json(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  msg = error_of([&] { HfTokenizer::from_vocab_txt(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;

  msg = error_of([] {
    HfTokenizer::from_tokenizer_json_text(R"({"model": {"type": "WordPiece"}})",
                                          "x/tokenizer.json");
  });
  EXPECT_NE(msg.find("x/tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vocab is missing"), std::string::npos) << msg;

  const std::vector<std::string> unsupported_types = {
      R"({"model": {"type": "WordLevel", "vocab": {}}})",
      R"({"normalizer": {"type": "Precompiled"}, "model": {"type": "Unigram", "vocab": [["a", 0]]}})",
      R"({"post_processor": {"type": "Fancy"}, "model": {"type": "Unigram", "vocab": [["a", 0]]}})"};
  for (const std::string& bad : unsupported_types) {
    msg = error_of([&] { HfTokenizer::from_tokenizer_json_text(bad, "x/tokenizer.json"); });
    EXPECT_NE(msg.find("x/tokenizer.json"), std::string::npos) << msg;
    EXPECT_TRUE(msg.find("is not supported") != std::string::npos ||
                msg.find("give the model's SentencePiece .model") != std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }

  const std::string path = kDir + "/bert_uncased/tokenizer.json";
  const HfTokenizer bert = HfTokenizer::from_tokenizer_json(path);
  TextEncodeOptions opts;
  opts.max_length = 1;
  msg = error_of([&] { bert.encode("hello", nullptr, opts); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("special tokens"), std::string::npos) << msg;

  opts.max_length = 4;
  opts.truncation = false;
  msg = error_of([&] { bert.encode("one two three four five", nullptr, opts); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncation is off"), std::string::npos) << msg;
  EXPECT_NO_THROW(bert.encode("one", nullptr, opts));

  opts.truncation = true;
  opts.truncation_strategy = "only_second";
  msg = error_of([&] { bert.encode("one two three four five", nullptr, opts); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  opts.truncation_strategy = "shortest_first";
  msg = error_of([&] { bert.encode("one", nullptr, opts); });
  EXPECT_NE(msg.find("shortest_first"), std::string::npos) << msg;

  const HfTokenizer gpt2ish =
      tiny({{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}});
  msg = error_of([&] { gpt2ish.encode("a", nullptr, TextEncodeOptions()); });
  EXPECT_NE(msg.find("no pad token"), std::string::npos) << msg;
  TextEncodeOptions no_pad;
  no_pad.pad_to_max_length = false;
  EXPECT_EQ(gpt2ish.encode("a", nullptr, no_pad).input_ids, std::vector<int64_t>{0});
}

TEST(HfTokenizer, RejectsAbsurdlyDeepJson) {
  const std::string deep = "{\"decoder\":" + std::string(100000, '[') + std::string(100000, ']') +
                           R"(,"model":{"type":"Unigram","vocab":[["a",0]]}})";
  const std::string msg =
      error_of([&] { HfTokenizer::from_tokenizer_json_text(deep, "deep.json"); });
  EXPECT_NE(msg.find("deep.json"), std::string::npos) << msg;
}

// Hostile files: truncations and random byte edits of small files using most components give a
// tokenizer or an Error, never a crash; so does encoding with whatever loaded.
TEST(HfTokenizer, MutatedFilesNeverCrash) {
  const json base = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 1},
         {"content", "[CLS]"},
         {"special", true},
         {"normalized", false},
         {"lstrip", true},
         {"rstrip", true}},
        {{"id", 7}, {"content", "ab"}, {"single_word", true}, {"normalized", true}}}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "BertNormalizer"}, {"strip_accents", true}},
          {{"type", "NFKC"}},
          {{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", "ab"}},
          {{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
          {{"type", "Prepend"}, {"prepend", "_"}}}}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Metaspace"}, {"replacement", "_"}, {"prepend_scheme", "first"}},
          {{"type", "Split"},
           {"pattern", {{"String", "_"}}},
           {"behavior", "MergedWithPrevious"},
           {"invert", true}},
          {{"type", "ByteLevel"}, {"add_prefix_space", true}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"[CLS]", {{"id", "[CLS]"}, {"ids", {1}}, {"tokens", {"[CLS]"}}}}}}}},
      {"padding", {{"pad_id", 0}, {"pad_type_id", 1}}}};
  const std::vector<json> models = {
      {{"type", "WordPiece"},
       {"unk_token", "[UNK]"},
       {"max_input_chars_per_word", 5},
       {"vocab", {{"[UNK]", 0}, {"[CLS]", 1}, {"a", 3}, {"##b", 4}, {"ab", 5}}}},
      {{"type", "BPE"},
       {"unk_token", "<unk>"},
       {"fuse_unk", true},
       {"byte_fallback", true},
       {"end_of_word_suffix", "</w>"},
       {"vocab", {{"<unk>", 0}, {"a", 1}, {"b</w>", 2}, {"ab</w>", 3}, {"<0x61>", 4}}},
       {"merges", {"a b</w>"}}},
      {{"type", "Unigram"},
       {"unk_id", 0},
       {"byte_fallback", true},
       {"vocab",
        json::array({json::array({"<unk>", 0}), json::array({"a", -1.5}), json::array({"ab", -2}),
                     json::array({"b", -3}), json::array({"<0x63>", -4})})}}};
  std::vector<std::string> seeds;
  for (const json& model : models) {
    json config = base;
    config["model"] = model;
    seeds.push_back(config.dump());
  }
  seeds.push_back(read_text(kDir + "/bpe_suffix/tokenizer.json").substr(0, 3000));
  const std::vector<std::string> texts = {"", "ab a b", "[CLS] ab\xff", std::string(300, 'a'),
                                          "x\xe2\x96\x81y  z"};
  const std::vector<std::string> fragments = {
      "null",        "-1",   "4294967296",   "[]", "{}",     "\"\"", "1e99",
      "\"\\u0000\"", "true", "\"Sequence\"", "[[", "\"ab\"", "0.5"};
  const std::vector<std::string> strategies = {"longest_first", "only_first", "only_second"};
  std::mt19937 rng(1234);
  int loaded = 0, rejected = 0;
  const auto attempt = [&](const std::string& text) {
    try {
      const HfTokenizer tok = HfTokenizer::from_tokenizer_json_text(text, "fuzz");
      ++loaded;
      TextEncodeOptions opts;
      opts.max_length = static_cast<int64_t>(rng() % 12);
      opts.truncation_strategy = strategies[rng() % strategies.size()];
      for (const std::string& t : texts) {
        try {
          tok.encode_plain(t);
          tok.encode(t, &texts[rng() % texts.size()], opts);
        } catch (const Error&) {
        }
      }
    } catch (const Error&) {
      ++rejected;
    }
  };
  for (const std::string& seed : seeds) {
    attempt(seed);
    for (size_t cut = 0; cut < seed.size(); cut += 7) attempt(seed.substr(0, cut));
    for (int round = 0; round < 400; ++round) {
      std::string s = seed;
      for (int k = 0, edits = 1 + static_cast<int>(rng() % 4); k < edits; ++k) {
        const size_t at = rng() % s.size();
        const std::string& fragment = fragments[rng() % fragments.size()];
        switch (rng() % 4) {
          case 0:
            s[at] = static_cast<char>(rng() % 256);
            break;
          case 1:
            s.erase(at, 1 + rng() % 8);
            break;
          case 2:
            s.insert(at, fragment);
            break;
          default:
            if (const size_t colon = s.find(':', at); colon != std::string::npos)
              s.insert(colon + 1, fragment + ",\"x\":");
        }
        if (s.empty()) s = "{";
      }
      attempt(s);
    }
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, 0);
}
