// Cutting a model in two (edgeforge/partition.h). The crossing tensors' shapes and types come
// from running the whole graph once on zeros (batch 1), which is exact through the Shape /
// Reshape chains of the text models where ONNX shape inference is not.
#include "edgeforge/partition.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "edgeforge/runtime.h"
#include "edgeforge/summary.h"

namespace edgeforge {
namespace {

using ValueMeta = SampleValue;

// The declared shape of a crossing tensor: its dimensions at batch 1 and sequence length S,
// with those that follow the batch ("N") or the sequence ("S") symbolic, found by comparing
// with a run at batch 2 and length S - 1 (S + 1 when S is 1).
std::vector<Dim> declared_shape(const ValueMeta& one, const ValueMeta& two, int64_t seq_len,
                                int64_t other_len) {
  std::vector<Dim> dims;
  for (size_t d = 0; d < one.shape.size(); ++d) {
    const int64_t a = one.shape[d], b = d < two.shape.size() ? two.shape[d] : a;
    if (a == b) dims.emplace_back(a);
    else if (a == 1 && b == 2) dims.push_back(Dim::symbol("N"));
    else if (a == seq_len && b == other_len) dims.push_back(Dim::symbol("S"));
    else dims.push_back(Dim::symbol("d" + std::to_string(d)));
  }
  return dims;
}

int64_t bytes_of(const ValueMeta& m) {
  int64_t n = static_cast<int64_t>(c10::elementSize(m.dtype));
  for (int64_t d : m.shape) n *= d;
  return n;
}

// Where each value is produced and read, by node index.
struct Index {
  std::map<std::string, size_t> producer;
  std::map<std::string, size_t> last_reader;  // graph outputs count as read after every node
  std::map<std::string, size_t> last_node_reader;  // the last node reading each value
  std::set<std::string> model_inputs, constants;

  explicit Index(const Graph& g) {
    const auto& nodes = g.nodes();
    for (const ValueInfo& v : g.inputs())
      if (!g.has_initializer(v.name)) model_inputs.insert(v.name);
    for (size_t i = 0; i < nodes.size(); ++i) {
      for (const std::string& o : nodes[i].outputs) producer[o] = i;
      if (nodes[i].is("Constant"))
        for (const std::string& o : nodes[i].outputs) constants.insert(o);
      for (const std::string& in : nodes[i].inputs)
        if (!in.empty()) last_reader[in] = last_node_reader[in] = i;
    }
    for (const ValueInfo& v : g.outputs()) last_reader[v.name] = nodes.size();
  }
};

// The tensors that cross a cut after node `p`: values computed at or before p and read after
// it (Constant outputs excepted: part 2 gets its own copy), then model inputs read after it.
CutPoint cut_after(const Graph& g, const Index& index, const std::map<std::string, ValueMeta>& meta,
                   size_t p, const std::string& value) {
  CutPoint c;
  c.value = value;
  c.position = p;
  auto add = [&](const std::string& name, bool model_input) {
    CrossingTensor t;
    t.name = name;
    t.model_input = model_input;
    auto m = meta.find(name);
    if (m != meta.end()) {
      t.dtype = m->second.dtype;
      t.shape = m->second.shape;
      t.bytes = bytes_of(m->second);
    }
    c.bytes += t.bytes;
    c.crossing.push_back(std::move(t));
  };
  for (size_t i = 0; i <= p; ++i)
    for (const std::string& o : g.nodes()[i].outputs) {
      auto r = index.last_reader.find(o);
      if (!o.empty() && r != index.last_reader.end() && r->second > p && !index.constants.count(o))
        add(o, false);
    }
  for (const ValueInfo& v : g.inputs()) {
    auto r = index.last_node_reader.find(v.name);
    if (index.model_inputs.count(v.name) && r != index.last_node_reader.end() && r->second > p)
      add(v.name, true);
  }
  return c;
}

// Edits (insert, delete, replace a character) between two names.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The valid cut names closest to `name` (fewest edits), at most three.
std::string nearest(const std::vector<CutPoint>& cuts, const std::string& name) {
  std::vector<std::pair<size_t, std::string>> scored;
  for (const CutPoint& c : cuts) scored.emplace_back(edit_distance(name, c.value), c.value);
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (size_t i = 0; i < std::min<size_t>(3, scored.size()); ++i)
    out += (i ? ", " : "") + scored[i].second;
  return out;
}

// The initializers `nodes` read, copied into `part`.
void copy_initializers(const Graph& g, const std::vector<Node>& nodes, Graph& part) {
  for (const Node& n : nodes)
    for (const std::string& in : n.inputs)
      if (!in.empty() && g.has_initializer(in) && !part.has_initializer(in))
        part.add_initializer(in, g.initializers().at(in));
}

}  // namespace

std::vector<CutPoint> list_cut_points(const Graph& graph, int64_t seq_len) {
  const auto meta = sample_values(graph, seq_len);
  const Index index(graph);
  std::vector<CutPoint> cuts;
  const auto& nodes = graph.nodes();
  for (size_t i = 0; i + 1 < nodes.size(); ++i) {
    if (nodes[i].is("Constant") || nodes[i].outputs.empty()) continue;
    cuts.push_back(cut_after(graph, index, meta, i, nodes[i].outputs[0]));
  }
  return cuts;
}

std::string study_cut_point(const Graph& graph, int64_t seq_len, std::string* why) {
  for (const std::string name : {"stage3.out", "embeddings.out"}) {
    if (graph.producer(name) == nullptr) continue;
    if (why != nullptr) *why = "the study's cut of the zoo's " + std::string(name[0] == 's' ? "image" : "text") + " models";
    // A quantized model sends the value as quantized: cut after its QuantizeLinear.
    const Node* q = graph.producer(name + ".quantized");
    if (q != nullptr && q->is("QuantizeLinear") && q->inputs[0] == name) return name + ".quantized";
    return name;
  }
  if (why == nullptr) return "";
  return default_cut_point(graph, seq_len, why);
}

std::string default_cut_point(const Graph& graph, int64_t seq_len, std::string* why) {
  const std::vector<CutPoint> cuts = list_cut_points(graph, seq_len);
  auto computed_bytes = [](const CutPoint& c) {
    int64_t n = 0;
    for (const CrossingTensor& t : c.crossing) n += t.model_input ? 0 : t.bytes;
    return n;
  };
  auto say = [&](const std::string& text) {
    if (why != nullptr) *why = text;
  };
  // A QDQ model is cut after a QuantizeLinear where one is at hand, so the tensor crosses as int8.
  auto quantized = [&](const std::string& value) {
    for (const Node& n : graph.nodes())
      if (n.is("QuantizeLinear") && n.inputs[0] == value) return n.outputs[0];
    return value;
  };
  if (cuts.empty()) {
    say("the model has no node whose output can cut it");
    return "";
  }
  // Text: after the embeddings: between the token-id lookup and the first layer's first product
  // (the embedding sum and its LayerNorm), the cut sending the fewest bytes.
  size_t lookup = graph.nodes().size();
  for (size_t i = 0; i < graph.nodes().size() && lookup == graph.nodes().size(); ++i) {
    const Node& n = graph.nodes()[i];
    if (n.is("Gather") && n.inputs.size() == 2 && graph.has_initializer(n.inputs[0])) {
      std::string idx = n.inputs[1];
      for (const Node* p = graph.producer(idx); p != nullptr && (p->is("Cast") || p->is("Identity"));
           p = graph.producer(idx))
        idx = p->inputs[0];
      for (const ValueInfo& v : graph.inputs())
        if (v.name == idx && (v.dtype == at::kLong || v.dtype == at::kInt)) lookup = i;
    }
  }
  if (lookup < graph.nodes().size()) {
    // The embeddings end where the first layer's first product starts.
    size_t layer = lookup + 1;
    while (layer < graph.nodes().size() && !graph.nodes()[layer].is("MatMul") &&
           !graph.nodes()[layer].is("Gemm"))
      ++layer;
    size_t best = cuts.size();
    for (size_t j = 0; j < cuts.size(); ++j) {
      if (cuts[j].position < lookup || cuts[j].position >= layer) continue;
      if (best == cuts.size() || computed_bytes(cuts[j]) <= computed_bytes(cuts[best])) best = j;
    }
    if (best < cuts.size()) {
      say("after the embeddings: the cut sending the fewest bytes (" +
          std::to_string(computed_bytes(cuts[best])) +
          " per sample) between the token-id lookup and the first layer's first product, the latest of equals");
      return quantized(cuts[best].value);
    }
  }
  // Images and other tensors: the cut that sends the fewest bytes in the middle of the graph
  // (from half to 85% of its nodes; after three of four stages in the study's ResNets), the
  // latest of equals.
  const size_t nodes = graph.nodes().size();
  size_t best = cuts.size();
  for (size_t j = 0; j < cuts.size(); ++j) {
    if (cuts[j].position * 100 < nodes * 50 || cuts[j].position * 100 > nodes * 85) continue;
    if (best == cuts.size() || computed_bytes(cuts[j]) <= computed_bytes(cuts[best])) best = j;
  }
  if (best == cuts.size()) {
    say("the model is too small to cut in its middle (" + std::to_string(nodes) + " nodes)");
    return "";
  }
  say("the cut sending the fewest bytes (" + std::to_string(computed_bytes(cuts[best])) +
      " per sample) between half and 85% of the model's nodes");
  return quantized(cuts[best].value);
}

Partition partition_graph(const Graph& graph, const std::string& value, int64_t seq_len) {
  const Index index(graph);
  const auto& nodes = graph.nodes();
  const std::string model = "model '" + graph.name() + "'";
  auto p_it = index.producer.find(value);
  if (p_it == index.producer.end()) {
    if (index.model_inputs.count(value) || graph.has_initializer(value))
      throw Error(detail::concat(model, ": '", value, "' is a model ",
                                 index.model_inputs.count(value) ? "input" : "constant",
                                 ", not computed by a node: it cannot cut the graph"));
    throw Error(detail::concat(model, ": no value named '", value,
                               "' (nearest cut points: ", nearest(list_cut_points(graph, seq_len), value),
                               "; `edgeforge partition --list` shows them all)"));
  }
  const size_t p = p_it->second;
  EF_CHECK(!index.constants.count(value), model, ": '", value,
           "' is a constant, not computed from the input: it cannot cut the graph");
  EF_CHECK(p + 1 < nodes.size(), model, ": '", value,
           "' is computed by the last node, so part 2 would be empty");
  for (const ValueInfo& v : graph.outputs()) {
    auto o = index.producer.find(v.name);
    EF_CHECK(o == index.producer.end() || o->second > p, model, ": the model output '", v.name,
             "' is computed before the cut after '", value, "'; cut after it instead");
  }
  const auto meta = sample_values(graph, seq_len);
  // One token shorter, not longer: a model's positions may end at seq_len (BERT's 512).
  const int64_t other_len = seq_len > 1 ? seq_len - 1 : seq_len + 1;
  const auto meta2 = sample_values(graph, other_len, 2);
  Partition out;
  out.cut = cut_after(graph, index, meta, p, value);
  auto declared = [&](const CrossingTensor& t) {
    return ValueInfo{t.name, t.dtype, declared_shape(meta.at(t.name), meta2.at(t.name), seq_len, other_len),
                     true};
  };

  // Part 1: the nodes up to the cut; its outputs are the computed crossing tensors.
  Graph& a = out.part1;
  a.set_name(graph.name() + ".part1");
  std::vector<Node> first(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(p) + 1);
  std::set<std::string> read_first;
  for (const Node& n : first) read_first.insert(n.inputs.begin(), n.inputs.end());
  for (const ValueInfo& v : graph.inputs())
    if (index.model_inputs.count(v.name) && read_first.count(v.name)) a.add_input(v);
  for (Node n : first) a.add_node(std::move(n));
  copy_initializers(graph, first, a);
  for (const CrossingTensor& t : out.cut.crossing)
    if (!t.model_input) a.add_output(declared(t));

  // Part 2: the crossing tensors in, the rest of the nodes (with copies of the Constant nodes
  // of part 1 it reads), the model's outputs out.
  Graph& b = out.part2;
  b.set_name(graph.name() + ".part2");
  std::vector<Node> second(nodes.begin() + static_cast<std::ptrdiff_t>(p) + 1, nodes.end());
  std::set<std::string> read_second;
  for (const Node& n : second) read_second.insert(n.inputs.begin(), n.inputs.end());
  for (const CrossingTensor& t : out.cut.crossing) {
    if (!t.model_input) {
      b.add_input(declared(t));
      continue;
    }
    for (const ValueInfo& v : graph.inputs())
      if (v.name == t.name) b.add_input(v);
  }
  std::vector<Node> constants;
  for (const Node& n : first)
    if (n.is("Constant") && read_second.count(n.outputs[0])) constants.push_back(n);
  second.insert(second.begin(), constants.begin(), constants.end());
  for (const Node& n : second) b.add_node(n);
  copy_initializers(graph, second, b);
  for (const ValueInfo& v : graph.outputs()) b.add_output(v);

  for (Graph* part : {&a, &b}) {
    part->metadata() = graph.metadata();
    part->metadata()["edgeforge.partition"] =
        std::string("{\"part\":") + (part == &a ? "1" : "2") + ",\"cut\":\"" + value + "\"}";
    part->validate();
  }
  return out;
}

}  // namespace edgeforge
