// hf_tokenizer.h: Hugging Face tokenizer.json and BERT vocab.txt tokenisers.
//
// Turns a user's texts into the ids a BERT/RoBERTa-style ONNX model was trained on, token for token
// as Hugging Face `tokenizers` (the Rust library behind transformers' fast tokenizers) does:
// added tokens, normalizer, pre-tokenizer, model (WordPiece, BPE, Unigram) and post-processor are
// read from the file; truncation and padding come from TextEncodeOptions. The tokenizer is
// immutable after loading (BPE keeps a bounded per-thread word cache, like the crate), so one
// instance may encode from many threads at once.
//
//   HfTokenizer tok = HfTokenizer::from_tokenizer_json("model/tokenizer.json");
//   TextEncodeOptions opts;
//   opts.max_length = 64;
//   TextEncoding e = tok.encode("Free entry in 2 a wkly comp", nullptr, opts);
//   // e.input_ids: [CLS] pieces... [SEP] [PAD]...; e.attention_mask is 1 on real tokens
//   HfTokenizer again = HfTokenizer::from_tokenizer_json_text(tok.to_json(), "model metadata");
//
// Unsupported component types, malformed JSON and inconsistent vocabularies throw edgeforge::Error
// naming the file; so do impossible encode options (e.g. max_length below the special tokens).
// Text is UTF-8; ill-formed bytes are read as U+FFFD rather than rejected.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgeforge {

// One sample after truncation, special tokens and padding; all four vectors have the same length.
struct TextEncoding {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;
  std::vector<int64_t> attention_mask;
  std::vector<std::string> tokens;  // the token strings, for display
};

struct TextEncodeOptions {
  int64_t max_length = 128;  // total length incl. special tokens; >= number of special tokens
  bool truncation = true;    // false: Error when a sample is longer than max_length
  std::string truncation_strategy = "longest_first";  // or "only_first", "only_second" (as HF)
  bool pad_to_max_length = true;  // pad id and type id from the file's padding section, mask 0
};

// Hugging Face's truncate_encodings for longest_first on a pair of n1 and n2 tokens: the
// lengths kept to fit `budget` (the shorter whole when it fits beside the longer's share, else
// half each). Either may exceed its length only when nothing needs cutting from it.
std::pair<size_t, size_t> longest_first_lengths(size_t n1, size_t n2, size_t budget);

class HfTokenizer {
 public:
  // Reads a Hugging Face tokenizer.json; Error naming the file on bad or unsupported input.
  static HfTokenizer from_tokenizer_json(const std::string& path);
  // Same from the file's text; `what` names it in errors (a path, "model metadata", ...).
  static HfTokenizer from_tokenizer_json_text(const std::string& json_text,
                                              const std::string& what);
  // A BERT vocab.txt (one token per line, id = line number) with BERT's BasicTokenizer and
  // WordPiece, [CLS] A [SEP] (B [SEP]), exactly as transformers' BertTokenizerFast builds it.
  static HfTokenizer from_vocab_txt(const std::string& path, bool lowercase = true);

  // `text_pair` may be null. Error when the options cannot be met (see TextEncodeOptions).
  TextEncoding encode(const std::string& text, const std::string* text_pair,
                      const TextEncodeOptions& opts) const;
  // Model tokens only: no special tokens, no truncation, no padding.
  std::vector<int64_t> encode_plain(const std::string& text) const;

  int64_t vocab_size() const;      // largest id + 1, added tokens included
  std::string model_type() const;  // "WordPiece", "BPE" or "Unigram"
  int64_t pad_id() const;          // Error when the tokenizer has no pad token
  std::optional<int64_t> token_to_id(const std::string& token) const;

  // A tokenizer.json text from which from_tokenizer_json_text rebuilds an identical tokenizer
  // (for vocab.txt tokenizers too), e.g. to embed it in a model's metadata.
  std::string to_json() const;

 private:
  struct Impl;
  explicit HfTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace edgeforge
