// Benchmark: training the image zoo models with 4-D tensors in the standard NCHW layout against
// channels-last (NHWC, TrainRecipe::channels_last, the default); Google Benchmark, one training
// pass over the same slice per iteration, the cases' repetitions randomly interleaved in one
// run (3 by default), each case warmed by one untimed pass first. Prints the ratio
// channels_last / nchw per model (below 1 is faster); counters samples/s and final_loss. The
// layouts sum in different orders, so the two runs drift apart by float rounding step by step
// and their losses differ slightly after a pass (tests/train checks agreement within 1e-4
// after four steps).
//
//   build/train_memory_format [--samples 3840] [--threads 2]
//                             [Google Benchmark flags: --benchmark_repetitions=3 --json out.json ...]
// Cases: train/nchw/<model> and train/channels_last/<model>, batch 128.
#include <memory>
#include <set>
#include <string>

#include "bench_util.h"
#include "edgeforge/task.h"
#include "edgeforge/train.h"
#include "edgeforge/zoo.h"

using namespace edgeforge;

namespace {

int64_t samples = 3840;
int threads = 2;
std::unique_ptr<TaskData> data;

// One pass over the slice: a fresh copy of the same initial weights.
TrainReport pass(const std::string& model, bool channels_last) {
  TrainRecipe r = default_recipe(model);
  r.epochs = 1;
  r.threads = threads;
  r.channels_last = channels_last;
  Graph g = build_zoo_model(model);
  return train_graph(g, *data, r);
}

void register_cases() {
  TaskDataOptions data_opts;
  data_opts.limit = samples;
  data = std::make_unique<TaskData>(load_task_data(kDatasetFashionMnist, "train", data_opts));
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("samples", std::to_string(samples));
  benchmark::AddCustomContext("batch", "128");
  for (const ZooModelSpec& spec : zoo_models()) {
    if (spec.modality != "image") continue;
    for (const bool channels_last : {false, true}) {
      const std::string name =
          std::string(channels_last ? "train/channels_last/" : "train/nchw/") + spec.name;
      benchmark::RegisterBenchmark(name.c_str(), [model = spec.name, channels_last](benchmark::State& state) {
        static std::set<std::pair<std::string, bool>> warmed;
        if (warmed.insert({model, channels_last}).second) pass(model, channels_last);
        TrainReport result;
        for (auto _ : state) result = pass(model, channels_last);
        bench::training_counters(state, result.samples_seen, result.final_loss);
      })->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Suite suite;
  suite.name = "train_memory_format";
  suite.usage = "train_memory_format options: [--samples N] [--threads N]";
  suite.parse_options = [](const std::vector<std::string>& args) {
    return bench::each_option(args, [](const std::string& name, const std::string& value) {
      if (name == "--samples") samples = std::stoll(value);
      else if (name == "--threads") threads = std::stoi(value);
      else return false;
      return true;
    });
  };
  suite.default_flags = {"--benchmark_repetitions=3"};
  suite.comparisons = {{"channels_last", "nchw"}};
  suite.setup = register_cases;
  return bench::run_benchmarks(argc, argv, suite);
}
