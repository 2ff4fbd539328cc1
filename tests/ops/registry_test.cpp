// The op registry: every op the runtime promises is registered, and constant_input() reads
// initializers and Constant nodes of every value form.
#include <gtest/gtest.h>
#include <onnx/defs/schema.h>

#include <map>
#include <set>
#include <string>

#include "edgeforge/ops.h"
#include "op_test_util.h"

using namespace edgeforge;
using namespace edgeforge::testing;

namespace {

// Every op of ONNX's default domain up to opset 17 (libonnx's schemas, deprecated ones aside)
// is registered, except those below, each for its reason.
TEST(OpRegistry, HasEveryOpsetSeventeenOpButTheOnesItStatesWhy) {
  const std::map<std::string, std::string> kNotRegistered = {
      {"Bernoulli", "random"},
      {"Multinomial", "random"},
      {"RandomNormal", "random"},
      {"RandomNormalLike", "random"},
      {"RandomUniform", "random"},
      {"RandomUniformLike", "random"},
      {"If", "subgraph"},
      {"Loop", "subgraph"},
      {"Scan", "subgraph"},
      {"ConcatFromSequence", "sequence"},
      {"SequenceAt", "sequence"},
      {"SequenceConstruct", "sequence"},
      {"SequenceEmpty", "sequence"},
      {"SequenceErase", "sequence"},
      {"SequenceInsert", "sequence"},
      {"SequenceLength", "sequence"},
      {"SequenceMap", "sequence"},
      {"SplitToSequence", "sequence"},
      {"Optional", "optional"},
      {"OptionalGetElement", "optional"},
      {"OptionalHasElement", "optional"},
      {"NegativeLogLikelihoodLoss", "training loss"},
      {"SoftmaxCrossEntropyLoss", "training loss"},
      {"StringNormalizer", "strings"},
      {"TfIdfVectorizer", "not yet: no model edgeforge serves uses it"},
      {"GlobalLpPool", "not yet: no ONNX backend test, no model edgeforge serves uses it"},
      {"LpNormalization", "not yet: no ONNX backend test, no model edgeforge serves uses it"},
      {"LpPool", "not yet: no ONNX backend test, no model edgeforge serves uses it"},
      {"MaxRoiPool", "not yet: no ONNX backend test, no model edgeforge serves uses it"},
  };
  std::set<std::string> onnx_ops;
  for (const onnx::OpSchema& s : onnx::OpSchemaRegistry::get_all_schemas())
    if (s.domain().empty() && !s.deprecated() && s.SinceVersion() <= 17) onnx_ops.insert(s.Name());
  ASSERT_GT(onnx_ops.size(), 150u);
  for (const std::string& op : onnx_ops) {
    const bool registered = OpRegistry::global().find(op) != nullptr;
    EXPECT_EQ(registered, kNotRegistered.count(op) == 0)
        << op << (registered ? " is registered now: remove it from kNotRegistered"
                             : " is not registered and not listed with a reason");
  }
}

TEST(OpRegistry, ConstantInputReadsInitializersAndEveryConstantForm) {
  Graph g("constants");
  g.add_input({"x", at::kFloat, {Dim(2)}});
  g.add_initializer("w", tensor_of({1, 2}, {2}));
  g.add_node(Node("Constant", "c_float", {}, {"f"}).set("value_float", 0.5f));
  g.add_node(Node("Constant", "c_ints", {}, {"i"}).set("value_ints", std::vector<int64_t>{3, 4}));
  g.add_node(Node("Relu", "relu", {"x"}, {"r"}));
  expect_close(constant_input(g, "w"), tensor_of({1, 2}, {2}));
  EXPECT_FLOAT_EQ(constant_input(g, "f").item<float>(), 0.5f);
  expect_equal(constant_input(g, "i"), ints_of({3, 4}));
  EXPECT_FALSE(constant_input(g, "r").defined());
  EXPECT_FALSE(constant_input(g, "x").defined());
  EXPECT_FALSE(constant_input(g, "").defined());
}

}  // namespace
