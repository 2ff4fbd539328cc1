// Study configuration: the built-in studies and study files (edgeforge/study.h).
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "edgeforge/dataset.h"
#include "edgeforge/tier_modes.h"
#include "edgeforge/error.h"
#include "../common/numbers.h"
#include "edgeforge/util.h"
#include "edgeforge/strategy.h"
#include "edgeforge/study.h"
#include "edgeforge/zoo.h"

namespace edgeforge {

std::vector<std::string> StudyConfig::all_strategies() const {
  std::vector<std::string> all = strategies;
  all.insert(all.end(), extras.begin(), extras.end());
  return all;
}

StudyConfig default_study(bool quick) {
  StudyConfig c;
  c.quick = quick;
  c.topology = default_topology();
  if (!quick) {
    c.name = "default";
    for (const char* m : {"resnet", "resnext", "bert", "roberta"})
      c.models.push_back({m, "", std::nullopt, ""});
    c.strategies = {"identity", "sptq", "qat", "prune", "distill", "distill+sptq", "partition",
                    "sptq+partition"};
    c.extras = {"dynamic", "prune-structured", "auto-partition"};
    // One epoch of fine-tuning instead of the strategy's two keeps the default study within
    // 30 minutes on 2 cores from nothing; on the zoo it cost 0.3-0.4 points (docs/study.md).
    c.options["prune-structured"] = {"epochs=1"};
    return c;
  }
  c.name = "quick";
  for (const char* m : {"resnet", "bert"}) c.models.push_back({m, "", std::nullopt, ""});
  c.strategies = {"identity", "sptq", "prune", "partition", "sptq+partition"};
  c.extras = {"auto-partition"};
  c.inputs = 20;
  c.runs = 3;
  c.accuracy_limit = 2000;
  c.train_limit = 2000;
  c.sweep_mbps = {1, 10, 200};
  return c;
}

namespace {

std::string at_line(const std::string& source, const toml::node& n) {
  return source + ":" + std::to_string(n.source().begin.line);
}

// Checks a strategy name: a pipeline ("identity" included) or a placement of one.
void check_strategy(const std::string& s, const std::string& where) {
  try {
    parse_study_strategy(s);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

std::vector<std::string> strings(const toml::node& n, const std::string& key, const std::string& where) {
  const toml::array* a = n.as_array();
  EF_CHECK(a != nullptr, where, ": '", key, "' must be a list of strings");
  std::vector<std::string> out;
  for (const toml::node& item : *a) {
    auto v = item.value<std::string>();
    EF_CHECK(v.has_value(), where, ": '", key, "' must be a list of strings");
    out.push_back(*v);
  }
  return out;
}

double number(const toml::node& n, const std::string& key, const std::string& where) {
  auto v = n.value<double>();
  EF_CHECK(v.has_value() && std::isfinite(*v), where, ": '", key, "' must be a number");
  return *v;
}

// A whole-number setting in [lo, hi], checked before any conversion (toml_numbers.h).
int64_t whole(const toml::node& n, const std::string& key, int64_t lo, int64_t hi, const std::string& where) {
  return numbers::integer(n, key, lo, hi, where);
}


}  // namespace

StudyConfig parse_study(const std::string& toml_text, const std::string& source) {
  const toml::table doc = numbers::parse_toml(toml_text, source);
  const bool quick = doc["quick"].value_or(false);
  StudyConfig c = default_study(quick);
  c.source = source;
  c.name = source;
  const auto slash = c.name.rfind('/');
  if (slash != std::string::npos) c.name = c.name.substr(slash + 1);
  if (c.name.size() > 5 && c.name.substr(c.name.size() - 5) == ".toml") c.name.resize(c.name.size() - 5);
  // A file that names models (a list or [[model]] tables) replaces the default ones.
  if (doc.contains("models") || doc.contains("model")) c.models.clear();
  std::set<std::string> file_options;  // strategies the file gives [options] for
  for (const auto& [k, node] : doc) {
    const std::string key(k.str());
    const std::string where = at_line(source, node);
    if (key == "name") {
      auto v = node.value<std::string>();
      EF_CHECK(v && !v->empty(), where, ": 'name' must be a non-empty string");
      c.name = *v;
    } else if (key == "quick") {
      EF_CHECK(node.is_boolean(), where, ": 'quick' must be true or false");
    } else if (key == "models") {
      for (const std::string& m : strings(node, key, where)) {
        try {
          zoo_model(m);
        } catch (const Error& e) {
          throw Error(where + ": models: " + e.what() + " (a file is a [[model]] table)");
        }
        c.models.push_back({m, "", std::nullopt, ""});
      }
    } else if (key == "model") {
      const toml::array* a = node.as_array();
      EF_CHECK(a != nullptr, where, ": [[model]] entries are tables with name and file");
      for (const toml::node& entry : *a) {
        const toml::table* t = entry.as_table();
        const std::string w = at_line(source, entry);
        EF_CHECK(t != nullptr, w, ": a [[model]] is a table with name and file");
        StudyModel m;
        for (const auto& [mk, mv] : *t) {
          const std::string f(mk.str());
          EF_CHECK(f == "name" || f == "file" || f == "data", at_line(source, mv), ": unknown key '",
                   f, "' in [[model]] (known: name, file, data; study-wide keys such as '", f,
                   "' go above the first [[model]])");
        }
        m.name = (*t)["name"].value_or(std::string());
        m.file = path_beside(source, (*t)["file"].value_or(std::string()));
        EF_CHECK(!m.name.empty() && !(*t)["file"].value_or(std::string()).empty(), w,
                 ": a [[model]] needs name and file");
        EF_CHECK(std::ifstream(m.file).good(), w, ": model file ", m.file, " not found or not readable");
        if (const toml::node* d = t->get("data")) {
          const std::string dw = at_line(source, *d);
          if (auto arg = d->value<std::string>()) {
            // A --data argument; a path in it is relative to the study file.
            std::string a = *arg;
            const auto colon = a.find(':');
            if (colon != std::string::npos && a.find('/') > colon && a[colon + 1] != '/')
              a = a.substr(0, colon + 1) + path_beside(source, a.substr(colon + 1));
            else if (a.size() > 5 && a.compare(a.size() - 5, 5, ".toml") == 0)
              a = path_beside(source, a);
            try {
              m.data = parse_data_spec(a);
            } catch (const Error& e) {
              throw Error(dw + ": data: " + e.what());
            }
          } else if (const toml::table* dt = d->as_table()) {
            std::ostringstream text;
            text << *dt;
            const auto slash = source.rfind('/');
            m.data = data_spec_from_toml_text(text.str(), dw + " [model.data]",
                                              slash == std::string::npos ? "." : source.substr(0, slash));
          } else {
            throw Error(dw + ": data is a --data argument (\"imagefolder:DIR\") or a [model.data] table");
          }
        }
        c.models.push_back(m);
      }
    } else if (key == "strategies" || key == "extras") {
      std::vector<std::string> list = strings(node, key, where);
      for (const std::string& s : list) check_strategy(s, where);
      (key == "strategies" ? c.strategies : c.extras) = list;
    } else if (key == "deployments") {
      c.deployments = strings(node, key, where);
    } else if (key == "topology") {
      auto v = node.value<std::string>();
      EF_CHECK(v.has_value(), where, ": 'topology' must be a file name");
      c.topology_file = path_beside(source, *v);
      c.topology = load_topology(c.topology_file);
    } else if (key == "inputs") {
      c.inputs = whole(node, key, 1, 1000000, where);
    } else if (key == "runs") {
      c.runs = static_cast<int>(whole(node, key, 2, 100000, where));
    } else if (key == "accuracy_limit") {
      c.accuracy_limit = whole(node, key, 0, INT32_MAX, where);
    } else if (key == "train_limit") {
      c.train_limit = whole(node, key, 0, INT32_MAX, where);
    } else if (key == "seed") {
      c.seed = static_cast<uint64_t>(whole(node, key, 0, INT64_MAX, where));
    } else if (key == "jobs") {
      c.jobs = static_cast<int>(whole(node, key, 0, 1024, where));
    } else if (key == "min_effect_pct") {
      c.min_effect_pct = number(node, key, where);
      EF_CHECK(c.min_effect_pct >= 0 && c.min_effect_pct <= 1000, where, ": 'min_effect_pct' ",
               c.min_effect_pct, " must be in 0..1000");
    } else if (key == "max_accuracy_drop_pt") {
      c.max_accuracy_drop_pt = number(node, key, where);
      EF_CHECK(c.max_accuracy_drop_pt >= 0 && c.max_accuracy_drop_pt <= 100, where,
               ": 'max_accuracy_drop_pt' ", c.max_accuracy_drop_pt, " must be in 0..100");
    } else if (key == "max_latency_ms") {
      c.max_latency_ms = number(node, key, where);
      EF_CHECK(c.max_latency_ms >= 0 && c.max_latency_ms <= 1e9, where, ": 'max_latency_ms' ",
               c.max_latency_ms, " must be in 0..1e9 (0: no latency budget)");
    } else if (key == "sweep_mbps") {
      const toml::array* a = node.as_array();
      EF_CHECK(a != nullptr, where, ": 'sweep_mbps' must be a list of numbers");
      c.sweep_mbps.clear();
      for (const toml::node& item : *a) {
        c.sweep_mbps.push_back(numbers::real(item, key, 0, 1e6, where, /*lo_open=*/true));
      }
    } else if (key == "mode") {
      auto v = node.value<std::string>();
      const std::vector<std::string> modes = tier_mode_names();
      std::string valid;
      for (const std::string& m : modes) valid += (valid.empty() ? "\"" : ", \"") + m + "\"";
      EF_CHECK(v && std::find(modes.begin(), modes.end(), *v) != modes.end(), where, ": 'mode' must be one of ",
               valid);
      c.mode = *v;
    } else if (key == "options") {
      const toml::table* t = node.as_table();
      EF_CHECK(t != nullptr, where, ": [options] is a table of strategy = [\"NAME=VALUE\", ...]");
      for (const auto& [sk, sv] : *t) {
        const std::string s(sk.str());
        check_strategy(s, at_line(source, sv));
        c.options[s] = strings(sv, "options." + s, at_line(source, sv));  // replaces a default
        file_options.insert(s);
      }
    } else {
      throw Error(detail::concat(where, ": unknown key '", key,
                                 "' (known: name, quick, models, model, strategies, extras, "
                                 "deployments, topology, inputs, runs, accuracy_limit, "
                                 "train_limit, sweep_mbps, seed, jobs, mode, options, "
                                 "min_effect_pct, max_accuracy_drop_pt, max_latency_ms)"));
    }
  }
  // A strategy a file lists is not run again as an extra (the default extras include dynamic).
  for (const std::string& s : c.strategies)
    c.extras.erase(std::remove(c.extras.begin(), c.extras.end(), s), c.extras.end());
  {
    // A study's cells are keyed by model name: two models of one name would share them.
    std::set<std::string> seen;
    for (const StudyModel& m : c.models)
      EF_CHECK(seen.insert(m.name).second, source, ": model '", m.name,
               "' is named twice (in 'models' or a [[model]] name); give each model its own name");
  }
  {
    std::set<std::string> seen;
    for (const std::string& s : c.all_strategies())
      EF_CHECK(seen.insert(s).second, source, ": strategy '", s, "' is listed twice");
  }
  // Deployments name the topology's tiers (checked after the topology is known).
  for (const std::string& d : c.deployments) {
    const auto dash = d.find('-');
    for (const std::string& tier : {d.substr(0, dash), dash == std::string::npos ? "" : d.substr(dash + 1)}) {
      if (tier.empty() && dash == std::string::npos) continue;
      bool found = false;
      for (const TierProfile& t : c.topology.tiers) found = found || t.name == tier;
      const toml::node* n = doc.get("deployments");
      EF_CHECK(found, at_line(source, n != nullptr ? *n : static_cast<const toml::node&>(doc)),
               ": deployments: '", d, "' names no tier of topology '", c.topology.name, "'");
    }
  }
  EF_CHECK(!c.models.empty(), source, ": no models");
  EF_CHECK(!c.all_strategies().empty(), source, ": no strategies");
  EF_CHECK(!c.deployments.empty(), source, ": no deployments");
  const std::vector<std::string> run = c.all_strategies();
  for (auto it = c.options.begin(); it != c.options.end();) {
    const bool used = std::find(run.begin(), run.end(), it->first) != run.end();
    EF_CHECK(used || !file_options.count(it->first), source, ": [options] names strategy '",
             it->first, "', which the study does not run");
    it = used ? std::next(it) : c.options.erase(it);  // a default for a strategy not run
  }
  return c;
}

StudyConfig load_study(const std::string& path) {
  // An empty file or a directory is not the default study: the default is edgeforge study
  // without a file.
  return parse_study(numbers::read_settings_file(path, "study"), path);
}

}  // namespace edgeforge
