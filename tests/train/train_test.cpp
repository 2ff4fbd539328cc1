#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/runtime.h"
#include "edgeforge/train.h"

using namespace edgeforge;

namespace {

// Two Gaussian blobs in 8 dimensions, classes 0 and 1: a linear model separates them.
TaskData blobs(int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor labels = at::randint(0, 2, {n}, at::kLong);
  at::Tensor x = at::randn({n, 8}) + (labels.to(at::kFloat).unsqueeze(1) * 2 - 1) * 1.5;
  TaskData d;
  d.dataset = "blobs";
  d.split = "train";
  d.features["x"] = x;
  d.labels = labels;
  d.num_classes = 2;
  return d;
}

// x -> Gemm(8->16) -> BatchNormalization -> Relu -> Mul(scalar constant) -> Gemm(16->2).
Graph tiny_model(uint64_t seed) {
  at::manual_seed(seed);
  Graph g("tiny");
  g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(8)}});
  g.add_initializer("fc1.weight", at::randn({16, 8}) * 0.3);
  g.add_initializer("fc1.bias", at::zeros({16}));
  g.add_node(Node("Gemm", "fc1", {"x", "fc1.weight", "fc1.bias"}, {"h"}).set("transB", int64_t{1}));
  g.add_node(Node("Unsqueeze", "unsq", {"h", "axes"}, {"h4"}));
  g.add_initializer("axes", at::tensor(std::vector<int64_t>{2, 3}, at::kLong));
  for (const char* n : {"bn.weight", "bn.running_var"}) g.add_initializer(n, at::ones({16}));
  for (const char* n : {"bn.bias", "bn.running_mean"}) g.add_initializer(n, at::zeros({16}));
  g.add_node(Node("BatchNormalization", "bn",
                  {"h4", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}, {"b4"}));
  g.add_node(Node("Flatten", "flat", {"b4"}, {"b"}));
  g.add_node(Node("Relu", "relu", {"b"}, {"r"}));
  g.add_initializer("scale", at::full({}, 0.5f));
  g.add_node(Node("Mul", "scale_mul", {"r", "scale"}, {"s"}));
  g.add_initializer("fc2.weight", at::randn({2, 16}) * 0.3);
  g.add_initializer("fc2.bias", at::zeros({2}));
  g.add_node(Node("Gemm", "fc2", {"s", "fc2.weight", "fc2.bias"}, {"logits"}).set("transB", int64_t{1}));
  g.add_output({"logits", at::kFloat, {Dim::symbol("N"), Dim(2)}});
  return g;
}

TrainRecipe tiny_recipe() {
  TrainRecipe r;
  r.epochs = 4;
  r.batch_size = 32;
  r.lr = 0.05;
  r.optimizer = "sgd";
  r.threads = 1;
  r.seed = 7;
  return r;
}

TEST(Train, LowersTheLossOnATinyModel) {
  Graph g = tiny_model(1);
  TrainReport rep = train_graph(g, blobs(512, 2), tiny_recipe());
  EXPECT_LT(rep.final_loss, 0.5 * rep.first_loss) << rep.first_loss << " -> " << rep.final_loss;
  EXPECT_EQ(rep.samples_seen, 4 * 512);
}

TEST(Train, HeldOutAccuracyBeatsChance) {
  Graph g = tiny_model(1);
  train_graph(g, blobs(512, 2), tiny_recipe());
  TaskData test = blobs(256, 99);  // drawn independently of the training blobs
  Executor exec(g);
  at::NoGradGuard ng;
  at::Tensor logits = exec.run(test.batch_inputs(g, at::arange(256)), RunOptions{})[0];
  const double acc = logits.argmax(1).eq(test.labels).to(at::kDouble).mean().item<double>();
  EXPECT_GT(acc, 0.9);
}

TEST(Train, SameSeedGivesIdenticalWeights) {
  Graph a = tiny_model(1), b = tiny_model(1);
  train_graph(a, blobs(256, 2), tiny_recipe());
  train_graph(b, blobs(256, 2), tiny_recipe());
  for (const auto& [name, t] : a.initializers())
    EXPECT_TRUE(at::equal(t, b.initializers().at(name))) << name;
  TrainRecipe other = tiny_recipe();
  other.seed = 8;
  Graph c = tiny_model(1);
  train_graph(c, blobs(256, 2), other);
  EXPECT_FALSE(at::equal(a.initializers().at("fc1.weight"), c.initializers().at("fc1.weight")));
}

TEST(Train, UpdatesWeightsAndRunningStatsButNotConstants) {
  Graph g = tiny_model(1);
  const at::Tensor w0 = g.initializers().at("fc1.weight").clone();
  train_graph(g, blobs(256, 2), tiny_recipe());
  EXPECT_FALSE(at::equal(w0, g.initializers().at("fc1.weight")));
  // Running statistics move through the executor's batch norm, not through the optimizer.
  EXPECT_FALSE(at::equal(at::zeros({16}), g.initializers().at("bn.running_mean")));
  EXPECT_FALSE(g.initializers().at("bn.running_mean").requires_grad());
  EXPECT_FLOAT_EQ(g.initializers().at("scale").item<float>(), 0.5f);
  for (const auto& [name, t] : g.initializers()) EXPECT_FALSE(t.requires_grad()) << name;
}

TEST(Train, RejectsInvalidRecipes) {
  Graph g = tiny_model(1);
  TaskData d = blobs(64, 2);
  auto expect_error = [&](TrainRecipe r, const std::string& needle) {
    try {
      train_graph(g, d, r);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  TrainRecipe r = tiny_recipe();
  r.epochs = 0;
  expect_error(r, "epochs");
  r = tiny_recipe();
  r.lr = -1;
  expect_error(r, "learning rate");
  r = tiny_recipe();
  r.optimizer = "lion";
  expect_error(r, "lion");
  r = tiny_recipe();
  r.grad_clip_norm = -1;
  expect_error(r, "gradient clipping");
}

// A step that leaves infinite weights is divergence, even when the loss before it was finite
// (the loss is computed before the step): here the last step's weights are made infinite.
TEST(Train, WeightsThatOverflowAreDivergence) {
  Graph g = tiny_model(1);
  TrainRecipe r = tiny_recipe();
  r.epochs = 1;
  r.batch_size = 64;  // one step
  TrainHooks hooks;
  hooks.after_step = [](Graph& trained) { trained.initializers().at("fc2.weight").fill_(INFINITY); };
  try {
    train_graph(g, blobs(64, 2), r, {}, hooks);
    ADD_FAILURE() << "training that left infinite weights did not fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight 'fc2.weight' is no longer finite after 1 steps"), std::string::npos)
        << e.what();
  }
  r.lr = 1e300;  // cannot even be applied to float weights
  EXPECT_THROW(train_graph(g, blobs(64, 2), r), Error);
}

// The square root of the summed squared change of every trainable weight.
double weight_change(const Graph& before, const Graph& after) {
  double sq = 0;
  for (const auto& [name, t] : before.initializers())
    if (name.find("weight") != std::string::npos || name.find("bias") != std::string::npos)
      sq += (after.initializers().at(name) - t).pow(2).sum().item<double>();
  return std::sqrt(sq);
}

TEST(Train, GradientClippingBoundsEveryStep) {
  TrainRecipe r = tiny_recipe();
  r.weight_decay = 0;  // only the clipped gradient moves the weights
  r.epochs = 1;        // 256 / 32 = 8 steps
  const Graph start = tiny_model(1);
  Graph free = tiny_model(1), clipped = tiny_model(1);
  train_graph(free, blobs(256, 2), r);
  r.grad_clip_norm = 1e-6;
  train_graph(clipped, blobs(256, 2), r);
  // Nesterov momentum 0.9 amplifies a step at most 1.9 / (1 - 0.9) = 19 times.
  const double bound = 8 * r.lr * r.grad_clip_norm * 19;
  EXPECT_LE(weight_change(start, clipped), bound);
  EXPECT_GT(weight_change(start, free), 1000 * bound);
}

// A small convolutional network (conv, batch norm, residual add, pooling, linear).
Graph tiny_conv_model() {
  at::manual_seed(3);
  Graph g("tiny-conv");
  GraphBuilder b(g, seeded_generator(3));
  std::string x = b.input("x", at::kFloat, {Dim::symbol("N"), Dim(1), Dim(8), Dim(8)});
  std::string h = b.relu("relu1", b.batch_norm("bn1", b.conv("conv1", x, 1, 8, 3, 1, 1), 8));
  std::string y = b.batch_norm("bn2", b.conv("conv2", h, 8, 8, 3, 1, 1), 8);
  h = b.relu("relu2", b.add("add", y, h));
  h = b.flatten("flatten", b.global_average_pool("pool", h), 1);
  b.output(b.gemm("fc", h, 8, 2), at::kFloat, {Dim::symbol("N"), Dim(2)});
  return g;
}

TEST(Train, ChannelsLastTrainsLikeNchwAndSavesTheUsualLayout) {
  at::manual_seed(5);
  TaskData d;
  d.dataset = "squares";
  d.split = "train";
  d.labels = at::randint(0, 2, {64}, at::kLong);
  d.features["x"] = at::randn({64, 1, 8, 8}) + d.labels.to(at::kFloat).view({64, 1, 1, 1});
  d.num_classes = 2;
  TrainRecipe r = tiny_recipe();
  r.epochs = 1;
  r.batch_size = 16;
  Graph nchw = tiny_conv_model(), nhwc = tiny_conv_model();
  r.channels_last = false;
  const TrainReport a = train_graph(nchw, d, r);
  r.channels_last = true;
  const TrainReport b = train_graph(nhwc, d, r);
  // The layouts sum in different orders: equal to float rounding after 4 steps.
  constexpr double kLayoutTolerance = 1e-4;
  EXPECT_NEAR(a.final_loss, b.final_loss, kLayoutTolerance);
  for (const auto& [name, t] : nchw.initializers()) {
    const at::Tensor& u = nhwc.initializers().at(name);
    EXPECT_TRUE(u.is_contiguous()) << name;  // back in the layout save_onnx and the runtime expect
    EXPECT_TRUE(at::allclose(t, u, kLayoutTolerance, kLayoutTolerance)) << name;
  }
}

TEST(Train, MissingInputFeatureIsNamed) {
  Graph g = tiny_model(1);
  TaskData d = blobs(64, 2);
  d.features.clear();
  d.features["pixels"] = at::zeros({64, 8});
  try {
    train_graph(g, d, tiny_recipe());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input 'x'"), std::string::npos) << e.what();
  }
}

TEST(Score, AccuracyAndSpamF1ByHand) {
  // labels:    1 1 1 0 0 0 0 1
  // predicted: 1 0 1 1 0 0 0 1   -> tp 3, fp 1, fn 1, correct 6/8
  const std::vector<int64_t> pred = {1, 0, 1, 1, 0, 0, 0, 1};
  at::Tensor labels = at::tensor(std::vector<int64_t>{1, 1, 1, 0, 0, 0, 0, 1}, at::kLong);
  EvalResult r = score_predictions(pred, labels, true);
  EXPECT_EQ(r.samples, 8);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(r.precision, 0.75);
  EXPECT_DOUBLE_EQ(r.recall, 0.75);
  EXPECT_DOUBLE_EQ(r.f1, 0.75);
  EXPECT_EQ(r.correct, (std::vector<uint8_t>{1, 0, 1, 0, 1, 1, 1, 1}));
  // Never predicting spam: precision undefined -> 0, F1 0.
  EvalResult none = score_predictions(std::vector<int64_t>(8, 0), labels, true);
  EXPECT_DOUBLE_EQ(none.f1, 0.0);
  EXPECT_DOUBLE_EQ(none.accuracy, 0.5);
  EXPECT_THROW(score_predictions({1, 0}, labels, false), Error);
}

}  // namespace
