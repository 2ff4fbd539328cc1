// Tier agents (edgeforge/agent.h) on loopback: a deployment served by two or three agents gives
// the outputs of local execution, requests are forwarded as the placement says, bad requests are
// refused while the agent keeps serving, and an agent that is down or killed mid-request fails
// the request with an error naming the tier and address. With root and namespaces, the emulated
// mode (edgeforge/emulate.h): a shaped link's throughput and a CPU quota's slow-down.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "edgeforge/agent.grpc.pb.h"
#include "edgeforge/agent.h"
#include "edgeforge/data.h"
#include "edgeforge/task.h"
#include "edgeforge/deploy.h"
#include "edgeforge/emulate.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/process.h"
#include "edgeforge/tokenizer.h"
#include "../../src/agent/agent_wire.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"
#include "../common/test_util.h"
#include "../common/hostile_models.h"

using namespace edgeforge;
using edgeforge::test_util::error_of;
using edgeforge::test_util::small_image_model;
using edgeforge::test_util::small_text_model;
using edgeforge::test_util::kFixtures;
namespace pb = edgeforge::agent;

namespace {

// The agents run the same plan as local execution, but part boundaries fuse differently.
constexpr double kPlanRelativeTolerance = 1e-4;

std::vector<Payload> payloads_of(const Graph& g, int64_t n) {
  PayloadOptions p;
  p.inputs = n;
  const bool text = g.metadata().at(kMetaDataset) == kDatasetSpam;
  p.data_dir = kFixtures + (text ? "/spam" : "/fashion-mnist");
  p.split = text ? "train" : "test";
  return make_payloads(g, p);
}

Topology ideal_topology() {
  Topology t = default_topology();
  for (Link& l : t.links) l.bandwidth_mbps = 1e6, l.rtt_ms = 0;
  return t;
}

// mobile -> edge -> cloud agents on loopback, in this process.
struct Chain {
  std::vector<std::unique_ptr<AgentServer>> servers;  // cloud, edge, mobile
  std::vector<AgentEndpoint> endpoints;               // mobile, edge, cloud
  explicit Chain(const std::string& token = "", double edge_delay_ms = 0) {
    std::string next;
    for (const char* tier : {"cloud", "edge", "mobile"}) {
      AgentOptions o;
      o.tier = tier;
      o.next = next;
      o.token = token;
      if (std::string(tier) == "edge") o.next_delay_ms = edge_delay_ms;
      servers.push_back(std::make_unique<AgentServer>(o));
      next = servers.back()->address();
      endpoints.insert(endpoints.begin(), {tier, next, token, ""});
    }
  }
};

double max_relative_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double scale = std::max(1e-6, b[i].abs().max().item<double>());
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>() / scale);
  }
  return worst;
}

}  // namespace

TEST(Agents, SplitAndWholeDeploymentsGiveTheOutputsOfLocalExecution) {
  Chain chain;
  const Topology topo = ideal_topology();
  for (const Graph& model : {small_image_model(), small_text_model()}) {
    const std::vector<Payload> payloads = payloads_of(model, 3);
    for (const std::string spec : {"mobile-edge", "edge-cloud", "mobile-cloud", "cloud"}) {
      Placement where = parse_placement(spec, topo);
      if (where.split()) where.cut = study_cut_point(model);
      Deployment local(model, topo, where);
      RemoteDeployment remote(model, topo, where, chain.endpoints);
      for (const Payload& p : payloads) {
        std::vector<at::Tensor> want, got;
        local.run(p, &want);
        const MeasuredRequest r = remote.run(p, &got);
        EXPECT_LE(max_relative_difference(got, want), kPlanRelativeTolerance) << model.name() << " " << spec;
        EXPECT_GT(r.wall_ms, 0);
      }
      // A cold request prepares the parts again and gives the same outputs.
      const MeasuredRequest cold = remote.run_cold(payloads[0]);
      EXPECT_GT(cold.load_ms, 0) << spec;
    }
  }
}

// The fast path sends a request's bulk by reference after the rest of the message; the
// reference is the message serialised whole by protobuf. Both must parse to the same request.
TEST(Agents, ARequestSentInTwoPiecesParsesAsTheWholeMessage) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{20000}, size_t{3000000}}) {
    std::string bulk(n, '\0');
    for (size_t i = 0; i < n; ++i) bulk[i] = static_cast<char>(i * 7 + 3);
    for (int kind = 0; kind < 3; ++kind) {  // payload, tensors, no input
      edgeforge::agent::InferRequest whole;
      edgeforge::agent::Stage* st = whole.add_stages();
      st->set_tier("edge");
      st->set_model(std::string(64, 'a'));
      st->add_inputs("x");
      whole.set_preprocessor(std::string(64, 'b'));
      whole.add_names("x");
      whole.set_cold(kind == 1);
      if (kind == 0) {
        whole.mutable_payload()->set_kind("frame");
        whole.mutable_payload()->set_bytes(bulk);
        whole.mutable_payload()->set_height(5);
        whole.mutable_payload()->set_width(7);
      } else if (kind == 1) {
        whole.set_tensors(bulk);
      }
      edgeforge::agent::InferRequest sent = whole;
      const InferWire w = split_for_sending(sent);
      EXPECT_EQ(w.bulk->size(), kind == 2 ? 0 : n) << "the bulk is moved out, not copied";
      const std::string bytes = w.head + w.prefix + *w.bulk;
      EXPECT_EQ(static_cast<int64_t>(bytes.size()), w.size());
      edgeforge::agent::InferRequest got;
      ASSERT_TRUE(got.ParseFromString(bytes)) << "bulk " << n << ", kind " << kind;
      EXPECT_EQ(got.SerializeAsString(), whole.SerializeAsString()) << "bulk " << n << ", kind " << kind;
      EXPECT_EQ(got.input_case(), whole.input_case());
    }
  }
}

TEST(Agents, RequestsAreForwardedAsThePlacementSays) {
  Chain chain;
  const Topology topo = ideal_topology();
  const Graph model = small_image_model();
  const Payload p = payloads_of(model, 1)[0];
  auto tiers_computing = [&](const std::string& spec) {
    Placement where = parse_placement(spec, topo);
    if (where.split()) where.cut = study_cut_point(model);
    RemoteDeployment remote(model, topo, where, chain.endpoints);
    const MeasuredRequest r = remote.run(p);
    std::string computing;
    for (size_t i = 0; i < topo.tiers.size(); ++i)
      if (r.compute_ms[i] > 0) computing += (computing.empty() ? "" : ",") + topo.tiers[i].name;
    std::string links;
    for (const Hop& h : r.hops) links += std::to_string(h.link);
    return computing + " via links " + links;
  };
  EXPECT_EQ(tiers_computing("mobile"), "mobile via links ");
  EXPECT_EQ(tiers_computing("edge"), "edge via links 0");
  EXPECT_EQ(tiers_computing("cloud"), "cloud via links 01");
  EXPECT_EQ(tiers_computing("mobile-edge"), "mobile,edge via links 0");
  EXPECT_EQ(tiers_computing("mobile-cloud"), "mobile,cloud via links 01");
  // The raw frame crosses to edge; after a cut on mobile only the cut's tensors do.
  Placement split = parse_placement("mobile-edge", topo);
  split.cut = study_cut_point(model);
  Placement edge = parse_placement("edge", topo);
  const int64_t frame_bytes = RemoteDeployment(model, topo, edge, chain.endpoints).run(p).hops.at(0).bytes;
  const int64_t cut_bytes = RemoteDeployment(model, topo, split, chain.endpoints).run(p).hops.at(0).bytes;
  EXPECT_GT(frame_bytes, static_cast<int64_t>(p.bytes.size()));
  EXPECT_LT(cut_bytes, frame_bytes);
}

TEST(Agents, BadRequestsAreRefusedAndTheAgentKeepsServing) {
  const std::string token = "a-shared-token-0123456789";
  AgentOptions o;
  o.tier = "edge";
  o.token = token;
  o.max_message_bytes = 2 << 20;
  AgentServer server(o);
  auto stub = pb::Agent::NewStub(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  auto call_infer = [&](const pb::InferRequest& req, const std::string& with_token) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!with_token.empty()) ctx.AddMetadata("x-edgeforge-token", with_token);
    pb::InferReply reply;
    return stub->Infer(&ctx, req, &reply);
  };
  auto call_load = [&](const std::string& sha, const std::string& bytes) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("x-edgeforge-token", token);
    pb::LoadRequest req;
    req.set_sha256(sha);
    req.set_onnx(bytes);
    pb::LoadReply reply;
    return stub->Load(&ctx, req, &reply);
  };
  // A real part to serve, loaded properly.
  Graph model = small_image_model();
  const std::string onnx = graph_to_onnx_bytes(model);
  ASSERT_TRUE(call_load(sha256_hex(onnx), onnx).ok());
  pb::InferRequest good;
  pb::Stage* stage = good.add_stages();
  stage->set_tier("edge");
  stage->set_model(sha256_hex(onnx));
  stage->add_inputs(model.inputs()[0].name);
  good.add_names(model.inputs()[0].name);
  good.set_tensors(encode_tensors({at::zeros({1, 1, 28, 28})}));
  ASSERT_TRUE(call_infer(good, token).ok());

  // No token, a wrong token.
  EXPECT_EQ(call_infer(good, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call_infer(good, token + "x").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Oversize: a 4 MB message against a 2 MB limit.
  pb::InferRequest big = good;
  big.set_tensors(encode_tensors({at::zeros({1, 1024, 1024})}));
  EXPECT_EQ(call_infer(big, token).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A tensor whose bytes do not match its type and shape.
  pb::InferRequest lying = good;
  std::string bytes = encode_tensors({at::zeros({1, 1, 28, 28})});
  bytes.resize(bytes.size() - 4);
  lying.set_tensors(bytes);
  grpc::Status s = call_infer(lying, token);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("needs 3136 bytes"), std::string::npos) << s.error_message();
  // A tensor of the wrong shape for the model.
  pb::InferRequest wrong_shape = good;
  wrong_shape.set_tensors(encode_tensors({at::zeros({1, 1, 27, 28})}));
  EXPECT_EQ(call_infer(wrong_shape, token).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // An unknown model hash; a hash that is a path.
  pb::InferRequest unknown = good;
  unknown.mutable_stages(0)->set_model(std::string(64, 'a'));
  EXPECT_EQ(call_infer(unknown, token).error_code(), grpc::StatusCode::NOT_FOUND);
  unknown.mutable_stages(0)->set_model("../../etc/passwd");
  EXPECT_EQ(call_infer(unknown, token).error_code(), grpc::StatusCode::NOT_FOUND);
  // A stage on a tier after the last: nothing to forward to.
  pb::InferRequest onward = good;
  onward.mutable_stages(0)->set_tier("cloud");
  s = call_infer(onward, token);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("last tier"), std::string::npos) << s.error_message();
  // Loads: a hash that does not match the bytes, one that is not a hash, bytes that are no model.
  EXPECT_EQ(call_load(std::string(64, '0'), onnx).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call_load("/etc/passwd", onnx).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const std::string junk = "this is not an onnx model";
  s = call_load(sha256_hex(junk), junk);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // And it still serves.
  EXPECT_TRUE(call_infer(good, token).ok());
}

// What killed an agent or leaked its internals (issue 22): a Load of a model whose Conv has
// strides 0 was accepted and the next Infer died of SIGFPE; a frame of 0x5555555555555556 x 1
// wrapped height * width * 3 past the size check and the caller got a LibTorch backtrace.
TEST(Agents, HostileLoadsAndFramesAreRefusedOnOneLine) {
  AgentOptions o;
  o.tier = "mobile";
  AgentServer server(o);
  auto stub = pb::Agent::NewStub(grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  auto load = [&](const std::string& bytes) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    pb::LoadRequest req;
    req.set_sha256(sha256_hex(bytes));
    req.set_onnx(bytes);
    pb::LoadReply reply;
    return stub->Load(&ctx, req, &reply);
  };
  for (const test_util::HostileModel& h : test_util::hostile_models()) {
    const grpc::Status s = load(h.bytes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << h.name;
    EXPECT_NE(s.error_message().find(h.piece), std::string::npos) << h.name << ": " << s.error_message();
    EXPECT_EQ(s.error_message().find('\n'), std::string::npos) << s.error_message();
  }
  EXPECT_TRUE(AgentClient({"mobile", server.address(), "", ""}).health().models.empty());
  // A deployment on it, then frames of hostile sizes sent as its requests are.
  const Graph model = small_image_model();
  Topology topo = ideal_topology();
  topo.tiers.resize(1);
  topo.links.clear();
  RemoteDeployment dep(model, topo, parse_placement("mobile", topo), {{"mobile", server.address(), "", ""}});
  const Payload good = payloads_of(model, 1)[0];
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{
           {0x5555555555555556LL, 1}, {1, 0x5555555555555556LL}, {-1, -3}, {0, 28}, {INT64_MAX, INT64_MAX}}) {
    Payload p = good;
    p.height = h;
    p.width = w;
    const std::string e = error_of([&] { dep.run(p); });
    EXPECT_NE(e.find("frame"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_EQ(e.find("Exception raised"), std::string::npos) << e;
  }
  EXPECT_NO_THROW(dep.run(good));  // and it still serves
}

// The stated caps: parts held (--max-models) and requests served at once (--max-requests).
TEST(Agents, LimitsOnHeldModelsAndRequestsInFlightAreEnforced) {
  AgentOptions co;
  co.tier = "cloud";
  AgentServer cloud(co);
  AgentOptions eo;
  eo.tier = "edge";
  eo.next = cloud.address();
  AgentServer edge(eo);
  AgentOptions mo;
  mo.tier = "mobile";
  mo.next = edge.address();
  mo.next_delay_ms = 2000;  // a request forwarded to edge stays in flight on mobile for 2 s
  mo.max_requests = 1;
  mo.max_models = 2;        // the preprocessor and one part
  AgentServer mobile(mo);
  const std::vector<AgentEndpoint> eps = {{"mobile", mobile.address(), "", ""},
                                          {"edge", edge.address(), "", ""},
                                          {"cloud", cloud.address(), "", ""}};
  const Topology topo = ideal_topology();
  const Graph model = small_image_model();
  Placement cut = parse_placement("mobile-edge", topo);
  cut.cut = study_cut_point(model);
  RemoteDeployment split(model, topo, cut, eps);
  const std::string held = error_of([&] { RemoteDeployment whole(model, topo, parse_placement("mobile", topo), eps); });
  EXPECT_NE(held.find("--max-models"), std::string::npos) << held;
  const Payload p = payloads_of(model, 1)[0];
  std::thread first([&] { EXPECT_NO_THROW(split.run(p)); });
  AgentClient watch(eps[0]);
  int in_flight = 0;
  for (int i = 0; i < 1000 && in_flight == 0; ++i) {
    in_flight = watch.health().requests_in_flight;
    if (in_flight == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(in_flight, 1);
  const std::string busy = error_of([&] { split.run(p); });
  EXPECT_NE(busy.find("--max-requests"), std::string::npos) << busy;
  first.join();
  EXPECT_NO_THROW(split.run(p));  // a slot is free again
}

TEST(Agents, AnAgentThatIsDownOrKilledFailsTheRequestNamingTheTier) {
  const Topology topo = ideal_topology();
  const Graph model = small_image_model();
  const Payload p = payloads_of(model, 1)[0];
  RemoteOptions ro;
  ro.timeout_ms = 3000;
  ro.retries = 1;
  // Down: nobody listens on the edge address.
  {
    Chain chain;
    std::vector<AgentEndpoint> eps = chain.endpoints;
    eps[1].address = "127.0.0.1:1";
    const std::string e = error_of([&] { RemoteDeployment(model, topo, parse_placement("edge", topo), eps, ro); });
    EXPECT_NE(e.find("tier edge at 127.0.0.1:1"), std::string::npos) << e;
  }
  // Killed mid-request: the edge agent is a process that forwards to cloud with a 4 s delay.
  AgentOptions co;
  co.tier = "cloud";
  AgentServer cloud(co);
  ChildProcess edge({EDGEFORGE_BINARY, "agent", "--tier", "edge", "--listen", "127.0.0.1:0", "--next",
                     cloud.address(), "--next-delay-ms", "4000"},
                    "/tmp/ef-agent-test-" + std::to_string(::getpid()) + ".out", "");
  std::string edge_address;
  for (int i = 0; i < 100 && edge_address.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in("/tmp/ef-agent-test-" + std::to_string(::getpid()) + ".out");
    std::string line;
    std::getline(in, line);
    const auto on = line.find(" on ");
    if (on != std::string::npos) edge_address = line.substr(on + 4, line.find(' ', on + 4) - on - 4);
  }
  ASSERT_FALSE(edge_address.empty()) << "the agent did not print its address";
  AgentOptions mo;
  mo.tier = "mobile";
  mo.next = edge_address;
  AgentServer mobile(mo);
  std::vector<AgentEndpoint> eps = {{"mobile", mobile.address(), "", ""},
                                    {"edge", edge_address, "", ""},
                                    {"cloud", cloud.address(), "", ""}};
  RemoteDeployment dep(model, topo, parse_placement("cloud", topo), eps, ro);
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    edge.kill();
  });
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of([&] { dep.run(p); });
  killer.join();
  EXPECT_NE(e.find("tier mobile at " + mobile.address()), std::string::npos) << e;
  EXPECT_NE(e.find(edge_address), std::string::npos) << e;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20)) << "it must not hang";
  std::remove(("/tmp/ef-agent-test-" + std::to_string(::getpid()) + ".out").c_str());
  // The other agents still serve.
  EXPECT_EQ(AgentClient(eps[0]).health().tier, "mobile");
}

TEST(Agents, AddressesAndOptionsAreChecked) {
  AgentOptions o;
  o.tier = "edge";
  o.listen = "0.0.0.0:0";
  EXPECT_NE(error_of([&] { AgentServer s(o); }).find("not a loopback address"), std::string::npos);
  o.listen = "127.0.0.1:0";
  o.tls_cert = "/nonexistent.pem";
  EXPECT_NE(error_of([&] { AgentServer s(o); }).find("TLS needs both"), std::string::npos);
  o.tls_key = "/nonexistent.key";
  EXPECT_NE(error_of([&] { AgentServer s(o); }).find("/nonexistent"), std::string::npos);
  EXPECT_NE(error_of([&] { AgentClient c({"edge", "192.0.2.1:7000", "", ""}); }).find("token is required"),
            std::string::npos);
  EXPECT_TRUE(is_loopback_address("127.0.0.1:5"));
  EXPECT_TRUE(is_loopback_address("[::1]:5"));
  EXPECT_FALSE(is_loopback_address("10.0.0.1:5"));
  // Decided on the parsed address, not on its text (issue 22).
  EXPECT_FALSE(is_loopback_address("127.example.org:5"));
  EXPECT_FALSE(is_loopback_address("127.0.0.1.nip.io:5"));
  EXPECT_FALSE(is_loopback_address("localhost.example.org:5"));
  EXPECT_FALSE(is_loopback_address("[::2]:5"));
  EXPECT_FALSE(is_loopback_address("1270.0.0.1:5"));
  EXPECT_TRUE(is_loopback_address("127.3.2.1:5"));
  EXPECT_TRUE(is_loopback_address("ipv4:127.0.0.1:5"));
  EXPECT_TRUE(is_loopback_address("localhost:5"));
  EXPECT_TRUE(is_loopback_address("[::ffff:127.0.0.1]:5"));
  EXPECT_TRUE(is_loopback_address("ipv6:[::1]:5"));
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// Agents and coordinators read a token file by the same rules.
TEST(Agents, TokenFilesAreReadAlikeByAgentsAndCoordinators) {
  const std::string dir = "/tmp/ef-token-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  EXPECT_EQ(read_token_file(write("good", "  a-shared-token-0123456789 \nsecond line\n"), "t"),
            "a-shared-token-0123456789");
  EXPECT_NE(error_of([&] { read_token_file(write("short", "short-token\n"), "--token-file"); })
                .find("--token-file " + dir + "/short: a token needs at least 16 characters"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_token_file(write("empty", "  \n"), "t"); }).find("the first line is empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_token_file(dir + "/none", "t"); }).find("not found"), std::string::npos);
  // A topology whose tier names a short token file: refused, naming the tier.
  Topology topo = default_topology();
  for (TierProfile& t : topo.tiers) t.agent = "127.0.0.1:7000";
  topo.tiers[1].token_file = dir + "/short";
  EXPECT_NE(error_of([&] { topology_agents(topo); }).find("tier 'edge': token_file"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Agents, TlsAndATokenServeANonLoopbackStyleSetup) {
  // A self-signed certificate for 127.0.0.1 (openssl's command-line tool, Debian's openssl).
  const std::string dir = "/tmp/ef-tls-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/key.pem -out " +
                          dir + "/cert.pem >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "openssl could not make a test certificate";
  const std::string token = "tls-test-token-0123456789";
  AgentOptions co;
  co.tier = "cloud";
  co.token = token;
  co.tls_cert = dir + "/cert.pem";
  co.tls_key = dir + "/key.pem";
  AgentServer cloud(co);
  AgentOptions eo = co;
  eo.tier = "edge";
  eo.next = cloud.address();
  eo.next_tls_ca = dir + "/cert.pem";
  AgentServer edge(eo);
  AgentOptions mo = eo;
  mo.tier = "mobile";
  mo.next = edge.address();
  AgentServer mobile(mo);
  std::vector<AgentEndpoint> eps = {{"mobile", mobile.address(), token, dir + "/cert.pem"},
                                    {"edge", edge.address(), token, dir + "/cert.pem"},
                                    {"cloud", cloud.address(), token, dir + "/cert.pem"}};
  const Topology topo = ideal_topology();
  const Graph model = small_image_model();
  const Payload p = payloads_of(model, 1)[0];
  Deployment local(model, topo, parse_placement("cloud", topo));
  RemoteDeployment remote(model, topo, parse_placement("cloud", topo), eps);
  std::vector<at::Tensor> want, got;
  local.run(p, &want);
  remote.run(p, &got);
  EXPECT_LE(max_relative_difference(got, want), kPlanRelativeTolerance);
  // A plain-text client cannot talk to a TLS agent.
  std::vector<AgentEndpoint> plain = eps;
  for (AgentEndpoint& e : plain) e.tls_ca.clear();
  RemoteOptions ro;
  ro.timeout_ms = 2000;
  EXPECT_NE(error_of([&] { RemoteDeployment(model, topo, parse_placement("cloud", topo), plain, ro); })
                .find("tier mobile at"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

// ---- emulated mode: only as root with namespaces, tc and cgroups ----

TEST(Emulation, AShapedLinkCarriesItsBandwidthAndACpuQuotaSlowsCompute) {
  const std::string why = emulation_unavailable();
  if (!why.empty()) GTEST_SKIP() << why;
  Topology topo = default_topology();
  topo.links[0].bandwidth_mbps = 20;  // mobile-edge
  topo.links[0].rtt_ms = 0;
  topo.tiers[0].cores = 1, topo.tiers[0].speed = 0.25;  // mobile: a quarter of one core
  topo.tiers[1].cores = 1, topo.tiers[1].speed = 1.0;   // edge: one core
  EmulationOptions eo;
  eo.program = EDGEFORGE_BINARY;
  Emulation emu(topo, eo);
  const Graph model = small_image_model();
  // Throughput: a 3 MB frame crosses mobile -> edge; the link's share of the request over its bytes.
  Payload big;
  big.kind = "frame";
  big.height = big.width = 1000;
  big.bytes.assign(3000000, '\x40');
  RemoteDeployment to_edge(model, topo, parse_placement("edge", topo), emu.endpoints());
  to_edge.run(big);  // warm the connections
  const MeasuredRequest r = to_edge.run(big);
  const double mbps = static_cast<double>(r.hops.at(0).bytes) * 8 / (r.link_ms.at(0) / 1000) / 1e6;
  constexpr double kThroughputTolerance = 0.10;  // the bound
  EXPECT_NEAR(mbps, 20.0, 20.0 * kThroughputTolerance) << "link " << r.link_ms[0] << " ms for "
                                                        << r.hops[0].bytes << " bytes";
  // CPU quota: the same work on mobile (0.25 core) and edge (1 core). Preprocessing a
  // 3000x3000 frame takes about 180 ms at full speed, many CFS periods, so the quota shows in
  // each request; the link is widened first so the frame crosses quickly.
  emu.set_bandwidth(0, 5000);
  Payload frame;
  frame.kind = "frame";
  frame.height = frame.width = 3000;
  frame.bytes.assign(27000000, '\x40');
  auto preprocess_ms = [&](const std::string& tier) {
    RemoteDeployment dep(model, topo, parse_placement(tier, topo), emu.endpoints());
    dep.run(frame);
    double ms = 0;
    for (int rep = 0; rep < 3; ++rep) ms += dep.run(frame).preprocess_ms;
    return ms;
  };
  const double slow = preprocess_ms("mobile"), fast = preprocess_ms("edge");
  // CFS enforces a quota per 100 ms period: a request that starts after receiving its frame
  // has spent part of its quota may first wait out the period (up to about 100 ms of ~720 ms).
  constexpr double kQuotaTolerance = 0.25;
  EXPECT_NEAR(slow / fast, 4.0, 4.0 * kQuotaTolerance) << slow << " ms against " << fast << " ms";
}

// A user's own export and image folder on emulated tiers: the images' file bytes cross the
// shaped link and the mobile agent decodes them from the model's metadata alone.
TEST(Emulation, AUsersExportAndImagesRunOnEmulatedTiers) {
  const std::string why = emulation_unavailable();
  if (!why.empty()) GTEST_SKIP() << why;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("edgeforge-emu-user-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (const char* split : {"train", "val"})
    for (const char* cls : {"cat", "dog"}) {
      std::filesystem::create_directories(dir / "imgs" / split / cls);
      for (const char* f : {"photo.jpg", "rgba.png"})
        std::filesystem::copy_file(kFixtures + "/images/" + f, dir / "imgs" / split / cls / f);
    }
  const std::string cmd = std::string("'") + EDGEFORGE_BINARY + "' bench --mode emulated --deploy mobile-edge "
                          "--inputs 2 --runs 2 --json --model '" + EDGEFORGE_TEST_DATA_DIR +
                          "/exports/resnet18.op17.onnx' --data 'imagefolder:" + (dir / "imgs").string() +
                          "' >'" + (dir / "out.json").string() + "' 2>'" + (dir / "err.txt").string() + "'";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file((dir / "err.txt").string());
  const nlohmann::json j = nlohmann::json::parse(read_file((dir / "out.json").string()));
  EXPECT_EQ(j["mode"], "emulated");
  EXPECT_GT(j["results"][0]["warm"]["breakdown_median_ms"]["compute.edge"].get<double>(), 0);
  std::filesystem::remove_all(dir);
}

TEST(Emulation, WithoutRootItSaysSoAndNamesTheSimulatedMode) {
  if (::geteuid() == 0) {
    // As root: the reason is empty here, or names what else is missing.
    const std::string why = emulation_unavailable();
    if (!why.empty()) EXPECT_NE(why.find("--mode simulated"), std::string::npos) << why;
    return;
  }
  const std::string why = emulation_unavailable();
  EXPECT_NE(why.find("root"), std::string::npos) << why;
  EXPECT_NE(why.find("--mode simulated"), std::string::npos) << why;
}
