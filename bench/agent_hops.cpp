// Benchmark: the agents' protocol cost per hop on loopback, side by side with the ideal
// transfer of the same bytes. A chain of three agents (mobile -> edge -> cloud, no added delay)
// serves a model placed on each tier in turn, with a raw frame of about --mb megabytes; each
// forward's time beyond what the next tier reports doing is that hop's cost (gRPC, protobuf,
// the loopback socket, both ways; the reply is a few bytes). The ideal transfer is the same
// bytes written to a bare TCP socket on loopback and read whole by a thread that answers with
// 8 bytes: the kernel's two copies and nothing else. Like a new frame per request, each bare
// transfer sends from and receives into one of 32 buffers in turn, so neither is in the
// core's cache. The protocol's overhead per hop is the hop's median less the bare median.
// Each request is also sent with its bulk copied by protobuf's serialisation, beside the
// by-reference send agents use, and the ratio printed. Also printed: the payload encoded and
// decoded as a tensor message in one process (what simulated mode charges as serialisation).
// All of them take turns request by request, in alternating order (bench_util.h's
// time_side_by_side).
//
//   build/agent_hops [--mb 1] [--reps 200] [--json out.json]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "bench_util.h"
#include "../src/agent/agent_wire.h"
#include "edgeforge/agent.h"
#include "edgeforge/data.h"
#include "edgeforge/task.h"
#include "edgeforge/deploy.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::perror(what);
    std::exit(1);
  }
}

// Writes or reads exactly n bytes.
void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::write(fd, p, n);
    check(k > 0, "agent_hops: write");
    p += k, n -= static_cast<size_t>(k);
  }
}
void read_all(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::read(fd, p, n);
    check(k > 0, "agent_hops: read");
    p += k, n -= static_cast<size_t>(k);
  }
}

// Round trips of `bytes` over a bare loopback TCP socket, answered with 8 bytes (see above).
class BareTcp {
 public:
  explicit BareTcp(size_t bytes) : bytes_(bytes), out_(kBuffers, std::string(bytes, '\x40')) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    check(listener_ >= 0, "agent_hops: socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "agent_hops: bind");
    check(::listen(listener_, 1) == 0, "agent_hops: listen");
    socklen_t len = sizeof addr;
    check(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0,
          "agent_hops: getsockname");
    server_ = std::thread([this] {
      const int fd = ::accept(listener_, nullptr, nullptr);
      check(fd >= 0, "agent_hops: accept");
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::vector<std::string> in(kBuffers, std::string(bytes_, '\0'));
      char ack[8] = {};
      char first;
      // Until the client closes: each request's first byte, then the rest.
      for (int r = 0; ::read(fd, &first, 1) == 1; ++r) {
        read_all(fd, in[r % kBuffers].data() + 1, bytes_ - 1);
        write_all(fd, ack, sizeof ack);
      }
      ::close(fd);
    });
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    check(fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0,
          "agent_hops: connect");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~BareTcp() {
    ::close(fd_);
    server_.join();
    ::close(listener_);
  }
  BareTcp(const BareTcp&) = delete;
  BareTcp& operator=(const BareTcp&) = delete;

  // Like a new frame per request, each sends from one of kBuffers buffers in turn and the
  // server receives into one of as many, so neither is in the core's cache.
  void round_trip() {
    char ack[8];
    write_all(fd_, out_[next_++ % kBuffers].data(), bytes_);
    read_all(fd_, ack, sizeof ack);
  }

 private:
  static constexpr int kBuffers = 32;
  size_t bytes_;
  std::vector<std::string> out_;
  size_t next_ = 0;
  int listener_ = -1, fd_ = -1;
  std::thread server_;
};

}  // namespace

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
  // Per hop: mobile -> edge (deploy edge, link 0), edge -> cloud (deploy cloud, link 1); each
  // request sent with the bulk by reference (what agents do) and through protobuf's
  // serialisation (the copying reference, agent_wire.h). Beside them the bare transfer and,
  // in process, the payload as a tensor message, encoded and decoded. All take turns request
  // by request, in alternating order (bench_util.h's time_side_by_side).
  std::vector<std::unique_ptr<RemoteDeployment>> deployments;
  std::vector<bench::Contender> contenders;
  for (const char* tier : {"edge", "cloud"}) {
    deployments.push_back(
        std::make_unique<RemoteDeployment>(model, topo, parse_placement(tier, topo), eps));
    RemoteDeployment* dep = deployments.back().get();
    for (const bool copy : {false, true}) {
      contenders.push_back({[dep, copy, &p](int n) {
        send_infer_by_copy(copy);
        std::vector<double> ms;  // what each hop took beyond the next tier's own work
        for (int r = 0; r < n; ++r)
          for (double l : dep->run(p).link_ms)
            if (l > 0) ms.push_back(l);
        send_infer_by_copy(false);
        return ms;
      }});
    }
  }
  BareTcp bare_tcp(p.bytes.size());
  contenders.push_back({bench::timed([&] { bare_tcp.round_trip(); })});
  at::Tensor raw = at::empty({static_cast<int64_t>(p.bytes.size())}, at::kByte);
  std::memcpy(raw.data_ptr(), p.bytes.data(), p.bytes.size());
  contenders.push_back({bench::timed([&] {
    const std::string msg = encode_tensors({raw});
    const auto back = decode_tensors(msg, "bench");
  })});
  const std::vector<bench::Timing> t =
      bench::time_side_by_side(contenders, {/*rounds=*/reps, /*block=*/1, /*settle=*/0, /*warmup=*/10});
  auto merged = [](const bench::Timing& a, const bench::Timing& b) {
    bench::Timing m = a;
    m.samples_ms.insert(m.samples_ms.end(), b.samples_ms.begin(), b.samples_ms.end());
    return m;
  };
  const bench::Timing hops = merged(t[0], t[2]), copying = merged(t[1], t[3]), bare = t[4],
                      local = t[5];
  const double overhead = hops.median() - bare.median();
  std::printf("%-40s %10s %10s\n", "", "median ms", "p90 ms");
  std::printf("%-40s %10.3f %10.3f\n", "per hop, agents on loopback", hops.median(), hops.percentile(0.9));
  std::printf("%-40s %10.3f %10.3f\n", "per hop, bulk copied by protobuf", copying.median(),
              copying.percentile(0.9));
  std::printf("%-40s %10.3f %10.3f\n", "ideal transfer (bare TCP on loopback)", bare.median(), bare.percentile(0.9));
  std::printf("%-40s %10.3f\n", "protocol overhead per hop (hop - ideal)", overhead);
  std::printf("%-40s %10.3f %10.3f\n", "in process (encode + decode)", local.median(), local.percentile(0.9));
  std::printf("ratio (hop / copied by protobuf): %.2f; (hop / ideal): %.2f; (hop / in process): %.2f\n",
              hops.median() / copying.median(), hops.median() / bare.median(),
              hops.median() / local.median());
  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (f == nullptr) return 1;
    const std::string text = nlohmann::json{{"commit", bench::git_commit()},
                                            {"cpu", bench::cpu_model()},
                                            {"payload_bytes", p.bytes.size()},
                                            {"hop_median_ms", hops.median()},
                                            {"hop_p90_ms", hops.percentile(0.9)},
                                            {"copying_hop_median_ms", copying.median()},
                                            {"ideal_median_ms", bare.median()},
                                            {"overhead_per_hop_ms", overhead},
                                            {"in_process_median_ms", local.median()}}
                                 .dump(2);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
