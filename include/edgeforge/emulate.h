// edgeforge/emulate.h: a topology emulated on this Linux host (docs/agents.md).
//
// Every tier becomes an agent process (edgeforge agent) in a network namespace of its own; the
// namespaces are joined in the topology's order by veth pairs, and each link is shaped in both
// directions with a tc token bucket at its bandwidth. Its round-trip time is added by netem
// where the kernel has it, otherwise by the agent that forwards over the link. Each agent runs
// in a cgroup with a CPU quota and a memory limit from its tier's profile.
//
// Needs root, `ip` (iproute2), `tc` and the cgroup v1 cpu and memory controllers;
// emulation_unavailable() says what is missing. Everything it creates is named after this
// process (ef-<pid>-<tier> namespaces, edgeforge-<pid>-<tier> cgroups) and removed when the
// Emulation ends, and also after a crash or kill: a watcher process removes what is left when
// this process dies. Leftovers of earlier runs whose process is gone are removed at start.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "edgeforge/agent.h"
#include "edgeforge/tiers.h"

namespace edgeforge {

// "" when this host can emulate; else why not, naming the simulated mode as the alternative.
std::string emulation_unavailable();

// Removes namespaces and cgroups of earlier emulations whose process has ended; returns how many.
int clean_stale_emulations();

struct EmulationOptions {
  std::string program;       // the edgeforge executable for the agents ("" = this one)
  std::string log_dir;       // agents' logs (<tier>.log); "" = a temporary folder
  double cpu_period_ms = 100;  // CFS period of the CPU quota
};

class Emulation {
 public:
  // Error naming what is missing (emulation_unavailable()) or what failed to set up; anything
  // set up before the failure is removed.
  explicit Emulation(const Topology& topology, EmulationOptions options = {});
  ~Emulation();
  Emulation(const Emulation&) = delete;
  Emulation& operator=(const Emulation&) = delete;

  // One per tier, in the topology's order, reachable from this process.
  const std::vector<AgentEndpoint>& endpoints() const;
  // Re-shapes a link (both directions) to a new bandwidth, for sweeps.
  void set_bandwidth(size_t link, double mbps);
  // How each tier is limited, and how round trips are added: one line each, for reports.
  std::vector<std::string> describe() const;
  // True when the kernel adds the links' round-trip time (netem); false: the agents do.
  bool netem() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeforge
