// Exporters' op decompositions rewritten into the op they spell out (edgeforge/graph_fuse.h).
#include "edgeforge/graph_fuse.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "edgeforge/ops.h"

namespace edgeforge {

namespace {

// Who reads what, over the graph as it was when built; the nodes a rewrite takes are marked.
class Matcher {
 public:
  explicit Matcher(const Graph& g) : g_(g) {
    const std::vector<Node>& nodes = g.nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      for (const std::string& o : nodes[i].outputs) producer_[o] = i;
      for (const std::string& in : nodes[i].inputs)
        if (!in.empty()) readers_[in].push_back(i);
    }
    for (const ValueInfo& v : g.outputs()) outputs_.insert(v.name);
  }

  const Node& node(size_t i) const { return g_.nodes()[i]; }

  // The one node reading `v`, of type `op`, when `v` is no graph output and nothing else
  // reads it.
  std::optional<size_t> only_reader(const std::string& v, const char* op) const {
    auto it = readers_.find(v);
    if (it == readers_.end() || it->second.size() != 1 || outputs_.count(v)) return std::nullopt;
    const size_t r = it->second[0];
    if (taken_.count(r) || !is(r, op)) return std::nullopt;
    return r;
  }

  const std::vector<size_t>& readers(const std::string& v) const {
    static const std::vector<size_t> kNone;
    auto it = readers_.find(v);
    return it == readers_.end() ? kNone : it->second;
  }

  bool is_output(const std::string& v) const { return outputs_.count(v) != 0; }
  bool is(size_t i, const char* op) const { return node(i).is(op) && node(i).domain.empty(); }

  // The single float of a constant input, or nullopt.
  std::optional<double> scalar(const std::string& v) const {
    const at::Tensor t = constant_input(g_, v);
    if (!t.defined() || t.numel() != 1 || !at::isFloatingType(t.scalar_type())) return std::nullopt;
    return t.item<double>();
  }

  // `v` when it is a constant 1-D float tensor, else undefined.
  at::Tensor vector(const std::string& v) const {
    const at::Tensor t = constant_input(g_, v);
    if (!t.defined() || t.dim() != 1 || !at::isFloatingType(t.scalar_type())) return {};
    return t;
  }

  // The input of binary node `i` that is not `v` (and `v` must be one of them).
  std::optional<std::string> other_input(size_t i, const std::string& v) const {
    const Node& n = node(i);
    if (n.inputs.size() != 2) return std::nullopt;
    if (n.inputs[0] == v) return n.inputs[1];
    if (n.inputs[1] == v) return n.inputs[0];
    return std::nullopt;
  }

  bool taken(size_t i) const { return taken_.count(i) != 0; }
  void take(const std::vector<size_t>& nodes) { taken_.insert(nodes.begin(), nodes.end()); }

 private:
  const Graph& g_;
  std::map<std::string, size_t> producer_;
  std::map<std::string, std::vector<size_t>> readers_;
  std::set<std::string> outputs_;
  std::set<size_t> taken_;
};

bool reduces_last_axis(const Node& n) {
  return n.attr_ints("axes", {}) == std::vector<int64_t>{-1} && n.attr_int("keepdims", 1) == 1 &&
         (n.inputs.size() < 2 || n.inputs[1].empty());
}

// The LayerNorm formula from ReduceMean node `r1` (see graph_fuse.h): the LayerNormalization
// that replaces it, with the nodes it takes (the last one's place is where it goes).
std::optional<Node> layer_norm_at(const Matcher& m, size_t r1, std::vector<size_t>* nodes) {
  const Node& mean = m.node(r1);
  if (!reduces_last_axis(mean) || m.is_output(mean.outputs[0])) return std::nullopt;
  const std::string& x = mean.inputs[0];
  auto sub = m.only_reader(mean.outputs[0], "Sub");
  if (!sub || m.node(*sub).inputs[0] != x || m.node(*sub).inputs[1] != mean.outputs[0])
    return std::nullopt;
  const std::string& d = m.node(*sub).outputs[0];
  // d is read twice: squared for the variance, and divided by the deviation.
  const std::vector<size_t>& d_readers = m.readers(d);
  if (d_readers.size() != 2 || m.is_output(d)) return std::nullopt;
  size_t pow = d_readers[0], div = d_readers[1];
  if (!m.is(pow, "Pow")) std::swap(pow, div);
  if (!m.is(pow, "Pow") || !m.is(div, "Div") || m.taken(pow) || m.taken(div)) return std::nullopt;
  if (m.node(pow).inputs[0] != d || m.scalar(m.node(pow).inputs[1]) != 2.0) return std::nullopt;
  if (m.node(div).inputs[0] != d) return std::nullopt;
  auto var = m.only_reader(m.node(pow).outputs[0], "ReduceMean");
  if (!var || !reduces_last_axis(m.node(*var))) return std::nullopt;
  auto add_eps = m.only_reader(m.node(*var).outputs[0], "Add");
  if (!add_eps) return std::nullopt;
  const auto eps_name = m.other_input(*add_eps, m.node(*var).outputs[0]);
  const auto eps = eps_name ? m.scalar(*eps_name) : std::nullopt;
  if (!eps || !(*eps >= 0.0) || !std::isfinite(*eps)) return std::nullopt;
  auto sqrt = m.only_reader(m.node(*add_eps).outputs[0], "Sqrt");
  if (!sqrt || m.node(div).inputs[1] != m.node(*sqrt).outputs[0] ||
      m.readers(m.node(*sqrt).outputs[0]).size() != 1)
    return std::nullopt;
  auto mul = m.only_reader(m.node(div).outputs[0], "Mul");
  if (!mul) return std::nullopt;
  const auto scale = m.other_input(*mul, m.node(div).outputs[0]);
  auto add = m.only_reader(m.node(*mul).outputs[0], "Add");
  if (!scale || !add) return std::nullopt;
  const auto bias = m.other_input(*add, m.node(*mul).outputs[0]);
  if (!bias) return std::nullopt;
  const at::Tensor s = m.vector(*scale), b = m.vector(*bias);
  if (!s.defined() || !b.defined() || s.numel() != b.numel() ||
      s.scalar_type() != b.scalar_type())
    return std::nullopt;
  // Named as the module was: "/enc/LayerNorm/ReduceMean" -> "/enc/LayerNorm".
  std::string name = mean.name;
  const size_t slash = name.rfind('/');
  if (slash != std::string::npos && slash > 0) name = name.substr(0, slash);
  Node ln("LayerNormalization", name, {x, *scale, *bias}, {m.node(*add).outputs[0]});
  ln.set("axis", int64_t{-1}).set("epsilon", static_cast<float>(*eps));
  nodes->insert(nodes->end(), {r1, *sub, pow, *var, *add_eps, *sqrt, div, *mul, *add});
  return ln;
}

// Mul(x, HardSigmoid(x)) with HardSwish's constants, from HardSigmoid node `h`.
std::optional<Node> hard_swish_at(const Matcher& m, size_t h, std::vector<size_t>* nodes) {
  const Node& hs = m.node(h);
  if (std::abs(hs.attr_float("alpha", 0.2f) - 1.0f / 6.0f) > 1e-6f ||
      hs.attr_float("beta", 0.5f) != 0.5f)
    return std::nullopt;
  const std::string& x = hs.inputs[0];
  auto mul = m.only_reader(hs.outputs[0], "Mul");
  if (!mul || m.other_input(*mul, hs.outputs[0]) != x) return std::nullopt;
  nodes->insert(nodes->end(), {h, *mul});
  return Node("HardSwish", hs.name, {x}, {m.node(*mul).outputs[0]});
}

}  // namespace

FuseReport fuse_decompositions(Graph& graph) {
  FuseReport report;
  Matcher m(graph);
  std::map<size_t, Node> replacement;  // at the position of a pattern's last node
  std::set<size_t> removed;
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    if (m.taken(i)) continue;
    std::vector<size_t> nodes;
    std::optional<Node> fused;
    if (m.is(i, "ReduceMean")) {
      fused = layer_norm_at(m, i, &nodes);
      if (fused) ++report.layer_norms;
    } else if (m.is(i, "HardSigmoid")) {
      fused = hard_swish_at(m, i, &nodes);
      if (fused) ++report.hard_swishes;
    }
    if (!fused) continue;
    m.take(nodes);
    size_t last = 0;
    for (size_t k : nodes) last = std::max(last, k);
    removed.insert(nodes.begin(), nodes.end());
    replacement.emplace(last, std::move(*fused));
  }
  if (report.total() == 0) return report;
  // What the taken nodes read and wrote: their constants may now be unread, their
  // intermediate values are gone.
  std::set<std::string> read_by_removed, written_by_removed;
  for (size_t i : removed) {
    const Node& n = graph.nodes()[i];
    read_by_removed.insert(n.inputs.begin(), n.inputs.end());
    written_by_removed.insert(n.outputs.begin(), n.outputs.end());
  }
  std::vector<Node> out;
  out.reserve(graph.nodes().size());
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    if (auto it = replacement.find(i); it != replacement.end()) {
      out.push_back(std::move(it->second));
    } else if (!removed.count(i)) {
      out.push_back(std::move(graph.nodes()[i]));
    }
  }
  graph.nodes() = std::move(out);
  std::set<std::string> read, written;
  for (const Node& n : graph.nodes()) {
    read.insert(n.inputs.begin(), n.inputs.end());
    written.insert(n.outputs.begin(), n.outputs.end());
  }
  for (const ValueInfo& v : graph.outputs()) read.insert(v.name);
  for (const ValueInfo& v : graph.inputs()) read.insert(v.name);
  for (const std::string& v : read_by_removed)
    if (!read.count(v)) graph.initializers().erase(v);
  for (const std::string& v : written_by_removed)
    if (!written.count(v)) graph.value_info().erase(v);
  return report;
}

}  // namespace edgeforge
