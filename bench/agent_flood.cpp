// Benchmark: an agent's memory under floods of concurrent requests, and whether it gives the
// memory back. Starts `edgeforge agent` (the program under test: --program, default
// EDGEFORGE_PROGRAM or build/edgeforge) as a child, loads --model on it, then sends --floods
// floods of --requests requests at once (one thread each), each carrying a --frame x --frame RGB
// frame, and prints the agent's resident memory (VmRSS from /proc) at start, after each flood
// and --settle seconds after the last, with how many requests each flood had answered, refused
// (RESOURCE_EXHAUSTED: the agent's --max-requests) or failed otherwise. Memory is not timing:
// this compares two builds by running each in turn, e.g.
//
//   build/agent_flood --model .cache/zoo/resnet.onnx --program /tmp/before/edgeforge
//   build/agent_flood --model .cache/zoo/resnet.onnx --program build/edgeforge
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "edgeforge/agent.h"
#include "edgeforge/deploy.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/tiers.h"

using namespace edgeforge;

namespace {

double rss_mb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return -1;
}

struct Agent {
  pid_t pid = -1;
  std::string address;
};

// Starts the agent and reads the address from its first line of stdout.
Agent start_agent(const std::string& program, const std::vector<std::string>& extra) {
  int out[2];
  if (pipe(out) != 0) throw Error("agent_flood: pipe failed");
  Agent a;
  a.pid = fork();
  if (a.pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    std::vector<std::string> args = {program, "agent", "--tier", "mobile", "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c = 0;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  const auto on = line.find(" on ");
  if (on == std::string::npos) throw Error("agent_flood: the agent did not start: '" + line + "'");
  a.address = line.substr(on + 4);
  a.address = a.address.substr(0, a.address.find(' '));
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, program;
  int requests = 500, floods = 2, frame = 1024, settle = 5;
  std::vector<std::string> agent_args;
  if (const char* p = std::getenv("EDGEFORGE_PROGRAM")) program = p;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "agent_flood: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model_path = next();
    else if (a == "--program") program = next();
    else if (a == "--requests") requests = std::atoi(next().c_str());
    else if (a == "--floods") floods = std::atoi(next().c_str());
    else if (a == "--frame") frame = std::atoi(next().c_str());
    else if (a == "--settle") settle = std::atoi(next().c_str());
    else if (a == "--agent-arg") agent_args.push_back(next());
    else {
      std::fprintf(stderr,
                   "usage: agent_flood --model M.onnx [--program edgeforge] [--requests 500] "
                   "[--floods 2] [--frame 1024] [--settle 5] [--agent-arg ARG]...\n");
      return 2;
    }
  }
  if (program.empty()) program = "build/edgeforge";
  if (model_path.empty() || requests < 1 || floods < 1 || frame < 1 || frame > 8192) {
    std::fprintf(stderr, "agent_flood: --model is required; counts must be positive\n");
    return 2;
  }
  try {
    const Graph model = load_onnx(model_path);
    PayloadOptions po;
    po.inputs = 1;
    po.frame_height = po.frame_width = frame;
    const std::vector<Payload> payloads = make_payloads(model, po);
    const Agent agent = start_agent(program, agent_args);
    Topology topology = default_topology();
    topology.tiers.resize(1);
    topology.links.clear();
    Placement placement;
    placement.first = topology.tiers[0].name;
    RemoteOptions ro;
    ro.retries = 0;
    ro.timeout_ms = 600000;
    std::printf("agent_flood: %s, %d floods of %d requests of a %dx%d frame (%.1f MB)\n",
                program.c_str(), floods, requests, frame, frame, frame * frame * 3 / 1e6);
    RemoteDeployment dep(model, topology, placement, {{"mobile", agent.address, "", ""}}, ro);
    dep.run(payloads[0]);  // warm: the plan built, the first request's buffers taken
    std::printf("rss_mb start %.1f\n", rss_mb(agent.pid));
    for (int f = 1; f <= floods; ++f) {
      std::atomic<int> ok{0}, refused{0}, failed{0};
      std::vector<std::thread> threads;
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < requests; ++r)
        threads.emplace_back([&] {
          try {
            dep.run(payloads[0]);
            ++ok;
          } catch (const Error& e) {
            (std::string(e.what()).find("resource exhausted") != std::string::npos ||
             std::string(e.what()).find("limit") != std::string::npos)
                ? ++refused
                : ++failed;
          }
        });
      for (std::thread& t : threads) t.join();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("rss_mb flood %d %.1f  (answered %d, refused %d, failed %d, %.1f s)\n", f,
                  rss_mb(agent.pid), ok.load(), refused.load(), failed.load(), s);
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(std::chrono::seconds(settle));
    std::printf("rss_mb settled %.1f  (%d s after the last flood)\n", rss_mb(agent.pid), settle);
    kill(agent.pid, SIGTERM);
    waitpid(agent.pid, nullptr, 0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agent_flood: %s\n", error_line(e).c_str());
    return 1;
  }
  return 0;
}
