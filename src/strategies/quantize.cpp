#include "edgeforge/quantize.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "edgeforge/runtime.h"

namespace edgeforge {
namespace {

// How many node inputs read each value (graph outputs count once more).
std::map<std::string, int> reader_counts(const Graph& g) {
  std::map<std::string, int> count;
  for (const Node& n : g.nodes())
    for (const std::string& in : n.inputs)
      if (!in.empty()) ++count[in];
  for (const ValueInfo& v : g.outputs()) ++count[v.name];
  return count;
}

// Index of the only node reading `value`, or -1 (none, several, or a graph output).
int only_reader(const Graph& g, const std::string& value) {
  int found = -1;
  for (size_t i = 0; i < g.nodes().size(); ++i)
    for (const std::string& in : g.nodes()[i].inputs)
      if (in == value) {
        if (found >= 0 && found != static_cast<int>(i)) return -1;
        found = static_cast<int>(i);
      }
  for (const ValueInfo& v : g.outputs())
    if (v.name == value) return -1;
  return found;
}

void remove_unused_initializers(Graph& g) {
  const std::map<std::string, int> count = reader_counts(g);
  for (auto it = g.initializers().begin(); it != g.initializers().end();) {
    if (count.count(it->first) == 0)
      it = g.initializers().erase(it);
    else
      ++it;
  }
}

// A name not yet used by any value, node or initializer of `g`, starting from `base`.
std::string fresh_name(const Graph& g, const std::set<std::string>& taken, std::string base) {
  auto used = [&](const std::string& s) {
    if (taken.count(s) || g.has_initializer(s) || g.find_node(s) != nullptr) return true;
    for (const Node& n : g.nodes())
      for (const std::string& o : n.outputs)
        if (o == s) return true;
    for (const ValueInfo& v : g.inputs())
      if (v.name == s) return true;
    return false;
  };
  if (!used(base)) return base;
  for (int i = 1;; ++i)
    if (!used(base + "_" + std::to_string(i))) return base + "_" + std::to_string(i);
}

at::Tensor float_initializer(const Graph& g, const std::string& name) {
  auto it = g.initializers().find(name);
  if (it == g.initializers().end() || !it->second.defined() ||
      !at::isFloatingType(it->second.scalar_type()))
    return {};
  return it->second;
}

}  // namespace

int fold_batch_norm(Graph& graph) {
  int folded = 0;
  std::vector<Node>& nodes = graph.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& bn = nodes[i];
    if (!bn.is("BatchNormalization") || bn.outputs.size() != 1) continue;
    const Node* conv_ptr = graph.producer(bn.inputs[0]);
    if (conv_ptr == nullptr || !conv_ptr->is("Conv")) continue;
    if (only_reader(graph, bn.inputs[0]) != static_cast<int>(i)) continue;
    const at::Tensor w = float_initializer(graph, conv_ptr->inputs[1]);
    if (!w.defined() || reader_counts(graph)[conv_ptr->inputs[1]] != 1) continue;
    at::Tensor stats[4];
    bool constant = true;
    for (int k = 0; k < 4; ++k) {
      stats[k] = float_initializer(graph, bn.inputs[1 + k]);
      constant = constant && stats[k].defined() && stats[k].numel() == w.size(0);
    }
    if (!constant) continue;
    const std::string conv_name = conv_ptr->name;
    auto conv_it = std::find_if(nodes.begin(), nodes.end(),
                                [&](const Node& n) { return n.name == conv_name; });
    Node& conv = *conv_it;
    const double eps = bn.attr_float("epsilon", 1e-5f);
    at::NoGradGuard no_grad;
    const at::Tensor s = stats[0].to(at::kDouble) / (stats[3].to(at::kDouble) + eps).sqrt();
    std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
    shape[0] = w.size(0);
    at::Tensor b = conv.inputs.size() > 2 && !conv.inputs[2].empty()
                       ? float_initializer(graph, conv.inputs[2]).to(at::kDouble)
                       : at::zeros({w.size(0)}, at::kDouble);
    EF_CHECK(b.defined(), "batch-norm folding: ", conv.describe(), " has a computed bias");
    const at::Tensor new_w = (w.to(at::kDouble) * s.reshape(shape)).to(w.scalar_type());
    const at::Tensor new_b =
        ((b - stats[2].to(at::kDouble)) * s + stats[1].to(at::kDouble)).to(w.scalar_type());
    graph.initializers()[conv.inputs[1]] = new_w.contiguous();
    std::string bias_name;
    if (conv.inputs.size() > 2 && !conv.inputs[2].empty() &&
        reader_counts(graph)[conv.inputs[2]] == 1) {
      bias_name = conv.inputs[2];
    } else {
      bias_name = fresh_name(graph, {}, conv.name + ".bias");
      conv.inputs.resize(3);
      conv.inputs[2] = bias_name;
    }
    graph.initializers()[bias_name] = new_b.contiguous();
    conv.outputs[0] = nodes[i].outputs[0];
    nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(i));
    --i;
    ++folded;
  }
  if (folded > 0) remove_unused_initializers(graph);
  return folded;
}

namespace {

// The value after the activation that reads `v` alone, when it is one the int8 kernels apply
// before requantizing (lowering.h's Activation: Relu, Clip with constant bounds, HardSwish,
// HardSigmoid, Sigmoid, and SiLU as Mul(v, Sigmoid(v))); else `v`. Quantizing after it, not
// between the layer and it, is what lets the layer and its activation run as one int8 kernel.
std::string after_fusable_activation(const Graph& g, const std::string& v) {
  const int r = only_reader(g, v);
  if (r >= 0) {
    const Node& a = g.nodes()[r];
    bool fusable = a.is("Relu") || a.is("HardSwish") || a.is("HardSigmoid") || a.is("Sigmoid");
    if (a.is("Clip")) {
      fusable = true;
      for (size_t k = 1; k < a.inputs.size(); ++k)
        if (!a.inputs[k].empty() && !constant_input(g, a.inputs[k]).defined()) fusable = false;
    }
    return fusable ? a.outputs[0] : v;
  }
  // SiLU: v read by Sigmoid(v) and by Mul(v, Sigmoid(v)), the Sigmoid's only reader.
  std::vector<size_t> readers;
  for (size_t i = 0; i < g.nodes().size(); ++i)
    for (const std::string& in : g.nodes()[i].inputs)
      if (in == v && (readers.empty() || readers.back() != i)) readers.push_back(i);
  if (readers.size() != 2) return v;
  for (const ValueInfo& o : g.outputs())
    if (o.name == v) return v;
  const Node* sig = &g.nodes()[readers[0]];
  const Node* mul = &g.nodes()[readers[1]];
  if (!sig->is("Sigmoid")) std::swap(sig, mul);
  if (!sig->is("Sigmoid") || !mul->is("Mul") || mul->inputs.size() != 2) return v;
  const std::string& s = sig->outputs[0];
  const bool pair = (mul->inputs[0] == v && mul->inputs[1] == s) ||
                    (mul->inputs[1] == v && mul->inputs[0] == s);
  const int sr = only_reader(g, s);
  return pair && sr >= 0 && &g.nodes()[sr] == mul ? mul->outputs[0] : v;
}

}  // namespace

// The op registry says which ops quantize and how (OpCapabilities::quant).
std::vector<QuantUnit> find_quant_units(const Graph& graph, bool linear_only) {
  std::vector<QuantUnit> units;
  const std::map<std::string, int> readers = reader_counts(graph);
  const auto& nodes = graph.nodes();
  for (const Node& n : nodes) {
    const OpDef* def = OpRegistry::global().find(n.op_type, n.domain);
    if (def == nullptr || def->caps.quant.weight_axis == nullptr) continue;
    const QuantCapability& quant = def->caps.quant;
    if ((linear_only && !quant.dynamic) || n.inputs.size() < 2) continue;
    const at::Tensor w = float_initializer(graph, n.inputs[1]);
    if (!w.defined() || readers.at(n.inputs[1]) != 1) continue;
    if (graph.has_initializer(n.inputs[0])) continue;
    const std::optional<int64_t> axis = quant.weight_axis(n, w);
    if (!axis) continue;  // no int8 kernel for this node
    QuantUnit u;
    u.node = n.name;
    u.op_type = n.op_type;
    u.input = n.inputs[0];
    u.weight = n.inputs[1];
    u.output = n.outputs[0];
    u.weight_in_out = *axis == 1;
    if (quant.bias_add) {
      const int r = only_reader(graph, u.output);
      if (r >= 0 && nodes[r].is("Add")) {
        const Node& add = nodes[r];
        const std::string& other = add.inputs[0] == u.output ? add.inputs[1] : add.inputs[0];
        const at::Tensor b = float_initializer(graph, other);
        if (b.defined() && b.numel() == w.size(*axis)) u.output = add.outputs[0];
      }
    }
    if (!linear_only) u.output = after_fusable_activation(graph, u.output);
    units.push_back(std::move(u));
  }
  return units;
}

std::vector<std::string> activation_points(const std::vector<QuantUnit>& units) {
  std::vector<std::string> points;
  std::set<std::string> seen;
  for (const QuantUnit& u : units)
    for (const std::string* v : {&u.input, &u.output})
      if (seen.insert(*v).second) points.push_back(*v);
  return points;
}

QuantParams uint8_params(float lo, float hi) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  QuantParams p;
  // float32, as the scale is stored, so the kernels and the QDQ reference use the same value.
  const float scale = hi > lo ? (hi - lo) / 255.0f : 1.0f / 255.0f;
  p.scale = scale;
  p.zero_point = std::clamp<int64_t>(static_cast<int64_t>(std::nearbyint(-lo / scale)), 0, 255);
  return p;
}

Ranges calibrate(const Graph& graph, const std::vector<std::string>& points,
                 const std::vector<std::vector<at::Tensor>>& batches,
                 const CalibrationOptions& options, int threads) {
  EF_CHECK(!batches.empty(), "calibration: no calibration data (expected at least 1 sample)");
  Executor exec(graph);
  RunOptions run;
  run.threads = threads;
  std::map<std::string, RangeObserver> observers;
  for (const std::string& p : points) observers.emplace(p, RangeObserver(options));
  at::NoGradGuard no_grad;
  for (const auto& batch : batches) {
    std::map<std::string, at::Tensor> values;
    try {
      exec.run(batch, run, points, &values);
    } catch (const Error& e) {
      throw Error(std::string("calibration data does not fit the model: ") + e.what());
    }
    for (const std::string& p : points) {
      const at::Tensor& v = values.at(p);
      EF_CHECK(at::isFloatingType(v.scalar_type()), "calibration: value '", p, "' has type ",
               c10::toString(v.scalar_type()), ", expected float");
      try {
        observers.at(p).observe(v);
      } catch (const Error& e) {
        throw Error("calibration: value '" + p + "': " + e.what());
      }
    }
  }
  Ranges ranges;
  for (auto& [p, obs] : observers) ranges[p] = obs.range();
  return ranges;
}

namespace {

// Replaces each unit's float weight with int8 values and scales behind a DequantizeLinear
// placed right before the unit. Returns the DQ nodes by unit node name.
std::map<std::string, Node> quantize_weights(Graph& graph, const std::vector<QuantUnit>& units,
                                             const QdqOptions& options) {
  std::map<std::string, Node> dq_nodes;
  std::set<std::string> taken;
  at::NoGradGuard no_grad;
  for (const QuantUnit& u : units) {
    const at::Tensor w = graph.initializers().at(u.weight).detach().to(at::kFloat);
    const int64_t qmax = weight_bits_max(options.weight_bits);
    const at::Tensor scales =
        symmetric_scales(w, u.weight_in_out ? 1 : 0, options.per_channel, qmax);
    at::Tensor s = scales;
    if (options.per_channel) {
      std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
      shape[u.weight_in_out ? 1 : 0] = scales.size(0);
      s = scales.reshape(shape);
    }
    const at::Tensor q = at::round(w / s).clamp(-qmax, qmax).to(at::kChar);
    const std::string values = fresh_name(graph, taken, u.weight + "_quantized");
    taken.insert(values);
    const std::string scale = fresh_name(graph, taken, u.weight + "_scale");
    taken.insert(scale);
    const std::string dq_out = fresh_name(graph, taken, u.weight + "_dequantized");
    taken.insert(dq_out);
    graph.add_initializer(values, q.contiguous());
    graph.add_initializer(scale, scales.contiguous());
    Node dq("DequantizeLinear", fresh_name(graph, taken, u.node + ".weight_dequantize"),
            {values, scale}, {dq_out});
    taken.insert(dq.name);
    if (options.per_channel) dq.set("axis", int64_t{u.weight_in_out ? 1 : 0});
    for (Node& n : graph.nodes())
      if (n.name == u.node) n.inputs[1] = dq_out;
    dq_nodes.emplace(u.node, std::move(dq));
  }
  return dq_nodes;
}

// Makes room for a node inserted on value `v`: returns {what it reads, what it writes}, and
// points the graph at the latter. A graph output keeps its name (its producer now writes
// `renamed`, which the inserted node reads); any other value keeps its producer and its
// readers move to `fresh`.
std::pair<std::string, std::string> reroute(Graph& graph, const std::string& v, bool is_output,
                                            const std::string& renamed, const std::string& fresh) {
  if (is_output) {
    for (Node& n : graph.nodes())
      for (std::string& o : n.outputs)
        if (o == v) o = renamed;
    return {renamed, v};
  }
  for (Node& n : graph.nodes())
    for (std::string& in : n.inputs)
      if (in == v) in = fresh;
  return {v, fresh};
}

// Rebuilds the node list with `before[node]` emitted before each node and `after[value]`
// emitted right after the node producing `value` (or first, for graph inputs).
void splice(Graph& graph, const std::map<std::string, Node>& before,
            const std::map<std::string, std::vector<Node>>& after) {
  std::vector<Node> out;
  for (const ValueInfo& v : graph.inputs()) {
    auto it = after.find(v.name);
    if (it != after.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  for (Node& n : graph.nodes()) {
    auto b = before.find(n.name);
    if (b != before.end()) out.push_back(b->second);
    std::vector<std::string> outputs = n.outputs;
    out.push_back(std::move(n));
    for (const std::string& o : outputs) {
      auto it = after.find(o);
      if (it != after.end()) out.insert(out.end(), it->second.begin(), it->second.end());
    }
  }
  graph.nodes() = std::move(out);
}

}  // namespace

void write_qdq(Graph& graph, const std::vector<QuantUnit>& units, const Ranges& ranges,
               const QdqOptions& options) {
  EF_CHECK(!units.empty(), "model '", graph.name(),
           "' has no quantizable node (Conv, Gemm or MatMul with a constant weight)");
  std::map<std::string, Node> before = quantize_weights(graph, units, options);
  std::map<std::string, std::vector<Node>> after;
  std::set<std::string> taken;
  std::set<std::string> graph_outputs;
  for (const ValueInfo& v : graph.outputs()) graph_outputs.insert(v.name);
  for (const auto& [v, range] : ranges) {
    const QuantParams p = uint8_params(range.first, range.second);
    const std::string& value = v;  // a lambda may not capture a structured binding in C++17
    auto name = [&](const std::string& suffix) {
      std::string n = fresh_name(graph, taken, value + suffix);
      taken.insert(n);
      return n;
    };
    const std::string scale = name("_scale"), zero_point = name("_zero_point");
    graph.add_initializer(scale, at::full({}, static_cast<float>(p.scale), at::kFloat));
    graph.add_initializer(zero_point, at::full({}, p.zero_point, at::kByte));
    const std::string q = name(".quantized");
    const auto [source, dequantized] =
        reroute(graph, v, graph_outputs.count(v) != 0, name(".float"), name(".dequantized"));
    std::vector<Node>& chain = after[source];
    chain.push_back(Node("QuantizeLinear", name(".quantize"), {source, scale, zero_point}, {q}));
    chain.push_back(Node("DequantizeLinear", name(".dequantize"), {q, scale, zero_point},
                         {dequantized}));
  }
  splice(graph, before, after);
  remove_unused_initializers(graph);
  graph.validate();
}

std::pair<std::string, std::string> fake_quant_params(const std::string& point) {
  return {point + ".fq_scale", point + ".fq_zero_point"};
}

std::map<std::string, std::string> write_fake_quant(Graph& graph,
                                                    const std::vector<QuantUnit>& units,
                                                    const Ranges& ranges,
                                                    const QdqOptions& options) {
  std::map<std::string, std::string> observed;
  EF_CHECK(!units.empty(), "model '", graph.name(),
           "' has no quantizable node (Conv, Gemm or MatMul with a constant weight)");
  std::map<std::string, Node> before;
  std::map<std::string, std::vector<Node>> after;
  std::set<std::string> taken;
  auto name = [&](const std::string& base) {
    std::string n = fresh_name(graph, taken, base);
    taken.insert(n);
    return n;
  };
  for (const QuantUnit& u : units) {
    const std::string out = name(u.weight + ".fake_quantized");
    Node fq("FakeQuantWeight", name(u.node + ".weight_fake_quant"), {u.weight}, {out});
    fq.domain = kEdgeforgeDomain;
    fq.set("axis", int64_t{u.weight_in_out ? 1 : 0})
        .set("per_channel", int64_t{options.per_channel})
        .set("qmax", weight_bits_max(options.weight_bits));
    for (Node& n : graph.nodes())
      if (n.name == u.node) n.inputs[1] = out;
    before.emplace(u.node, std::move(fq));
  }
  std::set<std::string> graph_outputs;
  for (const ValueInfo& v : graph.outputs()) graph_outputs.insert(v.name);
  for (const auto& [v, range] : ranges) {
    const QuantParams p = uint8_params(range.first, range.second);
    const auto [scale, zero_point] = fake_quant_params(v);
    EF_ASSERT(!graph.has_initializer(scale) && !graph.has_initializer(zero_point),
              "fake-quant parameters of ", v, " exist already");
    graph.add_initializer(scale, at::full({}, static_cast<float>(p.scale), at::kFloat));
    graph.add_initializer(zero_point, at::full({}, static_cast<float>(p.zero_point), at::kFloat));
    const auto [source, fake] = reroute(graph, v, graph_outputs.count(v) != 0,
                                        name(v + ".float"), name(v + ".fake_quantized"));
    Node fq("FakeQuant", name(v + ".fake_quant"), {source, scale, zero_point}, {fake});
    fq.domain = kEdgeforgeDomain;
    after[source].push_back(std::move(fq));
    observed[v] = source;
  }
  splice(graph, before, after);
  graph.validate();
  return observed;
}

void write_dynamic(Graph& graph, const std::vector<QuantUnit>& units, const QdqOptions& options) {
  EF_CHECK(!units.empty(), "model '", graph.name(),
           "' has no node dynamic quantization covers (Gemm or MatMul with a constant weight)");
  std::map<std::string, Node> before = quantize_weights(graph, units, options);
  std::map<std::string, std::vector<Node>> after;
  std::map<std::string, std::string> dequantized;  // unit input -> its DQ output
  std::set<std::string> taken;
  auto name = [&](const std::string& base) {
    std::string n = fresh_name(graph, taken, base);
    taken.insert(n);
    return n;
  };
  for (const QuantUnit& u : units) {
    if (dequantized.count(u.input)) continue;
    const std::string x = u.input;
    const std::string y = name(x + ".dynamic_quantized"), s = name(x + ".dynamic_scale"),
                      zp = name(x + ".dynamic_zero_point"), dq = name(x + ".dynamic_dequantized");
    std::vector<Node>& chain = after[x];
    chain.push_back(Node("DynamicQuantizeLinear", name(x + ".dynamic_quantize"), {x}, {y, s, zp}));
    chain.push_back(Node("DequantizeLinear", name(x + ".dynamic_dequantize"), {y, s, zp}, {dq}));
    dequantized[x] = dq;
  }
  for (const QuantUnit& u : units)
    for (Node& n : graph.nodes())
      if (n.name == u.node) n.inputs[0] = dequantized.at(u.input);
  splice(graph, before, after);
  remove_unused_initializers(graph);
  graph.validate();
}

}  // namespace edgeforge
