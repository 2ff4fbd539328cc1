// Where a model runs (edgeforge/deploy.h): placements, their parts, and the estimate that
// ranks every placement and cut of a model on a topology.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "edgeforge/data.h"
#include "edgeforge/dataset.h"
#include "edgeforge/deploy.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/summary.h"
#include "edgeforge/task.h"
#include "edgeforge/util.h"
#include "edgeforge/wire.h"
#include "edgeforge/zoo.h"

namespace edgeforge {
namespace {

using Clock = std::chrono::steady_clock;

// Encoded size of the message that carries these tensors across a cut.
int64_t crossing_message_bytes(const std::vector<CrossingTensor>& tensors) {
  std::vector<std::pair<size_t, int64_t>> sizes;
  for (const CrossingTensor& t : tensors) sizes.emplace_back(t.shape.size(), t.bytes);
  return wire_message_bytes(sizes);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Placement

Placement parse_placement(const std::string& spec, const Topology& topology) {
  Placement p;
  const auto dash = spec.find('-');
  p.first = spec.substr(0, dash);
  if (dash != std::string::npos) p.second = spec.substr(dash + 1);
  EF_CHECK(dash == std::string::npos || (!p.second.empty() && p.second.find('-') == std::string::npos),
           "deploy '", spec, "': a split names two tiers, FIRST-SECOND (e.g. mobile-edge)");
  std::string names;
  for (const TierProfile& t : topology.tiers) names += (names.empty() ? "" : ", ") + t.name;
  for (const std::string* t : {&p.first, &p.second}) {
    if (t == &p.second && !p.split()) continue;
    bool found = false;
    for (const TierProfile& tier : topology.tiers) found = found || tier.name == *t;
    EF_CHECK(found, "deploy '", spec, "': no tier '", *t, "' in topology '", topology.name,
             "' (tiers: ", names, "; a split is FIRST-SECOND, e.g. mobile-edge)");
  }
  if (p.split())
    EF_CHECK(topology.index_of(p.first) < topology.index_of(p.second), "deploy '", spec,
             "': part 2's tier must come after part 1's in the order requests travel (", names, ")");
  return p;
}

int64_t model_memory_bytes(const Graph& model, int64_t seq_len) {
  int64_t n = 0;
  for (const auto& [name, t] : model.initializers()) n += static_cast<int64_t>(t.nbytes());
  for (const auto& [name, v] : sample_values(model, seq_len)) {
    if (model.has_initializer(name)) continue;
    int64_t b = static_cast<int64_t>(c10::elementSize(v.dtype));
    for (int64_t d : v.shape) b *= d;
    n += b;
  }
  return n;
}
std::vector<std::pair<std::string, Graph>> placement_parts(const Graph& model, const Placement& placement,
                                                           CutPoint* cut) {
  std::vector<std::pair<std::string, Graph>> parts;
  if (!placement.split()) {
    parts.emplace_back(placement.first, model);
    return parts;
  }
  EF_CHECK(!placement.cut.empty(), "deploy ", placement.label(), ": a split needs a cut point");
  Partition p = partition_graph(model, placement.cut, model_seq_len(model));
  if (cut != nullptr) *cut = p.cut;
  parts.emplace_back(placement.first, std::move(p.part1));
  parts.emplace_back(placement.second, std::move(p.part2));
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Choosing a placement

std::vector<double> profile_nodes(const Graph& model, const std::vector<at::Tensor>& inputs,
                                  int threads, int reps, const std::function<void()>& between) {
  std::map<std::string, size_t> producer;
  const auto& nodes = model.nodes();
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const std::string& o : nodes[i].outputs) producer[o] = i;
  InferenceSession session(model);
  RunOptions ro;
  ro.threads = threads;
  session.run(inputs, ro);  // warm-up: primitives created, weights reordered
  NodeProfile prof;
  ro.profile = &prof;
  for (int i = 0; i < std::max(1, reps); ++i) {
    if (between) between();
    session.run(inputs, ro);
  }
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < nodes.size(); ++i) by_name[nodes[i].name] = i;
  std::map<std::string, const Node*> lowered;
  for (const Node& n : session.graph().nodes()) lowered[n.name] = &n;
  std::vector<double> ms(nodes.size(), 0.0);
  for (size_t k = 0; k < prof.nodes.size(); ++k) {
    const Node* n = lowered.at(prof.nodes[k]);
    // A kernel covers the original nodes from the one it is named after (a fused kernel takes
    // its first node's name) to the last one whose output it produces; its time is spread
    // evenly over them. A node the lowering added goes to the last node it reads from.
    std::optional<size_t> last;
    for (const std::string& o : n->outputs)
      if (auto it = producer.find(o); it != producer.end()) last = std::max(last.value_or(0), it->second);
    if (!last)
      for (const std::string& in : n->inputs)
        if (auto it = producer.find(in); it != producer.end()) last = std::max(last.value_or(0), it->second);
    const size_t hi = last.value_or(0);
    auto named = by_name.find(n->name);
    const size_t lo = named != by_name.end() && named->second <= hi ? named->second : hi;
    const double share = prof.ms[k] / static_cast<double>(prof.runs) / static_cast<double>(hi - lo + 1);
    for (size_t i = lo; i <= hi; ++i) ms[i] += share;
  }
  return ms;
}

std::vector<PlacementEstimate> rank_placements(const PlacementInputs& in) {
  const Topology& topo = in.topology;
  const size_t tiers = topo.tiers.size();
  EF_CHECK(in.node_ms.size() == tiers, "rank_placements: ", in.node_ms.size(),
           " node profiles for ", tiers, " tiers");
  std::vector<std::vector<double>> prefix(tiers);  // prefix[t][i]: nodes 0..i on tier t
  for (size_t t = 0; t < tiers; ++t) {
    double s = 0;
    for (double v : in.node_ms[t]) prefix[t].push_back(s += v);
  }
  auto total = [&](size_t t) { return prefix[t].empty() ? 0.0 : prefix[t].back(); };
  // One way from tier a to tier b (a <= b), or back.
  auto carry = [&](size_t a, size_t b, int64_t bytes) {
    double ms = 0;
    for (size_t k = a; k < b; ++k) ms += topo.links[k].one_way_ms(bytes);
    return ms;
  };
  std::vector<PlacementEstimate> out;
  for (size_t a = 0; a < tiers; ++a) {
    const double pre = in.preprocess_ms / topo.tiers[a].speed;
    PlacementEstimate whole;
    whole.placement.first = topo.tiers[a].name;
    whole.preprocess_ms = pre;
    whole.compute_first_ms = total(a);
    whole.transfer_ms = carry(0, a, in.payload_bytes) + carry(0, a, in.response_bytes);
    whole.total_ms = pre + whole.compute_first_ms + whole.transfer_ms;
    out.push_back(whole);
    for (size_t b = a + 1; b < tiers; ++b)
      for (const CutPoint& c : in.cuts) {
        if (c.position >= prefix[a].size()) continue;
        PlacementEstimate e;
        e.placement = {topo.tiers[a].name, topo.tiers[b].name, c.value};
        e.crossing_bytes = crossing_message_bytes(c.crossing);
        e.preprocess_ms = pre;
        e.compute_first_ms = prefix[a][c.position];
        e.compute_second_ms = total(b) - prefix[b][c.position];
        e.transfer_ms = carry(0, a, in.payload_bytes) + carry(a, b, e.crossing_bytes) +
                        carry(0, b, in.response_bytes);
        e.total_ms = pre + e.compute_first_ms + e.compute_second_ms + e.transfer_ms;
        out.push_back(std::move(e));
      }
  }
  std::stable_sort(out.begin(), out.end(), [](const PlacementEstimate& x, const PlacementEstimate& y) {
    return x.total_ms < y.total_ms;
  });
  return out;
}

PlacementInputs measure_placement_inputs(const Graph& model, const Topology& topology,
                                         const Payload& sample, int reps) {
  PlacementInputs in;
  in.topology = topology;
  resolve_speeds(in.topology);
  const int64_t seq_len = model_seq_len(model);
  const Preprocessor pre(model);
  std::vector<double> pre_ms;
  std::vector<at::Tensor> inputs;
  for (int i = 0; i < 21; ++i) {
    const auto t0 = Clock::now();
    inputs = pre(sample);
    pre_ms.push_back(ms_since(t0));
  }
  std::nth_element(pre_ms.begin(), pre_ms.begin() + 10, pre_ms.end());
  in.preprocess_ms = pre_ms[10];
  at::Tensor raw = at::empty({static_cast<int64_t>(sample.bytes.size())}, at::kByte);
  in.payload_bytes = static_cast<int64_t>(encode_tensors({raw}).size());
  {
    InferenceSession session(model);
    RunOptions ro;
    in.response_bytes = static_cast<int64_t>(encode_tensors(session.run(inputs, ro)).size());
  }
  std::map<int, std::vector<double>> by_threads;
  for (const TierProfile& t : in.topology.tiers) {
    const int threads = static_cast<int>(std::min<int64_t>(t.cores, host_cores()));
    if (!by_threads.count(threads))
      by_threads[threads] = profile_nodes(model, inputs, threads, reps, [&] { pre(sample); });
    std::vector<double> ms = by_threads[threads];
    for (double& v : ms) v /= t.speed;
    in.node_ms.push_back(std::move(ms));
  }
  // Cuts partition_graph accepts: none after which a model output is already computed.
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < model.nodes().size(); ++i)
    for (const std::string& o : model.nodes()[i].outputs) producer[o] = i;
  size_t first_output = model.nodes().size();
  for (const ValueInfo& v : model.outputs())
    if (auto it = producer.find(v.name); it != producer.end())
      first_output = std::min(first_output, it->second);
  for (CutPoint& c : list_cut_points(model, seq_len))
    if (c.position < first_output) in.cuts.push_back(std::move(c));
  return in;
}

std::string explain_choice(const std::vector<PlacementEstimate>& ranked) {
  EF_CHECK(!ranked.empty(), "explain_choice: no placements");
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  auto parts = [&](const PlacementEstimate& e) {
    std::ostringstream p;
    p.setf(std::ios::fixed);
    p.precision(2);
    p << e.total_ms << " ms = preprocess " << e.preprocess_ms << " + compute "
      << e.compute_first_ms;
    if (e.placement.split()) p << " + " << e.compute_second_ms;
    p << " + transfer " << e.transfer_ms;
    return p.str();
  };
  auto name = [](const PlacementEstimate& e) {
    return e.placement.split() ? e.placement.label() + " cut after " + e.placement.cut
                               : e.placement.label() + " (whole model)";
  };
  const PlacementEstimate& best = ranked.front();
  s << name(best) << ": " << parts(best);
  for (const PlacementEstimate& e : ranked)
    if (e.placement.split() != best.placement.split()) {
      s << "; best " << (e.placement.split() ? "split" : "whole-model placement") << ", "
        << name(e) << ": " << parts(e);
      break;
    }
  return s.str();
}

}  // namespace edgeforge
