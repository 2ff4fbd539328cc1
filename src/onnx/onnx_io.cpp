#include "edgeforge/onnx_io.h"
#include "edgeforge/util.h"

#include <ATen/ATen.h>
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <algorithm>
#include <map>
#include <set>
#include <type_traits>

#include "edgeforge/build_info.h"
#include "edgeforge/error.h"
#include "edgeforge/fold_constants.h"
#include "edgeforge/graph_fuse.h"
#include "edgeforge/graph_simplify.h"
#include "edgeforge/ops.h"
#include "onnx_tensor.h"
#include "opset.h"

namespace edgeforge {

using onnx_detail::is_default_domain;
using onnx_detail::one_line;
using onnx_detail::onnx_type_name;
using onnx_detail::supported_onnx_types;

namespace {

constexpr int64_t kIrVersion = 8;
constexpr int64_t kOpsetVersion = 17;  // the highest opset ONNX 1.12 knows
constexpr const char* kProducerName = "edgeforge";

// The Graph keeps a node's domain but not the domain's opset version, so export picks the
// current one; the runtime only executes the default domain anyway.
int64_t domain_opset_version(const std::string& domain) {
  if (domain == "ai.onnx.ml") return 3;
  return 1;
}

std::string model_label(const std::string& what) { return "model '" + what + "'"; }

// Unnamed nodes are common in imported models; their index is the only handle a user has.
std::string node_label(const Node& node, int index) {
  if (!node.name.empty()) return node.describe();
  return node.op_type + " node #" + std::to_string(index);
}

// ---------------------------------------------------------------------------------------------
// Graph -> ModelProto

void value_info_to_proto(const ValueInfo& v, onnx::ValueInfoProto* proto,
                         const std::string& context) {
  std::optional<int32_t> type = onnx_detail::onnx_type_from_scalar(v.dtype);
  EF_CHECK(type.has_value(), context, ": value '", v.name, "' has type ",
           c10::toString(v.dtype), ", which has no ONNX equivalent (expected one of ",
           supported_onnx_types(), ")");
  proto->set_name(v.name);
  onnx::TypeProto_Tensor* tensor_type = proto->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(*type);
  if (!v.has_shape) return;
  onnx::TensorShapeProto* shape = tensor_type->mutable_shape();  // present even for a scalar
  for (const Dim& d : v.shape) {
    onnx::TensorShapeProto_Dimension* dim = shape->add_dim();
    if (d.is_fixed())
      dim->set_dim_value(d.size);
    else if (!d.param.empty())
      dim->set_dim_param(d.param);
  }
}

void attribute_to_proto(const std::string& key, const Attribute& value,
                        onnx::AttributeProto* proto, const std::string& context) {
  using onnx::AttributeProto;
  proto->set_name(key);
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          proto->set_type(AttributeProto::INT);
          proto->set_i(v);
        } else if constexpr (std::is_same_v<T, float>) {
          proto->set_type(AttributeProto::FLOAT);
          proto->set_f(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          proto->set_type(AttributeProto::STRING);
          proto->set_s(v);
        } else if constexpr (std::is_same_v<T, at::Tensor>) {
          proto->set_type(AttributeProto::TENSOR);
          onnx_detail::tensor_to_proto(v, "", proto->mutable_t(),
                                       context + ", attribute '" + key + "'");
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          proto->set_type(AttributeProto::INTS);
          for (int64_t x : v) proto->add_ints(x);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          proto->set_type(AttributeProto::FLOATS);
          for (float x : v) proto->add_floats(x);
        } else {
          static_assert(std::is_same_v<T, std::vector<std::string>>, "new Attribute type");
          proto->set_type(AttributeProto::STRINGS);
          for (const std::string& x : v) proto->add_strings(x);
        }
      },
      value);
}

onnx::ModelProto graph_to_model(const Graph& graph, bool with_value_info) {
  const std::string label = model_label(graph.name());
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name(kProducerName);
  model.set_producer_version(version());
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpsetVersion);
  std::set<std::string> domains;
  for (const Node& n : graph.nodes())
    if (!is_default_domain(n.domain)) domains.insert(n.domain);
  for (const std::string& d : domains) {
    onnx::OperatorSetIdProto* extra = model.add_opset_import();
    extra->set_domain(d);
    extra->set_version(domain_opset_version(d));
  }
  for (const auto& [key, value] : graph.metadata()) {
    onnx::StringStringEntryProto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }

  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(graph.name());
  for (const ValueInfo& v : graph.inputs()) value_info_to_proto(v, g->add_input(), label);
  for (const ValueInfo& v : graph.outputs()) value_info_to_proto(v, g->add_output(), label);
  for (const auto& [name, tensor] : graph.initializers())
    onnx_detail::tensor_to_proto(tensor, name, g->add_initializer(),
                                 label + ": initializer '" + name + "'");
  int index = 0;
  for (const Node& n : graph.nodes()) {
    onnx::NodeProto* node = g->add_node();
    node->set_op_type(n.op_type);
    if (!n.name.empty()) node->set_name(n.name);
    if (!is_default_domain(n.domain)) node->set_domain(n.domain);
    for (const std::string& in : n.inputs) node->add_input(in);
    for (const std::string& out : n.outputs) node->add_output(out);
    const std::string context = label + ": " + node_label(n, index++);
    for (const auto& [key, value] : n.attributes)
      attribute_to_proto(key, value, node->add_attribute(), context);
  }
  if (with_value_info) {
    // Inputs and outputs already carry their own type; a second entry would only disagree.
    std::set<std::string> declared;
    for (const ValueInfo& v : graph.inputs()) declared.insert(v.name);
    for (const ValueInfo& v : graph.outputs()) declared.insert(v.name);
    for (const auto& [name, v] : graph.value_info())
      if (!declared.count(name)) value_info_to_proto(v, g->add_value_info(), label);
  }
  return model;
}

// The libonnx 1.12 checker requires a shape on every graph input and output; its own message
// ("Field 'shape' of 'type' is required") does not say which value or what to do.
void check_io_shapes(const Graph& graph) {
  for (const auto* values : {&graph.inputs(), &graph.outputs()})
    for (const ValueInfo& v : *values)
      EF_CHECK(v.has_shape, model_label(graph.name()), ": graph ",
               values == &graph.inputs() ? "input" : "output", " '", v.name,
               "' has no shape (unknown rank), which ONNX 1.12 does not allow for graph inputs "
               "and outputs; give it one (infer_shapes fills unknown output shapes)");
}

void run_checker(const onnx::ModelProto& model, const std::string& label) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw Error(label + ": rejected by the ONNX checker: " + one_line(e.what()));
  }
}

std::string serialize_checked(const Graph& graph) {
  check_io_shapes(graph);
  const onnx::ModelProto model = graph_to_model(graph, true);
  run_checker(model, model_label(graph.name()));
  std::string bytes;
  EF_CHECK(model.SerializeToString(&bytes), model_label(graph.name()),
           ": protobuf serialisation failed (an ONNX file is limited to 2 GB)");
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// ModelProto -> Graph

// The ValueInfo of a tensor value, or nullopt with `problem` set for anything else.
std::optional<ValueInfo> value_info_from_proto(const onnx::ValueInfoProto& proto,
                                               std::string* problem) {
  if (!proto.has_type()) {
    *problem = "has no type";
    return std::nullopt;
  }
  if (!proto.type().has_tensor_type()) {
    *problem = "is not a tensor (sequence, map, optional and sparse values are not supported)";
    return std::nullopt;
  }
  const onnx::TypeProto_Tensor& tensor_type = proto.type().tensor_type();
  std::optional<at::ScalarType> dtype =
      onnx_detail::scalar_type_from_onnx(tensor_type.elem_type());
  if (!dtype) {
    *problem = "has element type " + onnx_type_name(tensor_type.elem_type()) +
               ", which is not supported (expected one of " + supported_onnx_types() + ")";
    return std::nullopt;
  }
  ValueInfo v;
  v.name = proto.name();
  v.dtype = *dtype;
  v.has_shape = tensor_type.has_shape();
  if (v.has_shape) {
    for (const onnx::TensorShapeProto_Dimension& d : tensor_type.shape().dim()) {
      if (d.has_dim_value() && d.dim_value() < 0) {
        *problem = "has a negative dimension (" + std::to_string(d.dim_value()) + ")";
        return std::nullopt;
      }
      if (d.has_dim_value())
        v.shape.emplace_back(d.dim_value());
      else if (d.has_dim_param())
        v.shape.push_back(Dim::symbol(d.dim_param()));
      else
        v.shape.emplace_back();
    }
  }
  return v;
}

ValueInfo graph_value_from_proto(const onnx::ValueInfoProto& proto, const char* role,
                                 const std::string& label) {
  std::string problem;
  std::optional<ValueInfo> v = value_info_from_proto(proto, &problem);
  EF_CHECK(v.has_value(), label, ": graph ", role, " '", proto.name(), "' ", problem);
  return *v;
}

Attribute attribute_from_proto(const onnx::AttributeProto& a, const std::string& context) {
  using onnx::AttributeProto;
  switch (a.type()) {
    case AttributeProto::INT: return a.i();
    case AttributeProto::FLOAT: return a.f();
    case AttributeProto::STRING: return a.s();
    case AttributeProto::TENSOR: {
      const std::string tensor_context =
          a.t().name().empty() ? context : context + " (tensor '" + a.t().name() + "')";
      return onnx_detail::tensor_from_proto(a.t(), tensor_context);
    }
    case AttributeProto::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case AttributeProto::FLOATS: return std::vector<float>(a.floats().begin(), a.floats().end());
    case AttributeProto::STRINGS:
      return std::vector<std::string>(a.strings().begin(), a.strings().end());
    default:
      throw Error(context + " has type " + AttributeProto::AttributeType_Name(a.type()) +
                  ", which edgeforge does not support (subgraphs, sparse tensors, tensor lists "
                  "and type protos have no Graph equivalent)");
  }
}

int64_t default_opset(const onnx::ModelProto& model) {
  for (const onnx::OperatorSetIdProto& o : model.opset_import())
    if (is_default_domain(o.domain())) return o.version();
  return -1;
}

// Graph semantics are those of opset 17 (graph.h). A model of an older opset is relabelled
// when none of its ops changed since; otherwise ONNX's version converter rewrites the changed
// nodes (Squeeze axes becoming an input, and the like).
void upgrade_to_current_opset(onnx::ModelProto& model, const std::string& label) {
  const int64_t from = default_opset(model);
  if (from < 0 || from >= kOpsetVersion) return;
  std::set<std::string> changed;
  for (const onnx::NodeProto& n : model.graph().node()) {
    if (!is_default_domain(n.domain())) continue;
    const onnx::OpSchema* old_schema =
        onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(from), "");
    const onnx::OpSchema* new_schema =
        onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(kOpsetVersion), "");
    if (old_schema == nullptr || new_schema == nullptr ||
        old_schema->SinceVersion() != new_schema->SinceVersion())
      changed.insert(n.op_type());
  }
  if (changed.empty()) {
    for (onnx::OperatorSetIdProto& o : *model.mutable_opset_import())
      if (is_default_domain(o.domain())) o.set_version(kOpsetVersion);
    return;
  }
  std::string ops;
  for (const std::string& op : changed) ops += (ops.empty() ? "" : ", ") + op;
  try {
    // Some adapters (old broadcasting Add, Gemm, Softmax) need input shapes, which the model
    // may not record; inferred ones are used for the conversion only.
    std::set<std::string> recorded;
    for (const onnx::ValueInfoProto& v : model.graph().value_info()) recorded.insert(v.name());
    onnx::shape_inference::InferShapes(model);
    const int hidden = onnx_detail::hide_unconvertible_nodes(model, from, label);
    model = onnx::version_conversion::ConvertVersion(model, static_cast<int>(kOpsetVersion));
    if (hidden > 0) onnx_detail::restore_hidden_nodes(model, label);
    auto* value_info = model.mutable_graph()->mutable_value_info();
    for (int i = value_info->size() - 1; i >= 0; --i)
      if (!recorded.count(value_info->Get(i).name())) value_info->DeleteSubrange(i, 1);
  } catch (const std::exception& e) {
    throw Error(label + ": uses opset " + std::to_string(from) + ", and converting its " + ops +
                " nodes to opset " + std::to_string(kOpsetVersion) +
                " failed: " + one_line(e.what()));
  }
}

Graph model_to_graph(onnx::ModelProto& model, const std::string& label) {
  Graph graph(model.graph().name());
  for (const onnx::StringStringEntryProto& entry : model.metadata_props())
    graph.metadata()[entry.key()] = entry.value();
  // Each weight's bytes leave the proto once converted, so that a model's weights are held
  // once, not twice, while it loads (BERT-base: 438 MB).
  for (onnx::TensorProto& t : *model.mutable_graph()->mutable_initializer()) {
    graph.add_initializer(t.name(), onnx_detail::tensor_from_proto(
                                        t, label + ": initializer '" + t.name() + "'"));
    t.clear_raw_data();
    t.clear_float_data();
    t.clear_double_data();
    t.clear_int32_data();
    t.clear_int64_data();
    t.clear_uint64_data();
  }
  const onnx::GraphProto& g = model.graph();
  // Exporters of IR < 4 list every initializer as a graph input as well; those are weights.
  for (const onnx::ValueInfoProto& v : g.input())
    if (!graph.has_initializer(v.name())) graph.add_input(graph_value_from_proto(v, "input", label));
  for (const onnx::ValueInfoProto& v : g.output())
    graph.add_output(graph_value_from_proto(v, "output", label));
  // value_info entries are hints; one of a type edgeforge lacks is just not kept.
  for (const onnx::ValueInfoProto& v : g.value_info()) {
    std::string problem;
    if (std::optional<ValueInfo> info = value_info_from_proto(v, &problem))
      graph.value_info()[v.name()] = std::move(*info);
  }
  int index = 0;
  for (const onnx::NodeProto& n : g.node()) {
    Node node(n.op_type(), n.name(), {n.input().begin(), n.input().end()},
              {n.output().begin(), n.output().end()});
    if (!is_default_domain(n.domain())) node.domain = n.domain();
    const std::string context = label + ": " + node_label(node, index++);
    // Internal int8 kernels trust their inputs' layout; only the lowering pass may emit them.
    EF_CHECK(node.domain != kEdgeforgeDomain, context, " is in edgeforge's internal domain '",
             kEdgeforgeDomain, "', which a model file may not use");
    for (const onnx::AttributeProto& a : n.attribute()) {
      EF_CHECK(a.ref_attr_name().empty(), context, ", attribute '", a.name(),
               "' refers to a function attribute, which only a function body may do");
      node.attributes[a.name()] =
          attribute_from_proto(a, context + ", attribute '" + a.name() + "'");
    }
    graph.add_node(std::move(node));
  }
  // Nothing runs a node (constant folding included) before the model passed validation.
  validate_model(graph, label);
  // Every pass sees the weights PyTorch shares through Identity nodes or computes at run time.
  simplify_graph(graph);
  if (fold_constants(graph) > 0) simplify_graph(graph);  // the Constants only they read
  if (fuse_decompositions(graph).total() > 0) simplify_graph(graph);
  return graph;
}

// Opens a file to read; `label` names it in errors (not found, a directory, not readable).
std::ifstream open_file(const std::string& path, const std::string& label) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  EF_CHECK(std::filesystem::exists(status), label, ": file not found");
  EF_CHECK(!std::filesystem::is_directory(status), label, ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  EF_CHECK(in, label, ": cannot open the file: ", std::strerror(errno));
  return in;
}

// Reads a whole file; `label` names it in errors.
std::string read_file(const std::string& path, const std::string& label) {
  std::ifstream in = open_file(path, label);
  std::string bytes;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  EF_CHECK(size >= 0, label, ": cannot read the file: ", std::strerror(errno));
  in.seekg(0, std::ios::beg);
  bytes.resize(static_cast<size_t>(size));
  in.read(bytes.data(), size);
  EF_CHECK(in.gcount() == size, label, ": cannot read the file: ", std::strerror(errno));
  EF_CHECK(!bytes.empty(), label, ": the file is empty");
  return bytes;
}

constexpr const char* kNotOnnx =
    ": not a valid ONNX model (protobuf parsing failed; truncated or corrupt file?)";

// The structure libonnx's own passes assume but its 1.12 checker does not check, checked on the
// proto before any of them runs: its IR import (graphProtoToGraph, under the version
// converter) dereferences a null producer for a graph output no node, input or initializer
// defines (found by fuzz_onnx). Every node input defined before it is read, no value defined
// twice, every graph output defined; graph-valued attributes, which edgeforge does not read,
// are refused here rather than handed to the converter.
void check_proto_structure(const onnx::ModelProto& model, const std::string& label) {
  int default_domains = 0;
  for (const onnx::OperatorSetIdProto& o : model.opset_import())
    default_domains += is_default_domain(o.domain());
  EF_CHECK(default_domains <= 1, label, ": imports the default ONNX domain ", default_domains,
           " times (with different opsets a model has no one meaning)");
  const onnx::GraphProto& g = model.graph();
  std::set<std::string> defined;
  // Ranks known before any inference: declared graph inputs with shapes, and initializers.
  std::map<std::string, int> rank;
  for (const onnx::ValueInfoProto& v : g.input()) {
    defined.insert(v.name());
    if (v.type().has_tensor_type() && v.type().tensor_type().has_shape())
      rank[v.name()] = v.type().tensor_type().shape().dim_size();
  }
  for (const onnx::TensorProto& t : g.initializer()) {
    defined.insert(t.name());
    rank[t.name()] = t.dims_size();
  }
  auto rank_of = [&](const onnx::NodeProto& n, int i) {
    if (i >= n.input_size()) return -1;
    const auto it = rank.find(n.input(i));
    return it == rank.end() ? -1 : it->second;
  };
  int index = 0;
  for (const onnx::NodeProto& n : g.node()) {
    const std::string where = label + ": " + n.op_type() + " node " +
                              (n.name().empty() ? "#" + std::to_string(index) : "'" + n.name() + "'");
    ++index;
    for (const std::string& in : n.input())
      EF_CHECK(in.empty() || defined.count(in), where, " reads '", in,
               "', which no earlier node, input or initializer defines");
    for (const std::string& out : n.output())
      EF_CHECK(out.empty() || defined.insert(out).second, where, " defines '", out,
               "', which is already defined");
    // libonnx 1.12's shape inference for convolutions and pooling (run by the version
    // converter) reads past its inputs when ranks disagree (found by fuzz_onnx: a ConvTranspose
    // of a rank-3 input and a rank-2 weight): where the ranks are known, they must agree.
    const std::string& op = n.op_type();
    const bool conv = op == "Conv" || op == "ConvTranspose" || op == "ConvInteger" || op == "QLinearConv";
    const bool pool = op == "MaxPool" || op == "AveragePool" || op == "LpPool" || op == "MaxUnpool" ||
                      op == "MaxRoiPool" || op == "GlobalAveragePool" || op == "GlobalMaxPool";
    if (conv || pool) {
      const int x = rank_of(n, 0), w = conv ? rank_of(n, op == "QLinearConv" ? 3 : 1) : -1;
      EF_CHECK(x < 0 || x >= 3, where, " reads an input of rank ", x, " (expected N, C and at least one spatial axis)");
      EF_CHECK(w < 0 || w >= 3, where, " has a weight of rank ", w, " (expected at least 3)");
      EF_CHECK(x < 0 || w < 0 || x == w, where, " has an input of rank ", x, " and a weight of rank ", w);
      const int spatial = std::max(x, w) - 2;
      for (const onnx::AttributeProto& a : n.attribute()) {
        if (spatial <= 0 || a.type() != onnx::AttributeProto::INTS) continue;
        const int want = a.name() == "pads" ? 2 * spatial : spatial;
        if (a.name() == "pads" || a.name() == "strides" || a.name() == "dilations" ||
            a.name() == "kernel_shape" || a.name() == "output_padding" || a.name() == "output_shape")
          EF_CHECK(a.ints_size() == want, where, ", attribute '", a.name(), "' has ", a.ints_size(),
                   " values for ", spatial, " spatial axes (expected ", want, ")");
      }
    }
    for (const onnx::AttributeProto& a : n.attribute())
      EF_CHECK(a.type() != onnx::AttributeProto::GRAPH && a.type() != onnx::AttributeProto::GRAPHS &&
                   !a.has_g() && a.graphs_size() == 0,
               where, ", attribute '", a.name(), "' has type ",
               onnx::AttributeProto::AttributeType_Name(a.type()),
               ", which edgeforge does not support (subgraphs have no Graph equivalent)");
  }
  for (const onnx::ValueInfoProto& v : g.output())
    EF_CHECK(defined.count(v.name()), label, ": graph output '", v.name(),
             "' is never produced (no node, input or initializer defines it)");
}

// The checks and conversions from a parsed ModelProto (which loses its weights' bytes) to the
// Graph; `label` names the model in errors.
Graph graph_from_model(onnx::ModelProto& model, const std::string& label) {
  // Checked before the checker, whose message for a too-new opset does not say what to do.
  // Opsets 18 to 21, which ONNX 1.12 does not know, are read in their opset-17 form.
  const int64_t opset = default_opset(model);
  EF_CHECK(opset <= onnx_detail::kNewestReadableOpset, label, ": uses opset ", opset,
           " of the default ONNX domain; edgeforge reads opsets up to ",
           onnx_detail::kNewestReadableOpset, " (re-export the model with opset <= ",
           onnx_detail::kNewestReadableOpset, ")");
  check_proto_structure(model, label);
  if (opset > kOpsetVersion) onnx_detail::rewrite_to_opset17(model, opset, label);
  EF_CHECK(model.functions_size() == 0, label, ": defines ", model.functions_size(),
           " model-local functions, which edgeforge does not support");
  EF_CHECK(model.graph().sparse_initializer_size() == 0, label,
           ": has sparse initializers, which edgeforge does not support");
  run_checker(model, label);
  upgrade_to_current_opset(model, label);
  return model_to_graph(model, label);
}

}  // namespace

Graph graph_from_onnx_bytes(const std::string& bytes, const std::string& what) {
  const std::string label = model_label(what);
  EF_CHECK(!bytes.empty(), label, ": empty (0 bytes)");
  onnx::ModelProto model;
  EF_CHECK(model.ParseFromString(bytes), label, kNotOnnx);
  return graph_from_model(model, label);
}

// Parsed from the file as it is read, not from a copy of its bytes: the weights are held once
// less at the peak of loading.
Graph load_onnx(const std::string& path) {
  const std::string label = model_label(path);
  std::ifstream in = open_file(path, label);
  EF_CHECK(in.peek() != std::ifstream::traits_type::eof(), label, ": the file is empty");
  onnx::ModelProto model;
  EF_CHECK(model.ParseFromIstream(&in), label, kNotOnnx);
  return graph_from_model(model, label);
}

std::string graph_to_onnx_bytes(const Graph& graph) { return serialize_checked(graph); }

void check_onnx(const Graph& graph) {
  check_io_shapes(graph);
  run_checker(graph_to_model(graph, true), model_label(graph.name()));
}

void save_onnx(const Graph& graph, const std::string& path) {
  const std::string bytes = serialize_checked(graph);
  const std::string label = model_label(path);
  try {
    write_file_atomic(path, bytes);
  } catch (const Error& e) {
    throw Error(label + ": " + e.what());
  }
}

void infer_shapes(Graph& graph, int64_t batch) {
  const std::string label = model_label(graph.name());
  if (batch > 0) {
    for (ValueInfo& v : graph.inputs())
      if (v.has_shape && !v.shape.empty() && !v.shape[0].is_fixed()) v.shape[0] = Dim(batch);
  }
  // Stale value_info (say from an earlier batch) would be merged with, and contradict, the
  // new result; inference starts from the declared inputs and the weights only.
  onnx::ModelProto model = graph_to_model(graph, false);
  try {
    onnx::shape_inference::InferShapes(
        model, onnx::OpSchemaRegistry::Instance(),
        onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1,
                                    /*data_prop=*/true));
  } catch (const std::exception& e) {
    throw Error(label + ": ONNX shape inference failed: " + one_line(e.what()));
  }

  std::set<std::string> declared;
  for (const ValueInfo& v : graph.inputs()) declared.insert(v.name);
  for (const ValueInfo& v : graph.outputs()) declared.insert(v.name);
  graph.value_info().clear();
  std::string problem;
  for (const onnx::ValueInfoProto& vi : model.graph().value_info()) {
    if (declared.count(vi.name()) || graph.has_initializer(vi.name())) continue;
    if (std::optional<ValueInfo> v = value_info_from_proto(vi, &problem))
      graph.value_info()[vi.name()] = std::move(*v);
  }
  for (const onnx::ValueInfoProto& vi : model.graph().output()) {
    std::optional<ValueInfo> inferred = value_info_from_proto(vi, &problem);
    if (!inferred || !inferred->has_shape) continue;
    for (ValueInfo& out : graph.outputs()) {
      if (out.name != vi.name()) continue;
      if (!out.has_shape) {
        out.shape = inferred->shape;
        out.has_shape = true;
      } else if (out.shape.size() == inferred->shape.size()) {
        for (size_t d = 0; d < out.shape.size(); ++d)
          if (!out.shape[d].is_fixed() && out.shape[d].param.empty())
            out.shape[d] = inferred->shape[d];
      }
    }
  }
}

at::Tensor tensor_from_onnx_proto_file(const std::string& path) {
  const std::string label = "tensor file '" + path + "'";
  const std::string bytes = read_file(path, label);
  onnx::TensorProto proto;
  EF_CHECK(proto.ParseFromString(bytes), label,
           ": not a valid ONNX TensorProto (protobuf parsing failed; truncated or corrupt?)");
  const std::string context =
      proto.name().empty() ? label : label + " (tensor '" + proto.name() + "')";
  return onnx_detail::tensor_from_proto(proto, context);
}

}  // namespace edgeforge
