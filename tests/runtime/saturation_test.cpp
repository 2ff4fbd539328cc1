// Int8 products on CPUs without a dot-product instruction (edgeforge/lower.h,
// int8_products_saturate): oneDNN adds two neighbouring u8 x s8 products in 16 bits there, so
// 8-bit weights can saturate. On such a CPU a layer whose weights pass +-64 stays float (the
// QDQ graph's own arithmetic), and 7-bit weights, the quantizers' default, stay int8 and exact.
// EDGEFORGE_NO_VNNI=1 makes any CPU follow the saturating rules, so both paths run everywhere.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <string>

#include "edgeforge/error.h"
#include "edgeforge/int8.h"
#include "edgeforge/lower.h"
#include "small_models.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

// Lowered against QDQ: each quantized tensor may land one step apart where a value sits on a
// rounding edge (float sums in another order, or int32 sums requantized once), and steps add
// up over the model's layers.
constexpr double kMaxOutputSteps = 3.0;

struct ScopedNoVnni {
  ScopedNoVnni() { setenv("EDGEFORGE_NO_VNNI", "1", 1); }
  ~ScopedNoVnni() { unsetenv("EDGEFORGE_NO_VNNI"); }
};

// The largest |value| of the int8 weights a QDQ graph stores.
int64_t peak_int8_weight(const Graph& g) {
  int64_t peak = 0;
  for (const auto& [name, t] : g.initializers())
    if (t.scalar_type() == at::kChar)
      peak = std::max(peak, t.to(at::kShort).abs().max().item<int64_t>());
  return peak;
}

void expect_matches_qdq(const Graph& qdq, uint64_t seed) {
  InferenceSession plan(qdq);
  const double step = output_step(qdq);
  at::NoGradGuard no_grad;
  for (const auto& in : batches(qdq, 3, seed)) {
    const at::Tensor want = run(qdq, in);
    const at::Tensor got = plan.run(in, RunOptions{})[0];
    EXPECT_LE((want - got).abs().max().item<double>(), kMaxOutputSteps * step + 1e-6);
  }
}

TEST(Int8Saturation, WeightBitsSetTheRangeOfTheWrittenWeights) {
  EXPECT_EQ(peak_int8_weight(static_qdq(small_cnn(), true, 7)), 63);
  EXPECT_EQ(peak_int8_weight(static_qdq(small_cnn(), true, 8)), 127);
  EXPECT_EQ(peak_int8_weight(static_qdq(small_cnn(), false, 7)), 63);
  EXPECT_EQ(QdqOptions{}.weight_bits, 7) << "the default every CPU multiplies exactly";
  EXPECT_THROW(weight_bits_max(6), Error);
}

TEST(Int8Saturation, EightBitWeightsStayFloatWhereProductsSaturate) {
  ScopedNoVnni no_vnni;
  ASSERT_TRUE(int8_products_saturate());
  EXPECT_EQ(exact_int8_weight_limit(), 64);
  const Graph qdq = static_qdq(small_cnn(), true, 8);
  LoweringReport report;
  lower_int8(qdq, &report);
  EXPECT_TRUE(report.int8_nodes.empty());
  ASSERT_EQ(report.kept_float.size(), 4u);
  for (const auto& [node, why] : report.kept_float)
    EXPECT_NE(why.find("no VNNI"), std::string::npos) << node << ": " << why;
  expect_matches_qdq(qdq, 31);
}

TEST(Int8Saturation, SevenBitWeightsStayInt8AndMatchTheQdqGraph) {
  ScopedNoVnni no_vnni;
  for (const Graph& model : {small_cnn(), small_mlp()}) {
    const Graph qdq = static_qdq(model, true, 7);
    LoweringReport report;
    lower_int8(qdq, &report);
    EXPECT_FALSE(report.int8_nodes.empty()) << model.name();
    EXPECT_TRUE(report.kept_float.empty()) << model.name();
    expect_matches_qdq(qdq, 32);
  }
}

// The worst case of the 16-bit pair sums: every input 255, every weight at the top of its
// range. 7-bit weights give 2 * 255 * 63 = 32130 per pair, within int16, on every CPU.
TEST(Int8Saturation, SevenBitWeightsAreExactAtTheWorstCase) {
  const at::Tensor x = at::full({1, 64, 4, 4}, 255.0f);
  const at::Tensor xq = at::quantize_per_tensor(x, 1.0, 0, at::kQUInt8);
  const at::Tensor w = at::full({2, 64, 1, 1}, 1.0f);
  // Output 64 * 255 = 16320 in steps of 64: exactly 255.
  const QuantParams out{64.0, 0};
  const at::Tensor w7 = at::quantize_per_channel(w, symmetric_channel_scales(w, 63),
                                                 at::zeros({2}, at::kLong), 0, at::kQInt8);
  Int8Conv2d conv(w7, at::Tensor(), {1, 1}, {0, 0}, {1, 1}, 1, out, false);
  EXPECT_TRUE(conv.run(xq).int_repr().eq(255).all().item<bool>());
}

// Why the rules exist: where this CPU really lacks VNNI, 8-bit weights at the worst case above
// come out far from the exact sum. Skipped on a CPU with VNNI, where they are exact.
TEST(Int8Saturation, EightBitProductsSaturateOnACpuWithoutVnni) {
  if (!int8_products_saturate()) GTEST_SKIP() << "int8 dot products here: " << plan_cpu_isa();
  const at::Tensor x = at::full({1, 64, 4, 4}, 255.0f);
  const at::Tensor xq = at::quantize_per_tensor(x, 1.0, 0, at::kQUInt8);
  const at::Tensor w = at::full({2, 64, 1, 1}, 1.0f);
  const at::Tensor w8 = at::quantize_per_channel(w, symmetric_channel_scales(w, 127),
                                                 at::zeros({2}, at::kLong), 0, at::kQInt8);
  Int8Conv2d conv(w8, at::Tensor(), {1, 1}, {0, 0}, {1, 1}, 1, QuantParams{64.0, 0}, false);
  const int64_t got = conv.run(xq).int_repr().to(at::kLong).max().item<int64_t>();
  EXPECT_LT(got, 255 - 50) << "the exact sum is 255 steps; saturated pairs give about 129";
}

}  // namespace
