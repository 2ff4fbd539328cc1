// edgeforge/agent.h: tier agents and deployments served by them (docs/agents.md).
//
// An agent (`edgeforge agent`) is a gRPC server for one tier. The coordinator sends it model
// parts (ONNX bytes with their SHA-256) once; a request enters at the first tier's agent and
// carries its route, so each agent runs the parts on its own tier and forwards the rest to its
// next tier (mobile -> edge -> cloud, as in the study). proto/edgeforge/agent.proto is the
// protocol.
//
//   AgentOptions o;  o.tier = "edge";  o.listen = "127.0.0.1:0";
//   AgentServer edge(o);                                     // listening; edge.address()
//   ...
//   RemoteDeployment dep(model, topology, placement, endpoints);
//   MeasuredRequest r = dep.run(payload);                   // wall_ms: measured end to end
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgeforge/deploy.h"
#include "edgeforge/graph.h"
#include "edgeforge/tiers.h"

namespace edgeforge {

// Agents and coordinators must speak the same protocol version.
inline constexpr int kAgentProtocol = 1;

// SHA-256 of `bytes`, 64 lowercase hex digits.
std::string sha256_hex(const std::string& bytes);

// True for a loopback listen or connect address ("127.0.0.1:N", "[::1]:N", "localhost:N").
bool is_loopback_address(const std::string& address);

// The shared token in a file: its first line without surrounding blanks. Error naming `what`
// and the file when it cannot be read, or when the token is empty or shorter than 16
// characters. Agents (--token-file) and coordinators (a tier's token_file) read it alike.
std::string read_token_file(const std::string& path, const std::string& what);

struct AgentOptions {
  std::string tier;                   // the tier it serves (requests' stages name it)
  std::string listen = "127.0.0.1:0"; // port 0: any free port (address() tells which)
  int threads = 1;                    // compute threads
  std::string next;                   // the next tier's agent; "" for the last tier
  // Added to every round trip over the link to `next` (half before forwarding, half after the
  // reply): the link's round-trip time when the kernel cannot add it (no netem).
  double next_delay_ms = 0;
  std::string token;                  // required from callers when set; sent to `next`
  std::string tls_cert, tls_key;      // PEM files: serve TLS when both are set
  std::string next_tls_ca;            // PEM file: connect to `next` with TLS, trusting it
  int64_t max_message_bytes = 256LL << 20;  // a larger request is refused
  int64_t max_model_bytes = 1LL << 30;      // all parts held together; more is refused
  int max_models = 64;                      // parts held at once; another Load is refused
  // Requests served at once (Infer and Load); one more is refused with RESOURCE_EXHAUSTED.
  // With the message limit this bounds the memory requests take: max_requests x max_message_bytes.
  int max_requests = 16;
  double next_timeout_ms = 60000;     // a forward's deadline (at most the request's own)
};

// A running agent. Construction checks the options and starts listening; the destructor stops
// it (requests in flight are cancelled).
class AgentServer {
 public:
  // Error when the tier is empty, threads < 1, the address cannot be bound, TLS files are
  // unreadable, or the address is not loopback and no token is set.
  explicit AgentServer(const AgentOptions& options);
  ~AgentServer();
  AgentServer(const AgentServer&) = delete;
  AgentServer& operator=(const AgentServer&) = delete;

  std::string address() const;  // "127.0.0.1:PORT" with the port actually bound
  void wait();                  // blocks until shutdown()
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a tier's agent is and how to reach it.
struct AgentEndpoint {
  std::string tier;
  std::string address;
  std::string token;    // sent with every call when set
  std::string tls_ca;   // PEM file: TLS, trusting this root; "" plain
};

struct AgentHealth {
  std::string tier, next;
  std::vector<std::string> models;
  int threads = 0;
  int requests_in_flight = 0;  // Load and Infer requests it is serving
};

// A connection to one agent. Every call has a deadline; a failure throws Error naming the tier,
// the address and gRPC's reason ("tier edge at 127.0.0.1:5002: deadline exceeded ...").
class AgentClient {
 public:
  explicit AgentClient(AgentEndpoint endpoint, double timeout_ms = 30000);
  ~AgentClient();
  AgentClient(AgentClient&&) noexcept;

  AgentHealth health();
  std::pair<std::string, int> version();  // (edgeforge version, protocol)
  // Sends a part unless the agent holds it; returns the agent's prepare time (0 if held).
  double load(const std::string& onnx_bytes);
  const AgentEndpoint& endpoint() const { return endpoint_; }

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  AgentEndpoint endpoint_;
  std::unique_ptr<Impl> impl_;
};

// Remote mode: each tier's agent as the topology file gives it (`agent`, `token_file`, `tls_ca`
// in its [[tier]]). Error naming a tier without an address, or a token file read_token_file
// refuses.
std::vector<AgentEndpoint> topology_agents(const Topology& topology);

// How a RemoteDeployment talks to its agents.
struct RemoteOptions {
  double timeout_ms = 30000;  // per request
  int retries = 2;            // more attempts after a failed request (unavailable or timed out)
};

// A placement served by agents: the parts are loaded on their tiers' agents and each request is
// sent to the first tier's agent, which preprocesses, computes and forwards as the placement
// says. A request's wall time is measured here, end to end; the agents report their own parts.
class RemoteDeployment final : public DeploymentRunner {
 public:
  // `agents` name one endpoint per tier of the topology (in any order). Error when a tier has no
  // agent, an agent does not answer, speaks another protocol or serves another tier.
  RemoteDeployment(const Graph& model, const Topology& topology, Placement placement,
                   const std::vector<AgentEndpoint>& agents, RemoteOptions options = {});
  ~RemoteDeployment() override;

  MeasuredRequest run(const Payload& payload, std::vector<at::Tensor>* outputs = nullptr) override;
  MeasuredRequest run_cold(const Payload& payload) override;
  const Placement& placement() const override { return placement_; }
  const Topology& topology() const override { return topology_; }
  // As the tier's agent reported it when the deployment was set up.
  int threads_of(size_t tier) const override;

 private:
  MeasuredRequest request(const Payload& payload, bool cold, std::vector<at::Tensor>* outputs);
  Topology topology_;
  Placement placement_;
  RemoteOptions options_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeforge
