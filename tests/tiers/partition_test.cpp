// Partitioning (edgeforge/partition.h): part 1 then part 2 gives the whole model's outputs,
// exactly on the reference kernels, for every zoo model at its study cut and at random cuts;
// cut listing and crossing bytes on a small graph; and the errors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <random>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/partition.h"
#include "edgeforge/runtime.h"
#include "edgeforge/zoo.h"
#include "../runtime/small_models.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

// The plan fuses differently on either side of a cut (a convolution and its residual add may
// land in different parts): float outputs then agree to this share of their magnitude.
constexpr double kPlanRelativeTolerance = 1e-4;

std::vector<at::Tensor> inputs_for(const Graph& g, int64_t batch, uint64_t seed) {
  at::manual_seed(seed);
  std::vector<at::Tensor> in;
  for (const ValueInfo& v : g.inputs()) {
    if (v.dtype == at::kFloat) {
      std::vector<int64_t> dims;
      for (size_t d = 0; d < v.shape.size(); ++d)
        dims.push_back(v.shape[d].is_fixed() ? v.shape[d].size : batch);
      in.push_back(at::randn(dims));
    } else if (v.name == "attention_mask") {
      at::Tensor m = at::ones({batch, 12}, at::kLong);
      m.index_put_({0, at::indexing::Slice(8, at::indexing::None)}, 0);
      in.push_back(m);
    } else if (v.name == "token_type_ids") {
      in.push_back(at::zeros({batch, 12}, at::kLong));
    } else {
      in.push_back(at::randint(5, 300, {batch, 12}, at::kLong));
    }
  }
  return in;
}

// Runs part 1, then part 2 on its outputs and the model inputs it reads.
std::vector<at::Tensor> run_parts(const Partition& p, const Graph& whole,
                                  const std::vector<at::Tensor>& in, bool plan) {
  std::map<std::string, at::Tensor> by_name;
  for (size_t i = 0; i < whole.inputs().size(); ++i) by_name[whole.inputs()[i].name] = in[i];
  auto run = [&](const Graph& g, const std::vector<at::Tensor>& x) {
    at::NoGradGuard no_grad;
    if (plan) return InferenceSession(g).run(x, RunOptions{});
    Executor exec(g);
    return exec.run(x, RunOptions{});
  };
  std::vector<at::Tensor> in1;
  for (const ValueInfo& v : p.part1.inputs()) in1.push_back(by_name.at(v.name));
  const std::vector<at::Tensor> out1 = run(p.part1, in1);
  for (size_t i = 0; i < out1.size(); ++i) by_name[p.part1.outputs()[i].name] = out1[i];
  std::vector<at::Tensor> in2;
  for (const ValueInfo& v : p.part2.inputs()) in2.push_back(by_name.at(v.name));
  return run(p.part2, in2);
}

}  // namespace

TEST(Partition, PartsReproduceTheWholeModelAtTheStudyCutAndAtRandomCuts) {
  std::mt19937 rng(11);
  for (const ZooModelSpec& spec : zoo_models()) {
    const std::string& name = spec.name;
    const Graph g = build_zoo_model(name, ZooBuildOptions{});
    const std::vector<CutPoint> cuts = list_cut_points(g, 12);
    ASSERT_GT(cuts.size(), 10u) << name;
    std::vector<std::string> at = {study_cut_point(g)};
    ASSERT_FALSE(at[0].empty()) << name;
    for (int k = 0; k < 3; ++k) at.push_back(cuts[rng() % cuts.size()].value);
    const std::vector<at::Tensor> in = inputs_for(g, 2, 5);
    at::NoGradGuard no_grad;
    Executor exec(g);
    const at::Tensor whole = exec.run(in, RunOptions{})[0];
    const at::Tensor whole_plan = InferenceSession(g).run(in, RunOptions{})[0];
    for (const std::string& value : at) {
      // Through the ONNX files, as a deployment gets them.
      Partition p = partition_graph(g, value, 12);
      p.part1 = graph_from_onnx_bytes(graph_to_onnx_bytes(p.part1), "part1");
      p.part2 = graph_from_onnx_bytes(graph_to_onnx_bytes(p.part2), "part2");
      EXPECT_TRUE(at::equal(run_parts(p, g, in, false)[0], whole)) << name << " cut after " << value;
      const at::Tensor planned = run_parts(p, g, in, true)[0];
      EXPECT_LE((planned - whole_plan).abs().max().item<double>(),
                kPlanRelativeTolerance * std::max(1.0, whole.abs().max().item<double>()))
          << name << " cut after " << value;
    }
  }
}

TEST(Partition, QuantizedModelsSplitExactlyOnTheReferenceKernels) {
  const Graph qdq = static_qdq(small_cnn());
  const std::vector<CutPoint> cuts = list_cut_points(qdq, 1);
  bool uint8_crossing = false;
  const std::vector<at::Tensor> in = batches(qdq, 1, 3)[0];
  const at::Tensor whole = run(qdq, in);
  for (const CutPoint& c : cuts) {
    const Partition p = partition_graph(qdq, c.value, 1);
    for (const CrossingTensor& t : p.cut.crossing) uint8_crossing = uint8_crossing || t.dtype == at::kByte;
    EXPECT_TRUE(at::equal(run_parts(p, qdq, in, false)[0], whole)) << c.value;
  }
  EXPECT_TRUE(uint8_crossing) << "some cut sends the quantized (uint8) tensor";
}

TEST(Partition, CutListingNamesWhatCrossesAndItsBytes) {
  // x -> a = relu(x) -> b = a * 2 -> y = a + b: after a only a crosses; after b both do.
  Graph g("skip");
  GraphBuilder b(g, seeded_generator(1));
  const std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), 3, 5});
  const std::string a = b.relu("a", x);
  const std::string m = b.mul("b", a, b.scalar("two", 2.0f));
  b.output(b.add("y", a, m), at::kFloat, {Dim::symbol("N"), 3, 5});
  const std::vector<CutPoint> cuts = list_cut_points(g);
  ASSERT_EQ(cuts.size(), 2u);  // after a, after b (the Constant and the last node are no cuts)
  EXPECT_EQ(cuts[0].value, a);
  ASSERT_EQ(cuts[0].crossing.size(), 1u);
  EXPECT_EQ(cuts[0].bytes, 3 * 5 * 4);
  EXPECT_EQ(cuts[1].crossing.size(), 2u);
  EXPECT_EQ(cuts[1].bytes, 2 * 3 * 5 * 4);
  const Partition p = partition_graph(g, m);
  EXPECT_EQ(p.part2.nodes().size(), 1u);
  ASSERT_EQ(p.part2.inputs().size(), 2u);
  EXPECT_EQ(p.part2.inputs()[0].shape[0].param, "N") << "the batch stays symbolic";
  EXPECT_EQ(p.part2.inputs()[0].shape[1].size, 3);
  // A text model cut after its embeddings also sends the attention mask, a model input.
  const Graph bert = build_zoo_model("bert-small", ZooBuildOptions{});
  const Partition t = partition_graph(bert, "embeddings.out", 16);
  ASSERT_EQ(t.cut.crossing.size(), 2u);
  EXPECT_EQ(t.cut.crossing[0].name, "embeddings.out");
  EXPECT_EQ(t.cut.crossing[0].shape, (std::vector<int64_t>{1, 16, 128}));
  EXPECT_TRUE(t.cut.crossing[1].model_input);
  EXPECT_EQ(t.cut.crossing[1].name, "attention_mask");
  EXPECT_EQ(t.cut.bytes, 16 * 128 * 4 + 16 * 8);
}

TEST(Partition, ValuesThatCannotCutAreNamed) {
  const Graph g = build_zoo_model("resnet-small", ZooBuildOptions{});
  auto message = [&](const std::string& value) {
    try {
      partition_graph(g, value);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << value << " was accepted";
    return std::string();
  };
  const std::string typo = message("stage3.ou");
  EXPECT_NE(typo.find("no value named 'stage3.ou'"), std::string::npos) << typo;
  EXPECT_NE(typo.find("stage3.out"), std::string::npos) << "the nearest cut points: " << typo;
  EXPECT_NE(message("input").find("model input"), std::string::npos);
  EXPECT_NE(message("logits").find("last node"), std::string::npos);
  const std::string init = g.initializers().begin()->first;
  EXPECT_NE(message(init).find("constant"), std::string::npos);
}
