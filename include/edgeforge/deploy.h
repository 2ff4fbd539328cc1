// edgeforge/deploy.h: a model deployed on a topology's tiers, what a request carries, and the
// simulated measurement of its end-to-end latency (docs/deployment.md).
//
// A request starts at the first tier (mobile) with the raw input as captured: an image frame
// (224x224 RGB, 8 bits per channel, made from the data set's image) or a text's UTF-8 bytes. It
// is forwarded tier by tier to the tier that runs the model, or part 1 of it; that tier
// preprocesses it (resize and normalise; tokenise) and computes; a partitioned model's crossing
// tensors travel on to the tier of part 2; the output returns the same way to the first tier.
//
// Simulated mode (Deployment; emulated and remote tiers are RemoteDeployment, edgeforge/agent.h):
// compute, preprocessing and serialisation are measured on this host, with the tier's thread
// count (at most this host's cores), and divided by the tier's speed; each transfer takes the
// link's one-way time (plus jitter and loss when set).
//
//   Topology topo = default_topology();
//   Placement where = parse_placement("mobile-edge", topo);
//   where.cut = study_cut_point(model);
//   Deployment dep(model, topo, where);                       // Error when a part does not fit
//   std::vector<Payload> payloads = make_payloads(model, {});  // the first 100 test samples
//   MeasuredRequest r = dep.run(payloads[0]);                 // host-measured parts, scaled
//   RequestTiming t = simulate(r, topo, rng);                 // plus the links' times
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "edgeforge/dataset.h"
#include "edgeforge/graph.h"
#include "edgeforge/partition.h"
#include "edgeforge/tiers.h"
#include "edgeforge/wire.h"  // the messages a deployment's tiers exchange

namespace edgeforge {

// ---------------------------------------------------------------------------------------------
// Payloads and preprocessing


struct PayloadOptions {
  int64_t inputs = 100;       // the first `inputs` samples of the split
  std::string split = "test";
  int64_t frame_height = 224, frame_width = 224;  // the captured frame of an image model
  std::string data_dir;  // a built-in data set's folder (FashionMnistOptions / SpamOptions dir); "" default
};

// The first `opts.inputs` samples of the model's data set (metadata kMetaDataset) as captured
// payloads (Dataset::payloads). For Fashion-MNIST a frame is the data set's grey image scaled up
// to the frame size (nearest) and repeated over R, G and B; for spam a text is the mail's
// cleaned text; a user's image folder sends the image files' bytes, a text file the texts.
std::vector<Payload> make_payloads(const Graph& model, const PayloadOptions& opts);

// What the tier running the first part does to a payload before computing: the model's data set's
// preprocessing (Dataset::preprocess), from its metadata alone. For Fashion-MNIST a frame becomes
// the model's normalised grey input (ITU-R 601 luma, rounded to 8 bits; area resize to the
// model's input height and width, rounded to 8 bits; then (x/255 - mean) / std from the model's
// metadata), so a 224x224 frame of a 28x28 image gives back exactly its pixels; a text is
// tokenised with the model's embedded tokenizer. Returns the model's inputs in order, batch 1.
class Preprocessor {
 public:
  explicit Preprocessor(const Graph& model);
  ~Preprocessor();
  Preprocessor(Preprocessor&&) noexcept;
  std::vector<at::Tensor> operator()(const Payload& payload) const;
  // Equal for two models whose payloads are prepared identically: the same data set,
  // preprocessing, tokenizer and inputs (a strategy's model usually shares its original's).
  const std::string& key() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Device speed

// Name of the reference workload; a profile measured with another is not comparable.
inline constexpr const char* kReferenceWorkload = "edgeforge-ref-1";
// edgeforge's reference workload: the untrained zoo teachers resnet and bert (weights fixed by
// seed 0), batch 1, one thread, through the inference plan. Returns the median over `reps`
// rounds of one resnet run plus one bert run, in milliseconds.
double reference_workload_ms(int reps = 40);
// The reference workload kept loaded, to measure the machine again and again (a study's drift
// probe): a fresh one each time would also measure where its buffers landed, which moved the
// median of 150 repetitions by up to 12% between calls on an idle machine. On one thread it
// also measures which core the scheduler chose (on this 2-vCPU machine 1.38 or 1.87 ms, back
// and forth); a probe on all the cores the cells use varied by 3%.
class ReferenceWorkload {
 public:
  ReferenceWorkload();
  ~ReferenceWorkload();
  // The median of `reps` rounds of one resnet and one bert run with `threads` threads.
  double measure_ms(int reps, int threads = 1);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
// Gives every tier whose speed is 0 (a profile with reference_ms and no speed) the speed
// reference_workload_ms() on this host / its reference_ms. The host is measured once per process.
void resolve_speeds(Topology& topology);

// ---------------------------------------------------------------------------------------------
// Placement

// Where a model runs: all on one tier, or part 1 on `first` and part 2 on `second` (a later tier)
// after cutting at `cut`.
struct Placement {
  std::string first;
  std::string second;  // "" for a whole model on `first`
  std::string cut;     // the value the cut follows; "" for a whole model
  bool split() const { return !second.empty(); }
  std::string label() const { return split() ? first + "-" + second : first; }  // "mobile-edge"
};

// "edge" or "mobile-edge" (part 1 on mobile, part 2 on edge); the cut is left empty. Error naming
// the topology's tiers for an unknown tier, or when part 2's tier does not come after part 1's.
Placement parse_placement(const std::string& spec, const Topology& topology);

// The model parts a placement runs, in request order, each with its tier: the whole model, or
// the two parts of the cut (partition_graph at the model's sequence length). `cut`, when given,
// receives a split's cut point. Error when a split has no cut point.
std::vector<std::pair<std::string, Graph>> placement_parts(const Graph& model, const Placement& placement,
                                                           CutPoint* cut = nullptr);

// Bytes a model needs on a tier: its constants plus every value of one batch-1 run (an upper
// bound of its working memory).
int64_t model_memory_bytes(const Graph& model, int64_t seq_len = 128);

// ---------------------------------------------------------------------------------------------
// Simulated requests

// One message crossing one link.
struct Hop {
  size_t link = 0;    // index into Topology::links
  int64_t bytes = 0;  // message size
  std::string what;   // "payload", "crossing", "response"
};

// What a request cost on this host, already divided by each tier's speed; links come later.
struct MeasuredRequest {
  double preprocess_ms = 0;
  std::vector<double> compute_ms;  // per topology tier (0 where nothing runs)
  double serialise_ms = 0;         // encoding and decoding every message
  double load_ms = 0;              // cold requests: reading the model files and preparing them
  std::vector<Hop> hops;           // in order
  // Real tiers (emulated or remote, edgeforge/agent.h): the request's wall time measured end to
  // end where it entered, and each link's share of it (transfer, protocol and added delay, both
  // ways; per topology link). simulate() reports these as they are. 0 / empty when simulated.
  double wall_ms = 0;
  std::vector<double> link_ms;
};

// A request's simulated times, links included.
struct RequestTiming {
  double preprocess_ms = 0, serialise_ms = 0, load_ms = 0;
  std::vector<double> compute_ms;  // per tier
  std::vector<double> link_ms;     // per link, every crossing of it added
  double total_ms = 0;
};

// Adds the links' times to `r` (a real request, wall_ms > 0, keeps its measured times): per hop, the link's one-way time, plus a normal jitter of the
// link's standard deviation (a transfer never takes less than zero), plus, per lost packet of
// 1448 bytes (each lost with the link's loss probability), one round-trip time to resend it.
RequestTiming simulate(const MeasuredRequest& r, const Topology& topology, std::mt19937_64& rng);

// A placement ready to serve requests, however its tiers are run: Deployment (simulated on
// this host) or RemoteDeployment (agents, edgeforge/agent.h).
class DeploymentRunner {
 public:
  virtual ~DeploymentRunner() = default;
  // One warm request. `outputs` (optional) receives the model's outputs.
  virtual MeasuredRequest run(const Payload& payload, std::vector<at::Tensor>* outputs = nullptr) = 0;
  // One cold request: every part prepared again from its ONNX bytes before the request.
  virtual MeasuredRequest run_cold(const Payload& payload) = 0;
  virtual const Placement& placement() const = 0;
  virtual const Topology& topology() const = 0;
  // Thread count the tier (an index into topology().tiers) computes with.
  virtual int threads_of(size_t tier) const = 0;
  // Preprocessing shared by deployments measured side by side (measure_interleaved): a key
  // equal for deployments that prepare a payload identically on the same tier, "" when this
  // one prepares its own (agents preprocess on their tier).
  virtual std::string preprocessing_key() const { return ""; }
  // What run() would prepare from `payload` (only when preprocessing_key() is not empty).
  virtual std::vector<at::Tensor> preprocess(const Payload& payload) const;
  // One warm request whose payload was prepared already: `inputs`, in `host_ms` on this host.
  virtual MeasuredRequest run_prepared(const Payload& payload, const std::vector<at::Tensor>& inputs,
                                       double host_ms);
};

// A placement ready to serve on this host: the model (or its two parts) loaded for its tiers.
class Deployment final : public DeploymentRunner {
 public:
  // Error when a tier of the placement is not in the topology, the cut is invalid, or a part
  // does not fit its tier's memory. `seq_len` fixes a text model's sequence length.
  Deployment(const Graph& model, const Topology& topology, Placement placement);
  ~Deployment() override;

  // One warm request. `outputs` (optional) receives the model's outputs.
  MeasuredRequest run(const Payload& payload, std::vector<at::Tensor>* outputs = nullptr) override;
  // One cold request: every part is read again from its ONNX bytes and prepared (the inference
  // plan built, its primitives created with oneDNN's primitive cache off) before the request.
  MeasuredRequest run_cold(const Payload& payload) override;

  const Placement& placement() const override { return placement_; }
  const Topology& topology() const override { return topology_; }
  // Thread count each tier computes with on this host: min(tier cores, this host's cores).
  int threads_of(size_t tier) const override;
  std::string preprocessing_key() const override;
  std::vector<at::Tensor> preprocess(const Payload& payload) const override;
  MeasuredRequest run_prepared(const Payload& payload, const std::vector<at::Tensor>& inputs,
                               double host_ms) override;
  // What crosses the cut (empty for a whole model) and the encoded size of that message.
  const CutPoint& cut() const;
  int64_t payload_bytes(const Payload& p) const;

 private:
  struct Part;
  struct Prepared {
    const std::vector<at::Tensor>* inputs;
    double host_ms;
  };
  MeasuredRequest serve(const Payload& payload, std::vector<std::unique_ptr<Part>>& parts,
                        std::vector<at::Tensor>* outputs, double load_ms,
                        const Prepared* prepared = nullptr);
  Topology topology_;
  Placement placement_;
  std::vector<std::unique_ptr<Part>> parts_;
  std::unique_ptr<class Preprocessor> preprocess_;
  std::unique_ptr<CutPoint> cut_;
  std::vector<std::string> model_inputs_;  // the whole model's inputs, in order
};

// The requests of a measurement: per run one cold request (the run's first input), then every
// input warm; the first run is a dropped warm-up. `progress` (optional) gets (done, total).
struct DeploymentSamples {
  std::vector<MeasuredRequest> warm, cold;
  std::vector<std::pair<int, int64_t>> warm_at;  // (run, input) of each warm sample
  double seconds = 0;                            // wall time of the measurement
};
DeploymentSamples measure_deployment(DeploymentRunner& deployment, const std::vector<Payload>& payloads,
                                     int runs,
                                     const std::function<void(int64_t, int64_t)>& progress = nullptr);

// Several deployments of one model measured side by side, so that whatever else the machine
// does hits all of them alike: `runs` rounds, the first a dropped warm-up; in each round every
// deployment, in an order shuffled afresh per round (seeded), serves one cold request and then
// every payload warm. Deployments with the same preprocessing_key() share it: a payload is
// prepared once per round and key, timed, and that time and those inputs serve each of them.
// A deployment that throws stops there (its error kept); the others go on.
struct InterleavedSamples {
  std::vector<DeploymentSamples> samples;  // per deployment, as measure_deployment's
  std::vector<std::string> errors;         // per deployment: "" or why it stopped
  std::vector<std::vector<size_t>> order;  // per round, the deployments in the order they ran
  std::vector<bool> shared_preprocessing;  // per deployment
  double seconds = 0;
};
InterleavedSamples measure_interleaved(const std::vector<DeploymentRunner*>& deployments,
                                       const std::vector<Payload>& payloads, int runs, uint64_t seed,
                                       const std::function<void(int64_t, int64_t)>& progress = nullptr);

// What else the host was doing while something was measured: read from /proc (Linux) at the
// start and the end; a figure that cannot be read is NaN.
struct HostConditions {
  double load_avg = 0;        // 1-minute load average at the end
  double cpu_mhz = 0;         // mean current frequency of the host's CPUs (/proc/cpuinfo)
  double steal_pct = 0;       // CPU time the hypervisor gave to others, % of all CPU time
  double others_busy_pct = 0; // CPU time other processes used, % of all CPU time
};
class HostConditionsMeter {
 public:
  HostConditionsMeter();          // the start
  HostConditions finish() const;  // from the start to now
 private:
  std::vector<long long> stat_;   // /proc/stat's cpu line at the start
  long long self_ticks_ = 0;      // this process's CPU ticks at the start
};

// ---------------------------------------------------------------------------------------------
// Choosing a placement (`--at auto`)

// Host milliseconds of each node of `model` (by index in model.nodes()), from `reps` warm runs
// of its inference plan on `inputs` with `threads` threads. A fused plan kernel's time is spread
// evenly over the original nodes it covers (from the one it is named after to the last whose
// output it produces), so a cut inside a fused group is charged a share of it.
// `between` (optional) runs before each profiled run, outside the timing: measure_placement_inputs
// preprocesses a request there, so the caches hold what they hold when a request is served.
std::vector<double> profile_nodes(const Graph& model, const std::vector<at::Tensor>& inputs,
                                  int threads, int reps,
                                  const std::function<void()>& between = nullptr);

struct PlacementEstimate {
  Placement placement;
  int64_t crossing_bytes = 0;  // 0 for a whole model
  double preprocess_ms = 0, compute_first_ms = 0, compute_second_ms = 0, transfer_ms = 0;
  double total_ms = 0;
};

// What the estimate is made of. node_ms[t] is the host profile at tier t's thread count divided
// by tier t's speed; preprocess_ms is on this host (divided by the first tier's speed here).
struct PlacementInputs {
  Topology topology;
  std::vector<std::vector<double>> node_ms;  // per tier, per node
  std::vector<CutPoint> cuts;                // candidate cuts (list_cut_points)
  int64_t payload_bytes = 0, response_bytes = 0;
  double preprocess_ms = 0;
};

// Every placement (each tier whole, each pair of tiers with each cut) with its estimated
// end-to-end latency (links without jitter or loss), fastest first.
std::vector<PlacementEstimate> rank_placements(const PlacementInputs& in);

// Measures the inputs of rank_placements on this host for `model` on `topology`: the node
// profile (`reps` runs) at each distinct tier thread count, every valid cut, the encoded sizes
// of `sample`'s payload and of the model's response, and the median preprocessing time.
PlacementInputs measure_placement_inputs(const Graph& model, const Topology& topology,
                                         const Payload& sample, int reps = 20);

// One line saying why the first estimate wins: its parts in milliseconds, against the best
// whole-model placement and the best split (whichever it is not).
std::string explain_choice(const std::vector<PlacementEstimate>& ranked);

}  // namespace edgeforge
