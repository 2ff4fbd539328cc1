#include "edgeforge/onnx_io.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "edgeforge/build_info.h"
#include "edgeforge/error.h"
#include "edgeforge/graph.h"
#include "edgeforge/runtime.h"
#include "edgeforge/zoo.h"
#include "../common/hostile_models.h"

using namespace edgeforge;
namespace fs = std::filesystem;

namespace {

// A seeded test with its own scratch folder, removed afterwards.
class OnnxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(0);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("edgeforge_onnx_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }

  void write(const std::string& file, const std::string& bytes) const {
    std::ofstream out(path(file), std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good());
  }

  fs::path dir_;
};

// Conv -> Relu -> Reshape (int64 shape initializer) -> Gemm whose bias comes from a Constant
// node with a tensor attribute. Value and node names that are not identifiers are on purpose.
Graph make_small_cnn() {
  Graph g("small_cnn");
  g.add_input({"image:0", at::kFloat, {Dim::symbol("N"), Dim(3), Dim(8), Dim(8)}});
  g.add_initializer("conv.weight", at::randn({4, 3, 3, 3}));
  g.add_initializer("conv.bias", at::randn({4}));
  g.add_initializer("flat.shape", at::tensor(std::vector<int64_t>{0, -1}, at::kLong));
  g.add_initializer("fc.weight", at::randn({2, 4 * 8 * 8}));
  g.add_node(Node("Conv", "stage1/conv 1", {"image:0", "conv.weight", "conv.bias"}, {"conv_out"})
                 .set("kernel_shape", std::vector<int64_t>{3, 3})
                 .set("pads", std::vector<int64_t>{1, 1, 1, 1})
                 .set("strides", std::vector<int64_t>{1, 1})
                 .set("auto_pad", std::string("NOTSET")));
  g.add_node(Node("Relu", "relu", {"conv_out"}, {"relu_out"}));
  g.add_node(Node("Reshape", "flatten", {"relu_out", "flat.shape"}, {"flat"}));
  g.add_node(Node("Constant", "fc.bias", {}, {"fc_bias"}).set("value", at::randn({2})));
  g.add_node(Node("Gemm", "fc", {"flat", "fc.weight", "fc_bias"}, {"logits"})
                 .set("transB", int64_t{1})
                 .set("alpha", 1.0f)
                 .set("beta", 1.0f));
  g.add_output({"logits", at::kFloat, {Dim::symbol("N"), Dim(2)}});
  g.metadata()[kMetaModel] = "small_cnn";
  g.metadata()[kMetaLabels] = R"(["shirt", "boot"])";
  return g;
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  const size_t bytes = ca.numel() * ca.element_size();
  return bytes == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), bytes) == 0;
}

void expect_same_value_info(const ValueInfo& a, const ValueInfo& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.dtype, b.dtype) << a.name;
  ASSERT_EQ(a.has_shape, b.has_shape) << a.name;
  ASSERT_EQ(a.shape.size(), b.shape.size()) << a.name;
  for (size_t d = 0; d < a.shape.size(); ++d) {
    EXPECT_EQ(a.shape[d].size, b.shape[d].size) << a.name << " dim " << d;
    EXPECT_EQ(a.shape[d].param, b.shape[d].param) << a.name << " dim " << d;
  }
}

void expect_same_attribute(const Attribute& a, const Attribute& b, const std::string& where) {
  ASSERT_EQ(a.index(), b.index()) << where << ": attribute type changed";
  if (const auto* t = std::get_if<at::Tensor>(&a)) {
    EXPECT_TRUE(bit_equal(*t, std::get<at::Tensor>(b))) << where;
  } else if (const auto* f = std::get_if<float>(&a)) {
    EXPECT_EQ(std::memcmp(f, &std::get<float>(b), sizeof(float)), 0) << where;
  } else if (const auto* i = std::get_if<int64_t>(&a)) {
    EXPECT_EQ(*i, std::get<int64_t>(b)) << where;
  } else if (const auto* str = std::get_if<std::string>(&a)) {
    EXPECT_EQ(*str, std::get<std::string>(b)) << where;
  } else if (const auto* ints = std::get_if<std::vector<int64_t>>(&a)) {
    EXPECT_EQ(*ints, std::get<std::vector<int64_t>>(b)) << where;
  } else if (const auto* floats = std::get_if<std::vector<float>>(&a)) {
    const auto& other = std::get<std::vector<float>>(b);
    ASSERT_EQ(floats->size(), other.size()) << where;
    EXPECT_EQ(std::memcmp(floats->data(), other.data(), floats->size() * sizeof(float)), 0) << where;
  } else {
    EXPECT_EQ(std::get<std::vector<std::string>>(a), std::get<std::vector<std::string>>(b)) << where;
  }
}

void expect_same_graph(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.name(), b.name());
  EXPECT_EQ(a.metadata(), b.metadata());
  ASSERT_EQ(a.inputs().size(), b.inputs().size());
  for (size_t i = 0; i < a.inputs().size(); ++i) expect_same_value_info(a.inputs()[i], b.inputs()[i]);
  ASSERT_EQ(a.outputs().size(), b.outputs().size());
  for (size_t i = 0; i < a.outputs().size(); ++i)
    expect_same_value_info(a.outputs()[i], b.outputs()[i]);
  ASSERT_EQ(a.initializers().size(), b.initializers().size());
  for (const auto& [name, t] : a.initializers()) {
    ASSERT_TRUE(b.has_initializer(name)) << name;
    EXPECT_TRUE(bit_equal(t, b.initializers().at(name))) << "initializer " << name;
  }
  ASSERT_EQ(a.nodes().size(), b.nodes().size());
  for (size_t i = 0; i < a.nodes().size(); ++i) {
    const Node& x = a.nodes()[i];
    const Node& y = b.nodes()[i];
    EXPECT_EQ(x.op_type, y.op_type);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.domain, y.domain);
    EXPECT_EQ(x.inputs, y.inputs) << x.name;
    EXPECT_EQ(x.outputs, y.outputs) << x.name;
    ASSERT_EQ(x.attributes.size(), y.attributes.size()) << x.name;
    for (const auto& [key, value] : x.attributes) {
      ASSERT_TRUE(y.has(key)) << x.name << "." << key;
      expect_same_attribute(value, y.attributes.at(key), x.name + "." + key);
    }
  }
}

// Runs `fn`, which must throw edgeforge::Error with a one-line message holding every piece.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
    ADD_FAILURE() << "no edgeforge::Error thrown; expected one mentioning " << pieces[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
    for (const std::string& p : pieces)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' missing from: " << msg;
  }
}

onnx::ModelProto parse_model(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

std::string serialize(const onnx::ModelProto& m) {
  std::string bytes;
  EXPECT_TRUE(m.SerializeToString(&bytes));
  return bytes;
}

// Makes `v` a float tensor of the given fixed shape.
void declare_float(onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->clear_shape();
  auto* shape = t->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

// A valid hand-written ModelProto: Identity x -> y, float [2], at the given opset.
onnx::ModelProto minimal_model(int64_t opset = 17) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  onnx::OperatorSetIdProto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("minimal");
  declare_float(g->add_input(), "x", {2});
  declare_float(g->add_output(), "y", {2});
  onnx::NodeProto* n = g->add_node();
  n->set_op_type("Identity");
  n->set_name("id");
  n->add_input("x");
  n->add_output("y");
  return m;
}

bool has_ops(const std::vector<std::string>& ops, std::string* missing) {
  for (const std::string& op : ops)
    if (OpRegistry::global().find(op) == nullptr) {
      *missing = op;
      return false;
    }
  return true;
}

}  // namespace

// ---- round trips ------------------------------------------------------------------------------

TEST_F(OnnxTest, RoundTripKeepsStructureAttributesAndWeightsBitExact) {
  const Graph g = make_small_cnn();
  ASSERT_NO_THROW(g.validate());
  EXPECT_NO_THROW(check_onnx(g));
  save_onnx(g, path("small.onnx"));
  const Graph loaded = load_onnx(path("small.onnx"));
  expect_same_graph(g, loaded);
  for (const auto& [name, t] : loaded.initializers()) {
    EXPECT_TRUE(t.is_contiguous()) << name;
    EXPECT_EQ(t.device().type(), at::kCPU) << name;
  }
}

TEST_F(OnnxTest, ExportWritesTheAgreedModelHeader) {
  const onnx::ModelProto m = parse_model(graph_to_onnx_bytes(make_small_cnn()));
  EXPECT_EQ(m.ir_version(), 8);
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).domain(), "");
  EXPECT_EQ(m.opset_import(0).version(), 17);
  EXPECT_EQ(m.producer_name(), "edgeforge");
  EXPECT_EQ(m.producer_version(), version());
  EXPECT_EQ(m.graph().name(), "small_cnn");
  // Older exporters listed weights as inputs too; ours must not, or they become feedable.
  ASSERT_EQ(m.graph().input_size(), 1);
  EXPECT_EQ(m.graph().input(0).name(), "image:0");
  for (const onnx::TensorProto& t : m.graph().initializer()) EXPECT_TRUE(t.has_raw_data()) << t.name();
}

TEST_F(OnnxTest, RoundTripKeepsEveryAttributeTypeDomainAndShapeKind) {
  Graph g("attrs");
  g.add_input({"in/0 with space", at::kFloat, {Dim::symbol("batch"), Dim(), Dim(7)}});
  g.add_input({"scalar", at::kLong, {}});
  g.add_input({"half", at::kHalf, {Dim(), Dim()}});
  at::Tensor tensor_attr = at::arange(6, at::kInt).reshape({2, 3});
  g.add_node(Node("Custom", "custom.node", {"in/0 with space", "", "scalar", "half"},
                  {"out:0", "out:1"})
                 .set("i", int64_t{-5})
                 .set("f", 0.25f)
                 .set("s", std::string("bytes\0and more", 14))
                 .set("t", tensor_attr)
                 .set("ints", std::vector<int64_t>{1, -2, 3})
                 .set("empty_ints", std::vector<int64_t>{})
                 .set("floats", std::vector<float>{1.5f, -0.0f})
                 .set("strings", std::vector<std::string>{"a", "", "c"}));
  g.nodes().back().domain = "com.example";
  g.add_output({"out:0", at::kFloat, {Dim::symbol("batch"), Dim(7)}});
  g.add_output({"out:1", at::kBool, {}});
  g.value_info()["never_used"] = ValueInfo{"never_used", at::kDouble, {Dim(1)}};
  g.value_info()["rank_unknown"] = ValueInfo{"rank_unknown", at::kHalf, {}, /*has_shape=*/false};

  const std::string bytes = graph_to_onnx_bytes(g);
  const onnx::ModelProto m = parse_model(bytes);
  bool has_custom_opset = false;
  for (const auto& o : m.opset_import()) has_custom_opset |= o.domain() == "com.example";
  EXPECT_TRUE(has_custom_opset) << "the checker needs an opset_import for every node domain";

  const Graph loaded = graph_from_onnx_bytes(bytes, "attrs bytes");
  expect_same_graph(g, loaded);
  for (const char* name : {"never_used", "rank_unknown"}) {
    ASSERT_EQ(loaded.value_info().count(name), 1u) << name;
    expect_same_value_info(g.value_info().at(name), loaded.value_info().at(name));
  }
}

TEST_F(OnnxTest, RoundTripKeepsEveryTensorTypeBitExact) {
  const float nan_payload = [] {
    uint32_t bits = 0x7fc01234u;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }();
  const std::vector<float> floats = {0.0f, -0.0f, 1e-45f, -3.5f,
                                     std::numeric_limits<float>::infinity(), nan_payload};
  Graph g("dtypes");
  g.add_input({"x", at::kFloat, {Dim(1)}});
  g.add_node(Node("Identity", "id", {"x"}, {"y"}));
  g.add_output({"y", at::kFloat, {Dim(1)}});
  g.add_initializer("f32", at::tensor(floats));
  g.add_initializer("f64", at::tensor(std::vector<double>{1e-300, -2.0, 3.25}));
  g.add_initializer("f16", at::tensor(floats).to(at::kHalf));
  g.add_initializer("bf16", at::tensor(floats).to(at::kBFloat16));
  g.add_initializer("i8", at::tensor(std::vector<int64_t>{-128, 0, 127}).to(at::kChar));
  g.add_initializer("u8", at::tensor(std::vector<int64_t>{0, 200, 255}).to(at::kByte));
  g.add_initializer("i16", at::tensor(std::vector<int64_t>{-32768, 7}).to(at::kShort));
  g.add_initializer("i32", at::tensor(std::vector<int32_t>{-7, 1 << 30}));
  g.add_initializer("i64", at::tensor(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 9}));
  g.add_initializer("b", at::tensor(std::vector<int64_t>{1, 0, 1}).to(at::kBool));
  g.add_initializer("scalar", at::scalar_tensor(2.5, at::kDouble));
  g.add_initializer("empty", at::zeros({0, 3}));
  g.add_initializer("strided", at::arange(12, at::kFloat).reshape({3, 4}).t());
  g.add_initializer("trained", at::ones({2}).requires_grad_());

  const Graph loaded = graph_from_onnx_bytes(graph_to_onnx_bytes(g), "dtypes bytes");
  expect_same_graph(g, loaded);
  EXPECT_EQ(loaded.initializers().at("scalar").dim(), 0);
  EXPECT_FALSE(loaded.initializers().at("trained").requires_grad());
}

TEST_F(OnnxTest, ImportedTensorsOwnTheirMemory) {
  std::string bytes = graph_to_onnx_bytes(make_small_cnn());
  const Graph loaded = graph_from_onnx_bytes(bytes, "scratch");
  const at::Tensor before = loaded.initializers().at("fc.weight").clone();
  std::fill(bytes.begin(), bytes.end(), '\x7f');
  EXPECT_TRUE(bit_equal(before, loaded.initializers().at("fc.weight")));
}

TEST_F(OnnxTest, SaveReplacesTheFileOnlyWhenTheNewModelIsValid) {
  const std::string file = path("model.onnx");
  const Graph good = make_small_cnn();
  save_onnx(good, file);
  Graph broken("broken");
  broken.add_input({"x", at::kFloat, {Dim(1)}});
  broken.add_node(Node("Relu", "relu", {"undefined_value"}, {"y"}));
  broken.add_output({"y", at::kFloat, {Dim(1)}});
  expect_error([&] { save_onnx(broken, file); }, {"broken", "checker", "undefined_value"});
  expect_same_graph(good, load_onnx(file));
}

// ---- import of what other exporters write ----------------------------------------------------

TEST_F(OnnxTest, ImportReadsTypedDataFields) {
  onnx::ModelProto m = minimal_model();
  onnx::GraphProto* g = m.mutable_graph();
  auto add = [&](const std::string& name, int32_t type, std::vector<int64_t> dims) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    return t;
  };
  onnx::TensorProto* f32 = add("f32", onnx::TensorProto::FLOAT, {2});
  f32->add_float_data(1.5f);
  f32->add_float_data(-2.0f);
  onnx::TensorProto* f64 = add("f64", onnx::TensorProto::DOUBLE, {});
  f64->add_double_data(0.125);
  onnx::TensorProto* i64 = add("i64", onnx::TensorProto::INT64, {3});
  for (int64_t v : {int64_t{-1}, int64_t{1} << 40, int64_t{0}}) i64->add_int64_data(v);
  onnx::TensorProto* i32 = add("i32", onnx::TensorProto::INT32, {2});
  for (int32_t v : {-100000, 5}) i32->add_int32_data(v);
  onnx::TensorProto* i8 = add("i8", onnx::TensorProto::INT8, {2});
  for (int32_t v : {-3, 127}) i8->add_int32_data(v);
  onnx::TensorProto* u8 = add("u8", onnx::TensorProto::UINT8, {2});
  for (int32_t v : {200, 1}) u8->add_int32_data(v);
  onnx::TensorProto* b = add("b", onnx::TensorProto::BOOL, {3});
  for (int32_t v : {1, 0, 1}) b->add_int32_data(v);
  // FLOAT16 keeps IEEE half bit patterns in int32_data: 0x3C00 is 1.0, 0xC000 is -2.0.
  onnx::TensorProto* f16 = add("f16", onnx::TensorProto::FLOAT16, {2});
  f16->add_int32_data(0x3C00);
  f16->add_int32_data(0xC000);

  const Graph loaded = graph_from_onnx_bytes(serialize(m), "typed");
  const auto& init = loaded.initializers();
  EXPECT_TRUE(at::equal(init.at("f32"), at::tensor(std::vector<float>{1.5f, -2.0f})));
  EXPECT_TRUE(at::equal(init.at("f64"), at::scalar_tensor(0.125, at::kDouble)));
  EXPECT_TRUE(at::equal(init.at("i64"),
                        at::tensor(std::vector<int64_t>{-1, int64_t{1} << 40, 0})));
  EXPECT_TRUE(at::equal(init.at("i32"), at::tensor(std::vector<int32_t>{-100000, 5})));
  EXPECT_TRUE(at::equal(init.at("i8"), at::tensor(std::vector<int64_t>{-3, 127}).to(at::kChar)));
  EXPECT_TRUE(at::equal(init.at("u8"), at::tensor(std::vector<int64_t>{200, 1}).to(at::kByte)));
  EXPECT_TRUE(at::equal(init.at("b"), at::tensor(std::vector<int64_t>{1, 0, 1}).to(at::kBool)));
  EXPECT_TRUE(at::equal(init.at("f16").to(at::kFloat), at::tensor(std::vector<float>{1.0f, -2.0f})));
}

TEST_F(OnnxTest, InitializersListedAsGraphInputsAreWeightsNotInputs) {
  onnx::ModelProto m = minimal_model();
  onnx::GraphProto* g = m.mutable_graph();
  onnx::ValueInfoProto* w_in = g->add_input();
  w_in->set_name("w");
  w_in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  w_in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  onnx::TensorProto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->add_float_data(3.0f);
  w->add_float_data(4.0f);
  g->mutable_node(0)->set_op_type("Add");
  g->mutable_node(0)->add_input("w");

  const Graph loaded = graph_from_onnx_bytes(serialize(m), "old exporter");
  ASSERT_EQ(loaded.inputs().size(), 1u);
  EXPECT_EQ(loaded.inputs()[0].name, "x");
  ASSERT_TRUE(loaded.has_initializer("w"));
  // Re-exported, the weight is no longer an input either.
  const onnx::ModelProto again = parse_model(graph_to_onnx_bytes(loaded));
  EXPECT_EQ(again.graph().input_size(), 1);
}

TEST_F(OnnxTest, OlderOpsetIsUpgradedToOpset17Semantics) {
  // Squeeze took its axes as an attribute before opset 13 and as an input since.
  onnx::ModelProto m = minimal_model(11);
  onnx::GraphProto* g = m.mutable_graph();
  declare_float(g->mutable_input(0), "x", {1, 2});
  onnx::NodeProto* n = g->mutable_node(0);
  n->set_op_type("Squeeze");
  onnx::AttributeProto* axes = n->add_attribute();
  axes->set_name("axes");
  axes->set_type(onnx::AttributeProto::INTS);
  axes->add_ints(0);

  const Graph loaded = graph_from_onnx_bytes(serialize(m), "opset 11");
  const Node* found = loaded.find_node("id");
  ASSERT_NE(found, nullptr);
  const Node& squeeze = *found;
  EXPECT_EQ(squeeze.op_type, "Squeeze");
  EXPECT_FALSE(squeeze.has("axes"));
  ASSERT_EQ(squeeze.inputs.size(), 2u);
  // The axes input is a constant: an initializer or a Constant node's value.
  at::Tensor axes_value = constant_input(loaded, squeeze.inputs[1]);
  ASSERT_TRUE(axes_value.defined()) << "axes input '" << squeeze.inputs[1] << "' is not constant";
  EXPECT_TRUE(at::equal(axes_value, at::tensor(std::vector<int64_t>{0})));
  EXPECT_NO_THROW(check_onnx(loaded));
  std::string missing;
  if (has_ops({"Squeeze", "Constant"}, &missing)) {
    Executor exec(loaded);
    RunOptions opts;
    opts.threads = 1;
    const at::Tensor x = at::tensor(std::vector<float>{3.0f, 4.0f}).reshape({1, 2});
    const std::vector<at::Tensor> y = exec.run({x}, opts);
    ASSERT_EQ(y.size(), 1u);
    EXPECT_TRUE(at::equal(y[0], at::tensor(std::vector<float>{3.0f, 4.0f})));
  }

  // Opset-6 Add broadcast only when told to; its adapter needs the shapes of both inputs, and
  // a Constant node's output has none recorded in the model.
  onnx::ModelProto add = minimal_model(6);
  add.set_ir_version(3);
  onnx::GraphProto* ag = add.mutable_graph();
  declare_float(ag->mutable_input(0), "x", {2, 3});
  declare_float(ag->mutable_output(0), "y", {2, 3});
  onnx::NodeProto* constant = ag->add_node();
  constant->set_op_type("Constant");
  constant->set_name("bias");
  constant->add_output("bias");
  onnx::AttributeProto* value = constant->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_dims(3);
  for (float v : {1.0f, 2.0f, 3.0f}) value->mutable_t()->add_float_data(v);
  ag->mutable_node()->SwapElements(0, 1);  // the Constant must come first
  onnx::NodeProto* an = ag->mutable_node(1);
  an->set_op_type("Add");
  an->add_input("bias");
  onnx::AttributeProto* broadcast = an->add_attribute();
  broadcast->set_name("broadcast");
  broadcast->set_type(onnx::AttributeProto::INT);
  broadcast->set_i(1);
  const Graph add_graph = graph_from_onnx_bytes(serialize(add), "opset 6");
  const Node* add_node = add_graph.find_node("id");
  ASSERT_NE(add_node, nullptr);
  EXPECT_EQ(add_node->op_type, "Add");
  EXPECT_FALSE(add_node->has("broadcast"));
  EXPECT_TRUE(add_graph.value_info().empty()) << "shapes inferred for the upgrade leaked in";
  EXPECT_NO_THROW(check_onnx(add_graph));

  // An opset-13 model whose ops did not change since is taken as it is.
  onnx::ModelProto relu = minimal_model(13);
  relu.mutable_graph()->mutable_node(0)->set_op_type("Relu");
  const Graph relu_graph = graph_from_onnx_bytes(serialize(relu), "opset 13");
  ASSERT_EQ(relu_graph.nodes().size(), 1u);
  EXPECT_EQ(relu_graph.nodes()[0].name, "id");
  EXPECT_EQ(relu_graph.nodes()[0].inputs, std::vector<std::string>{"x"});
}

// ---- execution -------------------------------------------------------------------------------

TEST_F(OnnxTest, ReloadedGraphComputesBitIdenticalOutputs) {
  std::string missing;
  if (!has_ops({"Conv", "Relu", "Reshape", "Constant", "Gemm"}, &missing))
    GTEST_SKIP() << "the runtime has no " << missing << " op yet";
  const Graph g = make_small_cnn();
  save_onnx(g, path("small.onnx"));
  const Graph loaded = load_onnx(path("small.onnx"));
  const at::Tensor x = at::randn({3, 3, 8, 8});
  RunOptions opts;
  opts.threads = 1;
  Executor original(g);
  Executor reloaded(loaded);
  const std::vector<at::Tensor> a = original.run({x}, opts);
  const std::vector<at::Tensor> b = reloaded.run({x}, opts);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_TRUE(bit_equal(a[0], b[0]));
  // Guards against a graph that ignores its input (equal outputs would then prove nothing).
  EXPECT_FALSE(at::equal(b[0], reloaded.run({at::randn({3, 3, 8, 8})}, opts)[0]));
}

TEST_F(OnnxTest, EveryZooModelRoundTripsThroughTheCheckerAndShapeInference) {
  ZooBuildOptions opts;
  opts.seed = 3;
  opts.seq_len = 8;
  for (const ZooModelSpec& spec : zoo_models()) {
    SCOPED_TRACE(spec.name);
    const Graph g = build_zoo_model(spec.name, opts);
    const Graph loaded = graph_from_onnx_bytes(graph_to_onnx_bytes(g), spec.name);
    expect_same_graph(g, loaded);
    Graph shaped = loaded;
    ASSERT_NO_THROW(infer_shapes(shaped, 2));
    ASSERT_EQ(shaped.outputs().size(), 1u);
    const ValueInfo& logits = shaped.outputs()[0];
    ASSERT_TRUE(logits.has_shape);
    ASSERT_EQ(logits.shape.size(), 2u);
    // Every node output is known after fixing the batch, or MAC counting has a hole.
    for (const Node& n : shaped.nodes())
      for (const std::string& out : n.outputs) {
        if (out.empty() || out == logits.name) continue;
        auto it = shaped.value_info().find(out);
        ASSERT_NE(it, shaped.value_info().end()) << n.describe() << " output " << out;
        EXPECT_TRUE(it->second.has_shape) << out;
      }
  }
}

// ---- shape inference --------------------------------------------------------------------------

TEST_F(OnnxTest, InferShapesFillsIntermediateShapes) {
  Graph g = make_small_cnn();
  g.outputs()[0].has_shape = false;
  g.outputs()[0].shape.clear();
  g.value_info()["stale"] = ValueInfo{"stale", at::kFloat, {Dim(9)}};
  infer_shapes(g);
  EXPECT_EQ(g.value_info().count("stale"), 0u);
  ASSERT_EQ(g.value_info().count("conv_out"), 1u);
  // 3x3 kernel, padding 1, stride 1 keeps 8x8; 4 filters give 4 channels.
  const ValueInfo& conv = g.value_info().at("conv_out");
  ASSERT_EQ(conv.shape.size(), 4u);
  EXPECT_EQ(conv.shape[0].param, "N");
  EXPECT_FALSE(conv.shape[0].is_fixed());
  EXPECT_EQ(conv.shape[1].size, 4);
  EXPECT_EQ(conv.shape[2].size, 8);
  EXPECT_EQ(conv.shape[3].size, 8);
  ASSERT_EQ(g.value_info().count("relu_out"), 1u);
  EXPECT_EQ(g.value_info().at("relu_out").shape.size(), 4u);
  ASSERT_TRUE(g.outputs()[0].has_shape);
  ASSERT_EQ(g.outputs()[0].shape.size(), 2u);
  EXPECT_EQ(g.outputs()[0].shape[1].size, 2);
  // Inputs keep their symbolic batch when no batch is given.
  EXPECT_EQ(g.inputs()[0].shape[0].param, "N");
}

TEST_F(OnnxTest, InferShapesWithBatchFixesTheLeadingDimension) {
  Graph g = make_small_cnn();
  g.outputs()[0].shape[0] = Dim();  // unknown, so inference may fill it
  infer_shapes(g, 1);
  EXPECT_EQ(g.inputs()[0].shape[0].size, 1);
  const ValueInfo& conv = g.value_info().at("conv_out");
  ASSERT_EQ(conv.shape.size(), 4u);
  EXPECT_EQ(conv.shape[0].size, 1);
  const ValueInfo& flat = g.value_info().at("flat");
  ASSERT_EQ(flat.shape.size(), 2u);
  EXPECT_EQ(flat.shape[0].size, 1);
  EXPECT_EQ(flat.shape[1].size, 4 * 8 * 8);
  EXPECT_EQ(g.outputs()[0].shape[0].size, 1);
  EXPECT_EQ(g.outputs()[0].shape[1].size, 2);
}

TEST_F(OnnxTest, InferShapesReportsInconsistentShapes) {
  Graph g("mismatch");
  g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(3)}});
  g.add_initializer("w", at::randn({4, 2}));
  g.add_node(Node("MatMul", "mm", {"x", "w"}, {"y"}));
  g.add_output({"y", at::kFloat, {}, false});
  expect_error([&] { infer_shapes(g); }, {"mismatch", "shape inference"});
}

// ---- bad input -------------------------------------------------------------------------------

TEST_F(OnnxTest, MissingFileIsNamed) {
  expect_error([&] { load_onnx(path("nope.onnx")); }, {"model '" + path("nope.onnx") + "'", "not found"});
  expect_error([&] { load_onnx(dir_.string()); }, {dir_.string(), "directory"});
}

TEST_F(OnnxTest, EmptyFileIsNamed) {
  write("empty.onnx", "");
  expect_error([&] { load_onnx(path("empty.onnx")); }, {path("empty.onnx"), "empty"});
}

TEST_F(OnnxTest, TruncatedFilesAreRejected) {
  const std::string bytes = graph_to_onnx_bytes(make_small_cnn());
  // Some cut points fall between protobuf fields and still parse; those must fail later
  // (checker or tensor sizes), never crash or load a partial graph.
  for (size_t cut : {size_t{1}, size_t{10}, bytes.size() / 4, bytes.size() / 2,
                     bytes.size() * 3 / 4, bytes.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(bytes.size()));
    write("cut.onnx", bytes.substr(0, cut));
    expect_error([&] { load_onnx(path("cut.onnx")); }, {path("cut.onnx")});
  }
}

TEST_F(OnnxTest, RandomBytesAreRejected) {
  std::mt19937 rng(7);
  std::string bytes(4096, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  write("random.onnx", bytes);
  expect_error([&] { load_onnx(path("random.onnx")); }, {path("random.onnx")});
}

TEST_F(OnnxTest, RawDataOfTheWrongSizeNamesTheTensor) {
  onnx::ModelProto m = parse_model(graph_to_onnx_bytes(make_small_cnn()));
  for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == "conv.weight") t.mutable_raw_data()->resize(t.raw_data().size() - 4);
  write("short.onnx", serialize(m));
  expect_error([&] { load_onnx(path("short.onnx")); },
               {path("short.onnx"), "'conv.weight'", "raw_data", "[4, 3, 3, 3]"});

  // A corrupt shape must be caught by the size check, not by trying to allocate 4 TB.
  onnx::ModelProto huge = minimal_model();
  onnx::TensorProto* t = huge.mutable_graph()->add_initializer();
  t->set_name("huge");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(int64_t{1} << 40);
  t->set_raw_data(std::string(4, '\0'));
  expect_error([&] { graph_from_onnx_bytes(serialize(huge), "huge.onnx"); },
               {"model 'huge.onnx'", "'huge'", "raw_data"});
}

TEST_F(OnnxTest, TypedDataOfTheWrongCountNamesTheTensor) {
  onnx::ModelProto m = minimal_model();
  onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name("short_ints");
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(3);
  t->add_int64_data(1);
  expect_error([&] { graph_from_onnx_bytes(serialize(m), "typed.onnx"); },
               {"model 'typed.onnx'", "'short_ints'", "int64_data"});
}

TEST_F(OnnxTest, NewerOpsetIsRejected) {
  onnx::ModelProto m = parse_model(graph_to_onnx_bytes(make_small_cnn()));
  m.mutable_opset_import(0)->set_version(99);
  write("future.onnx", serialize(m));
  expect_error([&] { load_onnx(path("future.onnx")); }, {path("future.onnx"), "opset 99", "up to 21"});
}

TEST_F(OnnxTest, UnsupportedTensorTypeNamesTensorAndType) {
  onnx::ModelProto m = minimal_model();
  onnx::TensorProto* t = m.mutable_graph()->add_initializer();
  t->set_name("vocab");
  t->set_data_type(onnx::TensorProto::STRING);
  t->add_dims(1);
  t->add_string_data("hello");
  write("strings.onnx", serialize(m));
  expect_error([&] { load_onnx(path("strings.onnx")); },
               {path("strings.onnx"), "'vocab'", "STRING"});

  onnx::ModelProto u = minimal_model();
  onnx::NodeProto* c = u.mutable_graph()->add_node();
  c->set_op_type("Constant");
  c->set_name("const");
  c->add_output("c");
  onnx::AttributeProto* a = c->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_name("big_unsigned");
  a->mutable_t()->set_data_type(onnx::TensorProto::UINT64);
  a->mutable_t()->add_uint64_data(1);
  expect_error([&] { graph_from_onnx_bytes(serialize(u), "u64.onnx"); },
               {"u64.onnx", "Constant node 'const'", "'big_unsigned'", "UINT64"});
}

TEST_F(OnnxTest, SubgraphAttributeNamesNodeAndAttribute) {
  onnx::ModelProto m = minimal_model();
  m.add_opset_import()->set_domain("com.example");
  m.mutable_opset_import(1)->set_version(1);
  onnx::NodeProto* n = m.mutable_graph()->mutable_node(0);
  n->set_op_type("Loopish");
  n->set_domain("com.example");
  onnx::AttributeProto* body = n->add_attribute();
  body->set_name("body");
  body->set_type(onnx::AttributeProto::GRAPH);
  *body->mutable_g() = minimal_model().graph();
  expect_error([&] { graph_from_onnx_bytes(serialize(m), "loop.onnx"); },
               {"model 'loop.onnx'", "Loopish node 'id'", "'body'", "GRAPH"});
}

TEST_F(OnnxTest, CheckerRejectionIsReportedOnOneLine) {
  onnx::ModelProto m = minimal_model();
  m.mutable_graph()->mutable_node(0)->add_input("x");  // Identity takes one input
  write("bad.onnx", serialize(m));
  expect_error([&] { load_onnx(path("bad.onnx")); }, {path("bad.onnx"), "checker", "input size 2"});
  // A value read before anything defines it is refused before the checker and libonnx's own
  // passes see the model (its IR import crashed on a graph output nothing defines).
  m = minimal_model();
  m.mutable_graph()->mutable_node(0)->set_input(0, "not_defined_anywhere");
  write("bad.onnx", serialize(m));
  expect_error([&] { load_onnx(path("bad.onnx")); },
               {path("bad.onnx"), "Identity node 'id' reads 'not_defined_anywhere'"});
}

TEST_F(OnnxTest, ExportOfAnOutputWithoutShapeSaysWhatToDo) {
  Graph g = make_small_cnn();
  g.outputs()[0].has_shape = false;
  expect_error([&] { save_onnx(g, path("m.onnx")); }, {"small_cnn", "'logits'", "infer_shapes"});
  infer_shapes(g);
  EXPECT_NO_THROW(save_onnx(g, path("m.onnx")));
}

TEST_F(OnnxTest, ExportOfATypeOnnxLacksNamesTheInitializer) {
  Graph g = make_small_cnn();
  g.add_initializer("complex.weight", at::randn({2}, at::kComplexFloat));
  expect_error([&] { graph_to_onnx_bytes(g); }, {"small_cnn", "'complex.weight'"});
  expect_error([&] { save_onnx(g, path("c.onnx")); }, {"'complex.weight'"});
  EXPECT_FALSE(fs::exists(path("c.onnx")));
}

TEST_F(OnnxTest, SaveLeavesNoTemporaryFilesAndReportsUnwritablePaths) {
  save_onnx(make_small_cnn(), path("m.onnx"));
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir_)) files.push_back(e.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"m.onnx"});
  // Missing folders are created; a folder that cannot exist (under a file) is an error.
  save_onnx(make_small_cnn(), path("new/folder/m.onnx"));
  EXPECT_TRUE(fs::exists(path("new/folder/m.onnx")));
  const std::string nowhere = path("m.onnx/sub/m.onnx");
  expect_error([&] { save_onnx(make_small_cnn(), nowhere); }, {nowhere});
}

TEST_F(OnnxTest, TensorProtoFileRoundTripAndErrors) {
  onnx::TensorProto t;
  t.set_name("input_0");
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(2);
  t.add_float_data(0.5f);
  t.add_float_data(-1.0f);
  std::string bytes;
  ASSERT_TRUE(t.SerializeToString(&bytes));
  write("input_0.pb", bytes);
  EXPECT_TRUE(at::equal(tensor_from_onnx_proto_file(path("input_0.pb")),
                        at::tensor(std::vector<float>{0.5f, -1.0f})));
  expect_error([&] { tensor_from_onnx_proto_file(path("missing.pb")); }, {path("missing.pb")});
  write("bad.pb", "\xff\xff\xff");
  expect_error([&] { tensor_from_onnx_proto_file(path("bad.pb")); }, {path("bad.pb")});
}

// ---- validation of every model that enters (issue 22) ------------------------------------------

// Each broken model is refused as it loads, on one line naming the problem; before validation
// some of them passed `info` and `bench` and crashed `eval` or an agent (SIGFPE, SIGSEGV).
TEST_F(OnnxTest, HostileModelsAreRefusedAsTheyLoad) {
  ASSERT_NO_THROW(graph_from_onnx_bytes(test_util::hostile_base_bytes(), "base"));
  for (const test_util::HostileModel& h : test_util::hostile_models()) {
    SCOPED_TRACE(h.name);
    expect_error([&] { graph_from_onnx_bytes(h.bytes, "hostile.onnx"); }, {"hostile.onnx", h.piece});
  }
}

// The same QDQ pair with a sound scale loads and runs; the check is on the value, not the op.
TEST_F(OnnxTest, AQdqModelWithSoundScalesLoads) {
  onnx::ModelProto m = parse_model(test_util::hostile_base_bytes());
  test_util::hostile_detail::add_qdq(m, 0.02f);
  const Graph g = graph_from_onnx_bytes(serialize(m), "qdq.onnx");
  Executor exec(g);
  const std::vector<at::Tensor> out = exec.run({at::rand({2, 1, 28, 28})}, RunOptions{});
  EXPECT_TRUE(at::isfinite(out[0]).all().item<bool>());
}
