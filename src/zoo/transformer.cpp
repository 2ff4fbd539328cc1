// The text families, bert and roberta: a post-LN transformer encoder classifier in BERT's
// layout, emitted op by op so that a quantizer sees every projection as a MatMul with a weight.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/zoo.h"

namespace edgeforge {

namespace {

constexpr int64_t kTextDefaultClasses = 2;  // spam or ham
// BERT's initializer_range: every weight matrix and embedding is drawn from N(0, 0.02).
constexpr float kInitStd = 0.02f;
// Added to the attention scores of padding; exp() of it underflows to exactly 0 in float.
constexpr float kMaskedScore = -10000.0f;

// The additive attention mask [N, 1, 1, S]: 0 where attention_mask is 1, kMaskedScore where it
// is 0, computed once and broadcast over heads and queries in every layer.
std::string attention_bias(GraphBuilder& b, const std::string& attention_mask) {
  std::string m;
  {
    auto s = b.scope("mask");
    m = b.cast("cast", attention_mask, at::kFloat);
    m = b.sub("invert", b.scalar("one", 1.0f), m);
    m = b.mul("scale", m, b.scalar("masked_score", kMaskedScore));
    m = b.unsqueeze("unsqueeze", m, {1, 2});
  }
  return b.rename_output(m, b.scoped("mask.out"));
}

// Multi-head self-attention with its output projection, dropout, residual and LayerNorm.
std::string attention_block(GraphBuilder& b, const TransformerConfig& c, const std::string& x,
                            const std::string& bias) {
  const WeightInit init = WeightInit::normal(kInitStd);
  const int64_t h = c.hidden;
  const int64_t head_dim = c.hidden / c.heads;
  auto s = b.scope("attention");
  const std::string q = b.linear("query", x, h, h, init);
  const std::string k = b.linear("key", x, h, h, init);
  const std::string v = b.linear("value", x, h, h, init);
  // [N, S, H] -> [N, heads, S, head_dim]; the keys go straight to [N, heads, head_dim, S].
  const std::vector<int64_t> split = {0, 0, c.heads, head_dim};
  const std::string qh = b.transpose("query_heads", b.reshape("query_split", q, split), {0, 2, 1, 3});
  const std::string kt = b.transpose("key_heads", b.reshape("key_split", k, split), {0, 2, 3, 1});
  const std::string vh = b.transpose("value_heads", b.reshape("value_split", v, split), {0, 2, 1, 3});
  std::string scores = b.matmul("scores", qh, kt);
  scores = b.div("scale", scores,
                 b.scalar("sqrt_head_dim", static_cast<float>(std::sqrt(double(head_dim)))));
  scores = b.add("add_mask", scores, bias);
  const std::string probs = b.softmax("softmax", scores, -1);
  std::string ctx = b.matmul("context", probs, vh);
  ctx = b.reshape("context_merge", b.transpose("context_heads", ctx, {0, 2, 1, 3}), {0, 0, h});
  std::string y = b.linear("output", ctx, h, h, init);
  y = b.dropout("dropout", y, c.dropout);
  return b.layer_norm("layer_norm", b.add("add", y, x), h, c.layer_norm_epsilon);
}

// Feed-forward block: linear, exact GELU, linear, dropout, residual and LayerNorm.
std::string ffn_block(GraphBuilder& b, const TransformerConfig& c, const std::string& x) {
  const WeightInit init = WeightInit::normal(kInitStd);
  auto s = b.scope("ffn");
  std::string y = b.gelu("gelu", b.linear("intermediate", x, c.hidden, c.ffn, init));
  y = b.linear("output", y, c.ffn, c.hidden, init);
  y = b.dropout("dropout", y, c.dropout);
  return b.layer_norm("layer_norm", b.add("add", y, x), c.hidden, c.layer_norm_epsilon);
}

void check_config(const TransformerConfig& c, const ZooBuildOptions& opts) {
  EF_CHECK(c.hidden >= 1 && c.layers >= 1 && c.heads >= 1 && c.ffn >= 1, "transformer: hidden ",
           c.hidden, ", layers ", c.layers, ", heads ", c.heads, ", ffn ", c.ffn,
           " (expected all >= 1)");
  EF_CHECK(c.hidden % c.heads == 0, "transformer: hidden size ", c.hidden,
           " does not split into ", c.heads, " heads");
  EF_CHECK(c.max_positions >= 1 && c.type_vocab_size >= 1, "transformer: max_positions ",
           c.max_positions, ", type_vocab_size ", c.type_vocab_size, " (expected >= 1)");
  EF_CHECK(c.dropout >= 0.0f && c.dropout < 1.0f, "transformer: dropout ", c.dropout,
           " (expected in [0, 1))");
  EF_CHECK(opts.vocab_size >= 1, "zoo: vocab_size ", opts.vocab_size, " (expected >= 1)");
  EF_CHECK(opts.seq_len >= 1 && opts.seq_len <= c.max_positions, "zoo: seq_len ", opts.seq_len,
           " (expected 1 to ", c.max_positions, ", the model's position embeddings)");
  EF_CHECK(opts.num_classes == 0 || opts.num_classes >= 2, "zoo: num_classes ",
           opts.num_classes, " is not valid (expected 0 for the dataset's default, or >= 2)");
}

}  // namespace

Graph build_transformer(const TransformerConfig& c, const ZooBuildOptions& opts) {
  check_config(c, opts);
  const int64_t num_classes = opts.num_classes == 0 ? kTextDefaultClasses : opts.num_classes;
  const WeightInit init = WeightInit::normal(kInitStd);
  Graph g("transformer");
  GraphBuilder b(g, seeded_generator(opts.seed));
  const Dim batch = Dim::symbol("N");
  const Dim seq = Dim::symbol("S");
  const std::string ids = b.input("input_ids", at::kLong, {batch, seq});
  const std::string mask = b.input("attention_mask", at::kLong, {batch, seq});
  const std::string types =
      c.token_type_embeddings ? b.input("token_type_ids", at::kLong, {batch, seq}) : "";

  std::string x;
  {
    auto s = b.scope("embeddings");
    x = b.embedding("word_embeddings", ids, opts.vocab_size, c.hidden, init);
    // Positions 0..S-1 with S read from input_ids at run time, so S stays symbolic. Range
    // rather than a position-id table sliced to S: ONNX 1.12 shape inference drops the rank of
    // a Slice whose end is computed, which would leave every later activation without a shape
    // (partitioning and MAC counts need them); Range keeps rank 1, and the broadcasting Add
    // below restores [N, S, H].
    const std::string len =
        b.gather("seq_len", b.shape("input_shape", ids, 0, 2),
                 b.constant("seq_len.index", at::scalar_tensor(1, at::kLong)), 0);
    const std::string pos_ids =
        b.range("position_ids", b.constant("position_ids.start", at::scalar_tensor(0, at::kLong)),
                len, b.constant("position_ids.delta", at::scalar_tensor(1, at::kLong)));
    const std::string pos =
        b.embedding("position_embeddings", pos_ids, c.max_positions, c.hidden, init);
    x = b.add("add_position", x, pos);  // [N, S, H] + [S, H]
    if (c.token_type_embeddings) {
      const std::string tt =
          b.embedding("token_type_embeddings", types, c.type_vocab_size, c.hidden, init);
      x = b.add("add_token_type", x, tt);
    }
    x = b.layer_norm("layer_norm", x, c.hidden, c.layer_norm_epsilon);
    x = b.dropout("dropout", x, c.dropout);
  }
  x = b.rename_output(x, "embeddings.out");

  {
    auto s = b.scope("encoder");
    const std::string bias = attention_bias(b, mask);
    for (int64_t k = 1; k <= c.layers; ++k) {
      const std::string layer = "layer" + std::to_string(k);
      {
        auto sl = b.scope(layer);
        x = attention_block(b, c, x, bias);
        x = ffn_block(b, c, x);
      }
      x = b.rename_output(x, b.scoped(layer + ".out"));
    }
  }

  {
    auto s = b.scope("pooler");
    // The first token ([CLS] / <s>) summarises the sequence; a scalar index drops the S axis.
    const std::string first = b.gather(
        "first_token", x, b.constant("first_token.index", at::scalar_tensor(0, at::kLong)), 1);
    x = b.tanh("tanh", b.gemm("dense", first, c.hidden, c.hidden, init));
  }
  x = b.rename_output(x, "pooler.out");
  x = b.rename_output(b.gemm("classifier", x, c.hidden, num_classes, init), "logits");
  b.output(x, at::kFloat, {batch, num_classes});
  return g;
}

}  // namespace edgeforge
