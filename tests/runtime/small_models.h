// Small graphs shaped like the zoo's models, random batches for them and their QDQ form: the
// shared fixtures of the int8 lowering tests (tests/strategies/quantize_test.cpp) and the
// inference plan tests (tests/runtime/plan_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "edgeforge/graph_builder.h"
#include "edgeforge/quantize.h"
#include "edgeforge/runtime.h"

namespace edgeforge::testing {

// stem conv -> BN -> relu -> [conv -> BN -> relu -> conv -> BN] + shortcut -> relu -> pool ->
// flatten -> gemm: the shape of the zoo's image models, small.
inline Graph small_cnn() {
  Graph g("cnn");
  GraphBuilder b(g, seeded_generator(3));
  std::string x = b.input("input", at::kFloat, {Dim::symbol("N"), 3, 12, 12});
  x = b.relu("stem.relu", b.batch_norm("stem.bn", b.conv("stem.conv", x, 3, 8, 3, 1, 1), 8));
  std::string y = b.relu("b.relu1", b.batch_norm("b.bn1", b.conv("b.conv1", x, 8, 16, 3, 1, 1), 16));
  y = b.batch_norm("b.bn2", b.conv("b.conv2", y, 16, 8, 3, 1, 1, 2), 8);
  x = b.relu("b.relu2", b.add("b.add", x, y));
  x = b.flatten("flat", b.global_average_pool("pool", x));
  x = b.gemm("fc", x, 8, 5);
  b.output(x, at::kFloat, {Dim::symbol("N"), 5});
  // Batch-norm statistics that are not the identity, so folding has work to do.
  at::manual_seed(1);
  for (auto& [name, t] : g.initializers()) {
    if (name.find("running_var") != std::string::npos) t.uniform_(0.5, 2.0);
    if (name.find("running_mean") != std::string::npos) t.normal_(0, 0.3);
    if (name.find("bn") != std::string::npos && name.find(".bias") != std::string::npos) t.normal_(0, 0.2);
    if (name.find("bn") != std::string::npos && name.find(".weight") != std::string::npos) t.uniform_(0.5, 1.5);
  }
  return g;
}

// linear -> gelu -> linear on [N, T, 16], then a Gemm head on the first token: the zoo's
// transformer projections in miniature.
inline Graph small_mlp() {
  Graph g("mlp");
  GraphBuilder b(g, seeded_generator(5));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 6, 16});
  std::string h = b.gelu("gelu", b.linear("ffn1", x, 16, 32));
  h = b.add("residual", x, b.linear("ffn2", h, 32, 16));
  h = b.reshape("first", b.slice("token", h, b.ints("s0", {0}), b.ints("s1", {1}), b.ints("ax", {1})),
                {-1, 16});
  h = b.gemm("head", h, 16, 3);
  b.output(h, at::kFloat, {Dim::symbol("N"), 3});
  return g;
}

inline std::vector<std::vector<at::Tensor>> batches(const Graph& g, int count, uint64_t seed) {
  at::manual_seed(seed);
  std::vector<std::vector<at::Tensor>> out;
  for (int i = 0; i < count; ++i) {
    std::vector<int64_t> shape;
    for (const Dim& d : g.inputs()[0].shape) shape.push_back(d.is_fixed() ? d.size : 4);
    out.push_back({at::randn(shape)});
  }
  return out;
}

inline at::Tensor run(const Graph& g, const std::vector<at::Tensor>& in) {
  Executor exec(g);
  at::NoGradGuard no_grad;
  return exec.run(in, RunOptions{})[0];
}

// The QDQ form of `g` calibrated with min/max on random batches; weights of `weight_bits` (7,
// the default, stays int8 on every CPU; 8 only where int8_products_saturate() is false).
inline Graph static_qdq(Graph g, bool per_channel = true, int weight_bits = 7) {
  fold_batch_norm(g);
  const std::vector<QuantUnit> units = find_quant_units(g);
  CalibrationOptions cal;
  const Ranges ranges = calibrate(g, activation_points(units), batches(g, 4, 11), cal, 1);
  QdqOptions q;
  q.per_channel = per_channel;
  q.weight_bits = weight_bits;
  write_qdq(g, units, ranges, q);
  return g;
}

inline double output_step(const Graph& qdq) {
  // The scale of the quantized graph output (its Q node's scale).
  for (const Node& n : qdq.nodes())
    if (n.op_type == "DequantizeLinear" && n.outputs[0] == qdq.outputs()[0].name)
      return constant_input(qdq, n.inputs[1]).item<double>();
  ADD_FAILURE() << "the output is not dequantized";
  return 1.0;
}

}  // namespace edgeforge::testing
