// Clients of tier agents, and deployments served by agents (edgeforge/agent.h).
#include <grpcpp/grpcpp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <cctype>
#include <cstring>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent_common.h"
#include "agent_wire.h"
#include "edgeforge/agent.grpc.pb.h"
#include "edgeforge/agent.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/partition.h"
#include "edgeforge/task.h"
#include "edgeforge/util.h"

namespace edgeforge {

namespace pb = edgeforge::agent;
using Clock = std::chrono::steady_clock;

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EF_CHECK(EVP_Digest(bytes.data(), bytes.size(), digest, &n, EVP_sha256(), nullptr) == 1,
           "sha256: OpenSSL failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

// Decided on the parsed address, never on its text: "127.example.org" is a host name that
// may resolve anywhere. Loopback is an IPv4 literal in 127.0.0.0/8, the IPv6 literal ::1 (or an
// IPv4-mapped 127.x.y.z), or the name "localhost", which RFC 6761 reserves for loopback.
// `address` is HOST:PORT, [IPV6]:PORT or gRPC's ipv4:/ipv6: forms of them.
bool is_loopback_address(const std::string& address) {
  std::string rest = address;
  for (const char* scheme : {"ipv4:", "ipv6:", "dns:"})
    if (rest.rfind(scheme, 0) == 0) rest = rest.substr(std::strlen(scheme));
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string::npos) return false;
    host = rest.substr(1, close - 1);
  } else {
    const std::size_t colon = rest.rfind(':');
    host = colon == std::string::npos ? rest : rest.substr(0, colon);
    if (host.find(':') != std::string::npos) host = rest;  // a bare IPv6 literal, no port
  }
  std::string lower;
  for (char c : host) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "localhost" || lower == "localhost.") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

std::string read_token_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  EF_CHECK(in.good(), what, " ", path, ": file not found or not readable");
  std::string line;
  std::getline(in, line);
  const auto a = line.find_first_not_of(" \t\r\n");
  const auto b = line.find_last_not_of(" \t\r\n");
  EF_CHECK(a != std::string::npos, what, " ", path, ": the first line is empty");
  const std::string token = line.substr(a, b - a + 1);
  EF_CHECK(token.size() >= 16, what, " ", path, ": a token needs at least 16 characters");
  return token;
}

bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

namespace {

std::string read_pem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  EF_CHECK(in.good(), what, " ", path, ": file not found or not readable");
  std::stringstream s;
  s << in.rdbuf();
  EF_CHECK(s.str().find("-----BEGIN") != std::string::npos, what, " ", path, ": not a PEM file");
  return s.str();
}

}  // namespace

namespace {

// The transport settings, as (gRPC argument, value).
const std::pair<const char*, int> kTransport[] = {
    {GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20},  // stream window
    {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 4 << 20},
    {GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20},
    {GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 1 << 20},
    {GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 1 << 20},
};

}  // namespace

void tune_server(grpc::ServerBuilder& builder) {
  for (const auto& [key, value] : kTransport) builder.AddChannelArgument(key, value);
}

std::shared_ptr<grpc::Channel> agent_channel(const std::string& address, const std::string& ca_file,
                                             int64_t max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);  // agents are reached directly, never via a proxy
  for (const auto& [key, value] : kTransport) args.SetInt(key, value);
  const int max_bytes = static_cast<int>(std::min<int64_t>(max_message_bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(max_bytes);
  args.SetMaxSendMessageSize(max_bytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!ca_file.empty()) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = read_pem(ca_file, "TLS root certificate");
    credentials = grpc::SslCredentials(o);
  }
  return grpc::CreateCustomChannel(address, credentials, args);
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const std::string& cert_file,
                                                            const std::string& key_file) {
  if (cert_file.empty() && key_file.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o;
  o.pem_key_cert_pairs.push_back(
      {read_pem(key_file, "TLS key"), read_pem(cert_file, "TLS certificate")});
  return grpc::SslServerCredentials(o);
}

// ---- AgentClient ----

struct AgentClient::Impl {
  std::unique_ptr<pb::Agent::Stub> stub;
  std::unique_ptr<InferChannel> infer;  // Infer without copying the payload (agent_wire.h)
  double timeout_ms = 30000;
  const AgentEndpoint* endpoint = nullptr;

  void prepare(grpc::ClientContext& ctx, double timeout_ms_override = 0) const {
    const double t = timeout_ms_override > 0 ? timeout_ms_override : timeout_ms;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::microseconds(static_cast<int64_t>(t * 1000)));
    if (!endpoint->token.empty()) ctx.AddMetadata(kTokenHeader, endpoint->token);
  }
  // Error naming the tier and address, with gRPC's reason.
  [[noreturn]] void fail(const char* what, const grpc::Status& s) const {
    std::string reason = s.error_message();
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      reason = "timed out after " + std::to_string(static_cast<int64_t>(timeout_ms)) + " ms" +
               (reason.empty() || reason == "Deadline Exceeded" ? "" : " (" + reason + ")");
    else if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
      reason = "unavailable (" + reason + ")";
    throw Error("tier " + endpoint->tier + " at " + endpoint->address + ": " + what + ": " + reason);
  }
};

AgentClient::AgentClient(AgentEndpoint endpoint, double timeout_ms)
    : endpoint_(std::move(endpoint)), impl_(std::make_unique<Impl>()) {
  EF_CHECK(!endpoint_.address.empty(), "tier ", endpoint_.tier, ": no agent address");
  EF_CHECK(is_loopback_address(endpoint_.address) || !endpoint_.token.empty(), "tier ",
           endpoint_.tier, " at ", endpoint_.address,
           ": a token is required for an agent that is not on loopback (token_file in the topology)");
  const auto channel = agent_channel(endpoint_.address, endpoint_.tls_ca, INT32_MAX);
  impl_->stub = pb::Agent::NewStub(channel);
  impl_->infer = std::make_unique<InferChannel>(channel);
  impl_->timeout_ms = timeout_ms;
  impl_->endpoint = &endpoint_;
}

AgentClient::~AgentClient() = default;
AgentClient::AgentClient(AgentClient&& o) noexcept
    : endpoint_(std::move(o.endpoint_)), impl_(std::move(o.impl_)) {
  if (impl_) impl_->endpoint = &endpoint_;
}

AgentHealth AgentClient::health() {
  grpc::ClientContext ctx;
  impl_->prepare(ctx);
  pb::HealthReply r;
  const grpc::Status s = impl_->stub->Health(&ctx, pb::HealthRequest(), &r);
  if (!s.ok()) impl_->fail("health", s);
  AgentHealth h;
  h.tier = r.tier();
  h.next = r.next();
  h.threads = r.threads();
  h.requests_in_flight = r.requests_in_flight();
  h.models.assign(r.models().begin(), r.models().end());
  return h;
}

std::pair<std::string, int> AgentClient::version() {
  grpc::ClientContext ctx;
  impl_->prepare(ctx);
  pb::VersionReply r;
  const grpc::Status s = impl_->stub->Version(&ctx, pb::VersionRequest(), &r);
  if (!s.ok()) impl_->fail("version", s);
  return {r.version(), r.protocol()};
}

double AgentClient::load(const std::string& onnx_bytes) {
  grpc::ClientContext ctx;
  impl_->prepare(ctx, std::max(impl_->timeout_ms, 120000.0));  // large parts take a while
  pb::LoadRequest req;
  req.set_sha256(sha256_hex(onnx_bytes));
  req.set_onnx(onnx_bytes);
  pb::LoadReply r;
  const grpc::Status s = impl_->stub->Load(&ctx, req, &r);
  if (!s.ok()) impl_->fail("load", s);
  return r.already_held() ? 0.0 : r.prepare_ms();
}

std::vector<AgentEndpoint> topology_agents(const Topology& topology) {
  std::vector<AgentEndpoint> out;
  for (const TierProfile& t : topology.tiers) {
    EF_CHECK(!t.agent.empty(), "remote: tier '", t.name, "' of topology '", topology.name,
             "' has no agent address (agent = \"HOST:PORT\" in its [[tier]])");
    AgentEndpoint e{t.name, t.agent, "", t.tls_ca};
    if (!t.token_file.empty()) e.token = read_token_file(t.token_file, "tier '" + t.name + "': token_file");
    out.push_back(e);
  }
  return out;
}

// ---- RemoteDeployment ----

struct RemoteDeployment::Impl {
  std::vector<AgentClient> clients;  // per topology tier
  pb::InferRequest base;             // the stages and preprocessor of every request
  std::vector<int> threads;          // per topology tier, as its agent reports
  size_t first_tier = 0;
};

RemoteDeployment::RemoteDeployment(const Graph& model, const Topology& topology, Placement placement,
                                   const std::vector<AgentEndpoint>& agents, RemoteOptions options)
    : topology_(topology), placement_(std::move(placement)), options_(options),
      impl_(std::make_unique<Impl>()) {
  EF_CHECK(options_.timeout_ms > 0, "remote: the request timeout must be > 0");
  EF_CHECK(options_.retries >= 0, "remote: retries must be >= 0");
  for (const TierProfile& t : topology_.tiers) {
    const AgentEndpoint* e = nullptr;
    for (const AgentEndpoint& a : agents)
      if (a.tier == t.name) e = &a;
    EF_CHECK(e != nullptr, "remote: no agent address for tier ", t.name, " of topology ", topology_.name);
    impl_->clients.emplace_back(*e, options_.timeout_ms);
  }
  for (AgentClient& c : impl_->clients) {
    const auto [ver, protocol] = c.version();
    EF_CHECK(protocol == kAgentProtocol, "tier ", c.endpoint().tier, " at ", c.endpoint().address,
             ": agent speaks protocol ", protocol, " (edgeforge ", ver, "), this program ",
             kAgentProtocol);
    const AgentHealth h = c.health();
    EF_CHECK(h.tier == c.endpoint().tier, "tier ", c.endpoint().tier, " at ", c.endpoint().address,
             ": the agent there serves tier ", h.tier);
    impl_->threads.push_back(h.threads);
  }
  // The parts, as Deployment cuts them.
  const int64_t seq_len = model_seq_len(model);
  std::vector<std::pair<std::string, Graph>> parts = placement_parts(model, placement_);
  impl_->first_tier = topology_.index_of(placement_.first);
  // The preprocessor: the whole model's inputs and metadata, no nodes.
  Graph pre(model.name() + ".preprocess");
  for (const ValueInfo& v : model.inputs())
    if (!model.has_initializer(v.name)) {
      pre.add_input(v);
      pre.add_output(v);
    }
  pre.metadata() = model.metadata();
  const std::string pre_bytes = graph_to_onnx_bytes(pre);
  impl_->clients[impl_->first_tier].load(pre_bytes);
  impl_->base.set_preprocessor(sha256_hex(pre_bytes));
  for (auto& [tier, g] : parts) {
    const size_t t = topology_.index_of(tier);
    check_fits(topology_.tiers[t], model_memory_bytes(g, seq_len), g.name());
    const std::string bytes = graph_to_onnx_bytes(g);
    impl_->clients[t].load(bytes);
    pb::Stage* s = impl_->base.add_stages();
    s->set_tier(tier);
    s->set_model(sha256_hex(bytes));
    for (const ValueInfo& v : g.inputs())
      if (!g.has_initializer(v.name)) s->add_inputs(v.name);
  }
}

RemoteDeployment::~RemoteDeployment() = default;

int RemoteDeployment::threads_of(size_t tier) const { return impl_->threads.at(tier); }

MeasuredRequest RemoteDeployment::run(const Payload& payload, std::vector<at::Tensor>* outputs) {
  return request(payload, false, outputs);
}

MeasuredRequest RemoteDeployment::run_cold(const Payload& payload) {
  return request(payload, true, nullptr);
}

MeasuredRequest RemoteDeployment::request(const Payload& payload, bool cold,
                                          std::vector<at::Tensor>* outputs) {
  AgentClient& entry = impl_->clients.front();  // requests enter at the first tier
  pb::InferReply reply;
  double wall = 0;
  for (int attempt = 0;; ++attempt) {
    pb::InferRequest req = impl_->base;  // sending moves the payload out of it
    req.set_cold(cold);
    pb::Payload* p = req.mutable_payload();
    p->set_kind(payload.kind);
    p->set_bytes(payload.bytes);
    p->set_height(payload.height);
    p->set_width(payload.width);
    grpc::ClientContext ctx;
    entry.impl().prepare(ctx, options_.timeout_ms);
    reply.Clear();
    const auto t0 = Clock::now();
    const grpc::Status s = entry.impl().infer->call(&ctx, req, &reply);
    wall = ms_since(t0);
    if (s.ok()) break;
    const bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!transient || attempt >= options_.retries)
      entry.impl().fail(("request" + std::string(attempt > 0 ? " (after " + std::to_string(attempt + 1) + " attempts)" : "")).c_str(), s);
    std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
  }
  MeasuredRequest r;
  r.wall_ms = wall;
  r.compute_ms.assign(topology_.tiers.size(), 0.0);
  r.link_ms.assign(topology_.links.size(), 0.0);
  // Each tier's own time; what a forward took beyond the next tier's own time is the link's.
  std::vector<double> own(topology_.tiers.size(), 0.0), forward(topology_.tiers.size(), 0.0);
  for (const pb::TierReport& t : reply.tiers()) {
    const size_t i = topology_.index_of(t.tier());
    r.preprocess_ms += t.preprocess_ms();
    r.compute_ms[i] += t.compute_ms();
    r.load_ms += t.load_ms();
    r.serialise_ms += t.serialise_ms();
    own[i] = t.preprocess_ms() + t.compute_ms() + t.load_ms() + t.serialise_ms();
    forward[i] = t.forward_ms();
    if (t.forwarded_bytes() > 0 && i < topology_.links.size())
      r.hops.push_back({i, t.forwarded_bytes(), "request"});
  }
  for (size_t i = 0; i + 1 < topology_.tiers.size() && i < topology_.links.size(); ++i)
    if (forward[i] > 0) r.link_ms[i] = std::max(0.0, forward[i] - own[i + 1] - forward[i + 1]);
  if (outputs != nullptr) *outputs = decode_tensors(reply.tensors(), "reply of tier " + entry.endpoint().tier);
  return r;
}

}  // namespace edgeforge
