// A model deployed on tiers and simulated (edgeforge/deploy.h): the host's speed against the
// reference workload, simulated requests over the topology's links, and the measurement loop
// every deployment (simulated, emulated, remote) shares.
#include <ATen/ATen.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
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

}  // namespace

// ---------------------------------------------------------------------------------------------
// Device speed

struct ReferenceWorkload::Impl {
  std::vector<Graph> models;
  std::vector<std::vector<at::Tensor>> inputs;
  std::vector<std::unique_ptr<InferenceSession>> sessions;
};

ReferenceWorkload::ReferenceWorkload() : impl_(std::make_unique<Impl>()) {
  for (const char* name : {"resnet", "bert"}) {
    impl_->models.push_back(build_zoo_model(name));
    std::vector<at::Tensor> in;
    for (const ValueInfo& v : impl_->models.back().inputs()) {
      std::vector<int64_t> shape;
      for (size_t d = 0; d < v.shape.size(); ++d)
        shape.push_back(v.shape[d].is_fixed() ? v.shape[d].size : d == 0 ? 1 : 128);
      in.push_back(at::zeros(shape, at::TensorOptions().dtype(v.dtype)));
    }
    impl_->inputs.push_back(std::move(in));
  }
  for (const Graph& g : impl_->models) impl_->sessions.push_back(std::make_unique<InferenceSession>(g));
}

ReferenceWorkload::~ReferenceWorkload() = default;

double ReferenceWorkload::measure_ms(int reps, int threads) {
  EF_CHECK(reps >= 1, "reference workload: reps ", reps, " must be at least 1");
  RunOptions ro;
  ro.threads = std::max(1, threads);
  for (size_t m = 0; m < impl_->sessions.size(); ++m) impl_->sessions[m]->run(impl_->inputs[m], ro);  // warm-up
  std::vector<double> rounds;
  for (int r = 0; r < reps; ++r) {
    double sum = 0;
    for (size_t m = 0; m < impl_->sessions.size(); ++m) {
      const auto t0 = Clock::now();
      impl_->sessions[m]->run(impl_->inputs[m], ro);
      sum += ms_since(t0);
    }
    rounds.push_back(sum);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[rounds.size() / 2];
}

double reference_workload_ms(int reps) {
  EF_CHECK(reps >= 1, "reference workload: reps ", reps, " must be at least 1");
  return ReferenceWorkload().measure_ms(reps);
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

std::vector<at::Tensor> DeploymentRunner::preprocess(const Payload&) const {
  EF_ASSERT(false, "deployment: preprocess() of a deployment that shares no preprocessing");
  return {};
}

MeasuredRequest DeploymentRunner::run_prepared(const Payload&, const std::vector<at::Tensor>&, double) {
  EF_ASSERT(false, "deployment: run_prepared() of a deployment that shares no preprocessing");
  return {};
}

std::string Deployment::preprocessing_key() const {
  // The tier that prepares the payload is part of it: its speed scales the time.
  return preprocess_->key() + "@" + std::to_string(parts_.front()->tier);
}

std::vector<at::Tensor> Deployment::preprocess(const Payload& payload) const {
  return (*preprocess_)(payload);
}

MeasuredRequest Deployment::run_prepared(const Payload& payload, const std::vector<at::Tensor>& inputs,
                                         double host_ms) {
  const Prepared prepared{&inputs, host_ms};
  return serve(payload, parts_, nullptr, 0.0, &prepared);
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
                                  std::vector<at::Tensor>* outputs, double load_ms,
                                  const Prepared* prepared) {
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
  auto t0 = Clock::now();
  std::vector<at::Tensor> model_inputs;
  if (prepared != nullptr) {
    model_inputs = *prepared->inputs;
    r.preprocess_ms = prepared->host_ms / speed(first);
  } else {
    Payload local = payload;
    local.bytes.assign(static_cast<const char*>(arrived.data_ptr()), static_cast<size_t>(arrived.numel()));
    t0 = Clock::now();
    model_inputs = (*preprocess_)(local);
    r.preprocess_ms = ms_since(t0) / speed(first);
  }

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

InterleavedSamples measure_interleaved(const std::vector<DeploymentRunner*>& deployments,
                                       const std::vector<Payload>& payloads, int runs, uint64_t seed,
                                       const std::function<void(int64_t, int64_t)>& progress) {
  EF_CHECK(runs >= 2, "runs ", runs, ": must be at least 2 (the first is a dropped warm-up)");
  EF_CHECK(!payloads.empty(), "a measurement needs at least one input");
  const size_t n = deployments.size();
  InterleavedSamples out;
  out.samples.resize(n);
  out.errors.assign(n, "");
  std::vector<std::string> keys(n);
  std::map<std::string, int> sharing;  // key -> deployments with it
  for (size_t d = 0; d < n; ++d) {
    keys[d] = deployments[d]->preprocessing_key();
    if (!keys[d].empty()) ++sharing[keys[d]];
  }
  for (size_t d = 0; d < n; ++d) {
    if (!keys[d].empty() && sharing[keys[d]] < 2) keys[d].clear();  // nothing to share with
    out.shared_preprocessing.push_back(!keys[d].empty());
  }
  const int64_t total = static_cast<int64_t>(runs) * static_cast<int64_t>(n) *
                        static_cast<int64_t>(payloads.size() + 1);
  int64_t done = 0;
  std::mt19937_64 rng(seed);
  const auto t0 = Clock::now();
  for (int r = 0; r < runs; ++r) {
    std::vector<size_t> order;
    for (size_t d = 0; d < n; ++d)
      if (out.errors[d].empty()) order.push_back(d);
    std::shuffle(order.begin(), order.end(), rng);
    out.order.push_back(order);
    // This round's prepared payloads, by key: made by the first deployment of the key to run.
    std::map<std::string, std::vector<std::optional<std::pair<std::vector<at::Tensor>, double>>>> prepared;
    for (size_t d : order) {
      DeploymentRunner& dep = *deployments[d];
      DeploymentSamples& samples = out.samples[d];
      try {
        MeasuredRequest c = dep.run_cold(payloads[0]);
        if (r > 0) samples.cold.push_back(std::move(c));
        ++done;
        for (size_t i = 0; i < payloads.size(); ++i) {
          MeasuredRequest w;
          if (keys[d].empty()) {
            w = dep.run(payloads[i]);
          } else {
            auto& slots = prepared[keys[d]];
            slots.resize(payloads.size());
            if (!slots[i]) {
              const auto p0 = Clock::now();
              std::vector<at::Tensor> inputs = dep.preprocess(payloads[i]);
              slots[i] = std::make_pair(std::move(inputs), ms_since(p0));
            }
            w = dep.run_prepared(payloads[i], slots[i]->first, slots[i]->second);
          }
          if (r > 0) {
            samples.warm.push_back(std::move(w));
            samples.warm_at.emplace_back(r, static_cast<int64_t>(i));
          }
          if (progress && ++done % 20 == 0) progress(done, total);
        }
      } catch (const std::exception& e) {
        out.errors[d] = e.what();
      }
    }
  }
  out.seconds = ms_since(t0) / 1e3;
  for (DeploymentSamples& s : out.samples) s.seconds = out.seconds;
  return out;
}

namespace {

// /proc/stat's first line: user nice system idle iowait irq softirq steal ...
std::vector<long long> proc_stat_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  std::vector<long long> v;
  if (!(in >> cpu) || cpu != "cpu") return v;
  long long x = 0;
  while (v.size() < 8 && in >> x) v.push_back(x);
  return v;
}

// This process's user + system CPU ticks (/proc/self/stat fields 14 and 15).
long long self_cpu_ticks() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int k = 3; k <= 15 && rest >> field; ++k) {
    if (k == 14) utime = std::atoll(field.c_str());
    if (k == 15) stime = std::atoll(field.c_str());
  }
  return utime + stime;
}

}  // namespace

HostConditionsMeter::HostConditionsMeter() : stat_(proc_stat_cpu()), self_ticks_(self_cpu_ticks()) {}

HostConditions HostConditionsMeter::finish() const {
  const double nan = std::nan("");
  HostConditions c{nan, nan, nan, nan};
  {
    std::ifstream in("/proc/loadavg");
    double one = 0;
    if (in >> one) c.load_avg = one;
  }
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    double sum = 0;
    int count = 0;
    while (std::getline(in, line))
      if (line.rfind("cpu MHz", 0) == 0) {
        const size_t colon = line.find(':');
        if (colon != std::string::npos) sum += std::atof(line.c_str() + colon + 1), ++count;
      }
    if (count > 0) c.cpu_mhz = sum / count;
  }
  const std::vector<long long> now = proc_stat_cpu();
  const long long self = self_cpu_ticks();
  if (now.size() == 8 && stat_.size() == 8) {
    long long total = 0, idle = 0;
    for (size_t k = 0; k < 8; ++k) total += now[k] - stat_[k];
    idle = (now[3] - stat_[3]) + (now[4] - stat_[4]);
    if (total > 0) {
      c.steal_pct = 100.0 * static_cast<double>(now[7] - stat_[7]) / static_cast<double>(total);
      if (self >= 0 && self_ticks_ >= 0) {
        const double busy = static_cast<double>(total - idle - (now[7] - stat_[7]));
        c.others_busy_pct =
            std::max(0.0, 100.0 * (busy - static_cast<double>(self - self_ticks_)) / static_cast<double>(total));
      }
    }
  }
  return c;
}

}  // namespace edgeforge
