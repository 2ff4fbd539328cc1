// Benchmark: the agents' protocol cost per hop on loopback, side by side with the same message
// handled in one process. A chain of three agents (mobile -> edge -> cloud, no added delay)
// serves a model placed on each tier in turn, with a raw frame of about --mb megabytes; each
// forward's time beyond what the next tier reports doing is that hop's cost (gRPC, protobuf,
// the loopback socket, both ways; the reply is a few bytes). In-process, the same payload is
// encoded and decoded as a tensor message (what simulated mode charges as serialisation).
// Prints the median per-hop cost, the in-process cost and their ratio.
//
//   build/agent_hops [--mb 1] [--reps 200] [--json out.json]
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_util.h"
#include "edgeforge/agent.h"
#include "edgeforge/data.h"
#include "edgeforge/task.h"
#include "edgeforge/deploy.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

int main(int argc, char** argv) {
  double mb = 1.0;
  int reps = 200;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "agent_hops: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--mb") mb = std::stod(value());
    else if (a == "--reps") reps = std::stoi(value());
    else if (a == "--json") json_path = value();
    else {
      std::fprintf(stderr, "usage: agent_hops [--mb N] [--reps N] [--json FILE]\n");
      return 2;
    }
  }
  // A small model: the point is the message, not the compute.
  Graph model = build_zoo_model("resnet-small", ZooBuildOptions{});
  model.metadata()[kMetaDataset] = kDatasetFashionMnist;
  Payload p;
  p.kind = "frame";
  p.width = p.height = static_cast<int64_t>(std::sqrt(mb * 1e6 / 3));
  p.bytes.assign(static_cast<size_t>(p.width * p.height * 3), '\x40');
  Topology topo = default_topology();
  for (Link& l : topo.links) l.bandwidth_mbps = 1e6, l.rtt_ms = 0;
  std::vector<std::unique_ptr<AgentServer>> servers;
  std::vector<AgentEndpoint> eps;
  std::string next;
  for (const char* tier : {"cloud", "edge", "mobile"}) {
    AgentOptions o;
    o.tier = tier;
    o.next = next;
    servers.push_back(std::make_unique<AgentServer>(o));
    next = servers.back()->address();
    eps.insert(eps.begin(), {tier, next, "", ""});
  }
  std::printf("agent_hops: commit %s, %s, payload %.2f MB (%lldx%lld RGB frame), %d requests\n",
              bench::git_commit().c_str(), bench::cpu_model().c_str(), p.bytes.size() / 1e6,
              static_cast<long long>(p.width), static_cast<long long>(p.height), reps);
  // Per hop: mobile -> edge (deploy edge, link 0), edge -> cloud (deploy cloud, link 1).
  std::vector<double> hop_ms;
  for (const char* tier : {"edge", "cloud"}) {
    RemoteDeployment dep(model, topo, parse_placement(tier, topo), eps);
    for (int w = 0; w < 10; ++w) dep.run(p);
    for (int r = 0; r < reps; ++r) {
      const MeasuredRequest m = dep.run(p);
      for (double l : m.link_ms)
        if (l > 0) hop_ms.push_back(l);
    }
  }
  // In process: the payload as a tensor message, encoded and decoded.
  std::vector<double> local_ms;
  at::Tensor raw = at::empty({static_cast<int64_t>(p.bytes.size())}, at::kByte);
  std::memcpy(raw.data_ptr(), p.bytes.data(), p.bytes.size());
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string msg = encode_tensors({raw});
    const auto back = decode_tensors(msg, "bench");
    local_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  bench::Timing hops{hop_ms}, local{local_ms};
  std::printf("%-34s %10s %10s\n", "", "median ms", "p90 ms");
  std::printf("%-34s %10.3f %10.3f\n", "per hop, agents on loopback", hops.median(), hops.percentile(0.9));
  std::printf("%-34s %10.3f %10.3f\n", "in process (encode + decode)", local.median(), local.percentile(0.9));
  std::printf("ratio (hop / in process): %.2f\n", hops.median() / local.median());
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) return 1;
    const std::string text = nlohmann::json{{"commit", bench::git_commit()},
                                            {"cpu", bench::cpu_model()},
                                            {"payload_bytes", p.bytes.size()},
                                            {"hop_median_ms", hops.median()},
                                            {"hop_p90_ms", hops.percentile(0.9)},
                                            {"in_process_median_ms", local.median()}}
                                 .dump(2);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
