// Tests of the SentencePiece tokenizer (src/data/tokenizer.cpp and the module
// src/data/spm/spm_module.cpp), trained on tests/data/fixtures/tokenizer-corpus.txt.
#include <gtest/gtest.h>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <ATen/ATen.h>

#include <fstream>

#include "edgeforge/error.h"
#include "data_test_util.h"
#include "edgeforge/tokenizer.h"

using namespace edgeforge;

using namespace edgeforge::test_util;

namespace {

std::vector<std::string> corpus() {
  std::ifstream in(std::string(EDGEFORGE_TEST_DATA_DIR) + "/fixtures/tokenizer-corpus.txt");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TokenizerOptions small(const std::string& kind) {
  TokenizerOptions o;
  o.kind = kind;
  o.vocab_size = 120;
  return o;
}

// Training takes a moment; each kind is trained once for the tests that only read it.
const Tokenizer& trained(const std::string& kind) {
  static const Tokenizer unigram = Tokenizer::train(corpus(), small("unigram"));
  static const Tokenizer bpe = Tokenizer::train(corpus(), small("bpe"));
  return kind == "bpe" ? bpe : unigram;
}

}  // namespace

class TokenizerKinds : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerKinds, TrainsWithFixedSpecialIds) {
  const Tokenizer& tok = trained(GetParam());
  ASSERT_EQ(corpus().size(), 200u);
  EXPECT_EQ(tok.kind(), GetParam());
  EXPECT_GT(tok.vocab_size(), 40);
  EXPECT_LE(tok.vocab_size(), 120);
  EXPECT_EQ(tok.piece_to_id("[PAD]"), kTokenPadId);
  EXPECT_EQ(tok.piece_to_id("[UNK]"), kTokenUnkId);
  EXPECT_EQ(tok.piece_to_id("[CLS]"), kTokenClsId);
  EXPECT_EQ(tok.piece_to_id("[SEP]"), kTokenSepId);
  EXPECT_EQ(tok.piece_to_id("no-such-piece-at-all"), kTokenUnkId);
}

TEST_P(TokenizerKinds, EncodeGivesPieceIdsWithoutSpecials) {
  const Tokenizer& tok = trained(GetParam());
  std::vector<int64_t> ids = tok.encode("the model runs the latency of each request");
  ASSERT_FALSE(ids.empty());
  for (int64_t id : ids) {
    EXPECT_GT(id, kTokenSepId);  // known words: no special and no unknown piece
    EXPECT_LT(id, tok.vocab_size());
  }
  EXPECT_TRUE(tok.encode("").empty());
  // Characters never seen in training map to the unknown id.
  std::vector<int64_t> unknown = tok.encode("\xe6\x97\xa5\xe6\x9c\xac");  // "日本"
  EXPECT_NE(std::find(unknown.begin(), unknown.end(), kTokenUnkId), unknown.end());
}

TEST_P(TokenizerKinds, EncodeBatchPutsClsFirstAndPads) {
  const Tokenizer& tok = trained(GetParam());
  const std::string short_text = "the phone learns";
  std::string long_text;
  for (int i = 0; i < 20; ++i) long_text += "the edge device sends tensors over a slow link ";
  Tokenizer::Batch b = tok.encode_batch({short_text, "", long_text}, 16);
  ASSERT_EQ(b.input_ids.sizes(), (std::vector<int64_t>{3, 16}));
  ASSERT_EQ(b.attention_mask.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(b.input_ids.scalar_type(), at::kLong);
  EXPECT_EQ(b.attention_mask.scalar_type(), at::kLong);

  std::vector<int64_t> pieces = tok.encode(short_text);
  ASSERT_LT(pieces.size(), 15u);
  for (int64_t j = 0; j < 16; ++j) {
    const auto k = static_cast<size_t>(j);
    const int64_t want = j == 0 ? kTokenClsId : k <= pieces.size() ? pieces[k - 1] : kTokenPadId;
    EXPECT_EQ(b.input_ids[0][j].item<int64_t>(), want) << j;
    EXPECT_EQ(b.attention_mask[0][j].item<int64_t>(), k <= pieces.size() ? 1 : 0) << j;
  }
  // The empty text is [CLS] and padding; the long one is cut to fill every position.
  EXPECT_EQ(b.attention_mask[1].sum().item<int64_t>(), 1);
  EXPECT_EQ(b.input_ids[1][0].item<int64_t>(), kTokenClsId);
  EXPECT_EQ(b.input_ids[1].narrow(0, 1, 15).abs().sum().item<int64_t>(), 0);
  EXPECT_EQ(b.attention_mask[2].sum().item<int64_t>(), 16);
  std::vector<int64_t> long_pieces = tok.encode(long_text);
  EXPECT_EQ(b.input_ids[2][15].item<int64_t>(), long_pieces[14]);
}

TEST_P(TokenizerKinds, TrainingIsDeterministic) {
  Tokenizer again = Tokenizer::train(corpus(), small(GetParam()));
  EXPECT_EQ(again.to_bytes(), trained(GetParam()).to_bytes());
}

TEST_P(TokenizerKinds, BytesRoundTrip) {
  const Tokenizer& tok = trained(GetParam());
  Tokenizer back = Tokenizer::from_bytes(tok.to_bytes());
  EXPECT_EQ(back.kind(), tok.kind());
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  EXPECT_EQ(back.to_bytes(), tok.to_bytes());
  const std::string text = "a quantized layer compresses free offers now";
  EXPECT_EQ(back.encode(text), tok.encode(text));
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerKinds, ::testing::Values("unigram", "bpe"),
                         [](const auto& info) { return info.param; });

TEST(Tokenizer, KindsSplitTextDifferently) {
  // Guards against the kind option being ignored: the two models must differ.
  EXPECT_NE(trained("unigram").to_bytes(), trained("bpe").to_bytes());
}

TEST(Tokenizer, GarbageBytesAreNotAModel) {
  const std::string message = error_of([] { Tokenizer::from_bytes("this is not a model"); });
  EXPECT_NE(message.find("not a SentencePiece model"), std::string::npos) << message;
  EXPECT_THROW(Tokenizer::from_bytes(""), Error);
  // A truncated real model is not one either.
  const std::string bytes = trained("unigram").to_bytes();
  EXPECT_THROW(Tokenizer::from_bytes(bytes.substr(0, bytes.size() / 2)), Error);
}

TEST(Tokenizer, BadOptionsAreRejected) {
  TokenizerOptions o = small("wordpiece");
  const std::string message = error_of([&] { Tokenizer::train(corpus(), o); });
  EXPECT_NE(message.find("kind 'wordpiece'"), std::string::npos) << message;
  EXPECT_THROW(Tokenizer::train({"", ""}, small("unigram")), Error);
  o = small("bpe");
  o.vocab_size = 3;
  EXPECT_THROW(Tokenizer::train(corpus(), o), Error);
  EXPECT_THROW(trained("bpe").encode_batch({"x"}, 0), Error);
}

// SentencePiece's bundled protobuf-lite and libonnx's libprotobuf must live in one process:
// this binary links libonnx, so parsing and checking an ONNX model around tokenizer use fails
// (or crashes) if the module's symbols leak into the global namespace.
TEST(Tokenizer, WorksInTheSameProcessAsOnnx) {
  auto make_model = [] {
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.add_opset_import()->set_version(17);
    auto* graph = model.mutable_graph();
    graph->set_name("g");
    auto* node = graph->add_node();
    node->set_op_type("Relu");
    node->add_input("x");
    node->add_output("y");
    for (auto [list, name] : {std::pair{graph->add_input(), "x"}, {graph->add_output(), "y"}}) {
      list->set_name(name);
      auto* t = list->mutable_type()->mutable_tensor_type();
      t->set_elem_type(onnx::TensorProto::FLOAT);
      t->mutable_shape()->add_dim()->set_dim_value(4);
    }
    return model;
  };
  const std::string onnx_bytes = make_model().SerializeAsString();
  Tokenizer tok = Tokenizer::train(corpus(), small("bpe"));
  Tokenizer loaded = Tokenizer::from_bytes(tok.to_bytes());
  onnx::ModelProto parsed;
  ASSERT_TRUE(parsed.ParseFromString(onnx_bytes));
  EXPECT_NO_THROW(onnx::checker::check_model(parsed));
  EXPECT_EQ(parsed.graph().node(0).op_type(), "Relu");
  EXPECT_FALSE(loaded.encode("the model runs").empty());
}
