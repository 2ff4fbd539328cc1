// Neural-network ops against explicit loop references (convolution, pooling, Gemm, MatMul) and
// hand arithmetic (normalisations, softmax).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>

#include "op_test_util.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

using OpConv = SeededTest;
using OpMaxPool = SeededTest;
using OpAveragePool = SeededTest;
using OpGlobalAveragePool = SeededTest;
using OpBatchNormalization = SeededTest;
using OpGemm = SeededTest;
using OpMatMul = SeededTest;
using OpSoftmax = SeededTest;
using OpLogSoftmax = SeededTest;
using OpLayerNormalization = SeededTest;
using OpDropout = SeededTest;

using Ints = std::vector<int64_t>;

// ---- references ----

// Direct 2-D convolution: y[n][o][i][j] = b[o] + sum over the group's input channels c and
// kernel taps (u, v) of x[n][c][i*sh - top + u*dh][j*sw - left + v*dw], zero outside the input.
// pads are {top, left, bottom, right} as in ONNX.
at::Tensor reference_conv2d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            std::array<int64_t, 2> strides, std::array<int64_t, 4> pads,
                            std::array<int64_t, 2> dilations, int64_t group) {
  const int64_t n = x.size(0), c_in = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t c_out = w.size(0), c_per_group = w.size(1), kh = w.size(2), kw = w.size(3);
  const int64_t oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) / strides[0] + 1;
  const int64_t ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) / strides[1] + 1;
  const int64_t out_per_group = c_out / group;
  EXPECT_EQ(c_in, c_per_group * group);
  at::Tensor y = at::zeros({n, c_out, oh, ow}, at::kDouble);
  const at::Tensor xd = x.to(at::kDouble);
  const at::Tensor wdd = w.to(at::kDouble);
  auto xa = xd.accessor<double, 4>();
  auto wa = wdd.accessor<double, 4>();
  auto ya = y.accessor<double, 4>();
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t o = 0; o < c_out; ++o) {
      const int64_t g = o / out_per_group;
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b.defined() ? b[o].item<double>() : 0.0;
          for (int64_t c = 0; c < c_per_group; ++c)
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t r = i * strides[0] - pads[0] + u * dilations[0];
                const int64_t s = j * strides[1] - pads[1] + v * dilations[1];
                if (r < 0 || r >= h || s < 0 || s >= wd) continue;
                acc += xa[ni][g * c_per_group + c][r][s] * wa[o][c][u][v];
              }
          ya[ni][o][i][j] = acc;
        }
    }
  return y;
}

enum class Pool { kMax, kAverage };

// Direct 2-D pooling with ONNX's output size. An average divides by the taps inside the input,
// or with count_include_pad by the taps inside the padded input. pads are {top, left, bottom,
// right}.
at::Tensor reference_pool2d(const at::Tensor& x, Pool kind, std::array<int64_t, 2> kernel,
                            std::array<int64_t, 2> strides, std::array<int64_t, 4> pads,
                            std::array<int64_t, 2> dilations, bool ceil_mode,
                            bool count_include_pad) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto out_size = [&](int64_t in, int64_t pad_total, int64_t k, int64_t s, int64_t d) {
    const double span = static_cast<double>(in + pad_total - d * (k - 1) - 1) / s;
    return static_cast<int64_t>(ceil_mode ? std::ceil(span) : std::floor(span)) + 1;
  };
  const int64_t oh = out_size(h, pads[0] + pads[2], kernel[0], strides[0], dilations[0]);
  const int64_t ow = out_size(w, pads[1] + pads[3], kernel[1], strides[1], dilations[1]);
  at::Tensor y = at::zeros({n, c, oh, ow}, at::kDouble);
  const at::Tensor xd = x.to(at::kDouble);
  auto xa = xd.accessor<double, 4>();
  auto ya = y.accessor<double, 4>();
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double best = -std::numeric_limits<double>::infinity();
          double sum = 0.0;
          int64_t inside = 0, inside_padded = 0;
          for (int64_t u = 0; u < kernel[0]; ++u)
            for (int64_t v = 0; v < kernel[1]; ++v) {
              const int64_t r = i * strides[0] - pads[0] + u * dilations[0];
              const int64_t s = j * strides[1] - pads[1] + v * dilations[1];
              if (r >= -pads[0] && r < h + pads[2] && s >= -pads[1] && s < w + pads[3])
                ++inside_padded;
              if (r < 0 || r >= h || s < 0 || s >= w) continue;
              ++inside;
              best = std::max(best, xa[ni][ci][r][s]);
              sum += xa[ni][ci][r][s];
            }
          ya[ni][ci][i][j] =
              kind == Pool::kMax ? best : sum / (count_include_pad ? inside_padded : inside);
        }
  return y;
}

// ---- Conv ----

TEST_F(OpConv, HandComputedTinyCase) {
  // 3x3 input 1..9, 2x2 kernel of ones: each output is the sum of a 2x2 block, plus bias 1.
  at::Tensor x = tensor_of({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(at::ones({1, 1, 2, 2}))
                     .constant(tensor_of({1.0f}, {1}))
                     .run();
  expect_close(y, tensor_of({13, 17, 25, 29}, {1, 1, 2, 2}));
}

TEST_F(OpConv, SymmetricPadsAndBias) {
  at::Tensor x = at::randn({2, 2, 5, 5});
  at::Tensor w = at::randn({3, 2, 3, 3});
  at::Tensor b = at::randn({3});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(w)
                     .constant(b)
                     .attr("kernel_shape", Ints{3, 3})
                     .attr("pads", Ints{1, 1, 1, 1})
                     .run();
  expect_close(y, reference_conv2d(x, w, b, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1), 1e-4);
}

TEST_F(OpConv, AsymmetricPadsWithStride) {
  at::Tensor x = at::randn({1, 2, 6, 5});
  at::Tensor w = at::randn({2, 2, 3, 2});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(w)
                     .attr("pads", Ints{0, 1, 2, 0})
                     .attr("strides", Ints{2, 1})
                     .run();
  expect_close(y, reference_conv2d(x, w, {}, {2, 1}, {0, 1, 2, 0}, {1, 1}, 1), 1e-4);
}

TEST_F(OpConv, GroupedWithDilationAndStride) {
  at::Tensor x = at::randn({1, 4, 7, 7});
  at::Tensor w = at::randn({6, 2, 3, 3});
  at::Tensor b = at::randn({6});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(w)
                     .constant(b)
                     .attr("group", int64_t{2})
                     .attr("strides", Ints{2, 2})
                     .attr("dilations", Ints{2, 2})
                     .attr("pads", Ints{2, 2, 2, 2})
                     .run();
  expect_close(y, reference_conv2d(x, w, b, {2, 2}, {2, 2, 2, 2}, {2, 2}, 2), 1e-4);
}

TEST_F(OpConv, Depthwise) {
  at::Tensor x = at::randn({1, 3, 4, 4});
  at::Tensor w = at::randn({3, 1, 3, 3});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(w)
                     .attr("group", int64_t{3})
                     .attr("pads", Ints{1, 1, 1, 1})
                     .run();
  expect_close(y, reference_conv2d(x, w, {}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 3), 1e-4);
}

TEST_F(OpConv, SameUpperPutsTheOddPadAtTheEnd) {
  // H 5, stride 2, k 3: 3 outputs, total pad 2 -> (1, 1). W 6: total pad 1 -> (0, 1).
  at::Tensor x = at::randn({1, 1, 5, 6});
  at::Tensor w = at::randn({2, 1, 3, 3});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(w)
                     .attr("auto_pad", std::string("SAME_UPPER"))
                     .attr("strides", Ints{2, 2})
                     .run();
  EXPECT_EQ(y.sizes(), at::IntArrayRef({1, 2, 3, 3}));
  expect_close(y, reference_conv2d(x, w, {}, {2, 2}, {1, 0, 1, 1}, {1, 1}, 1), 1e-4);
}

TEST_F(OpConv, SameLowerPutsTheOddPadAtTheBeginning) {
  at::Tensor x = at::randn({1, 1, 5, 6});
  at::Tensor w = at::randn({2, 1, 3, 3});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(w)
                     .attr("auto_pad", std::string("SAME_LOWER"))
                     .attr("strides", Ints{2, 2})
                     .run();
  expect_close(y, reference_conv2d(x, w, {}, {2, 2}, {1, 1, 1, 0}, {1, 1}, 1), 1e-4);
}

TEST_F(OpConv, ValidHasNoPadding) {
  at::Tensor x = at::randn({1, 2, 5, 5});
  at::Tensor w = at::randn({1, 2, 3, 3});
  at::Tensor y = OneNode("Conv").input(x).constant(w).attr("auto_pad", std::string("VALID")).run();
  expect_close(y, reference_conv2d(x, w, {}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1), 1e-4);
}

TEST_F(OpConv, OneDimensionalWithAsymmetricPads) {
  at::Tensor x = at::randn({1, 2, 7});
  at::Tensor w = at::randn({3, 2, 3});
  at::Tensor b = at::randn({3});
  at::Tensor y = OneNode("Conv")
                     .input(x)
                     .constant(w)
                     .constant(b)
                     .attr("strides", Ints{2})
                     .attr("pads", Ints{1, 2})
                     .run();
  // A 1-D convolution is the 2-D one over a height-1 image.
  at::Tensor expected =
      reference_conv2d(x.unsqueeze(2), w.unsqueeze(2), b, {1, 2}, {0, 1, 0, 2}, {1, 1}, 1)
          .squeeze(2);
  expect_close(y, expected, 1e-4);
}

TEST_F(OpConv, WeightComputedAtRunTime) {
  // No attributes and a weight that is a graph input: the spatial rank comes from the weight.
  at::Tensor x = at::randn({1, 2, 4, 4});
  at::Tensor w = at::randn({2, 2, 2, 2});
  at::Tensor y = OneNode("Conv").input(x).input(w).run();
  expect_close(y, reference_conv2d(x, w, {}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1), 1e-4);
}

TEST_F(OpConv, BiasGradientCountsOutputPositions) {
  at::Tensor x = at::randn({2, 1, 4, 4});
  at::Tensor w = at::randn({2, 1, 3, 3});
  at::Tensor b = at::zeros({2}).requires_grad_(true);
  at::Tensor y = OneNode("Conv").input(x).constant(w).constant(b).run(true);
  y.sum().backward();
  // d sum(y) / d b[o] = batch * out_h * out_w = 2 * 2 * 2.
  expect_close(b.grad(), tensor_of({8.0f, 8.0f}, {2}));
}

TEST_F(OpConv, AutoPadWithExplicitPadsIsRejected) {
  expect_error(
      [] {
        OneNode("Conv")
            .input(at::randn({1, 1, 4, 4}))
            .constant(at::randn({1, 1, 3, 3}))
            .attr("auto_pad", std::string("VALID"))
            .attr("pads", Ints{1, 1, 1, 1})
            .prepare();
      },
      {"Conv node 'node'", "auto_pad 'VALID' with explicit pads is not supported"});
}

TEST_F(OpConv, KernelShapeMustMatchTheWeight) {
  expect_error(
      [] {
        OneNode("Conv")
            .input(at::randn({1, 1, 4, 4}))
            .constant(at::randn({1, 1, 3, 3}))
            .attr("kernel_shape", Ints{2, 2})
            .prepare();
      },
      {"Conv node 'node'", "kernel_shape"});
}

TEST_F(OpConv, ChannelMismatchAtRunTimeNamesTheNode) {
  expect_error(
      [] {
        OneNode("Conv").input(at::randn({1, 3, 4, 4})).constant(at::randn({1, 2, 3, 3})).run();
      },
      {"Conv node 'node'"});
}

// ---- MaxPool ----

TEST_F(OpMaxPool, HandComputed) {
  at::Tensor x = tensor_of({1, 5, 2, 0, 3, 4, 8, 6, 7, 2, 1, 9, 0, 3, 2, 4}, {1, 1, 4, 4});
  at::Tensor y = OneNode("MaxPool")
                     .input(x)
                     .attr("kernel_shape", Ints{2, 2})
                     .attr("strides", Ints{2, 2})
                     .run();
  expect_close(y, tensor_of({5, 8, 7, 9}, {1, 1, 2, 2}));
}

TEST_F(OpMaxPool, SymmetricPadsWithStride) {
  at::Tensor x = at::randn({1, 2, 5, 5});
  at::Tensor y = OneNode("MaxPool")
                     .input(x)
                     .attr("kernel_shape", Ints{3, 3})
                     .attr("strides", Ints{2, 2})
                     .attr("pads", Ints{1, 1, 1, 1})
                     .run();
  expect_close(y,
               reference_pool2d(x, Pool::kMax, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, false, false));
}

TEST_F(OpMaxPool, AsymmetricPadsPadWithMinusInfinity) {
  // All-negative input: a zero pad would win the max, -inf never does.
  at::Tensor x = -at::rand({1, 1, 5, 5}) - 1.0;
  at::Tensor y = OneNode("MaxPool")
                     .input(x)
                     .attr("kernel_shape", Ints{2, 2})
                     .attr("strides", Ints{2, 2})
                     .attr("pads", Ints{0, 0, 1, 1})
                     .run();
  EXPECT_LT(y.max().item<float>(), 0.0f);
  expect_close(y,
               reference_pool2d(x, Pool::kMax, {2, 2}, {2, 2}, {0, 0, 1, 1}, {1, 1}, false, false));
}

TEST_F(OpMaxPool, CeilModeKeepsThePartialWindow) {
  at::Tensor x = at::randn({1, 1, 6, 6});
  at::Tensor y = OneNode("MaxPool")
                     .input(x)
                     .attr("kernel_shape", Ints{3, 3})
                     .attr("strides", Ints{2, 2})
                     .attr("ceil_mode", int64_t{1})
                     .run();
  EXPECT_EQ(y.sizes(), at::IntArrayRef({1, 1, 3, 3}));
  expect_close(y,
               reference_pool2d(x, Pool::kMax, {3, 3}, {2, 2}, {0, 0, 0, 0}, {1, 1}, true, false));
}

TEST_F(OpMaxPool, Dilations) {
  at::Tensor x = at::randn({1, 1, 7, 7});
  at::Tensor y = OneNode("MaxPool")
                     .input(x)
                     .attr("kernel_shape", Ints{2, 2})
                     .attr("dilations", Ints{2, 2})
                     .run();
  expect_close(y,
               reference_pool2d(x, Pool::kMax, {2, 2}, {1, 1}, {0, 0, 0, 0}, {2, 2}, false, false));
}

TEST_F(OpMaxPool, SameUpper) {
  // 5 wide, k 2, stride 2: 3 outputs, one pad at the end.
  at::Tensor x = at::randn({1, 1, 5, 5});
  at::Tensor y = OneNode("MaxPool")
                     .input(x)
                     .attr("kernel_shape", Ints{2, 2})
                     .attr("strides", Ints{2, 2})
                     .attr("auto_pad", std::string("SAME_UPPER"))
                     .run();
  expect_close(y,
               reference_pool2d(x, Pool::kMax, {2, 2}, {2, 2}, {0, 0, 1, 1}, {1, 1}, false, false));
}

TEST_F(OpMaxPool, OneDimensional) {
  at::Tensor x = tensor_of({1, 3, 2, 5, 4}, {1, 1, 5});
  at::Tensor y = OneNode("MaxPool").input(x).attr("kernel_shape", Ints{2}).run();
  expect_close(y, tensor_of({3, 3, 5, 5}, {1, 1, 4}));
}

TEST_F(OpMaxPool, IndicesOutputIsRejected) {
  expect_error(
      [] {
        OneNode("MaxPool")
            .input(at::randn({1, 1, 4, 4}))
            .attr("kernel_shape", Ints{2, 2})
            .outputs(2)
            .prepare();
      },
      {"MaxPool node 'node'", "Indices"});
}

TEST_F(OpMaxPool, MissingKernelShapeIsAnError) {
  expect_error(
      [] {
        OneNode("MaxPool").input(at::randn({1, 1, 4, 4})).prepare();
      },
      {"MaxPool node 'node'", "kernel_shape"});
}

// ---- AveragePool ----

TEST_F(OpAveragePool, PadsExcludedByDefault) {
  // Corner window of a 3x3 kernel with pad 1 over 1..9 sees 1, 2, 4, 5: mean 3 excluding
  // the pads, 12 / 9 including them.
  at::Tensor x = tensor_of({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  at::Tensor excluded = OneNode("AveragePool")
                            .input(x)
                            .attr("kernel_shape", Ints{3, 3})
                            .attr("pads", Ints{1, 1, 1, 1})
                            .run();
  EXPECT_NEAR(excluded[0][0][0][0].item<float>(), 3.0f, 1e-6);
  EXPECT_NEAR(excluded[0][0][1][1].item<float>(), 5.0f, 1e-6);
  at::Tensor included = OneNode("AveragePool")
                            .input(x)
                            .attr("kernel_shape", Ints{3, 3})
                            .attr("pads", Ints{1, 1, 1, 1})
                            .attr("count_include_pad", int64_t{1})
                            .run();
  EXPECT_NEAR(included[0][0][0][0].item<float>(), 12.0f / 9.0f, 1e-6);
}

TEST_F(OpAveragePool, AsymmetricPadsHandComputed) {
  at::Tensor x = tensor_of({1, 2, 3, 4}, {1, 1, 2, 2});
  auto pool = [&](int64_t include) {
    return OneNode("AveragePool")
        .input(x)
        .attr("kernel_shape", Ints{2, 2})
        .attr("pads", Ints{1, 1, 0, 0})
        .attr("count_include_pad", include)
        .run();
  };
  expect_close(pool(0), tensor_of({1.0f, 1.5f, 2.0f, 2.5f}, {1, 1, 2, 2}));
  expect_close(pool(1), tensor_of({0.25f, 0.75f, 1.0f, 2.5f}, {1, 1, 2, 2}));
}

TEST_F(OpAveragePool, AsymmetricPadsRandomBothCountModes) {
  at::Tensor x = at::randn({2, 3, 6, 5});
  for (int64_t include : {0, 1}) {
    at::Tensor y = OneNode("AveragePool")
                       .input(x)
                       .attr("kernel_shape", Ints{3, 2})
                       .attr("strides", Ints{2, 1})
                       .attr("pads", Ints{2, 0, 1, 1})
                       .attr("count_include_pad", include)
                       .run();
    expect_close(y, reference_pool2d(x, Pool::kAverage, {3, 2}, {2, 1}, {2, 0, 1, 1}, {1, 1}, false,
                                     include != 0));
  }
}

TEST_F(OpAveragePool, CeilModeWithPads) {
  at::Tensor x = at::randn({1, 2, 6, 6});
  at::Tensor y = OneNode("AveragePool")
                     .input(x)
                     .attr("kernel_shape", Ints{3, 3})
                     .attr("strides", Ints{2, 2})
                     .attr("pads", Ints{1, 1, 1, 1})
                     .attr("ceil_mode", int64_t{1})
                     .run();
  expect_close(
      y, reference_pool2d(x, Pool::kAverage, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, true, false));
}

TEST_F(OpAveragePool, SameLowerExcludesThePad) {
  // 4 wide, k 3, stride 1: total pad 2, split (1, 1); 5 wide, k 2: total 1, at the start.
  at::Tensor x = at::randn({1, 1, 4, 5});
  at::Tensor y = OneNode("AveragePool")
                     .input(x)
                     .attr("kernel_shape", Ints{3, 2})
                     .attr("auto_pad", std::string("SAME_LOWER"))
                     .run();
  expect_close(
      y, reference_pool2d(x, Pool::kAverage, {3, 2}, {1, 1}, {1, 1, 1, 0}, {1, 1}, false, false));
}

// ---- GlobalAveragePool ----

TEST_F(OpGlobalAveragePool, MeansEachChannel) {
  at::Tensor x = tensor_of({1, 2, 3, 6, 0, 0, 4, 4}, {1, 2, 2, 2});
  expect_close(OneNode("GlobalAveragePool").input(x).run(), tensor_of({3, 2}, {1, 2, 1, 1}));
}

TEST_F(OpGlobalAveragePool, OneDimensional) {
  at::Tensor x = tensor_of({1, 2, 6, 10, 20, 30}, {2, 1, 3});
  expect_close(OneNode("GlobalAveragePool").input(x).run(), tensor_of({3, 20}, {2, 1, 1}));
}

// ---- BatchNormalization ----

TEST_F(OpBatchNormalization, EvalUsesRunningStatistics) {
  at::Tensor x = at::randn({2, 3, 2, 2});
  at::Tensor scale = tensor_of({1.0f, 2.0f, 0.5f}, {3});
  at::Tensor bias = tensor_of({0.0f, -1.0f, 3.0f}, {3});
  at::Tensor mean = tensor_of({0.5f, -0.5f, 0.0f}, {3});
  at::Tensor var = tensor_of({1.0f, 4.0f, 0.25f}, {3});
  at::Tensor y = OneNode("BatchNormalization")
                     .input(x)
                     .constant(scale)
                     .constant(bias)
                     .constant(mean)
                     .constant(var)
                     .attr("epsilon", 1e-3f)
                     .run();
  auto per_channel = [](const at::Tensor& t) { return t.reshape({1, 3, 1, 1}); };
  at::Tensor expected =
      (x - per_channel(mean)) / at::sqrt(per_channel(var) + 1e-3) * per_channel(scale) +
      per_channel(bias);
  expect_close(y, expected);
}

TEST_F(OpBatchNormalization, TrainingUsesBatchStatisticsAndUpdatesRunningOnes) {
  // One channel with values 1, 2, 3, 6: mean 3, biased variance 3.5, unbiased 14 / 3.
  at::Tensor x = tensor_of({1, 2, 3, 6}, {2, 1, 1, 2});
  at::Tensor running_mean = at::zeros({1});
  at::Tensor running_var = at::ones({1});
  std::vector<at::Tensor> outs = OneNode("BatchNormalization")
                                     .input(x)
                                     .constant(at::ones({1}))
                                     .constant(at::zeros({1}))
                                     .constant(running_mean)
                                     .constant(running_var)
                                     .attr("momentum", 0.9f)
                                     .attr("epsilon", 0.0f)
                                     .outputs(3)
                                     .run_all(true);
  expect_close(outs[0], (x - 3.0) / std::sqrt(3.5));
  // ONNX momentum weighs the running value: 0.9 * old + 0.1 * batch.
  EXPECT_NEAR(running_mean.item<float>(), 0.3f, 1e-6);
  EXPECT_NEAR(running_var.item<float>(), 0.9f + 0.1f * 14.0f / 3.0f, 1e-6);
  expect_close(outs[1], running_mean);
  expect_close(outs[2], running_var);
}

// ---- Gemm ----

// Y = alpha * op(A) op(B) + beta * C with explicit sums.
at::Tensor reference_gemm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                          double alpha, double beta, bool trans_a, bool trans_b) {
  at::Tensor aa = trans_a ? a.t() : a;
  at::Tensor bb = trans_b ? b.t() : b;
  const int64_t m = aa.size(0), k = aa.size(1), n = bb.size(1);
  at::Tensor cc = c.defined() ? c.expand({m, n}) : at::zeros({m, n});
  at::Tensor y = at::zeros({m, n}, at::kDouble);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) acc += aa[i][p].item<double>() * bb[p][j].item<double>();
      y[i][j] = alpha * acc + beta * cc[i][j].item<double>();
    }
  return y;
}

TEST_F(OpGemm, HandComputed) {
  at::Tensor a = tensor_of({1, 2, 3, 4}, {2, 2});
  at::Tensor b = tensor_of({5, 6, 7, 8}, {2, 2});
  expect_close(OneNode("Gemm").input(a).constant(b).run(), tensor_of({19, 22, 43, 50}, {2, 2}));
}

TEST_F(OpGemm, TransposedWeightAndVectorBias) {
  at::Tensor a = at::randn({3, 4});
  at::Tensor w = at::randn({5, 4});
  at::Tensor c = at::randn({5});
  at::Tensor y = OneNode("Gemm").input(a).constant(w).constant(c).attr("transB", int64_t{1}).run();
  expect_close(y, reference_gemm(a, w, c, 1.0, 1.0, false, true), 1e-4);
}

TEST_F(OpGemm, AlphaBetaTransAAndColumnBias) {
  at::Tensor a = at::randn({4, 3});
  at::Tensor b = at::randn({4, 2});
  at::Tensor c = at::randn({3, 1});
  at::Tensor y = OneNode("Gemm")
                     .input(a)
                     .input(b)
                     .input(c)
                     .attr("transA", int64_t{1})
                     .attr("alpha", 0.5f)
                     .attr("beta", 2.0f)
                     .run();
  expect_close(y, reference_gemm(a, b, c, 0.5, 2.0, true, false), 1e-4);
}

TEST_F(OpGemm, BothTransposedScalarBiasNoC) {
  at::Tensor a = at::randn({2, 3});
  at::Tensor b = at::randn({4, 2});
  at::Tensor y = OneNode("Gemm")
                     .input(a)
                     .input(b)
                     .attr("transA", int64_t{1})
                     .attr("transB", int64_t{1})
                     .attr("alpha", 3.0f)
                     .run();
  expect_close(y, reference_gemm(a, b, {}, 3.0, 0.0, true, true), 1e-4);
  at::Tensor c = at::scalar_tensor(1.5, at::kFloat);
  at::Tensor y2 = OneNode("Gemm")
                      .input(a)
                      .input(b)
                      .constant(c)
                      .attr("transA", int64_t{1})
                      .attr("transB", int64_t{1})
                      .run();
  expect_close(y2, reference_gemm(a, b, c, 1.0, 1.0, true, true), 1e-4);
}

// ---- MatMul ----

TEST_F(OpMatMul, BatchedWithBroadcast) {
  at::Tensor a = at::randn({2, 1, 2, 3});
  at::Tensor b = at::randn({3, 3, 4});
  at::Tensor y = OneNode("MatMul").input(a).constant(b).run();
  ASSERT_EQ(y.sizes(), at::IntArrayRef({2, 3, 2, 4}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      expect_close(y[i][j], reference_gemm(a[i][0], b[j], {}, 1.0, 0.0, false, false), 1e-4);
}

TEST_F(OpMatMul, VectorOperandsDropTheirDimension) {
  at::Tensor v = tensor_of({1, 2, 3}, {3});
  at::Tensor m = tensor_of({1, 0, 0, 1, 1, 1}, {3, 2});
  expect_close(OneNode("MatMul").input(v).input(m).run(), tensor_of({4, 5}, {2}));
  at::Tensor mt = tensor_of({1, 0, 1, 0, 1, 1}, {2, 3});
  expect_close(OneNode("MatMul").input(mt).input(v).run(), tensor_of({4, 5}, {2}));
}

// ---- Softmax, LogSoftmax ----

// exp(x - max) / sum along `axis`, in double with explicit loops over a 2-D tensor.
at::Tensor reference_softmax_2d(const at::Tensor& x, int64_t axis) {
  at::Tensor y = at::zeros(x.sizes(), at::kDouble);
  const int64_t outer = x.size(1 - axis), inner = x.size(axis);
  for (int64_t o = 0; o < outer; ++o) {
    auto at_ = [&](int64_t i) { return axis == 1 ? x[o][i] : x[i][o]; };
    double top = -1e30, total = 0.0;
    for (int64_t i = 0; i < inner; ++i) top = std::max(top, at_(i).item<double>());
    for (int64_t i = 0; i < inner; ++i) total += std::exp(at_(i).item<double>() - top);
    for (int64_t i = 0; i < inner; ++i) {
      const double v = std::exp(at_(i).item<double>() - top) / total;
      if (axis == 1)
        y[o][i] = v;
      else
        y[i][o] = v;
    }
  }
  return y;
}

TEST_F(OpSoftmax, HandComputed) {
  at::Tensor y = OneNode("Softmax").input(tensor_of({0.0f, std::log(3.0f)}, {1, 2})).run();
  expect_close(y, tensor_of({0.25f, 0.75f}, {1, 2}));
}

TEST_F(OpSoftmax, DefaultAxisIsLastAndNegativeAxes) {
  at::Tensor x = at::randn({3, 4}) * 3;
  expect_close(OneNode("Softmax").input(x).run(), reference_softmax_2d(x, 1));
  expect_close(OneNode("Softmax").input(x).attr("axis", int64_t{-2}).run(),
               reference_softmax_2d(x, 0));
  expect_close(OneNode("Softmax").input(x).attr("axis", int64_t{0}).run(),
               reference_softmax_2d(x, 0));
}

TEST_F(OpSoftmax, AxisOutOfRangeNamesTheNode) {
  expect_error(
      [] {
        OneNode("Softmax").input(at::randn({2, 2})).attr("axis", int64_t{2}).run();
      },
      {"Softmax node 'node'", "axis 2"});
}

TEST_F(OpLogSoftmax, HandComputed) {
  at::Tensor y = OneNode("LogSoftmax").input(tensor_of({0.0f, std::log(3.0f)}, {2})).run();
  expect_close(y, tensor_of({std::log(0.25f), std::log(0.75f)}, {2}));
}

TEST_F(OpLogSoftmax, Axis0) {
  at::Tensor x = at::randn({3, 2});
  expect_close(OneNode("LogSoftmax").input(x).attr("axis", int64_t{0}).run(),
               reference_softmax_2d(x, 0).log(), 1e-5);
}

// ---- LayerNormalization ----

// (x - mean) / sqrt(var + eps) over the trailing `count` elements of each row, with
// mean and variance summed by hand.
at::Tensor reference_layer_norm(const at::Tensor& x, int64_t count, double epsilon,
                                at::Tensor* mean_out = nullptr, at::Tensor* rstd_out = nullptr) {
  at::Tensor flat = x.to(at::kDouble).reshape({-1, count});
  at::Tensor y = at::zeros_like(flat);
  at::Tensor means = at::zeros({flat.size(0)}, at::kDouble);
  at::Tensor rstds = at::zeros({flat.size(0)}, at::kDouble);
  for (int64_t r = 0; r < flat.size(0); ++r) {
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < count; ++i) sum += flat[r][i].item<double>();
    const double mean = sum / count;
    for (int64_t i = 0; i < count; ++i) {
      const double d = flat[r][i].item<double>() - mean;
      sq += d * d;
    }
    const double rstd = 1.0 / std::sqrt(sq / count + epsilon);
    means[r] = mean;
    rstds[r] = rstd;
    for (int64_t i = 0; i < count; ++i) y[r][i] = (flat[r][i].item<double>() - mean) * rstd;
  }
  if (mean_out) *mean_out = means;
  if (rstd_out) *rstd_out = rstds;
  return y.reshape(x.sizes());
}

TEST_F(OpLayerNormalization, LastAxisWithScaleAndBias) {
  at::Tensor x = at::randn({2, 3, 4});
  at::Tensor scale = at::randn({4});
  at::Tensor bias = at::randn({4});
  at::Tensor y = OneNode("LayerNormalization")
                     .input(x)
                     .constant(scale)
                     .constant(bias)
                     .attr("epsilon", 1e-3f)
                     .run();
  expect_close(y, reference_layer_norm(x, 4, 1e-3) * scale + bias, 1e-4);
}

TEST_F(OpLayerNormalization, AxisOneNormalisesTwoDimensionsAndReturnsStatistics) {
  at::Tensor x = at::randn({2, 3, 4});
  at::Tensor scale = at::randn({3, 4});
  at::Tensor mean, rstd;
  at::Tensor expected = reference_layer_norm(x, 12, 1e-5, &mean, &rstd) * scale;
  std::vector<at::Tensor> outs = OneNode("LayerNormalization")
                                     .input(x)
                                     .constant(scale)
                                     .attr("axis", int64_t{1})
                                     .outputs(3)
                                     .run_all();
  expect_close(outs[0], expected, 1e-4);
  // Mean and InvStdDev keep the normalised axes as size 1.
  expect_close(outs[1], mean.reshape({2, 1, 1}), 1e-5);
  expect_close(outs[2], rstd.reshape({2, 1, 1}), 1e-4);
}

TEST_F(OpLayerNormalization, ScaleBroadcastAcrossTheNormalisedAxes) {
  // Scale [4] under axis -2 broadcasts over the normalised [3, 4] block.
  at::Tensor x = at::randn({2, 3, 4});
  at::Tensor scale = at::randn({4});
  at::Tensor bias = at::randn({1, 4});
  at::Tensor y = OneNode("LayerNormalization")
                     .input(x)
                     .constant(scale)
                     .constant(bias)
                     .attr("axis", int64_t{-2})
                     .run();
  expect_close(y, reference_layer_norm(x, 12, 1e-5) * scale + bias, 1e-4);
}

TEST_F(OpLayerNormalization, GradientReachesScale) {
  at::Tensor x = at::randn({3, 4});
  at::Tensor scale = at::ones({4}).requires_grad_(true);
  at::Tensor y = OneNode("LayerNormalization").input(x).constant(scale).run(true);
  y.mul(tensor_of({1, 2, 3, 4}, {4})).sum().backward();
  // d/dscale[i] of sum(w_i * scale_i * xhat_ri) = w_i * sum_r xhat_ri.
  at::Tensor xhat = reference_layer_norm(x, 4, 1e-5);
  expect_close(scale.grad(), xhat.sum(0) * tensor_of({1, 2, 3, 4}, {4}), 1e-4);
}

// ---- Dropout ----

TEST_F(OpDropout, EvalIsIdentityWithAnAllTrueMask) {
  at::Tensor x = at::randn({4, 5});
  std::vector<at::Tensor> outs =
      OneNode("Dropout").input(x).constant(at::scalar_tensor(0.5, at::kFloat)).outputs(2).run_all();
  expect_close(outs[0], x);
  EXPECT_TRUE(outs[1].all().item<bool>());
}

TEST_F(OpDropout, TrainingZeroesAndRescales) {
  at::Tensor x = at::ones({100, 100});
  std::vector<at::Tensor> outs = OneNode("Dropout")
                                     .input(x)
                                     .constant(at::scalar_tensor(0.25, at::kFloat))
                                     .outputs(2)
                                     .run_all(true);
  at::Tensor kept = outs[1].to(at::kFloat);
  // Kept elements are scaled by 1 / (1 - ratio); dropped ones are 0 and false in the mask.
  expect_close(outs[0], kept * (4.0f / 3.0f));
  const double kept_fraction = kept.mean().item<double>();
  EXPECT_GT(kept_fraction, 0.72);
  EXPECT_LT(kept_fraction, 0.78);
}

TEST_F(OpDropout, DefaultRatioIsOneHalf) {
  at::Tensor x = at::ones({100, 100});
  at::Tensor y = OneNode("Dropout").input(x).run(true);
  const double kept = (y > 0).to(at::kFloat).mean().item<double>();
  EXPECT_GT(kept, 0.45);
  EXPECT_LT(kept, 0.55);
  EXPECT_NEAR(y.max().item<float>(), 2.0f, 1e-6);
}

TEST_F(OpDropout, RatioOutOfRangeIsRejected) {
  expect_error(
      [] {
        OneNode("Dropout")
            .input(at::ones({2}))
            .constant(at::scalar_tensor(1.5, at::kFloat))
            .prepare();
      },
      {"Dropout node 'node'", "ratio 1.5"});
}

}  // namespace

namespace {

// Boxes are data. Found by fuzz_onnx: a box corner of -6.9e27 made the adaptive sampling grid's
// size a float-to-integer conversion out of range (undefined behaviour), and a loop as long.
TEST(OpRoiAlign, BoxesThatAreNotFiniteOrHugeAreRefused) {
  const at::Tensor x = at::rand({1, 1, 8, 8});
  auto run_box = [&](std::initializer_list<float> box, int64_t ratio) {
    return OneNode("RoiAlign")
        .input(x)
        .input(tensor_of(box, {1, 4}))
        .input(ints_of({0}))
        .attr("output_height", int64_t{2})
        .attr("output_width", int64_t{2})
        .attr("sampling_ratio", ratio)
        .run();
  };
  EXPECT_EQ(run_box({0, 0, 4, 4}, 0).sizes().vec(), (std::vector<int64_t>{1, 1, 2, 2}));
  expect_error([&] { run_box({0, 0, std::numeric_limits<float>::quiet_NaN(), 4}, 0); },
               {"RoiAlign", "is not finite"});
  expect_error([&] { run_box({-6.9e27f, 0, 4, 4}, 0); }, {"RoiAlign", "samples a bin side"});
  // A box of huge negative extent (x2 far left of x1) samples nothing, as any box of negative
  // extent under half_pixel: zeros (the same input found the unchecked conversion again).
  EXPECT_TRUE(run_box({1.4e28f, 0, 4, 4}, 0).eq(0).all().item<bool>());
  expect_error([&] { run_box({0, 0, 4, 4}, 100000); }, {"sampling_ratio 100000 is not in 0..4096"});
}

}  // namespace
