// edgeforge partition: cut a model into two standalone ONNX files at a named value, or list
// where it can be cut and what would cross (edgeforge/partition.h).
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/deploy.h"
#include "edgeforge/partition.h"
#include "edgeforge/task.h"
#include "edgeforge/tiers.h"

namespace edgeforge::cli {

namespace {

nlohmann::json crossing_json(const CutPoint& c) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const CrossingTensor& t : c.crossing)
    tensors.push_back({{"name", t.name},
                       {"dtype", std::string(c10::toString(t.dtype))},
                       {"shape", t.shape},
                       {"bytes", t.bytes},
                       {"from", t.model_input ? "model input" : "part1"}});
  return tensors;
}


// --at auto: profiles the model, ranks every placement on the topology (at each bandwidth of
// --bandwidth-mbps), prints the best ones and why. Returns the cut of the best split to write,
// or nothing when a list of bandwidths asked only for the choices.
template <class Args>
std::optional<std::string> choose_auto(const Args& args, const Graph& graph, nlohmann::json* out) {
  FILE* to = args.json ? stderr : stdout;  // --json keeps stdout for the manifest
  Topology topo = args.topology.empty() ? default_topology() : load_topology(args.topology);
  EF_CHECK(topo.tiers.size() >= 2, "partition --at auto: topology '", topo.name,
           "' has one tier, so there is nothing to split across");
  size_t link = topo.links.size() - 1;
  if (!args.link.empty()) {
    bool found = false;
    for (size_t i = 0; i < topo.links.size(); ++i)
      if (topo.links[i].from + "-" + topo.links[i].to == args.link) link = i, found = true;
    EF_CHECK(found, "--link '", args.link, "': no such link in topology '", topo.name,
             "' (links are FROM-TO, e.g. edge-cloud)");
  }
  const std::vector<double> bandwidths =
      args.bandwidths.empty() ? std::vector<double>{topo.links[link].bandwidth_mbps}
                              : parse_positive_list(args.bandwidths, "--bandwidth-mbps");
  PayloadOptions po;
  po.inputs = 1;
  std::fprintf(stderr, "partition: profiling %s on this host for --at auto...\n", graph.name().c_str());
  PlacementInputs in = measure_placement_inputs(graph, topo, make_payloads(graph, po).at(0));
  const std::string link_name = topo.links[link].from + "-" + topo.links[link].to;
  std::string best_split;
  for (double bw : bandwidths) {
    in.topology.links[link].bandwidth_mbps = bw;
    const std::vector<PlacementEstimate> ranked = rank_placements(in);
    std::fprintf(to, "auto, link %s at %g Mbit/s (estimates, simulated; ms):\n", link_name.c_str(), bw);
    std::fprintf(to, "  %-14s %-40s %10s %9s %10s %9s %9s %9s\n", "placement", "cut after", "crossing",
                "total", "preprocess", "compute1", "compute2", "transfer");
    std::set<std::string> shown_pairs;
    int shown = 0;
    nlohmann::json choices = nlohmann::json::array();
    for (const PlacementEstimate& e : ranked) {
      // The five best, then the best of each placement not yet shown.
      const bool new_pair = shown_pairs.insert(e.placement.label()).second;
      if (shown >= 5 && !new_pair) continue;
      ++shown;
      std::fprintf(to, "  %-14s %-40s %10s %9.2f %10.2f %9.2f %9.2f %9.2f\n", e.placement.label().c_str(),
                  e.placement.split() ? e.placement.cut.c_str() : "(whole model)",
                  e.placement.split() ? human_bytes(e.crossing_bytes).c_str() : "-", e.total_ms,
                  e.preprocess_ms, e.compute_first_ms, e.compute_second_ms, e.transfer_ms);
      choices.push_back({{"deploy", e.placement.label()}, {"cut", e.placement.cut},
                         {"crossing_bytes", e.crossing_bytes}, {"estimate_ms", e.total_ms}});
    }
    std::fprintf(to, "  why: %s\n", explain_choice(ranked).c_str());
    for (const PlacementEstimate& e : ranked)
      if (e.placement.split()) {
        if (best_split.empty()) best_split = e.placement.cut;
        if (!ranked.front().placement.split())
          std::fprintf(to, "  the whole model on %s beats every split; the best split is %s after %s\n",
                      ranked.front().placement.first.c_str(), e.placement.label().c_str(),
                      e.placement.cut.c_str());
        break;
      }
    (*out)["choices"].push_back({{"link", link_name}, {"bandwidth_mbps", bw},
                                 {"best", choices.at(0)}, {"ranked", choices},
                                 {"why", explain_choice(ranked)}});
  }
  if (bandwidths.size() > 1) return std::nullopt;
  EF_CHECK(!best_split.empty(), "partition --at auto: model '", graph.name(), "' has no valid cut");
  return best_split;
}

}  // namespace

Action add_partition(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "partition",
      "Cut a model in two standalone ONNX files: part1.onnx (every node up to the value named\n"
      "by --at) and part2.onnx (the rest), with manifest.json listing the tensors that cross\n"
      "(and the model inputs part 2 reads). --list shows every valid cut point with the bytes\n"
      "that would cross for one sample. The study's cut points: stage3.out (image models,\n"
      "after the third stage) and embeddings.out (text models); in a quantized model, their\n"
      "QuantizeLinear outputs, so the tensor crosses as uint8. --at auto profiles the model\n"
      "on this host and chooses the placement and cut with the lowest estimated end-to-end\n"
      "latency on the topology (simulated), prints why, and writes the best split.");
  struct Args {
    std::string model, data, at, out_dir, topology, link, bandwidths;
    bool list = false, json = false;
    int64_t seq_len = 128;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "model .onnx file")->required();
  add_data_option(cmd, args->data)->description(
      "with --at auto: the data set whose first test sample is profiled (default: the one the\n"
      "model carries): fashion-mnist, spam, imagefolder:DIR, jsonl:FILE, csv:FILE, npy:DIR,\n"
      "npz:FILE or a data spec .toml");
  auto* at = cmd->add_option("--at", args->at,
                             "value to cut after (a name from --list), study, or auto");
  cmd->add_option("--topology", args->topology, "with --at auto: topology .toml (default: the built-in)");
  cmd->add_option("--bandwidth-mbps", args->bandwidths,
                  "with --at auto: set --link's bandwidth; a list (1,10,200) prints the choice at\n"
                  "each and writes nothing");
  cmd->add_option("--link", args->link,
                  "the link --bandwidth-mbps sets, FROM-TO (default: the topology's last)");
  auto* list = cmd->add_flag("--list", args->list, "list the valid cut points and what crosses each");
  cmd->add_option("--out-dir", args->out_dir, "folder for part1.onnx, part2.onnx, manifest.json");
  cmd->add_option("--seq-len", args->seq_len, "sequence length for the crossing bytes of text models")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print as JSON on stdout");
  at->excludes(list);
  return [args]() {
    const Graph graph = load_model(args->model, args->data);
    if (args->list) {
      const std::vector<CutPoint> cuts = list_cut_points(graph, args->seq_len);
      std::string study_why;
      const std::string study = study_cut_point(graph, args->seq_len, &study_why);
      if (args->json) {
        nlohmann::json j = nlohmann::json::array();
        for (const CutPoint& c : cuts)
          j.push_back({{"value", c.value}, {"position", c.position}, {"bytes", c.bytes},
                       {"study", c.value == study}, {"crossing", crossing_json(c)}});
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
      }
      std::printf("%-44s %12s  %s\n", "cut after", "crossing", "tensors");
      for (const CutPoint& c : cuts) {
        std::string names;
        for (const CrossingTensor& t : c.crossing)
          names += (names.empty() ? "" : ", ") + t.name + (t.model_input ? " (input)" : "");
        std::printf("%-44s %12s  %s%s\n", c.value.c_str(), human_bytes(c.bytes).c_str(),
                    names.c_str(), c.value == study ? "   <- --at study" : "");
      }
      std::printf("--at study: %s%s%s\n", study.empty() ? "none: " : study.c_str(),
                  study.empty() ? "" : ", ", study_why.c_str());
      return 0;
    }
    EF_CHECK(!args->at.empty(), "partition: give --at VALUE (or --list to see the cut points)");
    EF_CHECK(args->at == "auto" || (args->topology.empty() && args->bandwidths.empty()),
             "partition: --topology and --bandwidth-mbps go with --at auto");
    std::string value = args->at;
    nlohmann::json auto_json;
    if (value == "auto") {
      std::optional<std::string> chosen = choose_auto(*args, graph, &auto_json);
      if (!chosen) return 0;  // a what-if table over bandwidths
      value = *chosen;
    }
    EF_CHECK(!args->out_dir.empty(), "partition: give --out-dir for part1.onnx and part2.onnx");
    if (value == "study") {
      std::string why;
      value = study_cut_point(graph, args->seq_len, &why);
      EF_CHECK(!value.empty(), "partition: model '", graph.name(), "' has no study cut point: ", why,
               "; name a value (--list shows them)");
      std::fprintf(stderr, "--at study: %s, %s\n", value.c_str(), why.c_str());
    }
    const Partition p = partition_graph(graph, value, args->seq_len);
    std::filesystem::create_directories(args->out_dir);
    const std::string part1 = args->out_dir + "/part1.onnx", part2 = args->out_dir + "/part2.onnx";
    save_onnx(p.part1, part1);
    save_onnx(p.part2, part2);
    nlohmann::json manifest = {{"model", args->model},
                               {"cut", value},
                               {"part1", "part1.onnx"},
                               {"part2", "part2.onnx"},
                               {"seq_len", args->seq_len},
                               {"bytes", p.cut.bytes},
                               {"crossing", crossing_json(p.cut)}};
    if (!auto_json.is_null()) manifest["auto"] = auto_json;
    const std::string manifest_path = args->out_dir + "/manifest.json";
    std::ofstream(manifest_path) << manifest.dump(2) << "\n";
    if (args->json) {
      std::printf("%s\n", manifest.dump(2).c_str());
    } else {
      std::printf("cut after %s: %s crosses for one sample (%zu tensors)\n", value.c_str(),
                  human_bytes(p.cut.bytes).c_str(), p.cut.crossing.size());
      std::printf("wrote %s (%zu nodes), %s (%zu nodes), %s\n", part1.c_str(),
                  p.part1.nodes().size(), part2.c_str(), p.part2.nodes().size(),
                  manifest_path.c_str());
    }
    return 0;
  };
}

}  // namespace edgeforge::cli
