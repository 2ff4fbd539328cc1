// A model deployed on tiers, simulated (edgeforge/deploy.h).
#include "edgeforge/deploy.h"

#include <ATen/ATen.h>
#include <oneapi/dnnl/dnnl.hpp>

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
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/summary.h"
#include "edgeforge/task.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"

namespace edgeforge {
namespace {

using Clock = std::chrono::steady_clock;

// Wire codes of the tensor types a message carries.
constexpr std::pair<uint8_t, at::ScalarType> kWireTypes[] = {
    {1, at::kFloat}, {2, at::kByte}, {3, at::kChar}, {4, at::kLong}, {5, at::kInt},
    {6, at::kBool}, {7, at::kDouble}, {8, at::kHalf}};

uint8_t wire_code(at::ScalarType t) {
  for (const auto& [code, type] : kWireTypes)
    if (type == t) return code;
  throw Error(detail::concat("encode_tensors: type ", t, " cannot be sent"));
}

// Encoded size of a message of tensors with these shapes and element sizes.
int64_t message_bytes(const std::vector<CrossingTensor>& tensors) {
  int64_t n = 4;
  for (const CrossingTensor& t : tensors) n += 2 + 8 * static_cast<int64_t>(t.shape.size()) + t.bytes;
  return n;
}


}  // namespace

// ---------------------------------------------------------------------------------------------
// Payloads

std::vector<Payload> make_payloads(const Graph& model, const PayloadOptions& opts) {
  EF_CHECK(opts.inputs >= 1, "inputs: ", opts.inputs, " must be at least 1");
  std::optional<DataSpec> spec = model_data_spec(model);
  std::unique_ptr<Dataset> data;
  if (spec && (spec->kind == kDatasetFashionMnist || spec->kind == kDatasetSpam)) {
    EF_CHECK(opts.frame_height >= 1 && opts.frame_width >= 1 && opts.frame_height <= 8192 &&
                 opts.frame_width <= 8192,
             "frame size ", opts.frame_width, "x", opts.frame_height, " must be 1..8192 a side");
    if (spec->kind == kDatasetFashionMnist) {
      spec->fields["frame_height"] = opts.frame_height;
      spec->fields["frame_width"] = opts.frame_width;
    }
    if (!opts.data_dir.empty()) spec->fields["dir"] = opts.data_dir;
    data = find_data_kind(spec->kind)->open(*spec, model, "");
  } else {
    data = open_dataset(model);
  }
  std::vector<Payload> out = data->payloads(opts.split, opts.inputs);
  EF_CHECK(!out.empty(), "the ", opts.split, " split of ", data->spec().name(), " has no samples");
  return out;
}

struct Preprocessor::Impl {
  std::unique_ptr<Dataset> data;
};

Preprocessor::Preprocessor(const Graph& model) : impl_(std::make_unique<Impl>()) {
  impl_->data = open_dataset(model);
}

Preprocessor::~Preprocessor() = default;
Preprocessor::Preprocessor(Preprocessor&&) noexcept = default;

std::vector<at::Tensor> Preprocessor::operator()(const Payload& p) const {
  return impl_->data->preprocess(p);
}

// ---------------------------------------------------------------------------------------------
// Messages

std::string encode_tensors(const std::vector<at::Tensor>& tensors) {
  std::string out;
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  const auto count = static_cast<uint32_t>(tensors.size());
  size_t size = 4;
  for (const at::Tensor& t : tensors) size += 2 + 8 * t.dim() + t.nbytes();
  out.reserve(size);
  put(&count, 4);
  for (const at::Tensor& t0 : tensors) {
    const at::Tensor t = t0.is_quantized() ? t0.int_repr().contiguous() : t0.contiguous();
    EF_CHECK(t.dim() <= 255, "encode_tensors: rank ", t.dim(), " is too large");
    const uint8_t head[2] = {wire_code(t.scalar_type()), static_cast<uint8_t>(t.dim())};
    put(head, 2);
    for (int64_t d : t.sizes()) put(&d, 8);
    put(t.data_ptr(), t.nbytes());
  }
  return out;
}

std::vector<at::Tensor> decode_tensors(const std::string& message, const std::string& what) {
  size_t at = 0;
  auto take = [&](void* dst, size_t n, const char* field) {
    EF_CHECK(message.size() - at >= n, what, ": message truncated in ", field, " at byte ", at,
             " of ", message.size());
    std::memcpy(dst, message.data() + at, n);
    at += n;
  };
  uint32_t count = 0;
  take(&count, 4, "the tensor count");
  EF_CHECK(count <= 4096, what, ": ", count, " tensors is more than a message carries");
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t head[2];
    take(head, 2, "a tensor header");
    at::ScalarType type = at::kFloat;
    bool known = false;
    for (const auto& [code, t] : kWireTypes)
      if (code == head[0]) type = t, known = true;
    EF_CHECK(known, what, ": tensor ", i, " has unknown type code ", int{head[0]});
    std::vector<int64_t> dims(head[1]);
    int64_t n = static_cast<int64_t>(c10::elementSize(type));
    for (int64_t& d : dims) {
      take(&d, 8, "a tensor shape");
      EF_CHECK(d >= 0 && d <= (int64_t{1} << 40), what, ": tensor ", i, " has dimension ", d);
      EF_CHECK(d == 0 || n <= (int64_t{1} << 40) / d, what, ": tensor ", i, " is too large");
      n *= d;
    }
    EF_CHECK(static_cast<int64_t>(message.size() - at) >= n, what, ": tensor ", i, " needs ", n,
             " bytes for its type and shape, the message has ", message.size() - at, " left");
    at::Tensor t = at::empty(dims, at::TensorOptions().dtype(type));
    take(t.data_ptr(), static_cast<size_t>(n), "tensor data");
    out.push_back(std::move(t));
  }
  EF_CHECK(at == message.size(), what, ": ", message.size() - at, " bytes after the last tensor");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Device speed

double reference_workload_ms(int reps) {
  EF_CHECK(reps >= 1, "reference workload: reps ", reps, " must be at least 1");
  std::vector<Graph> models;
  std::vector<std::vector<at::Tensor>> inputs;
  for (const char* name : {"resnet", "bert"}) {
    models.push_back(build_zoo_model(name));
    std::vector<at::Tensor> in;
    for (const ValueInfo& v : models.back().inputs()) {
      std::vector<int64_t> shape;
      for (size_t d = 0; d < v.shape.size(); ++d)
        shape.push_back(v.shape[d].is_fixed() ? v.shape[d].size : d == 0 ? 1 : 128);
      in.push_back(at::zeros(shape, at::TensorOptions().dtype(v.dtype)));
    }
    inputs.push_back(std::move(in));
  }
  std::vector<std::unique_ptr<InferenceSession>> sessions;
  for (const Graph& g : models) sessions.push_back(std::make_unique<InferenceSession>(g));
  RunOptions ro;
  ro.threads = 1;
  for (size_t m = 0; m < sessions.size(); ++m) sessions[m]->run(inputs[m], ro);  // warm-up
  std::vector<double> rounds;
  for (int r = 0; r < reps; ++r) {
    double sum = 0;
    for (size_t m = 0; m < sessions.size(); ++m) {
      const auto t0 = Clock::now();
      sessions[m]->run(inputs[m], ro);
      sum += ms_since(t0);
    }
    rounds.push_back(sum);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[rounds.size() / 2];
}

void resolve_speeds(Topology& topology) {
  static double host_ms = 0;
  for (TierProfile& t : topology.tiers) {
    if (t.speed > 0) continue;
    EF_CHECK(t.reference_ms > 0, "tier '", t.name, "' has neither a speed nor a reference_ms");
    if (host_ms == 0) host_ms = reference_workload_ms();
    t.speed = host_ms / t.reference_ms;
  }
}

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

// ---------------------------------------------------------------------------------------------
// Simulated requests

RequestTiming simulate(const MeasuredRequest& r, const Topology& topology, std::mt19937_64& rng) {
  RequestTiming t;
  t.preprocess_ms = r.preprocess_ms;
  t.serialise_ms = r.serialise_ms;
  t.load_ms = r.load_ms;
  t.compute_ms = r.compute_ms;
  if (r.wall_ms > 0) {  // measured on real tiers: nothing to simulate
    t.link_ms = r.link_ms;
    t.link_ms.resize(topology.links.size(), 0.0);
    t.total_ms = r.wall_ms;
    return t;
  }
  t.link_ms.assign(topology.links.size(), 0.0);
  for (const Hop& h : r.hops) {
    EF_ASSERT(h.link < topology.links.size(), "simulate: hop on link ", h.link, " of ",
              topology.links.size());
    const Link& l = topology.links[h.link];
    double ms = l.one_way_ms(h.bytes);
    if (l.jitter_ms > 0) ms = std::max(0.0, ms + std::normal_distribution<double>(0, l.jitter_ms)(rng));
    if (l.loss > 0) {
      const int64_t packets = std::max<int64_t>(1, (h.bytes + 1447) / 1448);
      ms += l.rtt_ms * static_cast<double>(std::binomial_distribution<int64_t>(packets, l.loss)(rng));
    }
    t.link_ms[h.link] += ms;
  }
  t.total_ms = t.preprocess_ms + t.serialise_ms + t.load_ms;
  for (double c : t.compute_ms) t.total_ms += c;
  for (double l : t.link_ms) t.total_ms += l;
  return t;
}

struct Deployment::Part {
  size_t tier = 0;
  std::string onnx;  // the part as an ONNX file, for cold loads
  Graph graph;
  std::unique_ptr<InferenceSession> session;
  std::vector<std::string> inputs, outputs;
};

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

Deployment::Deployment(const Graph& model, const Topology& topology, Placement placement)
    : topology_(topology), placement_(std::move(placement)) {
  resolve_speeds(topology_);
  const int64_t seq_len = model_seq_len(model);
  cut_ = std::make_unique<CutPoint>();
  for (auto& [tier, g] : placement_parts(model, placement_, cut_.get())) {
    auto part = std::make_unique<Part>();
    part->tier = topology_.index_of(tier);
    check_fits(topology_.tiers[part->tier], model_memory_bytes(g, seq_len), g.name());
    part->onnx = graph_to_onnx_bytes(g);
    part->graph = std::move(g);
    part->session = std::make_unique<InferenceSession>(part->graph);
    for (const ValueInfo& v : part->graph.inputs())
      if (!part->graph.has_initializer(v.name)) part->inputs.push_back(v.name);
    for (const ValueInfo& v : part->graph.outputs()) part->outputs.push_back(v.name);
    parts_.push_back(std::move(part));
  }
  preprocess_ = std::make_unique<Preprocessor>(model);
  for (const ValueInfo& v : model.inputs())
    if (!model.has_initializer(v.name)) model_inputs_.push_back(v.name);
}

Deployment::~Deployment() = default;

int Deployment::threads_of(size_t tier) const {
  return static_cast<int>(std::min<int64_t>(topology_.tiers.at(tier).cores, host_cores()));
}

const CutPoint& Deployment::cut() const { return *cut_; }

int64_t Deployment::payload_bytes(const Payload& p) const {
  return 4 + 2 + 8 + static_cast<int64_t>(p.bytes.size());  // one uint8 tensor [n]
}

MeasuredRequest Deployment::run(const Payload& payload, std::vector<at::Tensor>* outputs) {
  return serve(payload, parts_, outputs, 0.0);
}

MeasuredRequest Deployment::run_cold(const Payload& payload) {
  // oneDNN keeps created primitives in a process-wide cache; a cold start must create them.
  const int capacity = dnnl::get_primitive_cache_capacity();
  dnnl::set_primitive_cache_capacity(0);
  double load_ms = 0;
  std::vector<std::unique_ptr<Part>> fresh;
  try {
    for (const auto& p : parts_) {
      const auto t0 = Clock::now();
      auto part = std::make_unique<Part>();
      part->tier = p->tier;
      part->graph = graph_from_onnx_bytes(p->onnx, p->graph.name());
      part->session = std::make_unique<InferenceSession>(part->graph);
      part->inputs = p->inputs;
      part->outputs = p->outputs;
      load_ms += ms_since(t0) / topology_.tiers[p->tier].speed;
      fresh.push_back(std::move(part));
    }
    MeasuredRequest r = serve(payload, fresh, nullptr, load_ms);
    dnnl::set_primitive_cache_capacity(capacity);
    return r;
  } catch (...) {
    dnnl::set_primitive_cache_capacity(capacity);
    throw;
  }
}

MeasuredRequest Deployment::serve(const Payload& payload, std::vector<std::unique_ptr<Part>>& parts,
                                  std::vector<at::Tensor>* outputs, double load_ms) {
  MeasuredRequest r;
  r.load_ms = load_ms;
  r.compute_ms.assign(topology_.tiers.size(), 0.0);
  auto speed = [&](size_t tier) { return topology_.tiers[tier].speed; };
  // A message from tier `from` to tier `to`: encoded by the sender, decoded by the receiver,
  // one hop per link between them.
  auto send = [&](const std::vector<at::Tensor>& tensors, size_t from, size_t to,
                  const char* what) -> std::vector<at::Tensor> {
    if (from == to) return tensors;
    auto t0 = Clock::now();
    const std::string message = encode_tensors(tensors);
    r.serialise_ms += ms_since(t0) / speed(from);
    t0 = Clock::now();
    std::vector<at::Tensor> received = decode_tensors(message, what);
    r.serialise_ms += ms_since(t0) / speed(to);
    const size_t lo = std::min(from, to), hi = std::max(from, to);
    for (size_t k = lo; k < hi; ++k) {
      const size_t link = from < to ? k : hi - 1 - (k - lo);
      r.hops.push_back({link, static_cast<int64_t>(message.size()), what});
    }
    return received;
  };

  // The raw input travels from the first tier to the tier of part 1, which preprocesses it.
  const size_t first = parts.front()->tier;
  at::Tensor raw = at::empty({static_cast<int64_t>(payload.bytes.size())}, at::kByte);
  std::memcpy(raw.data_ptr(), payload.bytes.data(), payload.bytes.size());
  const at::Tensor arrived = send({raw}, 0, first, "payload")[0];
  Payload local = payload;
  local.bytes.assign(static_cast<const char*>(arrived.data_ptr()), static_cast<size_t>(arrived.numel()));
  auto t0 = Clock::now();
  const std::vector<at::Tensor> model_inputs = (*preprocess_)(local);
  r.preprocess_ms = ms_since(t0) / speed(first);

  // Values by name: the model's inputs, then each part's outputs. Part 2's inputs (computed
  // tensors and model inputs it reads directly) travel together as the crossing message.
  std::map<std::string, at::Tensor> values;
  for (size_t i = 0; i < model_inputs.size(); ++i) values[model_inputs_.at(i)] = model_inputs[i];
  size_t at_tier = first;
  std::vector<at::Tensor> result;
  for (size_t pi = 0; pi < parts.size(); ++pi) {
    Part& part = *parts[pi];
    std::vector<at::Tensor> ins;
    for (const std::string& name : part.inputs) {
      auto it = values.find(name);
      EF_ASSERT(it != values.end(), "deployment: part ", pi + 1, " input '", name, "' missing");
      ins.push_back(it->second);
    }
    if (part.tier != at_tier) ins = send(ins, at_tier, part.tier, "crossing");
    RunOptions ro;
    ro.threads = threads_of(part.tier);
    t0 = Clock::now();
    result = part.session->run(ins, ro);
    r.compute_ms[part.tier] += ms_since(t0) / speed(part.tier);
    at_tier = part.tier;
    for (size_t o = 0; o < part.outputs.size(); ++o) values[part.outputs[o]] = result[o];
  }
  // The response returns to the first tier.
  result = send(result, at_tier, 0, "response");
  if (outputs != nullptr) *outputs = result;
  return r;
}

DeploymentSamples measure_deployment(DeploymentRunner& deployment, const std::vector<Payload>& payloads,
                                     int runs, const std::function<void(int64_t, int64_t)>& progress) {
  EF_CHECK(runs >= 2, "runs ", runs, ": must be at least 2 (the first is a dropped warm-up)");
  EF_CHECK(!payloads.empty(), "a measurement needs at least one input");
  DeploymentSamples out;
  const int64_t total = static_cast<int64_t>(runs) * static_cast<int64_t>(payloads.size() + 1);
  int64_t done = 0;
  const auto t0 = Clock::now();
  for (int r = 0; r < runs; ++r) {
    MeasuredRequest c = deployment.run_cold(payloads[0]);
    if (r > 0) out.cold.push_back(std::move(c));
    ++done;
    for (size_t i = 0; i < payloads.size(); ++i) {
      MeasuredRequest w = deployment.run(payloads[i]);
      if (r > 0) {
        out.warm.push_back(std::move(w));
        out.warm_at.emplace_back(r, static_cast<int64_t>(i));
      }
      if (progress && ++done % 20 == 0) progress(done, total);
    }
  }
  out.seconds = ms_since(t0) / 1e3;
  return out;
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
        e.crossing_bytes = message_bytes(c.crossing);
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
