// edgeforge/tiers.h: tier profiles, links and topologies, as TOML files or built-ins.
//
// A tier profile says how many cores and how much memory a tier has and how fast it computes
// relative to this host (`speed` 0.5: twice the host's time). A link joins two tiers with a
// bandwidth, a round-trip time and optional jitter and loss. A topology is tiers in the order
// requests travel (they enter at the first, mobile) and the links between neighbours.
//
// The built-ins follow the study (docs/deployment.md): mobile 4 cores / 4 GB, edge 8
// cores / 16 GB, cloud 16 cores / 64 GB; links mobile-edge 200 Mbit/s, edge-cloud 1 Mbit/s.
// Their speeds (mobile 0.25, edge 1, cloud 2) and round-trip times (mobile-edge 5 ms,
// edge-cloud 40 ms) are assumptions the study does not give: a profile made on the real device
// replaces them.
//
//   [[tier]]                 # a topology file
//   name = "mobile"          # a built-in name fills every field not given
//   speed = 0.3
//   [[tier]]
//   name = "edge"
//   [[link]]
//   from = "mobile"
//   to = "edge"
//   bandwidth_mbps = 100
//   rtt_ms = 4
//
// A tier may take its fields from a device profile written by `edgeforge calibrate` on the
// device (`profile = "phone.toml"`, relative to the topology file); fields given beside it
// override the profile's. Unknown keys are errors, with their line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgeforge {

struct TierProfile {
  std::string name;
  int64_t cores = 1;
  double memory_gb = 1.0;
  double speed = 1.0;  // compute speed relative to this host; 0: from reference_ms
  // Median milliseconds of edgeforge's reference workload on the device (edgeforge calibrate);
  // when a file gives it without a speed, the speed is this host's reference time over it,
  // measured when the topology is used (resolve_speeds in edgeforge/deploy.h).
  double reference_ms = 0;
  // Remote mode (edgeforge/agent.h): the tier's agent, HOST:PORT; a file whose first line is
  // the shared token (required for an address that is not loopback); a PEM root certificate to
  // reach the agent over TLS. Paths are relative to the topology file.
  std::string agent, token_file, tls_ca;
};

struct Link {
  std::string from, to;
  double bandwidth_mbps = 1.0;
  double rtt_ms = 0.0;
  double jitter_ms = 0.0;  // standard deviation added to each one-way transfer
  double loss = 0.0;       // share of packets lost, in [0, 1)

  // Milliseconds for `bytes` to cross one way: half the round trip plus bytes over bandwidth.
  double one_way_ms(int64_t bytes) const;
};

struct Topology {
  std::string name;
  std::vector<TierProfile> tiers;  // in the order requests travel
  std::vector<Link> links;         // links[i] joins tiers[i] and tiers[i + 1]

  const TierProfile& tier(const std::string& name) const;  // Error naming the tiers it has
  size_t index_of(const std::string& name) const;           // position in `tiers`; Error as tier()
};

// "mobile", "edge" or "cloud"; Error listing them for another name.
TierProfile builtin_tier(const std::string& name);
// mobile -(200 Mbit/s)- edge -(1 Mbit/s)- cloud.
Topology default_topology();

// Reads a topology file; every problem is an Error naming the file and the entry: a missing
// or malformed file, an unknown field value, a link between tiers that are not neighbours in
// the file's order, a missing link, zero or negative bandwidth, loss outside [0, 1).
Topology load_topology(const std::string& path);
Topology parse_topology(const std::string& toml_text, const std::string& source);

// Error unless `model_bytes` (weights and working memory) fits the tier's memory.
void check_fits(const TierProfile& tier, int64_t model_bytes, const std::string& model);

}  // namespace edgeforge
