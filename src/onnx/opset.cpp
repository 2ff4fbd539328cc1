#include "opset.h"

#include <ATen/ATen.h>
#include <onnx/defs/schema.h>

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "edgeforge/error.h"
#include "onnx_tensor.h"

namespace edgeforge::onnx_detail {

namespace {

constexpr int64_t kTargetOpset = 17;
constexpr int64_t kTargetIrVersion = 8;  // the newest IR version ONNX 1.12's checker takes
constexpr const char* kHiddenOpAttr = "edgeforge_hidden_op";

std::string describe(const onnx::NodeProto& node, int index, int64_t opset) {
  const std::string at = " (opset " + std::to_string(opset) + ")";
  if (!node.name().empty()) return "node '" + node.name() + "' (" + node.op_type() + at + ")";
  return node.op_type() + " node #" + std::to_string(index) + at;
}

// The model's graph as a list being rebuilt: fresh value names, constants by name.
class Rewrite {
 public:
  Rewrite(onnx::ModelProto& model, std::string label) : model_(model), label_(std::move(label)) {
    const onnx::GraphProto& g = model.graph();
    for (const onnx::ValueInfoProto& v : g.input()) names_.insert(v.name());
    for (const onnx::ValueInfoProto& v : g.output()) names_.insert(v.name());
    for (const onnx::TensorProto& t : g.initializer()) {
      names_.insert(t.name());
      constants_[t.name()] = &t;
    }
    for (const onnx::NodeProto& n : g.node()) {
      for (const std::string& o : n.output()) names_.insert(o);
      if (n.op_type() == "Constant" && n.output_size() == 1)
        for (const onnx::AttributeProto& a : n.attribute())
          if (a.name() == "value" && a.has_t()) constants_[n.output(0)] = &a.t();
    }
  }

  const std::string& label() const { return label_; }

  // A value name no other value has, derived from `base`.
  std::string fresh(const std::string& base) {
    for (int i = 0;; ++i) {
      std::string name = base + "__ef" + std::to_string(i);
      if (names_.insert(name).second) return name;
    }
  }

  // The integers of constant `value` (an initializer or a Constant node's output), or nullopt
  // when it is computed at run time.
  std::optional<std::vector<int64_t>> constant_ints(const std::string& value,
                                                    const std::string& where) const {
    auto it = constants_.find(value);
    if (it == constants_.end()) return std::nullopt;
    const at::Tensor t = tensor_from_proto(*it->second, where + ": input '" + value + "'");
    EF_CHECK(!at::isFloatingType(t.scalar_type()), where, ": input '", value,
             "' holds floats, expected integers");
    const at::Tensor v = t.to(at::kLong).contiguous();
    return std::vector<int64_t>(v.data_ptr<int64_t>(), v.data_ptr<int64_t>() + v.numel());
  }

  // A new scalar float initializer holding `value`.
  std::string scalar(float value, const std::string& base) {
    const std::string name = fresh(base);
    onnx::TensorProto* t = model_.mutable_graph()->add_initializer();
    tensor_to_proto(at::full({}, value, at::kFloat), name, t, label_ + ": " + name);
    return name;
  }

  // Appends a node of `op_type` reading `inputs`, writing `output` (fresh when empty).
  std::string emit(const std::string& op_type, const std::vector<std::string>& inputs,
                   std::string output, const std::string& name) {
    if (output.empty()) output = fresh(name.empty() ? op_type : name);
    onnx::NodeProto& n = nodes_.emplace_back();
    n.set_op_type(op_type);
    if (!name.empty()) n.set_name(name + "/" + op_type + std::to_string(nodes_.size()));
    for (const std::string& i : inputs) n.add_input(i);
    n.add_output(output);
    return output;
  }

  void keep(const onnx::NodeProto& node) { nodes_.push_back(node); }

  // Replaces the graph's nodes by the ones emitted and kept, in order.
  void finish() {
    auto* nodes = model_.mutable_graph()->mutable_node();
    nodes->Clear();
    for (onnx::NodeProto& n : nodes_) *nodes->Add() = std::move(n);
  }

 private:
  onnx::ModelProto& model_;
  std::string label_;
  std::set<std::string> names_;
  std::map<std::string, const onnx::TensorProto*> constants_;
  std::vector<onnx::NodeProto> nodes_;
};

const onnx::AttributeProto* find_attr(const onnx::NodeProto& node, const std::string& name) {
  for (const onnx::AttributeProto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

void drop_attr(onnx::NodeProto& node, const std::string& name) {
  auto* attrs = node.mutable_attribute();
  for (int i = attrs->size() - 1; i >= 0; --i)
    if (attrs->Get(i).name() == name) attrs->DeleteSubrange(i, 1);
}

int64_t int_attr(const onnx::NodeProto& node, const std::string& name, int64_t fallback) {
  const onnx::AttributeProto* a = find_attr(node, name);
  return a == nullptr ? fallback : a->i();
}

std::string string_attr(const onnx::NodeProto& node, const std::string& name,
                        const std::string& fallback) {
  const onnx::AttributeProto* a = find_attr(node, name);
  return a == nullptr ? fallback : a->s();
}

void set_ints_attr(onnx::NodeProto& node, const std::string& name,
                   const std::vector<int64_t>& values) {
  drop_attr(node, name);
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void set_int_attr(onnx::NodeProto& node, const std::string& name, int64_t value) {
  drop_attr(node, name);
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

bool has_input(const onnx::NodeProto& node, int index) {
  return node.input_size() > index && !node.input(index).empty();
}

// Drops input `index` and every omitted input after it.
void drop_input(onnx::NodeProto& node, int index) {
  auto* inputs = node.mutable_input();
  inputs->DeleteSubrange(index, 1);
  while (!inputs->empty() && inputs->Get(inputs->size() - 1).empty())
    inputs->DeleteSubrange(inputs->size() - 1, 1);
}

const std::set<std::string> kReducesWithAxesInput = {
    "ReduceL1",  "ReduceL2",  "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceProd",  "ReduceSumSquare"};

// Reduce* of opset 18: the axes input becomes the attribute of opset 13; no axes with
// noop_with_empty_axes=1 is the identity.
void reduce_axes_to_attribute(Rewrite& rw, onnx::NodeProto node, const std::string& where) {
  const bool noop = int_attr(node, "noop_with_empty_axes", 0) != 0;
  drop_attr(node, "noop_with_empty_axes");
  std::vector<int64_t> axes;
  if (has_input(node, 1)) {
    const auto values = rw.constant_ints(node.input(1), where);
    EF_CHECK(values.has_value(), where, ": its axes input '", node.input(1),
             "' is computed at run time; edgeforge reads a ", node.op_type(),
             " of this opset only with constant axes");
    axes = *values;
  }
  if (node.input_size() > 1) drop_input(node, 1);
  if (axes.empty() && noop) {
    onnx::NodeProto identity;
    identity.set_name(node.name());
    identity.set_op_type("Identity");
    identity.add_input(node.input(0));
    identity.add_output(node.output(0));
    rw.keep(identity);
    return;
  }
  if (!axes.empty()) set_ints_attr(node, "axes", axes);
  rw.keep(node);
}

// Gelu of opset 20 as the formulas PyTorch exports for it, which the inference plan fuses.
void expand_gelu(Rewrite& rw, const onnx::NodeProto& node, const std::string& where) {
  const std::string approximate = string_attr(node, "approximate", "none");
  const std::string& x = node.input(0);
  const std::string& y = node.output(0);
  const std::string base = node.name().empty() ? y : node.name();
  std::string inner;
  if (approximate == "none") {  // 0.5 x (1 + erf(x / sqrt 2))
    inner = rw.emit("Div", {x, rw.scalar(std::sqrt(2.0f), base + "_sqrt2")}, "", base);
    inner = rw.emit("Erf", {inner}, "", base);
  } else if (approximate == "tanh") {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    std::string cube = rw.emit("Mul", {x, x}, "", base);
    cube = rw.emit("Mul", {cube, x}, "", base);
    cube = rw.emit("Mul", {cube, rw.scalar(0.044715f, base + "_c")}, "", base);
    inner = rw.emit("Add", {x, cube}, "", base);
    inner = rw.emit("Mul", {inner, rw.scalar(std::sqrt(2.0f / static_cast<float>(M_PI)),
                                             base + "_sqrt2pi")},
                    "", base);
    inner = rw.emit("Tanh", {inner}, "", base);
  } else {
    throw Error(where + ": approximate '" + approximate + "' is not 'none' or 'tanh'");
  }
  inner = rw.emit("Add", {inner, rw.scalar(1.0f, base + "_one")}, "", base);
  inner = rw.emit("Mul", {x, inner}, "", base);
  rw.emit("Mul", {inner, rw.scalar(0.5f, base + "_half")}, y, base);
}

// The rewrite of one node of opset `from` (18 to 21) into opset 17, appended to `rw`.
void node_to_opset17(Rewrite& rw, onnx::NodeProto node, int index, int64_t from) {
  const std::string where = rw.label() + ": " + describe(node, index, from);
  const std::string& op = node.op_type();
  auto refuse_attr = [&](const char* attr, const std::string& why) {
    throw Error(where + ": attribute " + attr + " " + why + " has no opset-17 form");
  };
  if (kReducesWithAxesInput.count(op)) return reduce_axes_to_attribute(rw, node, where);
  if (op == "Gelu") return expand_gelu(rw, node, where);
  if (op == "Mish") {  // x tanh(softplus(x))
    const std::string base = node.name().empty() ? node.output(0) : node.name();
    std::string t = rw.emit("Softplus", {node.input(0)}, "", base);
    t = rw.emit("Tanh", {t}, "", base);
    rw.emit("Mul", {node.input(0), t}, node.output(0), base);
    return;
  }
  if (op == "Split") {
    // opset 18's num_outputs equals the output count; opset 17 splits evenly into as many.
    drop_attr(node, "num_outputs");
  } else if (op == "Pad") {
    if (has_input(node, 3)) throw Error(where + ": its axes input has no opset-17 form");
    if (node.input_size() > 3) drop_input(node, 3);
    const std::string mode = string_attr(node, "mode", "constant");
    if (mode == "wrap") refuse_attr("mode", "'wrap'");
  } else if (op == "Resize") {
    if (int_attr(node, "antialias", 0) != 0) refuse_attr("antialias", "1");
    if (find_attr(node, "axes") != nullptr) refuse_attr("axes", "(set)");
    if (string_attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch")
      refuse_attr("keep_aspect_ratio_policy", "'" + string_attr(node, "keep_aspect_ratio_policy", "") + "'");
    if (string_attr(node, "coordinate_transformation_mode", "") == "half_pixel_symmetric")
      refuse_attr("coordinate_transformation_mode", "'half_pixel_symmetric'");
    for (const char* a : {"antialias", "axes", "keep_aspect_ratio_policy"}) drop_attr(node, a);
  } else if (op == "ScatterElements" || op == "ScatterND") {
    const std::string reduction = string_attr(node, "reduction", "none");
    if (reduction == "max" || reduction == "min") refuse_attr("reduction", "'" + reduction + "'");
  } else if (op == "AveragePool") {
    if (const onnx::AttributeProto* d = find_attr(node, "dilations"))
      for (int64_t v : d->ints())
        if (v != 1) refuse_attr("dilations", "other than 1");
    drop_attr(node, "dilations");
  } else if (op == "LpPool") {
    if (int_attr(node, "ceil_mode", 0) != 0) refuse_attr("ceil_mode", "1");
    drop_attr(node, "ceil_mode");
  } else if (op == "Cast" || op == "CastLike") {
    drop_attr(node, "saturate");  // only float8 targets read it, which edgeforge refuses anyway
  } else if (op == "QuantizeLinear" || op == "DequantizeLinear") {
    if (int_attr(node, "block_size", 0) != 0) refuse_attr("block_size", "(blocked quantization)");
    const int64_t dtype = int_attr(node, "output_dtype", 0);
    if (dtype != 0 && dtype != onnx::TensorProto::UINT8 && !has_input(node, 2))
      refuse_attr("output_dtype", "without a zero point");
    for (const char* a : {"block_size", "output_dtype", "saturate"}) drop_attr(node, a);
  } else if (op == "DFT") {
    // opset 20 reads the axis from input 2 (default -2); opset 17 from an attribute.
    int64_t axis = -2;
    if (has_input(node, 2)) {
      const auto values = rw.constant_ints(node.input(2), where);
      EF_CHECK(values && values->size() == 1, where,
               ": its axis input must be a constant scalar to be read at opset 17");
      axis = (*values)[0];
    }
    if (node.input_size() > 2) drop_input(node, 2);
    set_int_attr(node, "axis", axis);
  } else if (op == "GridSample") {
    const std::string mode = string_attr(node, "mode", "linear");
    const std::string old = mode == "linear" ? "bilinear" : mode == "cubic" ? "bicubic" : mode;
    drop_attr(node, "mode");
    onnx::AttributeProto* a = node.add_attribute();
    a->set_name("mode");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(old);
  }
  if (onnx::OpSchemaRegistry::Schema(op, static_cast<int>(kTargetOpset), "") == nullptr)
    throw Error(where + ": has no opset-17 form edgeforge can run (re-export the model with "
                        "opset 17)");
  rw.keep(node);
}

const std::set<std::string> kSoftmaxFamily = {"Softmax", "LogSoftmax", "Hardmax"};

// The rank of `value` as the model's inferred value_info (or its inputs) records it, or -1.
int rank_of(const onnx::ModelProto& model, const std::string& value) {
  auto rank = [](const onnx::ValueInfoProto& v) {
    return v.type().tensor_type().has_shape() ? v.type().tensor_type().shape().dim_size() : -1;
  };
  for (const onnx::ValueInfoProto& v : model.graph().value_info())
    if (v.name() == value) return rank(v);
  for (const onnx::ValueInfoProto& v : model.graph().input())
    if (v.name() == value) return rank(v);
  return -1;
}

// PRelu before opset 7 applies a slope of C values per channel (axis 1); from opset 7 the slope
// broadcasts from the right. A constant slope of shape [C] on an input of known rank r > 2
// becomes [C, 1, ..., 1] (a copy, in case other nodes read the original).
void per_channel_slope(onnx::ModelProto& model, onnx::NodeProto& node) {
  if (node.input_size() < 2) return;
  const int rank = rank_of(model, node.input(0));
  if (rank <= 2) return;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    if (t.name() != node.input(1)) continue;
    if (t.dims_size() != 1 || t.dims(0) <= 1) return;
    onnx::TensorProto copy = t;
    copy.set_name(t.name() + "__ef_per_channel");
    for (int i = 2; i < rank; ++i) copy.add_dims(1);
    node.set_input(1, copy.name());
    if (model.ir_version() < 4) {  // before IR 4 every initializer is a graph input too
      onnx::ValueInfoProto* input = model.mutable_graph()->add_input();
      input->set_name(copy.name());
      auto* type = input->mutable_type()->mutable_tensor_type();
      type->set_elem_type(copy.data_type());
      for (int64_t d : copy.dims()) type->mutable_shape()->add_dim()->set_dim_value(d);
    }
    *model.mutable_graph()->add_initializer() = std::move(copy);
    return;
  }
}

}  // namespace

void rewrite_to_opset17(onnx::ModelProto& model, int64_t from, const std::string& label) {
  Rewrite rw(model, label);
  const onnx::GraphProto& g = model.graph();
  for (int i = 0; i < g.node_size(); ++i) {
    if (is_default_domain(g.node(i).domain()))
      node_to_opset17(rw, g.node(i), i, from);
    else
      rw.keep(g.node(i));
  }
  rw.finish();
  for (onnx::OperatorSetIdProto& o : *model.mutable_opset_import())
    if (is_default_domain(o.domain())) o.set_version(kTargetOpset);
  if (model.ir_version() > kTargetIrVersion) model.set_ir_version(kTargetIrVersion);
}

int hide_unconvertible_nodes(onnx::ModelProto& model, int64_t from, const std::string& label) {
  int hidden = 0;
  for (int i = 0; i < model.graph().node_size(); ++i) {
    onnx::NodeProto& node = *model.mutable_graph()->mutable_node(i);
    if (!is_default_domain(node.domain())) continue;
    const std::string where = label + ": " + describe(node, i, from);
    bool hide = false;
    if (node.op_type() == "ConstantFill") {
      // ONNX 1.12's converter loops forever on this experimental op.
      EF_CHECK(node.input_size() == 1 && int_attr(node, "input_as_shape", 0) == 1, where,
               ": only the form with its shape as input (input_as_shape=1) is supported");
      hide = true;
    } else if (kSoftmaxFamily.count(node.op_type()) && from < 13) {
      // Before opset 13 these flatten their input at `axis`; the converter needs the rank for
      // any axis but the last, which an export with computed reshapes does not record.
      const int64_t axis = int_attr(node, "axis", 1);
      hide = axis != -1 && rank_of(model, node.input(0)) < 0;
    }
    if (node.op_type() == "PRelu" && from < 7) per_channel_slope(model, node);
    if (!hide) continue;
    onnx::AttributeProto* a = node.add_attribute();
    a->set_name(kHiddenOpAttr);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(node.op_type());
    node.set_op_type("Identity");
    node.mutable_input()->DeleteSubrange(1, node.input_size() - 1);
    ++hidden;
  }
  return hidden;
}

void restore_hidden_nodes(onnx::ModelProto& model, const std::string& label) {
  Rewrite rw(model, label);
  const onnx::GraphProto& g = model.graph();
  for (int i = 0; i < g.node_size(); ++i) {
    onnx::NodeProto node = g.node(i);
    const onnx::AttributeProto* hidden = find_attr(node, kHiddenOpAttr);
    if (hidden == nullptr) {
      rw.keep(node);
      continue;
    }
    const std::string op = hidden->s();
    const std::string where = label + ": " + describe(node, i, kTargetOpset);
    const std::string base = node.name().empty() ? node.output(0) : node.name();
    if (op == "ConstantFill") {  // ConstantOfShape of a one-element tensor of `dtype`
      const int64_t dtype = int_attr(node, "dtype", onnx::TensorProto::FLOAT);
      const auto type = scalar_type_from_onnx(static_cast<int32_t>(dtype));
      EF_CHECK(type.has_value(), where, ": ConstantFill's dtype ", dtype, " is not supported");
      EF_CHECK(find_attr(node, "extra_shape") == nullptr, where,
               ": ConstantFill's extra_shape is not supported");
      const onnx::AttributeProto* v = find_attr(node, "value");
      onnx::NodeProto out;
      out.set_name(node.name());
      out.set_op_type("ConstantOfShape");
      out.add_input(node.input(0));
      out.add_output(node.output(0));
      onnx::AttributeProto* value = out.add_attribute();
      value->set_name("value");
      value->set_type(onnx::AttributeProto::TENSOR);
      tensor_to_proto(at::full({1}, v == nullptr ? 0.0 : v->f(), at::TensorOptions(*type)), "",
                      value->mutable_t(), where);
      rw.keep(out);
      continue;
    }
    // Softmax, LogSoftmax, Hardmax of opset < 13: over a [prod(d < axis), prod(d >= axis)]
    // view of the input, reshaped back.
    const std::string& x = node.input(0);
    onnx::NodeProto flatten;
    flatten.set_op_type("Flatten");
    flatten.set_name(base + "/Flatten");
    flatten.add_input(x);
    const std::string flat = rw.fresh(base + "_2d");
    flatten.add_output(flat);
    set_int_attr(flatten, "axis", int_attr(node, "axis", 1));
    rw.keep(flatten);
    onnx::NodeProto op2d;
    op2d.set_op_type(op);
    op2d.set_name(node.name());
    op2d.add_input(flat);
    const std::string y2d = rw.fresh(base + "_y2d");
    op2d.add_output(y2d);
    set_int_attr(op2d, "axis", -1);
    rw.keep(op2d);
    const std::string shape = rw.emit("Shape", {x}, "", base);
    rw.emit("Reshape", {y2d, shape}, node.output(0), base);
  }
  rw.finish();
}

}  // namespace edgeforge::onnx_detail
