// edgeforge tiers: show a topology (the built-in default or a TOML file), checked, with what a
// request's transfer costs on each link: the way to validate a topology file before using it.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/deploy.h"
#include "edgeforge/tiers.h"

namespace edgeforge::cli {

Action add_tiers(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "tiers",
      "Show a topology: its tiers (cores, memory, speed relative to this host) in the order\n"
      "requests travel, and the links between them (bandwidth, round-trip time, jitter, loss,\n"
      "and the one-way time of a 224x224 RGB frame). Without --topology, the built-in default\n"
      "after the study: mobile -(200 Mbit/s)- edge -(1 Mbit/s)- cloud. A file is checked first;\n"
      "docs/deployment.md gives its format.");
  struct Args {
    std::string topology;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--topology", args->topology, "topology .toml file (default: the built-in)");
  cmd->add_flag("--json", args->json, "print as JSON on stdout");
  return [args]() {
    Topology t = args->topology.empty() ? default_topology() : load_topology(args->topology);
    resolve_speeds(t);  // tiers from a calibrated profile: speed from the reference workload
    constexpr int64_t kFrameBytes = 224 * 224 * 3;  // the study's captured frame, 8-bit RGB
    if (args->json) {
      nlohmann::json j = {{"name", t.name}};
      for (const TierProfile& p : t.tiers)
        j["tiers"].push_back({{"name", p.name}, {"cores", p.cores}, {"memory_gb", p.memory_gb},
                              {"speed", p.speed}, {"reference_ms", p.reference_ms}});
      for (const Link& l : t.links)
        j["links"].push_back({{"from", l.from}, {"to", l.to}, {"bandwidth_mbps", l.bandwidth_mbps},
                              {"rtt_ms", l.rtt_ms}, {"jitter_ms", l.jitter_ms}, {"loss", l.loss},
                              {"frame_one_way_ms", l.one_way_ms(kFrameBytes)}});
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    std::printf("topology %s\n", t.name.c_str());
    std::printf("%-10s %6s %10s %7s\n", "tier", "cores", "memory", "speed");
    for (const TierProfile& p : t.tiers)
      std::printf("%-10s %6lld %7.1f GB %7.2f\n", p.name.c_str(), static_cast<long long>(p.cores),
                  p.memory_gb, p.speed);
    std::printf("%-18s %12s %9s %9s %6s %14s\n", "link", "bandwidth", "rtt", "jitter", "loss",
                "frame one way");
    for (const Link& l : t.links)
      std::printf("%-18s %7.1f Mb/s %6.1f ms %6.1f ms %6.3f %11.1f ms\n",
                  (l.from + " -> " + l.to).c_str(), l.bandwidth_mbps, l.rtt_ms, l.jitter_ms, l.loss,
                  l.one_way_ms(kFrameBytes));
    return 0;
  };
}

}  // namespace edgeforge::cli
