// Benchmark: what the validation pass every model goes through as it loads (validate_model,
// src/onnx/validate.cpp) costs against the whole load. For each model it times, side by side in
// alternating rounds, the whole load from the file's bytes (parse, structure checks, libonnx's
// checker and version converter, validation, simplification: graph_from_onnx_bytes) and the
// validation alone on the loaded graph, and prints both medians and their ratio.
//
//   build/validate_cost [--rounds N] [MODEL.onnx ...]
//
// Without models it takes the paper-scale preset's four teachers (Wide ResNet-101-2,
// ResNeXt-101 64x4d, BERT-base, RoBERTa-base), built into .cache/presets/ on first use.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/study.h"
#include "edgeforge/util.h"

using namespace edgeforge;
using namespace edgeforge::bench;

int main(int argc, char** argv) {
  try {
    int rounds = 5;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--rounds" && i + 1 < argc) {
        rounds = std::atoi(argv[++i]);
        EF_CHECK(rounds >= 1, "--rounds: '", argv[i], "' is not a whole number >= 1");
      } else if (a == "-h" || a == "--help") {
        std::printf("usage: validate_cost [--rounds N] [MODEL.onnx ...]\n");
        return 0;
      } else {
        files.push_back(a);
      }
    }
    if (files.empty())
      for (const StudyModel& m : preset_study("paper-scale").models) files.push_back(m.file);
    std::printf("validation against the whole load, %d rounds, alternating; %s, commit %s\n",
                rounds, cpu_model().c_str(), git_commit().c_str());
    std::printf("%-36s %8s %12s %14s %10s\n", "model", "nodes", "load ms", "validate ms",
                "share");
    for (const std::string& file : files) {
      const std::string bytes = read_file(file);
      Graph loaded = graph_from_onnx_bytes(bytes, file);
      const std::vector<Timing> t = time_side_by_side(
          {Contender{timed([&] { loaded = graph_from_onnx_bytes(bytes, file); })},
           Contender{timed([&] { validate_model(loaded, file); })}},
          Rounds{rounds, 1, 0, 1});
      const std::string name = file.substr(file.find_last_of('/') + 1);
      std::printf("%-36s %8zu %12.1f %14.2f %9.2f%%\n", name.c_str(),
                  loaded.nodes().size(), t[0].median(), t[1].median(),
                  100.0 * round_ratio(t[1], t[0]));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "validate_cost: error: %s\n", error_line(e).c_str());
    return 1;
  }
}
