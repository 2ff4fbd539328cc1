// Pruning masks (exact sparsity and block pattern), the cubic schedule, and structured pruning:
// the physically smaller model computes what the masked dense model computes.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/prune.h"
#include "edgeforge/runtime.h"

using namespace edgeforge;

namespace {

// Float reorderings only: removing a zero unit drops terms that are exactly 0.
constexpr double kStructuredTolerance = 1e-5;

at::Tensor run(const Graph& g, const at::Tensor& x) {
  Executor exec(g);
  at::NoGradGuard no_grad;
  return exec.run({x}, RunOptions{})[0];
}

// conv -> BN -> relu -> grouped conv -> BN -> relu -> conv -> BN, plus the stem and head.
Graph bottleneck_cnn() {
  Graph g("bottleneck");
  GraphBuilder b(g, seeded_generator(9));
  std::string x = b.input("input", at::kFloat, {Dim::symbol("N"), 2, 10, 10});
  x = b.relu("stem.relu", b.batch_norm("stem.bn", b.conv("stem.conv", x, 2, 8, 3, 1, 1), 8));
  std::string y = b.relu("r1", b.batch_norm("bn1", b.conv("conv1", x, 8, 16, 1), 16));
  y = b.relu("r2", b.batch_norm("bn2", b.conv("conv2", y, 16, 16, 3, 1, 1, 4), 16));
  y = b.batch_norm("bn3", b.conv("conv3", y, 16, 8, 1), 8);
  x = b.relu("out", b.add("add", x, y));
  x = b.gemm("fc", b.flatten("flat", b.global_average_pool("pool", x)), 8, 4);
  b.output(x, at::kFloat, {Dim::symbol("N"), 4});
  at::manual_seed(2);
  for (auto& [name, t] : g.initializers())
    if (name.find("bn") != std::string::npos && name.find(".bias") != std::string::npos)
      t.normal_(0, 0.3);  // non-zero beta: a removed channel must be zeroed, not just its filter
  return g;
}

Graph ffn() {
  Graph g("ffn");
  GraphBuilder b(g, seeded_generator(4));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 5, 12});
  std::string h = b.linear("out", b.gelu("gelu", b.linear("in", x, 12, 24)), 24, 12);
  b.output(b.add("res", x, h), at::kFloat, {Dim::symbol("N"), 5, 12});
  return g;
}

}  // namespace

TEST(BlockMask, ExactSparsityInWholeBlocks) {
  at::manual_seed(0);
  const at::Tensor w = at::randn({8, 4, 3, 3});  // [out, in x 3 x 3] = [8, 36]
  for (double s : {0.0, 0.25, 0.5, 0.75, 0.9}) {
    const at::Tensor m = block_mask(w, {2, 1}, s, false);
    ASSERT_EQ(m.sizes(), w.sizes());
    const at::Tensor blocks = m.reshape({4, 2, 36});
    // Both rows of every 2x1 block agree.
    EXPECT_TRUE(at::equal(blocks.select(1, 0), blocks.select(1, 1)));
    const int64_t zero_blocks = blocks.select(1, 0).eq(0).sum().item<int64_t>();
    EXPECT_EQ(zero_blocks, std::llround(s * 4 * 36)) << s;
  }
}

TEST(BlockMask, PrunesTheSmallestBlocksAndHandlesInOutWeights) {
  // [in 3, out 8] stored for MatMul: blocks run along the output dimension (columns here).
  at::Tensor w = at::ones({3, 8});
  w.select(1, 4).fill_(0.01);
  w.select(1, 5).fill_(0.01);
  w.select(1, 6).fill_(0.02);
  w.select(1, 7).fill_(0.02);
  const at::Tensor m = block_mask(w, {4, 1}, 1.0 / 3.0 + 1e-9, true);  // 2 of 6 blocks
  EXPECT_EQ(m.sum().item<double>(), 16.0);
  EXPECT_EQ(m.slice(1, 4, 8).sum().item<double>(), 4.0);  // units 4-7 lose 2 of their 3 blocks
  EXPECT_THROW(block_mask(w, {4, 1}, 1.0, true), Error);
  EXPECT_THROW(block_mask(w, {4, 1}, -0.1, true), Error);
  EXPECT_THROW(parse_block_shape("2by1"), Error);
  EXPECT_THROW(parse_block_shape("0x1"), Error);
  EXPECT_EQ(parse_block_shape("4x1").rows, 4);
}

TEST(CubicSchedule, RisesToTheTargetAndHolds) {
  EXPECT_DOUBLE_EQ(cubic_sparsity(0.9, 0, 100), 0.0);
  EXPECT_NEAR(cubic_sparsity(0.9, 50, 100), 0.9 * (1 - 0.125), 1e-12);
  EXPECT_DOUBLE_EQ(cubic_sparsity(0.9, 100, 100), 0.9);
  EXPECT_DOUBLE_EQ(cubic_sparsity(0.9, 500, 100), 0.9);
  EXPECT_LT(cubic_sparsity(0.9, 10, 100), cubic_sparsity(0.9, 11, 100));
}

TEST(PruneTargets, SkipTheStemAndTheClassifier) {
  const auto targets = prune_targets(bottleneck_cnn());
  ASSERT_EQ(targets.size(), 3u);
  EXPECT_EQ(targets[0].node, "conv1");
  EXPECT_EQ(targets[2].node, "conv3");
}

TEST(Structured, FindsChannelAndFeedForwardDimensions) {
  const auto dims = prunable_dimensions(bottleneck_cnn());
  // The residual stream (the stem's channels, tied to conv3's by the add, read by conv1 and the
  // classifier), conv1 -> conv2 (a grouped reader), conv2 -> conv3 (a grouped maker).
  ASSERT_EQ(dims.size(), 3u);
  EXPECT_EQ(dims[0].name, "stem.conv");
  EXPECT_EQ(dims[0].producers, (std::vector<std::string>{"stem.conv", "conv3"}));
  EXPECT_EQ(dims[0].consumers, (std::vector<std::string>{"conv1", "fc"}));
  EXPECT_EQ(dims[0].norms.size(), 2u);
  EXPECT_EQ(dims[1].name, "conv1");
  EXPECT_EQ(dims[1].consumed.at(0).groups, 4);
  EXPECT_EQ(dims[1].groups, 4);
  EXPECT_EQ(dims[2].name, "conv2");
  EXPECT_EQ(dims[2].groups, 4);
  EXPECT_EQ(dims[2].consumed.at(0).groups, 1);
  const auto f = prunable_dimensions(ffn());
  ASSERT_EQ(f.size(), 1u);  // the residual stream is a graph output
  EXPECT_EQ(f[0].units, 24);
  EXPECT_EQ(f[0].produced.at(0).axis, 1);
}

TEST(Structured, SmallerModelMatchesTheMaskedDenseModel) {
  for (Graph g : {bottleneck_cnn(), ffn()}) {
    const auto dims = prunable_dimensions(g);
    std::vector<at::Tensor> masks;
    for (const auto& d : dims) {
      masks.push_back(structured_keep_mask(unit_importance(g, d), d.groups, 0.5));
      EXPECT_EQ(masks.back().sum().item<int64_t>(), d.units / 2);
      apply_unit_mask(g, d, masks.back());
    }
    const Graph masked = g.clone();
    for (size_t i = 0; i < dims.size(); ++i) remove_units(g, dims[i], masks[i]);
    g.value_info().clear();
    const Graph small = graph_from_onnx_bytes(graph_to_onnx_bytes(g), "small");
    EXPECT_LT(small.parameter_count(), masked.parameter_count());
    at::manual_seed(3);
    const at::Tensor x = small.inputs()[0].shape.size() == 4 ? at::randn({2, 2, 10, 10})
                                                             : at::randn({2, 5, 12});
    const at::Tensor a = run(masked, x), b = run(small, x);
    EXPECT_TRUE(at::allclose(a, b, 0, kStructuredTolerance)) << (a - b).abs().max().item<double>();
  }
}

TEST(Structured, KeepMaskKeepsTheMostImportantUnitsPerGroup) {
  const at::Tensor importance = at::tensor({5.f, 1.f, 3.f, 2.f, 0.f, 9.f, 8.f, 7.f});
  const at::Tensor m = structured_keep_mask(importance, 2, 0.5);
  EXPECT_TRUE(at::equal(m, at::tensor({1.f, 0.f, 1.f, 0.f, 0.f, 1.f, 1.f, 0.f})));
  EXPECT_THROW(structured_keep_mask(importance, 2, 1.0), Error);
}
