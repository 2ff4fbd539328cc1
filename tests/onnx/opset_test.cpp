// Models of any opset from 7 to 21 load at opset 17 (src/onnx/opset.h): nodes of opsets 18 to
// 21 in their opset-17 form, or a one-line error naming the node; nodes of older opsets that
// ONNX's version converter cannot take (Softmax on a value of unknown rank, ConstantFill,
// per-channel PRelu) hidden from it and restored. Each loaded model is run and compared with
// ATen's result for the op as its own opset defines it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/defs/parser.h>
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/runtime.h"

using namespace edgeforge;

namespace {

constexpr double kTol = 1e-6;

// A model from ONNX's textual syntax, serialized.
std::string model_bytes(const std::string& text) {
  onnx::ModelProto m;
  const auto status = onnx::OnnxParser::Parse(m, text.c_str());
  EXPECT_TRUE(status.IsOK()) << status.ErrorMessage() << "\n" << text;
  std::string bytes;
  EXPECT_TRUE(m.SerializeToString(&bytes));
  return bytes;
}

std::string header(int opset, int ir = 8) {
  return "<ir_version: " + std::to_string(ir) + ", opset_import: [\"\" : " +
         std::to_string(opset) + "]>\n";
}

std::vector<at::Tensor> run(const Graph& g, const std::vector<at::Tensor>& inputs) {
  Executor exec(g);
  RunOptions opts;
  opts.threads = 1;
  return exec.run(inputs, opts);
}

void expect_error(const std::string& bytes, const std::vector<std::string>& pieces) {
  try {
    const Graph g = graph_from_onnx_bytes(bytes, "m.onnx");
    ADD_FAILURE() << "loaded; expected an error mentioning " << pieces[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const std::string& p : pieces)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' missing from: " << msg;
  }
}

bool has_op(const Graph& g, const std::string& op) {
  for (const Node& n : g.nodes())
    if (n.op_type == op) return true;
  return false;
}

}  // namespace

TEST(Opset, ReduceOfOpset18ReadsItsConstantAxesInput) {
  const Graph g = graph_from_onnx_bytes(model_bytes(header(18) + R"(
    g (float[2,3,4] x) => (float[2,1,4] y, float[2,3,4] same) {
      axes = Constant <value = int64[1] {1}> ()
      y = ReduceMean <keepdims = 1> (x, axes)
      same = ReduceMax <noop_with_empty_axes = 1> (x)
    })"),
                                        "opset 18");
  const at::Tensor x = at::randn({2, 3, 4});
  const auto out = run(g, {x});
  EXPECT_TRUE(at::allclose(out[0], x.mean({1}, true), kTol, kTol));
  EXPECT_TRUE(at::equal(out[1], x));
}

TEST(Opset, ReduceOfOpset18WithRunTimeAxesNamesTheNode) {
  expect_error(model_bytes(header(18) + R"(
    g (float[2,3] x, int64[1] axes) => (float[2,1] y) {
      y = ReduceMean <keepdims = 1> (x, axes)
    })"),
               {"m.onnx", "ReduceMean", "opset 18", "axes", "computed at run time"});
}

TEST(Opset, GeluOfOpset20IsItsFormula) {
  const Graph g = graph_from_onnx_bytes(model_bytes(header(20) + R"(
    g (float[3,5] x) => (float[3,5] exact, float[3,5] tanh) {
      exact = Gelu (x)
      tanh = Gelu <approximate = "tanh"> (x)
    })"),
                                        "opset 20");
  EXPECT_FALSE(has_op(g, "Gelu"));
  const at::Tensor x = at::randn({3, 5}) * 3;
  const auto out = run(g, {x});
  EXPECT_TRUE(at::allclose(out[0], at::gelu(x), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(out[1], at::gelu(x, "tanh"), 1e-5, 1e-5));
}

TEST(Opset, MishAndSplitOfOpset18) {
  const Graph g = graph_from_onnx_bytes(model_bytes(header(18) + R"(
    g (float[4,6] x) => (float[4,3] a, float[4,3] b) {
      m = Mish (x)
      a, b = Split <axis = 1, num_outputs = 2> (m)
    })"),
                                        "opset 18");
  const at::Tensor x = at::randn({4, 6});
  const auto out = run(g, {x});
  const at::Tensor mish = x * at::tanh(at::softplus(x));
  EXPECT_TRUE(at::allclose(out[0], mish.slice(1, 0, 3), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(out[1], mish.slice(1, 3, 6), 1e-5, 1e-6));
}

TEST(Opset, Opset21OpsThatOnlyGainedTypesAreRelabelled) {
  const Graph g = graph_from_onnx_bytes(model_bytes(header(21, 10) + R"(
    g (float[2,3,4] x) => (float[8,3] y) {
      t = Transpose <perm = [2, 0, 1]> (x)
      shape = Constant <value = int64[2] {8, 3}> ()
      y = Reshape (t, shape)
    })"),
                                        "opset 21");
  const at::Tensor x = at::randn({2, 3, 4});
  EXPECT_TRUE(at::equal(run(g, {x})[0], x.permute({2, 0, 1}).reshape({8, 3})));
}

TEST(Opset, FormsWithoutAnOpset17EquivalentNameTheNode) {
  expect_error(model_bytes(header(19) + R"(
    g (float[2,3] x) => (float[2,7] y) {
      pads = Constant <value = int64[4] {0, 2, 0, 2}> ()
      y = Pad <mode = "wrap"> (x, pads)
    })"),
               {"m.onnx", "Pad", "opset 19", "wrap"});
  expect_error(model_bytes(header(18) + R"(
    g (int32[2] a, int32[2] b) => (int32[2] y) {
      y = BitwiseAnd (a, b)
    })"),
               {"m.onnx", "BitwiseAnd", "opset 18", "no opset-17 form"});
  expect_error(model_bytes(header(22) + R"(
    g (float[2] x) => (float[2] y) {
      y = Identity (x)
    })"),
               {"m.onnx", "opset 22", "up to 21"});
}

// Softmax before opset 13 flattens its input at `axis`; on a value whose rank only the run
// knows, ONNX's converter fails ("input shape is unknown").
TEST(Opset, LegacySoftmaxOfUnknownRankKeepsItsFlatteningMeaning) {
  const Graph g = graph_from_onnx_bytes(model_bytes(header(12) + R"(
    g (float[6] x, int64[3] shape) => (float y, float z) {
      r = Reshape (x, shape)
      y = Softmax <axis = 1> (r)
      z = LogSoftmax <axis = 2> (r)
    })"),
                                        "opset 12");
  const at::Tensor x = at::randn({6});
  const at::Tensor shape = at::tensor(std::vector<int64_t>{1, 2, 3});
  const auto out = run(g, {x, shape});
  EXPECT_TRUE(at::allclose(out[0], at::softmax(x.view({1, 6}), 1).view({1, 2, 3}), kTol, kTol));
  EXPECT_TRUE(
      at::allclose(out[1], at::log_softmax(x.view({2, 3}), 1).view({1, 2, 3}), 1e-5, kTol));
}

// ONNX 1.12's converter loops forever on the experimental ConstantFill (PyTorch's LSTM exports
// at opsets 7 and 8 hold one); read as the ConstantOfShape it is.
TEST(Opset, ConstantFillOfOpset7IsConstantOfShape) {
  const Graph g = graph_from_onnx_bytes(model_bytes(header(7, 3) + R"(
    g (float[2,3] x) => (float[2,3] y) {
      s = Shape (x)
      y = ConstantFill <input_as_shape = 1, value = 2.5, dtype = 1> (s)
    })"),
                                        "opset 7");
  EXPECT_TRUE(has_op(g, "ConstantOfShape"));
  EXPECT_TRUE(at::equal(run(g, {at::zeros({2, 3})})[0], at::full({2, 3}, 2.5f)));
}
