// The model summary of `edgeforge info` (edgeforge/summary.h). It lives with the runtime, not in
// graph/: it asks the lowering and the inference plan which ops run fast, so the graph layer
// depends on nothing above it.
#include "edgeforge/summary.h"

#include <ATen/ATen.h>

#include <memory>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/ops.h"
#include "edgeforge/runtime.h"

namespace edgeforge {

namespace {
using ShapeMap = std::map<std::string, std::vector<int64_t>>;

const std::vector<int64_t>* shape_of(const ShapeMap& shapes, const std::string& name) {
  auto it = shapes.find(name);
  return it == shapes.end() ? nullptr : &it->second;
}

// The op's MACs (OpCapabilities::macs), found by op type alone: a node of another domain with
// the name of an ONNX op counts as that op, as edgeforge info always counted it.
int64_t node_macs(const ShapeMap& shapes, const Node& n) {
  const OpDef* def = OpRegistry::global().find(n.op_type);
  if (def == nullptr || def->caps.macs == nullptr) return 0;
  ValueShapes inputs, outputs;
  for (const std::string& v : n.inputs) inputs.push_back(shape_of(shapes, v));
  for (const std::string& v : n.outputs) outputs.push_back(shape_of(shapes, v));
  return def->caps.macs(n, inputs, outputs);
}

// Concrete shapes of every value for one sample: by running the graph on zeros when the
// runtime supports every op (exact, also through Shape/Reshape chains), else from ONNX shape
// inference with the symbolic dimensions fixed.
ShapeMap concrete_shapes(const Graph& graph, int64_t seq_len, bool runnable) {
  ShapeMap shapes;
  for (const auto& [name, t] : graph.initializers())
    if (t.defined()) shapes[name] = t.sizes().vec();
  if (runnable) {
    for (const auto& [name, v] : sample_values(graph, seq_len)) shapes[name] = v.shape;
    return shapes;
  }
  Graph fixed = graph;
  for (ValueInfo& v : fixed.inputs())
    for (size_t d = 0; d < v.shape.size(); ++d)
      if (!v.shape[d].is_fixed()) v.shape[d] = Dim(d == 0 ? 1 : seq_len);
  infer_shapes(fixed);
  auto record = [&shapes](const ValueInfo& v) {
    if (!v.has_shape) return;
    std::vector<int64_t> dims;
    for (const Dim& d : v.shape) {
      if (!d.is_fixed()) return;
      dims.push_back(d.size);
    }
    shapes[v.name] = dims;
  };
  for (const auto& [name, v] : fixed.value_info()) record(v);
  for (const ValueInfo& v : fixed.inputs()) record(v);
  for (const ValueInfo& v : fixed.outputs()) record(v);
  return shapes;
}
}  // namespace

namespace {
// Zeros for every graph input, symbolic dimensions fixed as sample_values says.
std::vector<at::Tensor> sample_inputs(const Graph& graph, int64_t seq_len, int64_t batch) {
  std::vector<at::Tensor> inputs;
  for (const ValueInfo& v : graph.inputs()) {
    std::vector<int64_t> dims;
    for (size_t d = 0; d < v.shape.size(); ++d)
      dims.push_back(v.shape[d].is_fixed() ? v.shape[d].size : (d == 0 ? batch : seq_len));
    inputs.push_back(at::zeros(dims, at::TensorOptions().dtype(v.dtype)));
  }
  return inputs;
}
}  // namespace

std::map<std::string, SampleValue> sample_values(const Graph& graph, int64_t seq_len,
                                                 int64_t batch) {
  std::map<std::string, SampleValue> out;
  const std::vector<at::Tensor> inputs = sample_inputs(graph, seq_len, batch);
  for (size_t i = 0; i < inputs.size(); ++i)
    out[graph.inputs()[i].name] = {inputs[i].scalar_type(), inputs[i].sizes().vec()};
  std::vector<std::string> fetch;
  for (const Node& n : graph.nodes())
    for (const std::string& o : n.outputs)
      if (!o.empty()) fetch.push_back(o);
  std::map<std::string, at::Tensor> values;
  at::NoGradGuard no_grad;
  Executor exec(graph);
  RunOptions opts;
  exec.run(inputs, opts, fetch, &values);
  for (const auto& [name, t] : values)
    if (t.defined()) out[name] = {t.scalar_type(), t.sizes().vec()};
  return out;
}

ModelSummary summarize(const Graph& graph, int64_t seq_len) {
  ModelSummary s;
  s.inputs = graph.inputs();
  s.outputs = graph.outputs();
  s.parameters = graph.parameter_count();
  for (const auto& [name, t] : graph.initializers()) {
    if (!t.defined()) continue;
    s.initializer_bytes += static_cast<int64_t>(t.nbytes());
    if (t.scalar_type() == at::kChar && t.numel() > 1) s.int8_parameters += t.numel();
  }
  for (const Node& n : graph.nodes()) {
    ++s.op_counts[n.op_type];
    if (OpRegistry::global().find(n.op_type, n.domain) == nullptr)
      s.unsupported_ops.push_back(n.op_type + " (" + n.name + ")");
  }
  const ShapeMap shapes = concrete_shapes(graph, seq_len, s.unsupported_ops.empty());
  LoweringReport lowering;
  if (s.unsupported_ops.empty()) {
    // The session every command runs the model in, built and run once on the sample inputs:
    // a model `info` accepts is one the other commands can run, and its outputs have the
    // shapes the reference kernels give them.
    std::unique_ptr<InferenceSession> session;
    try {
      session = std::make_unique<InferenceSession>(graph);
      at::NoGradGuard no_grad;
      const std::vector<at::Tensor> out = session->run(sample_inputs(graph, seq_len, 1), RunOptions{});
      for (size_t i = 0; i < out.size() && i < graph.outputs().size(); ++i) {
        const auto want = shapes.find(graph.outputs()[i].name);
        EF_CHECK(want == shapes.end() || out[i].sizes().vec() == want->second, "output '",
                 graph.outputs()[i].name, "' has shape ", out[i].sizes(),
                 ", the reference kernels give ", at::IntArrayRef(want->second));
      }
    } catch (const std::exception& e) {
      throw Error(detail::concat("model '", graph.name(), "': the inference plan cannot run it on ",
                                 "sample inputs: ", e.what()));
    }
    lowering = session->lowering();
    const Graph& planned = session->graph();
    for (const Node& n : planned.nodes()) {
      if (n.domain == kEdgeforgeDomain && (n.op_type.rfind("Dnnl", 0) == 0 || n.op_type.rfind("Plan", 0) == 0))
        ++s.plan_kernels[n.op_type];
      else ++s.reference_nodes;
    }
    for (const auto& [node, why] : lowering.plan_fallback) s.plan_fallback.push_back(node + ": " + why);
  }
  const std::set<std::string> int8(lowering.int8_nodes.begin(), lowering.int8_nodes.end());
  const std::set<std::string> dynamic(lowering.dynamic_nodes.begin(), lowering.dynamic_nodes.end());
  for (const auto& [node, why] : lowering.kept_float) s.kept_float.push_back(node + ": " + why);
  for (const Node& n : graph.nodes()) {
    const int64_t m = node_macs(shapes, n);
    if (m > 0) {
      s.macs += m;
      s.macs_by_op[n.op_type] += m;
      if (int8.count(n.name)) s.int8_macs += m;
      if (dynamic.count(n.name)) s.dynamic_int8_macs += m;
    }
  }
  return s;
}

std::string format_shape(const ValueInfo& v) {
  std::string out = c10::toString(v.dtype);
  if (!v.has_shape) return out + " [?]";
  out += " [";
  for (size_t i = 0; i < v.shape.size(); ++i) {
    if (i) out += ",";
    const Dim& d = v.shape[i];
    out += d.is_fixed() ? std::to_string(d.size) : (d.param.empty() ? "?" : d.param);
  }
  return out + "]";
}

}  // namespace edgeforge
