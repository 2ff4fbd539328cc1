// Tier profiles, links and topologies (edgeforge/tiers.h), read with toml++.
#include "edgeforge/tiers.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include "edgeforge/error.h"
#include "../common/numbers.h"
#include "edgeforge/util.h"

namespace edgeforge {

double Link::one_way_ms(int64_t bytes) const {
  // Mbit/s is 1000 bits per millisecond.
  return rtt_ms / 2.0 + static_cast<double>(bytes) * 8.0 / (bandwidth_mbps * 1000.0);
}

const TierProfile& Topology::tier(const std::string& name) const {
  std::string names;
  for (const TierProfile& t : tiers) {
    if (t.name == name) return t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  throw Error(detail::concat("topology '", this->name, "' has no tier '", name, "' (it has ",
                             names, ")"));
}

size_t Topology::index_of(const std::string& name) const {
  return static_cast<size_t>(&tier(name) - tiers.data());
}

TierProfile builtin_tier(const std::string& name) {
  auto tier = [](const char* n, int64_t cores, double memory_gb, double speed) {
    TierProfile p;
    p.name = n;
    p.cores = cores;
    p.memory_gb = memory_gb;
    p.speed = speed;
    return p;
  };
  if (name == "mobile") return tier("mobile", 4, 4.0, 0.25);
  if (name == "edge") return tier("edge", 8, 16.0, 1.0);
  if (name == "cloud") return tier("cloud", 16, 64.0, 2.0);
  throw Error(detail::concat("no built-in tier '", name, "' (built-ins: mobile, edge, cloud)"));
}

Topology default_topology() {
  Topology t;
  t.name = "default";
  t.tiers = {builtin_tier("mobile"), builtin_tier("edge"), builtin_tier("cloud")};
  t.links = {{"mobile", "edge", 200.0, 5.0, 0.0, 0.0}, {"edge", "cloud", 1.0, 40.0, 0.0, 0.0}};
  return t;
}

namespace {

bool is_builtin(const std::string& name) {
  return name == "mobile" || name == "edge" || name == "cloud";
}

// A number field: the table's value when given (an integer or a float; finite and within
// [lo, hi], lo excluded when `lo_open`), else `fallback`.
double number(const toml::table& t, const char* key, double fallback, const std::string& where,
              double lo, double hi, bool lo_open = false) {
  const toml::node* n = t.get(key);
  return n == nullptr ? fallback : numbers::real(*n, key, lo, hi, where, lo_open);
}

// Error naming the first key of `t` not in `known`, with its line.
void known_keys(const toml::table& t, std::initializer_list<const char*> known,
                const std::string& where) {
  for (const auto& [key, node] : t) {
    bool ok = false;
    for (const char* k : known) ok = ok || key.str() == k;
    std::string list;
    for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    EF_CHECK(ok, where, ":", node.source().begin.line, ": unknown key '", key.str(), "' (known: ",
             list, ")");
  }
}


std::string text(const toml::table& t, const char* key, const std::string& where) {
  const toml::node* n = t.get(key);
  if (n == nullptr) throw Error(detail::concat(where, ": '", key, "' is missing"));
  if (auto v = n->value<std::string>()) return *v;
  throw Error(detail::concat(where, ": '", key, "' must be a string"));
}

}  // namespace

Topology parse_topology(const std::string& toml_text, const std::string& source) {
  const toml::table doc = numbers::parse_toml(toml_text, source);
  Topology topo;
  known_keys(doc, {"name", "tier", "link"}, source);
  topo.name = doc["name"].value_or(source);
  const toml::array* tiers = doc["tier"].as_array();
  EF_CHECK(tiers != nullptr && !tiers->empty(), source, ": no [[tier]] entries");
  for (size_t i = 0; i < tiers->size(); ++i) {
    const toml::table* t = (*tiers)[i].as_table();
    const std::string where = source + ": tier " + std::to_string(i + 1);
    EF_CHECK(t != nullptr, where, " is not a table");
    const std::string name = text(*t, "name", where);
    // A tier's name is written in deployments ("mobile-edge"), cell keys and messages.
    EF_CHECK(!name.empty() && name.size() <= 64 &&
                 std::all_of(name.begin(), name.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
                 }),
             where, ": name '", name.substr(0, 64).find('\n') == std::string::npos ? name.substr(0, 64) : "...",
             "' must be 1 to 64 letters, digits, '_' or '.' (a '-' would read as a split)");
    TierProfile p = is_builtin(name) ? builtin_tier(name) : TierProfile();
    p.name = name;
    const std::string at = source + ": tier '" + name + "'";
    known_keys(*t, {"name", "cores", "memory_gb", "speed", "reference_ms", "profile", "agent",
                    "token_file", "tls_ca"}, at);
    const bool has_profile = t->contains("profile");
    if (has_profile) {  // a device file written by edgeforge calibrate fills the fields
      const std::string path = path_beside(source, text(*t, "profile", at));
      static thread_local int depth = 0;
      EF_CHECK(depth == 0, at, ": profile ", path, " is named inside a profile file (a device ",
               "profile gives its fields itself)");
      ++depth;
      Topology device;
      try {
        device = load_topology(path);
      } catch (...) {
        --depth;
        throw;
      }
      --depth;
      EF_CHECK(device.tiers.size() == 1, at, ": profile ", path, " has ", device.tiers.size(),
               " tiers (a device profile has one)");
      p = device.tiers[0];
      p.name = name;
    }
    if (t->contains("reference_ms") && !t->contains("speed")) p.speed = 0;  // from the reference
    if (!is_builtin(name) && !has_profile)
      for (const char* key : {"cores", "memory_gb", "speed"})
        EF_CHECK(t->contains(key) || (std::string(key) == "speed" && t->contains("reference_ms")),
                 at, ": '", key, "' is missing (only mobile, edge and cloud have defaults; a ",
                 "profile file from edgeforge calibrate gives them all)");
    // Bounds far beyond any machine, so that no value overflows what uses it.
    if (const toml::node* c = t->get("cores")) p.cores = numbers::integer(*c, "cores", 1, 65536, at);
    p.memory_gb = number(*t, "memory_gb", p.memory_gb, at, 0, 1e6, /*lo_open=*/true);
    p.speed = number(*t, "speed", p.speed, at, 0, 1e6);
    p.reference_ms = number(*t, "reference_ms", p.reference_ms, at, 0, 1e12);
    EF_CHECK(p.speed > 0 || (p.speed == 0 && p.reference_ms > 0), at, ": speed ", p.speed,
             " must be > 0");
    EF_CHECK(p.speed == 0 || p.speed >= 1e-6, at, ": speed ", p.speed, " must be >= 1e-06");
    if (t->contains("agent")) {
      p.agent = text(*t, "agent", at);
      const auto colon = p.agent.rfind(':');
      EF_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < p.agent.size(), at,
               ": agent '", p.agent, "' is not HOST:PORT");
    }
    if (t->contains("token_file")) p.token_file = path_beside(source, text(*t, "token_file", at));
    if (t->contains("tls_ca")) p.tls_ca = path_beside(source, text(*t, "tls_ca", at));
    for (const TierProfile& other : topo.tiers)
      EF_CHECK(other.name != name, at, " appears twice");
    topo.tiers.push_back(p);
  }
  const toml::array* links = doc["link"].as_array();
  const size_t needed = topo.tiers.size() - 1;
  topo.links.resize(needed);
  std::vector<bool> seen(needed, false);
  for (size_t i = 0; links != nullptr && i < links->size(); ++i) {
    const toml::table* t = (*links)[i].as_table();
    const std::string where = source + ": link " + std::to_string(i + 1);
    EF_CHECK(t != nullptr, where, " is not a table");
    known_keys(*t, {"from", "to", "bandwidth_mbps", "rtt_ms", "jitter_ms", "loss"}, where);
    Link l;
    l.from = text(*t, "from", where);
    l.to = text(*t, "to", where);
    const std::string at = source + ": link " + l.from + " -> " + l.to;
    size_t k = 0;
    while (k < topo.tiers.size() && topo.tiers[k].name != l.from) ++k;
    EF_CHECK(k < topo.tiers.size(), at, ": no tier '", l.from, "'");
    EF_CHECK(k + 1 < topo.tiers.size() && topo.tiers[k + 1].name == l.to, at,
             ": links join neighbouring tiers in the order requests travel (",
             k + 1 < topo.tiers.size() ? l.from + " -> " + topo.tiers[k + 1].name : l.from + " is the last tier",
             ")");
    EF_CHECK(!seen[k], at, " appears twice");
    l.bandwidth_mbps = number(*t, "bandwidth_mbps", 0.0, at, -1e7, 1e7);  // > 0 below
    l.rtt_ms = number(*t, "rtt_ms", 0.0, at, 0, 1e6);
    l.jitter_ms = number(*t, "jitter_ms", 0.0, at, 0, 1e6);
    l.loss = number(*t, "loss", 0.0, at, 0, 1);
    // A bandwidth of 1e-300 Mbit/s would make every transfer infinite: at least 1 kbit/s.
    EF_CHECK(l.bandwidth_mbps >= 1e-3, at, ": bandwidth_mbps ", l.bandwidth_mbps, " must be > 0 (at least 0.001)");
    EF_CHECK(l.loss < 1, at, ": loss ", l.loss, " must be in [0, 1)");
    topo.links[k] = l;
    seen[k] = true;
  }
  for (size_t k = 0; k < needed; ++k)
    EF_CHECK(seen[k], source, ": no link from '", topo.tiers[k].name, "' to '",
             topo.tiers[k + 1].name, "' (every neighbouring pair of tiers needs one)");
  return topo;
}

Topology load_topology(const std::string& path) {
  return parse_topology(numbers::read_settings_file(path, "topology"), path);
}

void check_fits(const TierProfile& tier, int64_t model_bytes, const std::string& model) {
  const double gb = static_cast<double>(model_bytes) / 1e9;
  EF_CHECK(gb <= tier.memory_gb, "model '", model, "' needs ", gb, " GB, more than tier '",
           tier.name, "' has (", tier.memory_gb, " GB)");
}

}  // namespace edgeforge
