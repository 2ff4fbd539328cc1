// edgeforge partition: cut a model into two standalone ONNX files at a named value, or list
// where it can be cut and what would cross (edgeforge/partition.h).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/partition.h"

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

std::string human_bytes(int64_t b) {
  char buf[32];
  if (b >= 1000000) std::snprintf(buf, sizeof buf, "%.2f MB", b / 1e6);
  else if (b >= 1000) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  return buf;
}

}  // namespace

Action add_partition(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "partition",
      "Cut a model in two standalone ONNX files: part1.onnx (every node up to the value named\n"
      "by --at) and part2.onnx (the rest), with manifest.json listing the tensors that cross\n"
      "(and the model inputs part 2 reads). --list shows every valid cut point with the bytes\n"
      "that would cross for one sample. The study's cut points: stage3.out (image models,\n"
      "after the third stage) and embeddings.out (text models).");
  struct Args {
    std::string model, at, out_dir;
    bool list = false, json = false;
    int64_t seq_len = 128;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "model .onnx file")->required();
  auto* at = cmd->add_option("--at", args->at, "value to cut after (a name from --list, or 'study')");
  auto* list = cmd->add_flag("--list", args->list, "list the valid cut points and what crosses each");
  cmd->add_option("--out-dir", args->out_dir, "folder for part1.onnx, part2.onnx, manifest.json");
  cmd->add_option("--seq-len", args->seq_len, "sequence length for the crossing bytes of text models")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print as JSON on stdout");
  at->excludes(list);
  return [args]() {
    const Graph graph = load_onnx(args->model);
    if (args->list) {
      const std::vector<CutPoint> cuts = list_cut_points(graph, args->seq_len);
      const std::string study = study_cut_point(graph);
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
                    names.c_str(), c.value == study ? "   <- the study's cut" : "");
      }
      return 0;
    }
    EF_CHECK(!args->at.empty(), "partition: give --at VALUE (or --list to see the cut points)");
    EF_CHECK(!args->out_dir.empty(), "partition: give --out-dir for part1.onnx and part2.onnx");
    std::string value = args->at;
    if (value == "study") {
      value = study_cut_point(graph);
      EF_CHECK(!value.empty(), "partition: model '", graph.name(),
               "' has no study cut point (stage3.out or embeddings.out); name a value");
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
