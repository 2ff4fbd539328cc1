// edgeforge/tier_modes.h: how a deployment's latency is measured, one table entry per mode.
//
// "simulated" times compute on this host and computes links from bandwidth and RTT (the
// default; docs/deployment.md); "emulated" runs tier agents on this host in network namespaces
// behind shaped links and CPU quotas (root; docs/agents.md); "remote" sends requests to the tier
// agents a topology names. bench, study and the report read this table rather than the names.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace edgeforge {

struct AgentEndpoint;
class Emulation;
struct EmulationOptions;
struct Topology;

struct TierMode {
  std::string name;         // "simulated", "emulated", "remote"
  std::string description;  // one line for reports: what its figures are
  std::string banner;       // bench's heading: "SIMULATED on this host"
  bool real = false;        // requests go to tier agents (RemoteDeployment), not the simulation
  bool reshapable = true;   // links can be set to each bandwidth of a sweep
  // "" when the mode can run on this host, else the one-line reason.
  std::function<std::string()> unavailable;
  // A real mode's agents (tier_mode_agents); empty for the simulation.
  std::function<std::vector<AgentEndpoint>(const Topology&, const EmulationOptions&,
                                           std::unique_ptr<Emulation>&)>
      agents;
};

// Every mode, the default first.
const std::vector<TierMode>& tier_modes();
// The mode named `name`; Error naming the valid ones otherwise.
const TierMode& tier_mode(const std::string& name);
std::vector<std::string> tier_mode_names();

// The agents a real mode measures on: for "emulated" the topology's tiers are first set up on
// this host (and kept alive in `emulation`), for "remote" the addresses the topology names.
// Error for a mode that is not real, or that is unavailable here (its reason).
std::vector<AgentEndpoint> tier_mode_agents(const TierMode& mode, const Topology& topology,
                                            const EmulationOptions& options,
                                            std::unique_ptr<Emulation>& emulation);

}  // namespace edgeforge
