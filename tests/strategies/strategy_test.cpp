// The strategy registry, options and pipelines, and every strategy end to end on quickly
// trained zoo models (small slices): outputs pass the ONNX checker and reload, report what they
// did, and a pipeline equals its steps run one by one. Bad input gives a one-line Error.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/runtime.h"
#include "edgeforge/strategy.h"
#include "edgeforge/summary.h"
#include "edgeforge/train.h"
#include "edgeforge/zoo.h"

#include "../../src/strategies/common.h"
#include "../common/test_util.h"

using namespace edgeforge;
using edgeforge::test_util::error_of;

namespace {

// A seconds-long model of the zoo, trained once per test binary.
const Graph& quick_model(const std::string& name) {
  static std::map<std::string, Graph> models;
  auto it = models.find(name);
  if (it == models.end()) {
    TrainRecipe r = default_recipe(name, /*quick=*/true);
    r.threads = 1;
    it = models.emplace(name, train_zoo_model(name, r, /*use_cache=*/false).graph).first;
  }
  return it->second;
}

StrategyContext quick_context() {
  StrategyContext ctx;
  ctx.threads = 1;
  ctx.train_limit = 128;
  return ctx;
}

Graph reload(const Graph& g) { return graph_from_onnx_bytes(graph_to_onnx_bytes(g), g.name()); }

void expect_error(const std::function<void()>& f, std::initializer_list<std::string> needles) {
  const std::string m = error_of(f);
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  for (const std::string& n : needles) EXPECT_NE(m.find(n), std::string::npos) << m;
}

double accuracy(const Graph& g, int64_t limit) {
  EvalOptions eo;
  eo.limit = limit;
  eo.threads = 1;
  return evaluate(g, eo).accuracy;
}

}  // namespace

TEST(Strategies, RegistryListsEveryStrategyWithValidDefaults) {
  std::vector<std::string> names;
  for (const Strategy* s : StrategyRegistry::global().all()) {
    names.push_back(s->name());
    EXPECT_FALSE(s->summary().empty());
    EXPECT_FALSE(s->needs().empty());
    EXPECT_NO_THROW(resolve_options({s}, {})) << s->name();  // defaults pass their checks
  }
  const std::vector<std::string> expected = {"distill", "dynamic", "identity", "prune",
                                             "prune-structured", "qat", "sptq"};
  EXPECT_EQ(names, expected);
}

TEST(Strategies, UnknownStrategyListsTheValidOnes) {
  expect_error([] { parse_pipeline("sptx"); }, {"unknown strategy 'sptx'", "sptq", "distill"});
  expect_error([] { parse_pipeline("distill+"); }, {"unknown strategy ''"});
  EXPECT_EQ(parse_pipeline("distill+sptq").size(), 2u);
}

TEST(Strategies, OptionsOutOfRangeAreRefusedBeforeAnythingRuns) {
  const auto prune = parse_pipeline("prune");
  expect_error([&] { resolve_options(prune, {"sparsity=1"}); }, {"prune.sparsity", "[0, 1)"});
  expect_error([&] { resolve_options(prune, {"sparsity=-0.2"}); }, {"prune.sparsity"});
  expect_error([&] { resolve_options(prune, {"block=3"}); }, {"block", "ROWSxCOLS"});
  const auto sptq = parse_pipeline("sptq");
  expect_error([&] { resolve_options(sptq, {"samples=0"}); }, {"sptq.samples", "0"});
  expect_error([&] { resolve_options(sptq, {"method=median"}); }, {"minmax", "entropy"});
  expect_error([&] { resolve_options(sptq, {"samples"}); }, {"name=value"});
  expect_error([&] { resolve_options(sptq, {"sparsity=0.5"}); }, {"'sparsity'", "not an option of sptq"});
  const auto both = parse_pipeline("prune+sptq");
  expect_error([&] { resolve_options(both, {"sptq.sparsity=0.5"}); }, {"not an option of sptq"});
  expect_error([&] { resolve_options(both, {"qat.epochs=1"}); }, {"'qat'", "not in this pipeline"});
  const auto opts = resolve_options(both, {"prune.epochs=1", "samples=10"});
  EXPECT_EQ(opts[0].text("epochs"), "1");
  EXPECT_EQ(opts[1].integer("samples"), 10);
}

TEST(Strategies, SptqAndQatGiveInt8ModelsThatReload) {
  const Graph& model = quick_model("resnet-small");
  StrategyContext ctx = quick_context();
  for (const std::string& s : {"sptq", "qat"}) {
    const PipelineResult r =
        run_pipeline(model, s, s == "qat" ? std::vector<std::string>{"epochs=1", "iterations=2"}
                                          : std::vector<std::string>{"samples=32"},
                     ctx);
    const Graph g = reload(r.graph);
    EXPECT_EQ(g.metadata().at(kMetaStrategy), s);
    const ModelSummary sum = summarize(g);
    EXPECT_EQ(sum.int8_macs, sum.macs) << s;
    // The lowered model (int8 convolutions, residual adds on uint8 data) against its QDQ
    // form run by the float reference kernels: the same predictions, logits a few steps apart.
    InferenceSession session(g);
    EXPECT_GT(session.lowering().int8_adds, 0) << s;
    at::manual_seed(4);
    const at::Tensor x = at::rand({8, 1, 28, 28}) * 2 - 0.5;
    Executor reference(g);
    at::NoGradGuard no_grad;
    const at::Tensor want = reference.run({x}, RunOptions{})[0];
    const at::Tensor got = session.run({x}, RunOptions{})[0];
    EXPECT_LE((want - got).abs().max().item<double>(), 0.05 * want.abs().max().item<double>()) << s;
    EXPECT_GE(want.argmax(1).eq(got.argmax(1)).sum().item<int64_t>(), 7) << s;
    // Deployed accuracy (int8 kernels) stays near the float model's on held-out data.
    EXPECT_NEAR(accuracy(g, 500), accuracy(model, 500), 0.05) << s;
  }
}

TEST(Strategies, TextModelsQuantizeTheirProjections) {
  const Graph& model = quick_model("bert-small");
  StrategyContext ctx = quick_context();
  const Graph s = reload(run_pipeline(model, "sptq", {"samples=16"}, ctx).graph);
  const ModelSummary ss = summarize(s, 32);
  EXPECT_GT(ss.int8_macs, ss.macs / 2);  // the weight MatMuls; attention stays float
  const Graph d = reload(run_pipeline(model, "dynamic", {}, ctx).graph);
  const ModelSummary ds = summarize(d, 32);
  EXPECT_GT(ds.dynamic_int8_macs, ds.macs / 2);
  EvalOptions eo;
  eo.limit = 64;
  eo.threads = 1;
  EXPECT_GT(evaluate(d, eo).samples, 0);
}

TEST(Strategies, PruneReachesItsSparsityAndStaysDense) {
  const Graph& model = quick_model("resnet-small");
  StrategyContext ctx = quick_context();
  const PipelineResult r = run_pipeline(model, "prune", {"epochs=1", "sparsity=0.5"}, ctx);
  const nlohmann::json& step = r.report["steps"][0];
  EXPECT_NEAR(step["sparsity"].get<double>(), 0.5, 0.01);
  for (const auto& [layer, info] : step["layers"].items())
    EXPECT_NEAR(info["sparsity"].get<double>(), 0.5, 0.02) << layer;
  const Graph g = reload(r.graph);
  EXPECT_EQ(g.parameter_count(), model.parameter_count());
  // The input model is not touched.
  EXPECT_NEAR(summarize(model).macs, summarize(g).macs, 0);
  for (const auto& [name, t] : model.initializers())
    if (t.dim() == 4) EXPECT_LT(t.eq(0).sum().item<int64_t>(), t.numel() / 4) << name;
}

TEST(Strategies, PruneStructuredWritesASmallerModel) {
  const Graph& model = quick_model("resnet-small");
  StrategyContext ctx = quick_context();
  const Graph g = reload(run_pipeline(model, "prune-structured", {"epochs=1"}, ctx).graph);
  EXPECT_LT(g.parameter_count(), model.parameter_count() * 3 / 4);
  EXPECT_LT(summarize(g).macs, summarize(model).macs);
  EXPECT_GT(accuracy(g, 200), 0.0);
}

TEST(Strategies, DistillTrainsTheStudentAndChecksItsClasses) {
  const Graph& teacher = quick_model("resnet-small");
  StrategyContext ctx = quick_context();
  const PipelineResult r =
      run_pipeline(teacher, "distill", {"student=resnet-small", "epochs=2", "batch-size=16"}, ctx);
  const Graph g = reload(r.graph);
  EXPECT_EQ(g.metadata().at(kMetaModel), "resnet-small");
  EXPECT_EQ(g.metadata().at(kMetaDataset), "fashion-mnist");
  EXPECT_LT(r.report["steps"][0]["final_loss"].get<double>(),
            r.report["steps"][0]["first_loss"].get<double>());
  // A student with other classes is refused.
  ZooBuildOptions three;
  three.num_classes = 3;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("ef-student-" + std::to_string(::getpid()) + ".onnx"))
                               .string();
  save_onnx(build_zoo_model("resnet-small", three), path);
  expect_error([&] { run_pipeline(teacher, "distill", {"student=" + path}, ctx); },
               {"predicts 10 classes", "3"});
  std::filesystem::remove(path);
  expect_error([&] { run_pipeline(teacher, "distill", {"student=bert-small"}, ctx); },
               {"text model"});
}

// Distillation's soft targets are computed once on the inference plan, in batches of 256;
// the slow reference is the teacher on the reference executor, one training batch at a time.
TEST(Strategies, TeacherLogitsMatchTheReferenceExecutorRowByRow) {
  constexpr double kRelTol = 1e-4;  // plan kernels (fused, oneDNN) against ATen, float32
  for (const char* name : {"resnet-small", "bert-small"}) {
    const Graph& teacher = quick_model(name);
    const TaskData data = strategy_training_data(teacher, "", 300, 0);  // two plan batches
    const at::Tensor logits = strategies::teacher_logits(teacher, data, 1);
    ASSERT_EQ(logits.size(0), data.size()) << name;
    Executor exec(teacher);
    at::NoGradGuard no_grad;
    RunOptions run;
    run.threads = 1;
    // A shuffled batch of 16, as training draws them: the hook's rows are the batch's samples.
    const at::Tensor idx = at::randperm(data.size(), at::kLong).slice(0, 0, 16);
    const at::Tensor reference = exec.run(data.batch_inputs(teacher, idx), run)[0];
    const at::Tensor rows = logits.index_select(0, idx);
    const double scale = reference.abs().max().item<double>();
    EXPECT_LE((rows - reference).abs().max().item<double>(), kRelTol * scale) << name;
    // The hook looks a batch's rows up by its indices: its loss is the distillation loss
    // against the reference executor's outputs for those samples.
    const auto hook = strategies::distillation_hook(logits, strategies::KdSettings{0.5, 2.0});
    const at::Tensor labels = data.labels.index_select(0, idx);
    const at::Tensor student = at::randn_like(reference);
    EXPECT_NEAR(hook(student, labels, {}, idx).item<double>(),
                distillation_loss(student, reference, labels, 0.5, 2.0).item<double>(), 1e-4)
        << name;
  }
}

TEST(Strategies, APipelineEqualsItsStepsOneByOne) {
  const Graph& model = quick_model("resnet-small");
  StrategyContext ctx = quick_context();
  const std::vector<std::string> opts = {"prune.epochs=1", "sptq.samples=32"};
  const Graph piped = run_pipeline(model, "prune+sptq", opts, ctx).graph;
  const Graph pruned = run_pipeline(model, "prune", {"epochs=1"}, ctx).graph;
  const Graph stepped = run_pipeline(pruned, "sptq", {"samples=32"}, ctx).graph;
  EXPECT_EQ(piped.metadata().at(kMetaStrategy), "prune+sptq");
  EXPECT_EQ(stepped.metadata().at(kMetaStrategy), "prune+sptq");  // recorded through the chain
  at::manual_seed(0);
  const at::Tensor x = at::rand({4, 1, 28, 28});
  InferenceSession a(piped), b(stepped);
  EXPECT_TRUE(at::equal(a.run({x}, RunOptions{})[0], b.run({x}, RunOptions{})[0]));
}

TEST(Strategies, CalibrationDataThatDoesNotFitTheModelIsNamed) {
  // A colour model told to calibrate on Fashion-MNIST's grey 28x28 images.
  Graph g("colour");
  GraphBuilder b(g, seeded_generator(1));
  std::string x = b.input("input", at::kFloat, {Dim::symbol("N"), 3, 32, 32});
  x = b.gemm("fc", b.flatten("flat", b.global_average_pool("pool", b.conv("c", x, 3, 4, 3))), 4, 10);
  b.output(x, at::kFloat, {Dim::symbol("N"), 10});
  StrategyContext ctx = quick_context();
  expect_error([&] { run_pipeline(g, "sptq", {"dataset=fashion-mnist", "samples=8"}, ctx); },
               {"calibration data", "input"});
  // An image model told to calibrate on text.
  expect_error([&] { run_pipeline(quick_model("resnet-small"), "sptq", {"dataset=spam"}, ctx); },
               {"fashion-mnist (image)", "spam (text)"});
  // And one with nothing to quantize.
  Graph r("relu");
  r.add_input({"input", at::kFloat, {Dim::symbol("N"), Dim(1), Dim(28), Dim(28)}});
  r.add_node(Node("Relu", "relu", {"input"}, {"y"}));
  r.add_output({"y", at::kFloat, {Dim::symbol("N"), Dim(1), Dim(28), Dim(28)}});
  expect_error([&] { run_pipeline(r, "sptq", {"dataset=fashion-mnist"}, ctx); },
               {"no quantizable node"});
  expect_error([&] { run_pipeline(r, "dynamic", {}, ctx); }, {"no node dynamic quantization"});
}
