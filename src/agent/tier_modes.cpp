// The tier-mode table (edgeforge/tier_modes.h). It lives with the agents: the real modes are
// agents, emulated or remote.
#include "edgeforge/tier_modes.h"

#include "edgeforge/agent.h"
#include "edgeforge/emulate.h"
#include "edgeforge/error.h"
#include "edgeforge/tiers.h"

namespace edgeforge {

namespace {

std::string available() { return ""; }

// Sets the topology's tiers up on this host, kept alive in `emulation`.
std::vector<AgentEndpoint> emulated_agents(const Topology& topology, const EmulationOptions& options,
                                           std::unique_ptr<Emulation>& emulation) {
  emulation = std::make_unique<Emulation>(topology, options);
  return emulation->endpoints();
}

std::vector<AgentEndpoint> remote_agents(const Topology& topology, const EmulationOptions&,
                                         std::unique_ptr<Emulation>&) {
  return topology_agents(topology);
}

}  // namespace

const std::vector<TierMode>& tier_modes() {
  static const std::vector<TierMode> modes = {
      {"simulated",
       "simulated: compute measured on this host and scaled by tier speed; links computed from "
       "bandwidth and RTT",
       "SIMULATED on this host", false, true, available, {}},
      {"emulated", "emulated: measured on tiers and links emulated on this host",
       "EMULATED on this host (agents, namespaces, tc, cgroups)", true, true, emulation_unavailable,
       emulated_agents},
      {"remote", "remote: measured on the tiers' own machines over real links",
       "REMOTE agents (coordinator on this host)", true, false, available, remote_agents},
  };
  return modes;
}

std::vector<std::string> tier_mode_names() {
  std::vector<std::string> names;
  for (const TierMode& m : tier_modes()) names.push_back(m.name);
  return names;
}

const TierMode& tier_mode(const std::string& name) {
  std::string valid;
  for (const TierMode& m : tier_modes()) {
    if (m.name == name) return m;
    valid += (valid.empty() ? "" : ", ") + m.name;
  }
  throw Error("unknown latency mode '" + name + "'; valid modes: " + valid);
}

std::vector<AgentEndpoint> tier_mode_agents(const TierMode& mode, const Topology& topology,
                                            const EmulationOptions& options,
                                            std::unique_ptr<Emulation>& emulation) {
  EF_CHECK(mode.agents != nullptr, "mode ", mode.name, " measures without agents");
  const std::string why = mode.unavailable();
  EF_CHECK(why.empty(), why);
  return mode.agents(topology, options, emulation);
}

}  // namespace edgeforge
