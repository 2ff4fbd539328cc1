#include "edgeforge/zoo.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/graph_builder.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/runtime.h"

using namespace edgeforge;

namespace {

constexpr int64_t kTestSeqLen = 16;  // short sequences keep the text tests fast
constexpr int64_t kTestBatch = 2;

// The ONNX opset-17 default-domain ops the zoo is allowed to use.
const std::set<std::string> kZooOps = {
    "Add",  "BatchNormalization", "Cast",      "Constant", "Conv",    "Div",
    "Dropout", "Erf",             "Flatten",   "Gather",   "Gemm",    "GlobalAveragePool",
    "LayerNormalization", "MatMul", "Mul",     "Range",    "Relu",    "Reshape",
    "Shape", "Softmax",           "Sub",       "Tanh",     "Transpose", "Unsqueeze"};

ZooBuildOptions test_options(uint64_t seed) {
  ZooBuildOptions opts;
  opts.seed = seed;
  opts.seq_len = kTestSeqLen;
  return opts;
}

bool has_value(const Graph& g, const std::string& value) {
  return g.producer(value) != nullptr;
}

int64_t num_layers(const Graph& g) {
  int64_t k = 0;
  while (has_value(g, "encoder.layer" + std::to_string(k + 1) + ".out")) ++k;
  return k;
}

// Parameters outside the embedding tables: what the encoder's depth and width decide.
int64_t non_embedding_parameters(const Graph& g) {
  int64_t count = 0;
  for (const auto& [name, t] : g.initializers())
    if (at::isFloatingType(t.scalar_type()) && name.rfind("embeddings.", 0) != 0)
      count += t.numel();
  return count;
}

// Inputs for a batch of two: random token ids, the second sequence padded after 10 tokens.
struct TextBatch {
  at::Tensor ids, mask, types;
  std::vector<at::Tensor> inputs(const ZooModelSpec& spec) const {
    if (spec.family == "bert") return {ids, mask, types};
    return {ids, mask};
  }
};

TextBatch text_batch(int64_t vocab, int64_t seq_len, uint64_t seed) {
  at::Generator gen = seeded_generator(seed);
  TextBatch b;
  b.ids = at::randint(0, vocab, {kTestBatch, seq_len}, gen, at::kLong);
  b.mask = at::ones({kTestBatch, seq_len}, at::kLong);
  b.mask[1].narrow(0, 10, seq_len - 10).zero_();
  b.types = at::zeros({kTestBatch, seq_len}, at::kLong);
  b.types[0].narrow(0, seq_len / 2, seq_len - seq_len / 2).fill_(1);
  return b;
}

at::Tensor run_logits(const Graph& g, const std::vector<at::Tensor>& inputs) {
  Executor exec(g);
  RunOptions opts;
  opts.threads = 1;
  return exec.run(inputs, opts).at(0);
}

class ZooModel : public ::testing::TestWithParam<std::string> {
 protected:
  const ZooModelSpec& spec() const { return zoo_model(GetParam()); }
};

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

// Every zoo model, or those of one modality.
std::vector<std::string> all_model_names(const std::string& modality) {
  std::vector<std::string> names;
  for (const ZooModelSpec& s : zoo_models())
    if (modality.empty() || s.modality == modality) names.push_back(s.name);
  return names;
}

}  // namespace

TEST(Zoo, ListsFourTeachersEachWithAStudentOfItsFamily) {
  const auto& models = zoo_models();
  ASSERT_EQ(models.size(), 8u);
  std::set<std::string> teachers;
  for (const ZooModelSpec& m : models)
    if (m.teacher.empty()) teachers.insert(m.name);
  EXPECT_EQ(teachers, (std::set<std::string>{"resnet", "resnext", "bert", "roberta"}));
  for (const ZooModelSpec& m : models) {
    // Descriptions carry the sizes of the model's config.
    EXPECT_NE(m.description.find(m.modality == "image" ? "widths " : " layers"), std::string::npos)
        << m.description;
    EXPECT_EQ(m.dataset, m.modality == "image" ? "fashion-mnist" : "spam") << m.name;
    if (m.teacher.empty()) continue;
    EXPECT_EQ(m.name, m.teacher + "-small");
    EXPECT_EQ(zoo_model(m.teacher).family, m.family);
  }
}

TEST(Zoo, UnknownNameListsValidModels) {
  try {
    zoo_model("resnet-huge");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "unknown model 'resnet-huge'; valid models: resnet, resnet-small, resnext, "
                 "resnext-small, bert, bert-small, roberta, roberta-small");
  }
  EXPECT_THROW(build_zoo_model("gpt"), Error);
}

TEST(Zoo, RejectsBadOptions) {
  ZooBuildOptions opts;
  opts.seq_len = 513;  // past the 512 position embeddings
  EXPECT_THROW(build_zoo_model("bert", opts), Error);
  opts = ZooBuildOptions();
  opts.num_classes = 1;
  EXPECT_THROW(build_zoo_model("resnet", opts), Error);
  EXPECT_THROW(build_zoo_model("roberta", opts), Error);
  opts = ZooBuildOptions();
  opts.vocab_size = 0;
  EXPECT_THROW(build_zoo_model("roberta-small", opts), Error);
}

TEST(Zoo, NumClassesOverridesTheDatasetDefault) {
  ZooBuildOptions opts = test_options(0);
  opts.num_classes = 5;
  const Graph g = build_zoo_model("resnet-small", opts);
  EXPECT_EQ(g.outputs().at(0).shape.at(1).size, 5);
  EXPECT_EQ(g.initializers().at("head.fc.weight").size(0), 5);
  const Graph t = build_zoo_model("bert-small", opts);
  EXPECT_EQ(t.initializers().at("classifier.weight").size(0), 5);
}

TEST_P(ZooModel, BuildsAValidGraphWithTheDocumentedInterface) {
  const ZooModelSpec& m = spec();
  const Graph g = build_zoo_model(m.name, test_options(0));
  EXPECT_NO_THROW(g.validate());
  EXPECT_EQ(g.name(), m.name);
  EXPECT_EQ(g.metadata().at(kMetaModel), m.name);
  EXPECT_EQ(g.metadata().at(kMetaDataset), m.dataset);
  for (const Node& n : g.nodes()) {
    EXPECT_EQ(n.domain, "") << n.name;
    EXPECT_TRUE(kZooOps.count(n.op_type)) << n.op_type << " in " << n.name;
  }

  ASSERT_EQ(g.outputs().size(), 1u);
  const ValueInfo& out = g.outputs()[0];
  EXPECT_EQ(out.name, "logits");
  EXPECT_EQ(out.dtype, at::kFloat);
  ASSERT_EQ(out.shape.size(), 2u);
  EXPECT_EQ(out.shape[0].param, "N");
  EXPECT_EQ(out.shape[1].size, m.modality == "image" ? 10 : 2);

  std::vector<std::string> input_names;
  for (const ValueInfo& v : g.inputs()) {
    input_names.push_back(v.name);
    ASSERT_FALSE(v.shape.empty());
    EXPECT_EQ(v.shape[0].param, "N") << v.name;
  }
  if (m.modality == "image") {
    EXPECT_EQ(input_names, std::vector<std::string>{"input"});
    EXPECT_EQ(g.inputs()[0].dtype, at::kFloat);
    EXPECT_EQ(g.inputs()[0].shape.size(), 4u);
    for (const char* v : {"stem.out", "stage1.out", "stage2.out", "stage3.out", "stage4.out",
                          "head.pool.out"})
      EXPECT_TRUE(has_value(g, v)) << v;
    EXPECT_NE(g.find_node("stage3.block1.add"), nullptr);
    EXPECT_EQ(g.producer("head.pool.out")->op_type, "GlobalAveragePool");
    EXPECT_EQ(g.producer("logits")->op_type, "Gemm");
  } else {
    std::vector<std::string> expected = {"input_ids", "attention_mask"};
    if (m.family == "bert") expected.push_back("token_type_ids");
    EXPECT_EQ(input_names, expected);
    for (const ValueInfo& v : g.inputs()) {
      EXPECT_EQ(v.dtype, at::kLong) << v.name;
      EXPECT_EQ(v.shape.at(1).param, "S") << v.name;
    }
    for (const char* v : {"embeddings.out", "encoder.layer1.out", "pooler.out"})
      EXPECT_TRUE(has_value(g, v)) << v;
    EXPECT_GE(num_layers(g), 1);
    EXPECT_EQ(g.producer("pooler.out")->op_type, "Tanh");
    // Q, K and V are MatMuls with a weight initializer, for the quantizers.
    const Node* q = g.find_node("encoder.layer1.attention.query.matmul");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->op_type, "MatMul");
    EXPECT_TRUE(g.has_initializer(q->inputs.at(1)));
  }
}

// ONNX's own checker and strict shape inference are the judges of opset-17 semantics; the cut
// values must come out with concrete shapes, since partitioning sizes the tensor that crosses.
TEST_P(ZooModel, PassesTheOnnxCheckerAndShapeInference) {
  const ZooModelSpec& m = spec();
  const Graph g = build_zoo_model(m.name, test_options(0));
  EXPECT_NO_THROW(check_onnx(g));
  Graph fixed = g;
  if (m.modality == "text")
    for (ValueInfo& v : fixed.inputs()) v.shape.at(1) = Dim(kTestSeqLen);
  ASSERT_NO_THROW(infer_shapes(fixed, 1));
  auto shape_of = [&fixed](const std::string& value) {
    std::vector<int64_t> sizes;
    auto it = fixed.value_info().find(value);
    if (it != fixed.value_info().end())
      for (const Dim& d : it->second.shape) sizes.push_back(d.size);
    return sizes;
  };
  if (m.modality == "image") {
    // Stage 4's first conv reads stage 3's output; the classifier reads stage 4's channels.
    const int64_t c3 = fixed.initializers().at("stage4.block1.conv1.weight").size(1);
    const int64_t c4 = fixed.initializers().at("head.fc.weight").size(1);
    const std::vector<int64_t> stem = shape_of("stem.out");
    ASSERT_EQ(stem.size(), 4u);
    EXPECT_EQ(stem[1], fixed.initializers().at("stem.conv.weight").size(0));
    // Stage 1 keeps the stem's resolution and each later stage halves it (3x3, stride 2, pad 1).
    const int64_t s1 = stem[2], s2 = (s1 + 1) / 2, s3 = (s2 + 1) / 2, s4 = (s3 + 1) / 2;
    EXPECT_EQ(stem[3], s1);
    EXPECT_EQ(shape_of("stage3.out"), (std::vector<int64_t>{1, c3, s3, s3}));
    EXPECT_EQ(shape_of("stage4.out"), (std::vector<int64_t>{1, c4, s4, s4}));
    EXPECT_EQ(shape_of("head.pool.out"), (std::vector<int64_t>{1, c4, 1, 1}));
  } else {
    const int64_t h = fixed.initializers().at("pooler.dense.weight").size(0);
    EXPECT_EQ(shape_of("embeddings.out"), (std::vector<int64_t>{1, kTestSeqLen, h}));
    const std::string last = "encoder.layer" + std::to_string(num_layers(g)) + ".out";
    EXPECT_EQ(shape_of(last), (std::vector<int64_t>{1, kTestSeqLen, h}));
    EXPECT_EQ(shape_of("pooler.out"), (std::vector<int64_t>{1, h}));
  }
}

TEST_P(ZooModel, SameSeedGivesBitIdenticalWeightsAndAnotherSeedOthers) {
  const Graph a = build_zoo_model(GetParam(), test_options(5));
  const Graph b = build_zoo_model(GetParam(), test_options(5));
  const Graph c = build_zoo_model(GetParam(), test_options(6));
  ASSERT_EQ(a.initializers().size(), b.initializers().size());
  int differing = 0;
  for (const auto& [name, t] : a.initializers()) {
    ASSERT_TRUE(b.has_initializer(name)) << name;
    EXPECT_TRUE(at::equal(t, b.initializers().at(name))) << name;
    if (!at::equal(t, c.initializers().at(name))) ++differing;
  }
  EXPECT_GT(differing, 0);
  // Every conv and matmul weight is random, so all of them differ between seeds.
  for (const Node& n : a.nodes()) {
    if (n.op_type != "Conv" && n.op_type != "MatMul" && n.op_type != "Gemm") continue;
    const std::string& w = n.inputs.at(1);
    if (!a.has_initializer(w)) continue;
    EXPECT_FALSE(at::equal(a.initializers().at(w), c.initializers().at(w))) << w;
  }
}

TEST_P(ZooModel, RunsOnABatchOfTwoWithFiniteLogits) {
  const ZooModelSpec& m = spec();
  const ZooBuildOptions opts = test_options(1);
  const Graph g = build_zoo_model(m.name, opts);
  std::vector<std::vector<at::Tensor>> batches;
  if (m.modality == "image") {
    at::Generator gen = seeded_generator(2);
    batches.push_back({at::randn({kTestBatch, 1, 28, 28}, gen)});
  } else {
    // Two sequence lengths: S is symbolic, so one graph serves both.
    batches.push_back(text_batch(opts.vocab_size, kTestSeqLen, 2).inputs(m));
    batches.push_back(text_batch(opts.vocab_size, 11, 3).inputs(m));
  }
  for (const auto& inputs : batches) {
    const at::Tensor logits = run_logits(g, inputs);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{kTestBatch, m.modality == "image" ? 10 : 2}));
    EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
  }
}

class ZooTextModel : public ZooModel {};

TEST_P(ZooTextModel, PaddingDoesNotChangeTheLogits) {
  const ZooModelSpec& m = spec();
  const ZooBuildOptions opts = test_options(1);
  const Graph g = build_zoo_model(m.name, opts);
  const TextBatch batch = text_batch(opts.vocab_size, kTestSeqLen, 4);
  const at::Tensor before = run_logits(g, batch.inputs(m));

  TextBatch padded = batch;
  padded.ids = batch.ids.clone();
  padded.ids[1].narrow(0, 10, kTestSeqLen - 10).add_(1).remainder_(opts.vocab_size);
  const at::Tensor after = run_logits(g, padded.inputs(m));
  EXPECT_TRUE(at::allclose(before, after, 0.0, 1e-6)) << before << after;

  // A token the mask keeps does change them, so the check above can fail.
  TextBatch real = batch;
  real.ids = batch.ids.clone();
  real.ids[1][3] = (batch.ids[1][3].item<int64_t>() + 1) % opts.vocab_size;
  const at::Tensor changed = run_logits(g, real.inputs(m));
  EXPECT_FALSE(at::allclose(before[1], changed[1], 0.0, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooModel, ::testing::ValuesIn(all_model_names("")), param_name);
INSTANTIATE_TEST_SUITE_P(Zoo, ZooTextModel, ::testing::ValuesIn(all_model_names("text")),
                         param_name);

TEST(Zoo, StudentsHaveAboutHalfTheirTeachersParameters) {
  const ZooBuildOptions opts = test_options(0);
  for (const ZooModelSpec& m : zoo_models()) {
    if (m.teacher.empty()) continue;
    const Graph student = build_zoo_model(m.name, opts);
    const Graph teacher = build_zoo_model(m.teacher, opts);
    EXPECT_LT(student.parameter_count(), teacher.parameter_count()) << m.name;
    // The embedding tables are sized by the vocabulary, not by depth or width, so the text
    // students are compared without them.
    const int64_t s = m.modality == "text" ? non_embedding_parameters(student)
                                           : student.parameter_count();
    const int64_t t = m.modality == "text" ? non_embedding_parameters(teacher)
                                           : teacher.parameter_count();
    EXPECT_LE(static_cast<double>(s), 0.6 * static_cast<double>(t))
        << m.name << " has " << s << " parameters, " << m.teacher << " " << t;
  }
}

TEST(Zoo, ResNeXtConvsAreGroupedByTheCardinality) {
  for (const char* name : {"resnext", "resnext-small"}) {
    const Graph g = build_zoo_model(name, test_options(0));
    int grouped = 0;
    for (const Node& n : g.nodes()) {
      if (n.op_type != "Conv") continue;
      const bool is_3x3 = n.name.size() > 6 && n.name.substr(n.name.size() - 6) == ".conv2";
      EXPECT_EQ(n.attr_int("group"), is_3x3 ? 8 : 1) << n.name;
      grouped += is_3x3;
    }
    EXPECT_EQ(grouped, std::string(name) == "resnext" ? 8 : 4) << name;
    const Node* conv2 = g.find_node("stage3.block1.conv2");
    ASSERT_NE(conv2, nullptr);
    EXPECT_EQ(conv2->attr_ints("strides"), (std::vector<int64_t>{2, 2}));
  }
}

TEST(Zoo, ResidualBranchesStartAtZero) {
  const Graph g = build_zoo_model("resnet", test_options(0));
  const auto& w = g.initializers();
  EXPECT_TRUE(at::equal(w.at("stage2.block1.bn2.weight"), at::zeros({32})));
  EXPECT_TRUE(at::equal(w.at("stage2.block1.bn1.weight"), at::ones({32})));
  EXPECT_TRUE(at::equal(w.at("stage2.block1.shortcut.bn.weight"), at::ones({32})));
  EXPECT_EQ(g.producer("stage2.out")->name, "stage2.block2.relu");
  EXPECT_EQ(g.find_node("stage1.block1.shortcut.conv"), nullptr);  // same shape: identity
  const Graph x = build_zoo_model("resnext-small", test_options(0));
  EXPECT_TRUE(at::equal(x.initializers().at("stage4.block1.bn3.weight"), at::zeros({256})));
}

TEST(Zoo, TextEmbeddingsAndMaskFollowBert) {
  const Graph bert = build_zoo_model("bert", test_options(0));
  EXPECT_TRUE(bert.has_initializer("embeddings.token_type_embeddings.weight"));
  EXPECT_EQ(bert.initializers().at("embeddings.word_embeddings.weight").sizes(),
            (std::vector<int64_t>{8000, 128}));
  EXPECT_EQ(bert.initializers().at("embeddings.position_embeddings.weight").size(0), 512);
  EXPECT_EQ(bert.producer("embeddings.position_ids.out")->op_type, "Range");
  EXPECT_FLOAT_EQ(bert.find_node("embeddings.layer_norm")->attr_float("epsilon"), 1e-12f);
  // N(0, 0.02) weights, zero biases.
  const at::Tensor q = bert.initializers().at("encoder.layer1.attention.query.weight");
  EXPECT_NEAR(q.std().item<double>(), 0.02, 0.002);
  EXPECT_TRUE(at::equal(bert.initializers().at("encoder.layer1.attention.query.bias"),
                        at::zeros({128})));
  EXPECT_EQ(num_layers(bert), 4);
  // The additive mask is computed once and read by every layer.
  const std::string bias = "encoder.mask.out";
  int readers = 0;
  for (const Node& n : bert.nodes())
    for (const std::string& in : n.inputs) readers += in == bias;
  EXPECT_EQ(readers, 4);

  const Graph roberta = build_zoo_model("roberta-small", test_options(0));
  EXPECT_FALSE(roberta.has_initializer("embeddings.token_type_embeddings.weight"));
  EXPECT_EQ(roberta.initializers().at("embeddings.word_embeddings.weight").size(1), 64);
  EXPECT_EQ(num_layers(roberta), 2);
}
