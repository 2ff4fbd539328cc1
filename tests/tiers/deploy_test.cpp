// Deployments (edgeforge/deploy.h): payloads and preprocessing reproduce the data set's inputs,
// messages round-trip and reject bad bytes, a split deployment gives the whole model's outputs
// (int8 within tolerance, and still int8 after the cut), requests travel the tiers the placement
// names, the link arithmetic, the auto placement on constructed cases, and the errors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "edgeforge/data.h"
#include "edgeforge/deploy.h"
#include "edgeforge/error.h"
#include "edgeforge/lower.h"
#include "edgeforge/strategy.h"
#include "edgeforge/task.h"
#include "edgeforge/tokenizer.h"
#include "edgeforge/zoo.h"
#include "../runtime/small_models.h"
#include "../common/test_util.h"

using namespace edgeforge;
using edgeforge::test_util::error_of;
using edgeforge::test_util::small_image_model;
using edgeforge::test_util::small_text_model;
using edgeforge::test_util::kFixtures;
using namespace edgeforge::testing;

namespace {


// The plan fuses differently on either side of a cut: float outputs agree to this share of
// their magnitude (as in partition_test.cpp).
constexpr double kPlanRelativeTolerance = 1e-4;
// int8 outputs of a split model: within this many output quantization steps of the whole.
constexpr double kInt8Steps = 3;

PayloadOptions fixture_payloads(const std::string& dataset, int64_t inputs) {
  PayloadOptions p;
  p.inputs = inputs;
  p.data_dir = kFixtures + (dataset == kDatasetSpam ? "/spam" : "/fashion-mnist");
  p.split = dataset == kDatasetSpam ? "train" : "test";
  return p;
}

// No round trip: links with this bandwidth make transfers free.
Topology ideal_links(double bandwidth_mbps, double rtt_ms = 0) {
  Topology t = default_topology();
  for (Link& l : t.links) l.bandwidth_mbps = bandwidth_mbps, l.rtt_ms = rtt_ms;
  return t;
}

}  // namespace

TEST(Payload, AFrameIsPreprocessedBackToTheDataSetsPixels) {
  const Graph g = small_image_model();
  const std::vector<Payload> payloads = make_payloads(g, fixture_payloads(kDatasetFashionMnist, 5));
  ASSERT_EQ(payloads.size(), 5u);
  FashionMnistOptions fo;
  fo.dir = kFixtures + "/fashion-mnist";
  fo.limit = 5;
  const ImageSet set = load_fashion_mnist("test", fo);
  const Preprocessor pre(g);
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(payloads[i].bytes.size(), 224u * 224u * 3u);
    EXPECT_EQ(payloads[i].label, set.labels[i].item<int64_t>());
    const std::vector<at::Tensor> x = pre(payloads[i]);
    ASSERT_EQ(x.size(), 1u);
    EXPECT_TRUE(at::equal(x[0], normalize_images(set.images.slice(0, i, i + 1))))
        << "a 224x224 frame of a 28x28 image gives back exactly its normalised pixels";
  }
  // Another frame size still gives the model's input shape.
  PayloadOptions odd = fixture_payloads(kDatasetFashionMnist, 1);
  odd.frame_width = 100;
  odd.frame_height = 60;
  const Payload p = make_payloads(g, odd)[0];
  EXPECT_EQ(p.bytes.size(), 100u * 60u * 3u);
  EXPECT_EQ(pre(p)[0].sizes(), (std::vector<int64_t>{1, 1, 28, 28}));
  // A frame whose bytes do not match its size is refused.
  Payload bad = payloads[0];
  bad.bytes.resize(bad.bytes.size() - 1);
  EXPECT_NE(error_of([&] { pre(bad); }).find("frame"), std::string::npos);
}

TEST(Payload, TextIsTokenisedWithTheModelsTokenizer) {
  const Graph g = small_text_model();
  const std::vector<Payload> payloads = make_payloads(g, fixture_payloads(kDatasetSpam, 3));
  ASSERT_FALSE(payloads.empty());
  const Tokenizer tok = tokenizer_from_model(g);
  const Preprocessor pre(g);
  for (const Payload& p : payloads) {
    EXPECT_EQ(p.kind, "text");
    const std::vector<at::Tensor> x = pre(p);
    ASSERT_EQ(x.size(), 3u);  // input_ids, attention_mask, token_type_ids
    const Tokenizer::Batch b = tok.encode_batch({p.bytes}, 16);
    EXPECT_TRUE(at::equal(x[0], b.input_ids));
    EXPECT_TRUE(at::equal(x[1], b.attention_mask));
    EXPECT_EQ(x[2].count_nonzero().item<int64_t>(), 0);
  }
}

TEST(Messages, TensorsRoundTripAndBadMessagesAreRefused) {
  const std::vector<at::Tensor> t = {at::randn({2, 3}), at::randint(0, 255, {5}, at::kByte),
                                     at::arange(4, at::kLong), at::zeros({0, 7})};
  const std::string m = encode_tensors(t);
  EXPECT_EQ(m.size(), 4u + (2 + 16 + 24) + (2 + 8 + 5) + (2 + 8 + 32) + (2 + 16 + 0));
  const std::vector<at::Tensor> back = decode_tensors(m, "test");
  ASSERT_EQ(back.size(), t.size());
  for (size_t i = 0; i < t.size(); ++i) EXPECT_TRUE(at::equal(back[i], t[i])) << i;
  EXPECT_NE(error_of([&] { decode_tensors(m.substr(0, m.size() - 3), "msg"); })
                .find("msg: message truncated in a tensor shape"),
            std::string::npos);
  // A count of bytes that does not match the type and shape.
  const std::string one = encode_tensors({at::randn({4})});
  EXPECT_NE(error_of([&] { decode_tensors(one.substr(0, one.size() - 1), "msg"); })
                .find("msg: tensor 0 needs 16 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([&] { decode_tensors(m.substr(0, 2), "msg"); }).find("truncated"),
            std::string::npos);
  EXPECT_NE(error_of([&] { decode_tensors(m + "x", "msg"); }).find("after the last tensor"),
            std::string::npos);
  std::string bad_type = m;
  bad_type[4] = 99;
  EXPECT_NE(error_of([&] { decode_tensors(bad_type, "msg"); }).find("unknown type"), std::string::npos);
  std::string huge = m;
  const int64_t big = int64_t{1} << 50;
  std::memcpy(&huge[6], &big, 8);
  EXPECT_NE(error_of([&] { decode_tensors(huge, "msg"); }).find("dimension"), std::string::npos);
}

TEST(Deployment, SplitAndWholeGiveTheSameOutputsAndRequestsTravelThePlacedTiers) {
  for (const Graph& g : {small_image_model(), small_text_model()}) {
    const std::string dataset = model_dataset(g);
    const std::vector<Payload> payloads = make_payloads(g, fixture_payloads(dataset, 2));
    Deployment whole(g, default_topology(), parse_placement("edge", default_topology()));
    Placement split = parse_placement("mobile-edge", default_topology());
    split.cut = study_cut_point(g);
    Deployment parts(g, default_topology(), split);
    Placement far = parse_placement("mobile-cloud", default_topology());
    far.cut = split.cut;
    Deployment far_parts(g, default_topology(), far);
    for (const Payload& p : payloads) {
      std::vector<at::Tensor> a, b, c;
      const MeasuredRequest rw = whole.run(p, &a);
      const MeasuredRequest rs = parts.run(p, &b);
      far_parts.run(p, &c);
      const double tol = kPlanRelativeTolerance * std::max(1.0, a[0].abs().max().item<double>());
      EXPECT_LE((a[0] - b[0]).abs().max().item<double>(), tol) << g.name();
      EXPECT_LE((a[0] - c[0]).abs().max().item<double>(), tol) << g.name();
      // Whole on edge: the payload crosses mobile-edge, the response comes back on it.
      ASSERT_EQ(rw.hops.size(), 2u);
      EXPECT_EQ(rw.hops[0].what, "payload");
      EXPECT_EQ(rw.hops[1].what, "response");
      EXPECT_GT(rw.compute_ms[1], 0);
      EXPECT_EQ(rw.compute_ms[0], 0);
      // Split: preprocessing and part 1 on mobile, the crossing tensors over mobile-edge.
      ASSERT_EQ(rs.hops.size(), 2u);
      EXPECT_EQ(rs.hops[0].what, "crossing");
      EXPECT_EQ(rs.hops[0].link, 0u);
      int64_t crossing = 4;
      for (const CrossingTensor& t : parts.cut().crossing)
        crossing += 2 + 8 * static_cast<int64_t>(t.shape.size()) + t.bytes;
      EXPECT_EQ(rs.hops[0].bytes, crossing) << "the crossing tensors, raw, with type and shape";
      EXPECT_GT(rs.compute_ms[0], 0);
      EXPECT_GT(rs.compute_ms[1], 0);
    }
  }
}

TEST(Deployment, FarSplitsForwardThroughTheTiersBetween) {
  const Graph g = small_image_model();
  const Payload p = make_payloads(g, fixture_payloads(kDatasetFashionMnist, 1))[0];
  Placement far = parse_placement("mobile-cloud", default_topology());
  far.cut = "stage3.out";
  Deployment d(g, default_topology(), far);
  const MeasuredRequest r = d.run(p);
  // The crossing tensors go mobile -> edge -> cloud, the response cloud -> edge -> mobile.
  ASSERT_EQ(r.hops.size(), 4u);
  EXPECT_EQ(r.hops[0].link, 0u);
  EXPECT_EQ(r.hops[1].link, 1u);
  EXPECT_EQ(r.hops[2].link, 1u);
  EXPECT_EQ(r.hops[3].link, 0u);
  EXPECT_EQ(r.hops[2].what, "response");
  EXPECT_EQ(r.compute_ms[1], 0) << "edge only forwards";
  Deployment cloud(g, default_topology(), parse_placement("cloud", default_topology()));
  const MeasuredRequest rc = cloud.run(p);
  ASSERT_EQ(rc.hops.size(), 4u);
  EXPECT_EQ(rc.hops[0].bytes, 4 + 2 + 8 + 224 * 224 * 3) << "the raw frame travels to the cloud";
  EXPECT_EQ(rc.hops[1].bytes, rc.hops[0].bytes);
  // Mobile alone sends nothing.
  Deployment mobile(g, default_topology(), parse_placement("mobile", default_topology()));
  EXPECT_TRUE(mobile.run(p).hops.empty());
}

TEST(Deployment, QuantizedSplitSendsUint8AndPart2StaysInt8) {
  const Graph qdq = static_qdq(build_zoo_model("resnet-small", ZooBuildOptions{}));
  const std::string cut = study_cut_point(qdq);
  ASSERT_EQ(cut, "stage3.out.quantized");
  const Partition p = partition_graph(qdq, cut, 1);
  ASSERT_EQ(p.cut.crossing.size(), 1u);
  EXPECT_EQ(p.cut.crossing[0].dtype, at::kByte);
  InferenceSession whole(qdq), part1(p.part1), part2(p.part2);
  EXPECT_EQ(part1.lowering().int8_nodes.size() + part2.lowering().int8_nodes.size(),
            whole.lowering().int8_nodes.size())
      << "every int8 layer of the whole model is int8 in its part, the first of part 2 too";
  const std::vector<at::Tensor> in = batches(qdq, 1, 7)[0];
  const at::Tensor expected = whole.run(in, RunOptions{})[0];
  const std::vector<at::Tensor> mid = part1.run(in, RunOptions{});
  ASSERT_EQ(mid[0].scalar_type(), at::kByte);
  const at::Tensor got = part2.run(mid, RunOptions{})[0];
  EXPECT_LE((got - expected).abs().max().item<double>(), kInt8Steps * output_step(qdq));
}

TEST(Simulate, LinkTimeIsHalfTheRoundTripPlusBytesOverBandwidth) {
  Topology t = default_topology();
  MeasuredRequest r;
  r.preprocess_ms = 1;
  r.compute_ms = {2, 3, 0};
  r.serialise_ms = 0.5;
  r.hops = {{0, 25000, "payload"}, {0, 100, "response"}};
  std::mt19937_64 rng(1);
  const RequestTiming s = simulate(r, t, rng);
  // 200 Mbit/s is 200 kbit per ms: 25,000 bytes take 1 ms, 100 bytes 0.004 ms; RTT 5 ms.
  EXPECT_NEAR(s.link_ms[0], 2.5 + 1.0 + 2.5 + 0.004, 1e-9);
  EXPECT_EQ(s.link_ms[1], 0);
  EXPECT_NEAR(s.total_ms, 1 + 2 + 3 + 0.5 + s.link_ms[0], 1e-9);
  EXPECT_NEAR(t.links[1].one_way_ms(150528), 20 + 1204.224, 1e-9) << "a frame over 1 Mbit/s";
  // Jitter and loss only add time (never below zero), the same for the same seed.
  t.links[0].jitter_ms = 3;
  t.links[0].loss = 0.5;
  std::mt19937_64 a(7), b(7);
  double sum = 0;
  for (int i = 0; i < 200; ++i) {
    const double x = simulate(r, t, a).link_ms[0];
    EXPECT_EQ(x, simulate(r, t, b).link_ms[0]);
    EXPECT_GE(x, 0);
    sum += x;
  }
  // 18 packets at loss 0.5 lose 9 on average (+45 ms), plus 1 on the response (+2.5 ms).
  EXPECT_GT(sum / 200, 6.004 + 40);
}

TEST(Auto, PicksTheKnownOptimumOnConstructedCases) {
  // Ten nodes of 1 ms each on the host; mobile is 4x slower, cloud 2x faster.
  PlacementInputs in;
  in.payload_bytes = 150000;
  in.response_bytes = 50;
  in.preprocess_ms = 0.5;
  for (size_t i = 0; i < 9; ++i) {
    CutPoint c;
    c.value = "v" + std::to_string(i);
    c.position = i;
    c.crossing = {{c.value, at::kFloat, {1, 16}, i == 4 ? 64 : 40000, false}};
    in.cuts.push_back(c);
  }
  auto with = [&](const Topology& t) {
    PlacementInputs x = in;
    x.topology = t;
    x.node_ms.clear();
    for (const TierProfile& p : t.tiers) x.node_ms.push_back(std::vector<double>(10, 1.0 / p.speed));
    return rank_placements(x);
  };
  // Near-infinite bandwidth, no round trip: everything on the fastest tier.
  std::vector<PlacementEstimate> fast = with(ideal_links(1e12));
  EXPECT_EQ(fast[0].placement.label(), "cloud");
  EXPECT_NEAR(fast[0].total_ms, 0.5 / 2 + 10 / 2.0, 1e-6);
  // Near-zero bandwidth: everything on mobile, where the request starts.
  std::vector<PlacementEstimate> slow = with(ideal_links(1e-6));
  EXPECT_EQ(slow[0].placement.label(), "mobile");
  EXPECT_NEAR(slow[0].total_ms, 0.5 / 0.25 + 10 / 0.25, 1e-6);
  // In between: the frame is too big to send, but the 64-byte tensor after node 4 is cheap;
  // mobile runs nodes 0..4 (20 ms), cloud the rest (2.5 ms), beating 42 ms on mobile alone.
  Topology mid = ideal_links(1);
  std::vector<PlacementEstimate> split = with(mid);
  EXPECT_EQ(split[0].placement.label(), "mobile-cloud");
  EXPECT_EQ(split[0].placement.cut, "v4");
  EXPECT_NEAR(split[0].compute_first_ms, 5 / 0.25, 1e-9);
  EXPECT_NEAR(split[0].compute_second_ms, 5 / 2.0, 1e-9);
  for (size_t i = 1; i < split.size(); ++i) EXPECT_LE(split[0].total_ms, split[i].total_ms);
  EXPECT_NE(explain_choice(split).find("mobile-cloud cut after v4"), std::string::npos)
      << explain_choice(split);
}

TEST(Auto, ProfileCoversEveryNodeOfARealModel) {
  const Graph g = small_image_model();
  const Payload p = make_payloads(g, fixture_payloads(kDatasetFashionMnist, 1))[0];
  const PlacementInputs in = measure_placement_inputs(g, default_topology(), p, 3);
  ASSERT_EQ(in.node_ms.size(), 3u);
  EXPECT_EQ(in.node_ms[0].size(), g.nodes().size());
  double total = 0;
  for (double v : in.node_ms[1]) {
    EXPECT_GE(v, 0);
    total += v;
  }
  EXPECT_GT(total, 0);
  // Mobile's speed is a quarter of edge's, so its profile is four times edge's (same threads
  // on a host with fewer than 8 cores).
  if (std::thread::hardware_concurrency() <= 4) {
    double mobile = 0;
    for (double v : in.node_ms[0]) mobile += v;
    EXPECT_NEAR(mobile, 4 * total, 1e-9 * mobile);
  }
  EXPECT_EQ(in.payload_bytes, 4 + 2 + 8 + 224 * 224 * 3);
  EXPECT_EQ(in.response_bytes, 4 + 2 + 16 + 10 * 4);
  EXPECT_GT(in.cuts.size(), 10u);
  const std::vector<PlacementEstimate> ranked = rank_placements(in);
  EXPECT_EQ(ranked.size(), 3 + in.cuts.size() * 3) << "3 whole placements, 3 tier pairs per cut";
}

TEST(Deployment, BadPlacementsAndTiersTooSmallAreRefused) {
  const Topology t = default_topology();
  EXPECT_NE(error_of([&] { parse_placement("phone", t); }).find("no tier 'phone'"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_placement("edge-mobile", t); }).find("after part 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_placement("mobile-", t); }).find("two tiers"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_placement("mobile-edge-cloud", t); }).find("two tiers"),
            std::string::npos);
  const Graph g = small_image_model();
  Topology tiny = default_topology();
  tiny.tiers[1].memory_gb = 1e-6;
  const std::string e = error_of([&] { Deployment(g, tiny, parse_placement("edge", tiny)); });
  EXPECT_NE(e.find("more than tier 'edge' has"), std::string::npos) << e;
  Placement nocut = parse_placement("mobile-edge", t);
  EXPECT_NE(error_of([&] { Deployment(g, t, nocut); }).find("needs a cut"), std::string::npos);
  nocut.cut = "stage3.ou";
  EXPECT_NE(error_of([&] { Deployment(g, t, nocut); }).find("stage3.out"), std::string::npos);
}

TEST(Deployment, ACalibratedProfileGetsItsSpeedFromTheReferenceWorkload) {
  const std::string dir = ::testing::TempDir();
  {
    std::ofstream(dir + "/dev.toml") << "[[tier]]\nname = \"box\"\ncores = 2\nmemory_gb = 3\n"
                                        "reference_ms = 1e9\n";
    std::ofstream(dir + "/topo.toml")
        << "[[tier]]\nname = \"mobile\"\nprofile = \"dev.toml\"\ncores = 1\n"
           "[[tier]]\nname = \"edge\"\n[[link]]\nfrom = \"mobile\"\nto = \"edge\"\n"
           "bandwidth_mbps = 10\n";
    std::ofstream(dir + "/loop.toml") << "[[tier]]\nname = \"a\"\nprofile = \"loop.toml\"\n";
  }
  Topology t = load_topology(dir + "/topo.toml");
  EXPECT_EQ(t.tiers[0].cores, 1) << "a field beside the profile overrides it";
  EXPECT_EQ(t.tiers[0].memory_gb, 3);
  EXPECT_EQ(t.tiers[0].speed, 0) << "to be measured";
  resolve_speeds(t);
  // A device a billion milliseconds slow is far slower than this host.
  EXPECT_GT(t.tiers[0].speed, 0);
  EXPECT_LT(t.tiers[0].speed, 1e-3);
  EXPECT_EQ(t.tiers[1].speed, 1.0);
  EXPECT_NE(error_of([&] { load_topology(dir + "/loop.toml"); }).find("inside a profile"),
            std::string::npos);
}

// ---- Interleaved measurement ----

namespace {

// A deployment that records what it is asked to do, in one log shared by all of them.
class Recorder final : public DeploymentRunner {
 public:
  Recorder(std::string name, std::string key, std::vector<std::string>* log, int* prepared,
           int fail_at_cold = 0)
      : name_(std::move(name)), key_(std::move(key)), log_(log), prepared_(prepared),
        fail_at_cold_(fail_at_cold) {
    placement_.first = "edge";
    topology_ = default_topology();
  }
  MeasuredRequest run(const Payload& p, std::vector<at::Tensor>*) override {
    log_->push_back(name_ + ":warm:" + p.bytes);
    return request(0.5);
  }
  MeasuredRequest run_cold(const Payload&) override {
    EF_CHECK(++colds_ != fail_at_cold_, name_, " fails its cold request ", colds_);
    log_->push_back(name_ + ":cold");
    return request(0.5);
  }
  std::string preprocessing_key() const override { return key_; }
  std::vector<at::Tensor> preprocess(const Payload& p) const override {
    ++*prepared_;
    log_->push_back(name_ + ":prepare:" + p.bytes);
    return {at::full({1}, static_cast<double>(*prepared_))};
  }
  MeasuredRequest run_prepared(const Payload& p, const std::vector<at::Tensor>& inputs,
                               double host_ms) override {
    log_->push_back(name_ + ":warm:" + p.bytes);
    seen.push_back(inputs.at(0).item<double>());
    return request(host_ms);
  }
  const Placement& placement() const override { return placement_; }
  const Topology& topology() const override { return topology_; }
  int threads_of(size_t) const override { return 1; }
  std::vector<double> seen;  // the prepared input each warm request was given

 private:
  MeasuredRequest request(double preprocess_ms) {
    MeasuredRequest r;
    r.preprocess_ms = preprocess_ms;
    r.compute_ms.assign(topology_.tiers.size(), 1.0);
    return r;
  }
  std::string name_, key_;
  std::vector<std::string>* log_;
  int* prepared_;
  int fail_at_cold_, colds_ = 0;
  Placement placement_;
  Topology topology_;
};

}  // namespace

TEST(Interleaved, RoundsRunEveryDeploymentInAFreshOrderAndSharePreprocessing) {
  std::vector<std::string> log;
  int prepared = 0;
  Recorder a("a", "same", &log, &prepared), b("b", "same", &log, &prepared);
  Recorder c("c", "", &log, &prepared), d("d", "other", &log, &prepared, /*fail_at_cold=*/3);
  std::vector<Payload> payloads(3);
  for (size_t i = 0; i < payloads.size(); ++i) payloads[i].bytes = std::to_string(i);
  const int runs = 5;
  const InterleavedSamples got = measure_interleaved({&a, &b, &c, &d}, payloads, runs, 42);

  // Rounds: every live deployment once per round; d fails in round 3 and leaves the rest.
  ASSERT_EQ(got.order.size(), static_cast<size_t>(runs));
  std::set<std::vector<size_t>> orders;
  for (size_t r = 0; r < got.order.size(); ++r) {
    std::vector<size_t> sorted = got.order[r];
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, r < 3 ? (std::vector<size_t>{0, 1, 2, 3}) : (std::vector<size_t>{0, 1, 2})) << r;
    orders.insert(got.order[r]);
  }
  EXPECT_GE(orders.size(), 3u) << "the order is shuffled afresh each round";
  EXPECT_EQ(got.errors[0], "");
  EXPECT_EQ(got.errors[2], "");
  EXPECT_NE(got.errors[3].find("d fails its cold request 3"), std::string::npos) << got.errors[3];
  // The first round is a dropped warm-up: (runs - 1) x 3 warm samples and runs - 1 cold ones.
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(got.samples[k].warm.size(), static_cast<size_t>((runs - 1) * 3)) << k;
    EXPECT_EQ(got.samples[k].cold.size(), static_cast<size_t>(runs - 1)) << k;
    EXPECT_EQ(got.samples[k].warm_at.front(), (std::pair<int, int64_t>{1, 0}));
    EXPECT_EQ(got.samples[k].warm_at.back(), (std::pair<int, int64_t>{runs - 1, 2}));
  }
  // A deployment's requests of a round run together: cold, then every payload.
  for (size_t i = 0; i + 1 < log.size(); ++i)
    if (log[i].find(":cold") != std::string::npos) {
      const std::string who = log[i].substr(0, 1);
      for (size_t j = 1; j <= 3; ++j) EXPECT_EQ(log[i + j].substr(0, 1), who) << i;
    }
  // a and b share one preparation per payload and round (d, alone with its key, prepares its
  // own through run()); they were given the same inputs and the same preprocessing time.
  EXPECT_EQ(got.shared_preprocessing, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(prepared, runs * 3);
  EXPECT_EQ(a.seen, b.seen);
  for (size_t i = 0; i < got.samples[0].warm.size(); ++i)
    EXPECT_EQ(got.samples[0].warm[i].preprocess_ms, got.samples[1].warm[i].preprocess_ms);
  EXPECT_THROW(measure_interleaved({&a}, payloads, 1, 1), Error);
  EXPECT_THROW(measure_interleaved({&a}, {}, 3, 1), Error);
}

TEST(Interleaved, HostConditionsAreReadFromProc) {
  const HostConditionsMeter meter;
  volatile double x = 0;
  for (int i = 0; i < 2000000; ++i) x = x + std::sqrt(static_cast<double>(i));
  const HostConditions c = meter.finish();
  EXPECT_GE(c.load_avg, 0);
  EXPECT_GE(c.others_busy_pct, 0);
  EXPECT_LE(c.others_busy_pct, 100);
  EXPECT_GE(c.steal_pct, 0);
  EXPECT_LE(c.steal_pct, 100);
  EXPECT_TRUE(std::isnan(c.cpu_mhz) || c.cpu_mhz > 0);
}

TEST(Interleaved, ModelsPreparedAlikeShareAPreprocessingKey) {
  const Graph g = small_image_model();
  Graph quantized = g;
  quantized.metadata()[kMetaStrategy] = "sptq";  // strategy metadata does not change preparing
  EXPECT_EQ(Preprocessor(g).key(), Preprocessor(quantized).key());
  Graph other_norm = g;
  other_norm.metadata()[kMetaPreprocess] = R"({"mean": 0.5, "std": 0.25})";
  EXPECT_NE(Preprocessor(g).key(), Preprocessor(other_norm).key());
}
