// Emulated tiers on one Linux host: namespaces, veth pairs, tc and cgroups (edgeforge/emulate.h).
#include "edgeforge/emulate.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "edgeforge/error.h"
#include "edgeforge/process.h"
#include "edgeforge/util.h"

extern char** environ;

namespace edgeforge {

namespace fs = std::filesystem;

namespace {

constexpr int kAgentPort = 7000;
const char* const kCpuRoot = "/sys/fs/cgroup/cpu";
const char* const kMemoryRoot = "/sys/fs/cgroup/memory";

std::string find_tool(const char* name) {
  return find_program(name, {"/usr/sbin", "/sbin", "/usr/bin", "/bin"});
}

// Runs a tool to completion; its exit status, and its stderr's first line in `error`.
int run_tool(const std::vector<std::string>& argv, std::string* error = nullptr) {
  const ProgramOutput o = run_program(argv);
  if (error != nullptr) *error = o.err.substr(0, o.err.find('\n'));
  return o.status;
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

void must(const std::vector<std::string>& argv) {
  std::string err;
  const int status = run_tool(argv, &err);
  EF_CHECK(status == 0, "emulate: `", join(argv), "` failed (", status, "): ", err);
}

void write_value(const std::string& file, const std::string& value) {
  std::ofstream out(file);
  out << value;
  out.close();
  EF_CHECK(out.good(), "emulate: cannot write ", value, " to ", file);
}

// The shell script that removes everything an emulation of process `pid` made: its agents,
// namespaces (their veth ends go with them) and cgroups.
std::string cleanup_script(const std::string& ip, pid_t pid) {
  const std::string p = std::to_string(pid);
  std::ostringstream s;
  s << "for ns in $(" << ip << " netns list 2>/dev/null | awk '{print $1}' | grep '^ef-" << p
    << "-'); do for q in $(" << ip << " netns pids $ns 2>/dev/null); do kill -9 $q 2>/dev/null; done; "
    << ip << " netns del $ns 2>/dev/null; done; "
    << "for c in " << kCpuRoot << "/edgeforge-" << p << "-* " << kMemoryRoot << "/edgeforge-" << p
    << "-*; do [ -d \"$c\" ] || continue; for q in $(cat $c/cgroup.procs 2>/dev/null); do kill -9 $q "
    << "2>/dev/null; done; for i in 1 2 3 4 5 6 7 8 9 10; do rmdir $c 2>/dev/null && break; sleep 0.1; done; done; "
    << ip << " link del e" << p << "ca0 2>/dev/null; true";
  return s.str();
}

// A tier name safe for namespace and cgroup names.
void check_tier_name(const std::string& name) {
  EF_CHECK(!name.empty() && name.size() <= 24, "emulate: tier name '", name, "' must be 1-24 characters");
  for (char c : name)
    EF_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_', "emulate: tier name '", name,
             "': use letters, digits and '_'");
}

}  // namespace

std::string emulation_unavailable() {
  const char* alt = "; use --mode simulated (the default) instead";
  if (::geteuid() != 0) return std::string("emulated mode needs root (network namespaces, tc, cgroups)") + alt;
  if (find_tool("ip").empty() || find_tool("tc").empty())
    return std::string("emulated mode needs ip and tc (apt-get install iproute2)") + alt;
  if (::access((std::string(kCpuRoot) + "/cpu.cfs_quota_us").c_str(), W_OK) != 0 ||
      ::access((std::string(kMemoryRoot) + "/memory.limit_in_bytes").c_str(), W_OK) != 0)
    return std::string("emulated mode needs the cgroup v1 cpu and memory controllers, writable at ") +
           kCpuRoot + " and " + kMemoryRoot + alt;
  if (::access("/var/run/netns", F_OK) != 0 && ::access("/run", W_OK) != 0)
    return std::string("emulated mode cannot create network namespaces (/run is not writable)") + alt;
  return "";
}

int clean_stale_emulations() {
  const std::string ip = find_tool("ip");
  if (ip.empty() || ::geteuid() != 0) return 0;
  std::set<pid_t> stale;
  auto consider = [&](const std::string& name, const std::string& prefix) {
    if (name.rfind(prefix, 0) != 0) return;
    const std::string rest = name.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos) return;
    try {
      const pid_t pid = static_cast<pid_t>(std::stol(rest.substr(0, dash)));
      if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) stale.insert(pid);
    } catch (const std::exception&) {
    }
  };
  std::error_code ec;
  for (const char* dir : {"/var/run/netns", "/run/netns"})
    for (const auto& e : fs::directory_iterator(dir, ec)) consider(e.path().filename().string(), "ef-");
  for (const char* root : {kCpuRoot, kMemoryRoot})
    for (const auto& e : fs::directory_iterator(root, ec)) consider(e.path().filename().string(), "edgeforge-");
  for (pid_t pid : stale) run_tool({"/bin/sh", "-c", cleanup_script(ip, pid)});
  return static_cast<int>(stale.size());
}

struct Emulation::Impl {
  Topology topology;
  EmulationOptions options;
  std::string ip, tc, temp;
  pid_t pid = ::getpid();
  int subnet = 0;       // second octet of the 10.x.y.z addresses
  bool netem = false;
  std::vector<std::string> ns;  // per tier
  std::vector<AgentEndpoint> endpoints;
  std::vector<ChildProcess> agents;
  std::vector<std::string> lines;
  pid_t watcher = -1;
  int watcher_pipe = -1;

  std::string veth(const char* kind, size_t i, char end) const {
    return "e" + std::to_string(pid) + kind + std::to_string(i) + end;  // at most 15 characters
  }
  std::string address(int third, int host) const {
    return "10." + std::to_string(subnet) + "." + std::to_string(third) + "." + std::to_string(host);
  }

  // A process that removes everything named after this one once this one is gone, however it
  // ends; it reads its standard input (our pipe) until end of file.
  void start_watcher() {
    int fds[2];
    EF_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "emulate: cannot create a pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);  // Ctrl-C does not reach it
    const std::string script = "trap '' INT TERM HUP; cat >/dev/null; " + cleanup_script(ip, pid);
    std::vector<std::string> argv = {"/bin/sh", "-c", script};
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&watcher, "/bin/sh", &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(fds[0]);
    if (rc != 0) {
      ::close(fds[1]);
      throw Error("emulate: cannot start the clean-up watcher");
    }
    watcher_pipe = fds[1];
  }

  void tear_down() {
    agents.clear();  // killed and reaped
    if (!ip.empty()) run_tool({"/bin/sh", "-c", cleanup_script(ip, pid)});
    if (watcher_pipe >= 0) {
      ::close(watcher_pipe);
      watcher_pipe = -1;
      int st = 0;
      ::waitpid(watcher, &st, 0);
    }
    if (!temp.empty()) {
      std::error_code ec;
      fs::remove_all(temp, ec);
    }
  }

  // Shapes one end of a link: netem's delay (half the round trip) when the kernel has it, then
  // a token bucket at the link's rate. `change` re-shapes an existing one.
  void shape(const std::string& name_space, const std::string& dev, const Link& l, bool change) {
    const double bits = l.bandwidth_mbps * 1e6;
    // A small bucket: 1 ms at the rate (at least two full packets), so a message is paced at
    // the link's rate from its first bytes instead of passing a large burst at line speed.
    const auto burst = static_cast<int64_t>(std::max(3028.0, bits / 8 * 0.001));
    const auto limit = static_cast<int64_t>(std::max(1e6, bits / 8 * 4.0));       // 4 s queued
    const std::string rate = std::to_string(static_cast<int64_t>(std::llround(bits / 1000))) + "kbit";
    std::vector<std::string> tbf = {tc, "-n", name_space, "qdisc", change ? "change" : "add", "dev", dev};
    if (netem) tbf.insert(tbf.end(), {"parent", "1:", "handle", "2:"});
    else tbf.insert(tbf.end(), {"root", "handle", "1:"});
    tbf.insert(tbf.end(), {"tbf", "rate", rate, "burst", std::to_string(burst), "limit", std::to_string(limit)});
    must(tbf);
  }
};

Emulation::Emulation(const Topology& topology, EmulationOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const std::string why = emulation_unavailable();
  EF_CHECK(why.empty(), why);
  m.topology = topology;
  m.options = options;
  m.ip = find_tool("ip");
  m.tc = find_tool("tc");
  for (const TierProfile& t : topology.tiers) check_tier_name(t.name);
  EF_CHECK(topology.tiers.size() <= 8, "emulate: at most 8 tiers");
  std::string program = options.program.empty() ? self_executable() : options.program;
  clean_stale_emulations();
  m.subnet = 100 + static_cast<int>(m.pid % 100);
  char temp[] = "/tmp/edgeforge-emulate-XXXXXX";
  EF_CHECK(::mkdtemp(temp) != nullptr, "emulate: cannot create a temporary folder");
  m.temp = temp;
  const std::string logs = options.log_dir.empty() ? m.temp : options.log_dir;
  fs::create_directories(logs);
  // A fresh random token for this run's agents (they listen beyond loopback).
  std::random_device rd;
  std::string token;
  for (int i = 0; i < 32; ++i) token.push_back("0123456789abcdef"[rd() % 16]);
  const std::string token_file = m.temp + "/token";
  {
    std::ofstream out(token_file);
    out << token << "\n";
  }
  ::chmod(token_file.c_str(), 0600);
  m.start_watcher();
  try {
    // Is netem there? Probe on a namespace's loopback.
    const size_t n = topology.tiers.size();
    for (size_t i = 0; i < n; ++i) {
      m.ns.push_back("ef-" + std::to_string(m.pid) + "-" + topology.tiers[i].name);
      must({m.ip, "netns", "add", m.ns[i]});
      must({m.ip, "-n", m.ns[i], "link", "set", "lo", "up"});
    }
    m.netem = run_tool({m.tc, "-n", m.ns[0], "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"}) == 0;
    if (m.netem) run_tool({m.tc, "-n", m.ns[0], "qdisc", "del", "dev", "lo", "root"});
    // Control links: this process to every agent, not shaped (models are loaded over them, and
    // requests enter the first tier through it, as an app hands a frame to its device).
    for (size_t i = 0; i < n; ++i) {
      const std::string a = m.veth("ca", i, 'h'), b = m.veth("ca", i, 'n');
      must({m.ip, "link", "add", a, "type", "veth", "peer", "name", b});
      must({m.ip, "link", "set", b, "netns", m.ns[i]});
      must({m.ip, "addr", "add", m.address(100 + static_cast<int>(i), 1) + "/30", "dev", a});
      must({m.ip, "link", "set", a, "up"});
      must({m.ip, "-n", m.ns[i], "addr", "add", m.address(100 + static_cast<int>(i), 2) + "/30", "dev", b});
      must({m.ip, "-n", m.ns[i], "link", "set", b, "up"});
    }
    // The topology's links, shaped both ways.
    for (size_t i = 0; i + 1 < n; ++i) {
      const Link& l = topology.links.at(i);
      const std::string a = m.veth("l", i, 'a'), b = m.veth("l", i, 'b');
      must({m.ip, "link", "add", a, "type", "veth", "peer", "name", b});
      must({m.ip, "link", "set", a, "netns", m.ns[i]});
      must({m.ip, "link", "set", b, "netns", m.ns[i + 1]});
      must({m.ip, "-n", m.ns[i], "addr", "add", m.address(static_cast<int>(i) + 1, 1) + "/30", "dev", a});
      must({m.ip, "-n", m.ns[i + 1], "addr", "add", m.address(static_cast<int>(i) + 1, 2) + "/30", "dev", b});
      must({m.ip, "-n", m.ns[i], "link", "set", a, "up"});
      must({m.ip, "-n", m.ns[i + 1], "link", "set", b, "up"});
      for (const auto& [space, dev] : {std::make_pair(m.ns[i], a), std::make_pair(m.ns[i + 1], b)}) {
        if (m.netem) {
          char d[32];
          std::snprintf(d, sizeof d, "%.3fms", l.rtt_ms / 2);
          must({m.tc, "-n", space, "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay", d});
        }
        m.shape(space, dev, l, false);
      }
      m.lines.push_back("link " + l.from + "-" + l.to + ": tc token bucket at " +
                        std::to_string(l.bandwidth_mbps).substr(0, 6) + " Mbit/s each way, round trip " +
                        std::to_string(l.rtt_ms).substr(0, 6) + " ms added by " +
                        (m.netem ? "netem" : "the forwarding agent (no netem in this kernel)"));
    }
    // Agents, each in its cgroups.
    for (size_t i = 0; i < n; ++i) {
      const TierProfile& t = topology.tiers[i];
      const int threads = static_cast<int>(std::min<int64_t>(t.cores, host_cores()));
      const double cpus = threads * std::min(1.0, t.speed > 0 ? t.speed : 1.0);
      const std::string cg = "edgeforge-" + std::to_string(m.pid) + "-" + t.name;
      const std::string cpu = std::string(kCpuRoot) + "/" + cg, mem = std::string(kMemoryRoot) + "/" + cg;
      fs::create_directories(cpu);
      fs::create_directories(mem);
      const auto period = static_cast<int64_t>(options.cpu_period_ms * 1000);
      write_value(cpu + "/cpu.cfs_period_us", std::to_string(period));
      write_value(cpu + "/cpu.cfs_quota_us", std::to_string(static_cast<int64_t>(cpus * static_cast<double>(period))));
      write_value(mem + "/memory.limit_in_bytes", std::to_string(static_cast<int64_t>(t.memory_gb * 1e9)));
      std::vector<std::string> argv = {m.ip, "netns", "exec", m.ns[i], program, "agent",
                                       "--tier", t.name, "--listen", "0.0.0.0:" + std::to_string(kAgentPort),
                                       "--threads", std::to_string(threads), "--token-file", token_file};
      if (i + 1 < n) {
        argv.insert(argv.end(), {"--next", m.address(static_cast<int>(i) + 1, 2) + ":" + std::to_string(kAgentPort)});
        if (!m.netem) argv.insert(argv.end(), {"--next-delay-ms", std::to_string(topology.links[i].rtt_ms)});
      }
      m.agents.emplace_back(argv, logs + "/" + t.name + ".out", logs + "/" + t.name + ".log",
                            std::vector<std::string>{"EDGEFORGE_PARENT_PID=" + std::to_string(m.pid)});
      const std::string p = std::to_string(m.agents.back().pid());
      write_value(cpu + "/cgroup.procs", p);
      write_value(mem + "/cgroup.procs", p);
      m.endpoints.push_back({t.name, m.address(100 + static_cast<int>(i), 2) + ":" + std::to_string(kAgentPort),
                             token, ""});
      char line[256];
      std::snprintf(line, sizeof line, "tier %s: agent in namespace %s, %d threads, CPU quota %.2f cores, memory %.1f GB%s",
                    t.name.c_str(), m.ns[i].c_str(), threads, cpus, t.memory_gb,
                    t.speed > 1 ? " (speed above 1 cannot be emulated on this host: runs at its speed)" : "");
      m.lines.push_back(line);
    }
    // Wait until every agent answers.
    for (size_t i = 0; i < n; ++i) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      for (;;) {
        try {
          AgentClient(m.endpoints[i], 1000).health();
          break;
        } catch (const Error& e) {
          if (m.agents[i].poll())
            throw Error("emulate: the agent of tier " + topology.tiers[i].name + " ended at start (" +
                        logs + "/" + topology.tiers[i].name + ".log)");
          if (std::chrono::steady_clock::now() > deadline)
            throw Error(std::string("emulate: the agent of tier ") + topology.tiers[i].name +
                        " did not answer within 30 s: " + e.what());
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    }
  } catch (...) {
    m.tear_down();
    throw;
  }
}

Emulation::~Emulation() { impl_->tear_down(); }

const std::vector<AgentEndpoint>& Emulation::endpoints() const { return impl_->endpoints; }

void Emulation::set_bandwidth(size_t link, double mbps) {
  Impl& m = *impl_;
  EF_CHECK(link + 1 < m.ns.size(), "emulate: no link ", link);
  EF_CHECK(mbps > 0, "emulate: bandwidth ", mbps, " must be > 0");
  m.topology.links[link].bandwidth_mbps = mbps;
  m.shape(m.ns[link], m.veth("l", link, 'a'), m.topology.links[link], true);
  m.shape(m.ns[link + 1], m.veth("l", link, 'b'), m.topology.links[link], true);
}

std::vector<std::string> Emulation::describe() const { return impl_->lines; }

bool Emulation::netem() const { return impl_->netem; }

}  // namespace edgeforge
