// edgeforge/tokenizer.h: SentencePiece tokenisers for the text models.
//
// A Tokenizer is trained on the training texts (unigram for the bert family, BPE for the roberta
// family), deterministically, and travels inside the model file as its serialized bytes
// (to_bytes / from_bytes, graph metadata kMetaTokenizer).
//
//   TokenizerOptions opts;
//   opts.kind = "bpe";
//   Tokenizer tok = Tokenizer::train(texts, opts);
//   Tokenizer::Batch b = tok.encode_batch({"cheap meds", "meeting at 3"}, opts.seq_len);
//   // b.input_ids int64 [2,128]: [CLS] pieces... [PAD]...; b.attention_mask 1 on real tokens
//   Tokenizer again = Tokenizer::from_bytes(tok.to_bytes());
//
// SentencePiece bundles its own protobuf-lite and exports its symbols, which clash with the
// libprotobuf libonnx uses. So the core never links it: every SentencePiece call goes through
// the module libedgeforge_spm.so (src/data/spm/spm_module.cpp), loaded on first use with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) from library_dir(). A missing module throws Error.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace edgeforge {

// Special ids, fixed at training time for every kind.
inline constexpr int64_t kTokenPadId = 0;  // piece "[PAD]"
inline constexpr int64_t kTokenUnkId = 1;  // piece "[UNK]"
inline constexpr int64_t kTokenClsId = 2;  // piece "[CLS]", SentencePiece's bos
inline constexpr int64_t kTokenSepId = 3;  // piece "[SEP]", SentencePiece's eos

struct TokenizerOptions {
  std::string kind = "unigram";     // "unigram" (bert family) or "bpe" (roberta family)
  int64_t vocab_size = 8000;        // upper bound; a small corpus may give fewer pieces
  int64_t seq_len = 128;            // sequence length the text models use with encode_batch
  double character_coverage = 1.0;  // share of characters covered; 1.0 keeps every one seen
};

class Tokenizer {
 public:
  // Token ids of a batch, both int64 [N,S].
  struct Batch {
    at::Tensor input_ids;       // [CLS], pieces (truncated to fit), then [PAD]
    at::Tensor attention_mask;  // 1 for [CLS] and pieces, 0 for padding
  };

  // Trains on `texts` (one sentence each; empty ones are skipped). Deterministic: one thread, no
  // sampling or shuffling, so the same texts and options give the same bytes on every run.
  // Throws Error on bad options or when SentencePiece cannot train (e.g. no text).
  static Tokenizer train(const std::vector<std::string>& texts, const TokenizerOptions& opts);

  // Loads a model from serialized SentencePiece bytes; throws Error when they are not a model.
  static Tokenizer from_bytes(const std::string& model_bytes);

  // Any SentencePiece model (a user's .model file, ALBERT's, T5's, XLM-R's), without the checks
  // of from_bytes: its special pieces are wherever it puts them. `what` names it in errors.
  static Tokenizer from_any_bytes(const std::string& model_bytes, const std::string& what);

  // The serialized SentencePiece model (a standard .model file's bytes).
  std::string to_bytes() const;

  // Piece ids of `text`, without [CLS]/[SEP].
  std::vector<int64_t> encode(const std::string& text) const;

  // Rows of [CLS] + encode(text) cut to seq_len, padded with kTokenPadId; seq_len >= 1.
  Batch encode_batch(const std::vector<std::string>& texts, int64_t seq_len) const;

  // Number of pieces including the four special ones.
  int64_t vocab_size() const;

  // "unigram" or "bpe", read from the model itself.
  std::string kind() const;

  // The id of `piece`, or the unknown id (kTokenUnkId for edgeforge's) when the vocabulary lacks it.
  int64_t piece_to_id(const std::string& piece) const;
  // The piece of `id`; Error outside the vocabulary.
  std::string id_to_piece(int64_t id) const;
  int64_t unk_id() const;
  bool has_piece(const std::string& piece) const;

 private:
  Tokenizer() = default;
  std::shared_ptr<void> handle_;  // the module's processor; shared, since encoding is const
  std::string bytes_;
  std::string kind_;
};

}  // namespace edgeforge
