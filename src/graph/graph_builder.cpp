#include "edgeforge/graph_builder.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "edgeforge/error.h"

namespace edgeforge {

namespace {
// ONNX TensorProto.DataType codes, for Cast's "to" attribute.
int64_t onnx_element_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return 1;
    case at::kByte: return 2;
    case at::kChar: return 3;
    case at::kShort: return 5;
    case at::kInt: return 6;
    case at::kLong: return 7;
    case at::kBool: return 9;
    case at::kHalf: return 10;
    case at::kDouble: return 11;
    case at::kBFloat16: return 16;
    default: break;
  }
  EF_ASSERT(false, "no ONNX element type for ", c10::toString(type));
  return 0;
}
}  // namespace

at::Generator seeded_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

GraphBuilder::GraphBuilder(Graph& graph, at::Generator generator)
    : graph_(&graph), generator_(std::move(generator)) {
  EF_ASSERT(generator_.defined(), "GraphBuilder needs a seeded generator");
  for (const ValueInfo& v : graph.inputs()) value_names_.insert(v.name);
  for (const auto& [name, t] : graph.initializers()) value_names_.insert(name);
  for (const Node& n : graph.nodes()) {
    node_names_.insert(n.name);
    for (const std::string& o : n.outputs) value_names_.insert(o);
  }
}

// ---- scopes ----

GraphBuilder::Scope::Scope(Scope&& other) noexcept
    : builder_(other.builder_), saved_(other.saved_) {
  other.builder_ = nullptr;
}

GraphBuilder::Scope::~Scope() {
  if (builder_ != nullptr) builder_->scope_.resize(saved_);
}

GraphBuilder::Scope GraphBuilder::scope(const std::string& name) {
  EF_ASSERT(!name.empty(), "empty scope name");
  const size_t saved = scope_.size();
  scope_ = scoped(name);
  return Scope(this, saved);
}

std::string GraphBuilder::scoped(const std::string& name) const {
  return scope_.empty() ? name : scope_ + "." + name;
}

// A taken name is an Error rather than an assert: a strategy emitting into a graph loaded from
// a user's file can meet that file's names.
void GraphBuilder::claim_node_name(const std::string& name) {
  EF_ASSERT(!name.empty(), "empty node name");
  EF_CHECK(node_names_.insert(name).second, "graph '", graph_->name(), "': a node named '", name,
           "' already exists");
}

void GraphBuilder::claim_value_name(const std::string& name) {
  EF_ASSERT(!name.empty(), "empty value name");
  EF_CHECK(value_names_.insert(name).second, "graph '", graph_->name(), "': a value named '",
           name, "' already exists");
}

// ---- graph interface ----

std::string GraphBuilder::input(const std::string& name, at::ScalarType dtype,
                                std::vector<Dim> shape) {
  claim_value_name(name);
  graph_->add_input({name, dtype, std::move(shape)});
  return name;
}

void GraphBuilder::output(const std::string& value, at::ScalarType dtype,
                          std::vector<Dim> shape) {
  EF_ASSERT(value_names_.count(value) != 0, "graph output '", value, "' is never defined");
  graph_->add_output({value, dtype, std::move(shape)});
}

std::string GraphBuilder::rename_output(const std::string& value, const std::string& new_name) {
  // Only the newest node's outputs can be renamed: no node reads them yet, so no input needs
  // rewriting.
  EF_ASSERT(!graph_->nodes().empty(), "rename_output before any node");
  Node& last = graph_->nodes().back();
  auto it = std::find(last.outputs.begin(), last.outputs.end(), value);
  EF_ASSERT(it != last.outputs.end(), "rename_output: '", value, "' is not an output of ",
            last.describe());
  for (const ValueInfo& v : graph_->outputs())
    EF_ASSERT(v.name != value, "rename_output: '", value, "' is already a graph output");
  claim_value_name(new_name);
  value_names_.erase(value);
  *it = new_name;
  return new_name;
}

// ---- weights and constants ----

std::string GraphBuilder::parameter(const std::string& name, at::Tensor value) {
  const std::string full = scoped(name);
  claim_value_name(full);
  graph_->add_initializer(full, std::move(value));
  return full;
}

std::string GraphBuilder::constant(const std::string& name, at::Tensor value) {
  const std::string full = scoped(name);
  claim_node_name(full);
  claim_value_name(full);
  graph_->add_node(Node("Constant", full, {}, {full}).set("value", std::move(value)));
  return full;
}

std::string GraphBuilder::scalar(const std::string& name, float value) {
  return constant(name, at::scalar_tensor(value, at::kFloat));
}

std::string GraphBuilder::ints(const std::string& name, const std::vector<int64_t>& values) {
  return constant(name, at::tensor(values, at::kLong));
}

at::Tensor GraphBuilder::draw(std::vector<int64_t> shape, const WeightInit& init, int64_t fan_in,
                              int64_t fan_out) {
  at::Tensor w = at::empty(shape, at::kFloat);
  switch (init.kind) {
    case WeightInit::Kind::kKaimingNormalFanOut:
      w.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_out)), generator_);
      break;
    case WeightInit::Kind::kLinearUniform: {
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      w.uniform_(-bound, bound, generator_);
      break;
    }
    case WeightInit::Kind::kNormal:
      EF_ASSERT(init.std > 0.0f, "WeightInit::normal needs a positive std");
      w.normal_(0.0, init.std, generator_);
      break;
  }
  return w;
}

// ---- ops ----

Node& GraphBuilder::op(const std::string& op_type, const std::string& name,
                       std::vector<std::string> inputs, int num_outputs) {
  const std::string full = scoped(name);
  claim_node_name(full);
  for (const std::string& in : inputs)
    EF_ASSERT(in.empty() || value_names_.count(in) != 0, full, " reads undefined value '", in,
              "'");
  std::vector<std::string> outputs;
  for (int k = 0; k < num_outputs; ++k) {
    outputs.push_back(full + ".out" + (k == 0 ? std::string() : std::to_string(k)));
    claim_value_name(outputs.back());
  }
  return graph_->add_node(Node(op_type, full, std::move(inputs), std::move(outputs)));
}

std::string GraphBuilder::conv(const std::string& name, const std::string& x, int64_t in_ch,
                               int64_t out_ch, int64_t kernel, int64_t stride, int64_t pad,
                               int64_t groups, bool bias, WeightInit init) {
  EF_ASSERT(groups >= 1 && in_ch % groups == 0 && out_ch % groups == 0, scoped(name),
            ": channels ", in_ch, "->", out_ch, " do not split into ", groups, " groups");
  // PyTorch's fans for a conv weight [out, in/groups, k, k]: fan_out ignores the groups.
  const int64_t fan_in = in_ch / groups * kernel * kernel;
  const int64_t fan_out = out_ch * kernel * kernel;
  std::vector<std::string> inputs = {
      x, parameter(name + ".weight",
                   draw({out_ch, in_ch / groups, kernel, kernel}, init, fan_in, fan_out))};
  if (bias) {
    at::Tensor b = init.kind == WeightInit::Kind::kLinearUniform
                       ? draw({out_ch}, init, fan_in, fan_out)
                       : at::zeros({out_ch}, at::kFloat);
    inputs.push_back(parameter(name + ".bias", b));
  }
  Node& n = op("Conv", name, std::move(inputs));
  n.set("kernel_shape", std::vector<int64_t>{kernel, kernel})
      .set("strides", std::vector<int64_t>{stride, stride})
      .set("pads", std::vector<int64_t>{pad, pad, pad, pad})
      .set("dilations", std::vector<int64_t>{1, 1})
      .set("group", groups);
  return n.outputs[0];
}

std::string GraphBuilder::batch_norm(const std::string& name, const std::string& x,
                                     int64_t channels, bool zero_gamma, float epsilon) {
  std::vector<std::string> inputs = {
      x,
      parameter(name + ".weight", zero_gamma ? at::zeros({channels}, at::kFloat)
                                             : at::ones({channels}, at::kFloat)),
      parameter(name + ".bias", at::zeros({channels}, at::kFloat)),
      parameter(name + ".running_mean", at::zeros({channels}, at::kFloat)),
      parameter(name + ".running_var", at::ones({channels}, at::kFloat))};
  Node& n = op("BatchNormalization", name, std::move(inputs));
  // ONNX momentum weighs the running value: 0.9 is PyTorch's momentum 0.1.
  n.set("epsilon", epsilon).set("momentum", 0.9f);
  return n.outputs[0];
}

std::string GraphBuilder::gemm(const std::string& name, const std::string& x, int64_t in,
                               int64_t out, WeightInit init, bool bias) {
  std::vector<std::string> inputs = {x, parameter(name + ".weight", draw({out, in}, init, in, out))};
  if (bias) {
    at::Tensor b = init.kind == WeightInit::Kind::kLinearUniform ? draw({out}, init, in, out)
                                                                 : at::zeros({out}, at::kFloat);
    inputs.push_back(parameter(name + ".bias", b));
  }
  Node& n = op("Gemm", name, std::move(inputs));
  n.set("alpha", 1.0f).set("beta", 1.0f).set("transA", int64_t{0}).set("transB", int64_t{1});
  return n.outputs[0];
}

std::string GraphBuilder::linear(const std::string& name, const std::string& x, int64_t in,
                                 int64_t out, WeightInit init) {
  // Stored [in, out] as MatMul needs it, drawn with the fans of a [out, in] linear layer.
  const std::string w = parameter(name + ".weight", draw({in, out}, init, in, out));
  at::Tensor b = init.kind == WeightInit::Kind::kLinearUniform ? draw({out}, init, in, out)
                                                               : at::zeros({out}, at::kFloat);
  const std::string bias = parameter(name + ".bias", b);
  const std::string y = matmul(name + ".matmul", x, w);
  return rename_output(add(name + ".bias_add", y, bias), scoped(name) + ".out");
}

std::string GraphBuilder::embedding(const std::string& name, const std::string& ids, int64_t num,
                                    int64_t dim, WeightInit init) {
  const std::string table = parameter(name + ".weight", draw({num, dim}, init, dim, num));
  return gather(name, table, ids, 0);
}

std::string GraphBuilder::layer_norm(const std::string& name, const std::string& x, int64_t dim,
                                     float epsilon) {
  std::vector<std::string> inputs = {x, parameter(name + ".weight", at::ones({dim}, at::kFloat)),
                                     parameter(name + ".bias", at::zeros({dim}, at::kFloat))};
  Node& n = op("LayerNormalization", name, std::move(inputs));
  n.set("axis", int64_t{-1}).set("epsilon", epsilon).set("stash_type", int64_t{1});
  return n.outputs[0];
}

std::string GraphBuilder::gelu(const std::string& name, const std::string& x) {
  std::string y;
  {
    auto s = scope(name);
    // The same node sequence torch.onnx emits for the exact (erf) GELU.
    const std::string scaled = div("div", x, scalar("sqrt2", static_cast<float>(std::sqrt(2.0))));
    const std::string e = erf("erf", scaled);
    const std::string one_plus = add("add_one", e, scalar("one", 1.0f));
    y = mul("mul_half", mul("mul", x, one_plus), scalar("half", 0.5f));
  }
  return rename_output(y, scoped(name) + ".out");
}

std::string GraphBuilder::dropout(const std::string& name, const std::string& x, float ratio) {
  const std::string r = scalar(name + ".ratio", ratio);
  return op("Dropout", name, {x, r}).outputs[0];
}

std::string GraphBuilder::relu(const std::string& name, const std::string& x) {
  return op("Relu", name, {x}).outputs[0];
}
std::string GraphBuilder::tanh(const std::string& name, const std::string& x) {
  return op("Tanh", name, {x}).outputs[0];
}
std::string GraphBuilder::erf(const std::string& name, const std::string& x) {
  return op("Erf", name, {x}).outputs[0];
}
std::string GraphBuilder::add(const std::string& name, const std::string& a,
                              const std::string& b) {
  return op("Add", name, {a, b}).outputs[0];
}
std::string GraphBuilder::sub(const std::string& name, const std::string& a,
                              const std::string& b) {
  return op("Sub", name, {a, b}).outputs[0];
}
std::string GraphBuilder::mul(const std::string& name, const std::string& a,
                              const std::string& b) {
  return op("Mul", name, {a, b}).outputs[0];
}
std::string GraphBuilder::div(const std::string& name, const std::string& a,
                              const std::string& b) {
  return op("Div", name, {a, b}).outputs[0];
}
std::string GraphBuilder::matmul(const std::string& name, const std::string& a,
                                 const std::string& b) {
  return op("MatMul", name, {a, b}).outputs[0];
}

std::string GraphBuilder::softmax(const std::string& name, const std::string& x, int64_t axis) {
  return op("Softmax", name, {x}).set("axis", axis).outputs[0];
}

std::string GraphBuilder::reshape(const std::string& name, const std::string& x,
                                  const std::vector<int64_t>& shape) {
  const std::string s = ints(name + ".shape", shape);
  return op("Reshape", name, {x, s}).set("allowzero", int64_t{0}).outputs[0];
}

std::string GraphBuilder::transpose(const std::string& name, const std::string& x,
                                    const std::vector<int64_t>& perm) {
  return op("Transpose", name, {x}).set("perm", perm).outputs[0];
}

std::string GraphBuilder::gather(const std::string& name, const std::string& data,
                                 const std::string& indices, int64_t axis) {
  return op("Gather", name, {data, indices}).set("axis", axis).outputs[0];
}

std::string GraphBuilder::unsqueeze(const std::string& name, const std::string& x,
                                    const std::vector<int64_t>& axes) {
  const std::string a = ints(name + ".axes", axes);
  return op("Unsqueeze", name, {x, a}).outputs[0];
}

std::string GraphBuilder::cast(const std::string& name, const std::string& x, at::ScalarType to) {
  return op("Cast", name, {x}).set("to", onnx_element_type(to)).outputs[0];
}

std::string GraphBuilder::global_average_pool(const std::string& name, const std::string& x) {
  return op("GlobalAveragePool", name, {x}).outputs[0];
}

std::string GraphBuilder::flatten(const std::string& name, const std::string& x, int64_t axis) {
  return op("Flatten", name, {x}).set("axis", axis).outputs[0];
}

std::string GraphBuilder::shape(const std::string& name, const std::string& x, int64_t start,
                                int64_t end) {
  return op("Shape", name, {x}).set("start", start).set("end", end).outputs[0];
}

std::string GraphBuilder::range(const std::string& name, const std::string& start,
                                const std::string& limit, const std::string& delta) {
  return op("Range", name, {start, limit, delta}).outputs[0];
}

std::string GraphBuilder::slice(const std::string& name, const std::string& data,
                                const std::string& starts, const std::string& ends,
                                const std::string& axes) {
  return op("Slice", name, {data, starts, ends, axes}).outputs[0];
}

}  // namespace edgeforge
