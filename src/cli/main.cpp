// edgeforge: decide how to deploy a model across mobile, edge and cloud tiers.
#include <c10/util/Exception.h>

#include <cstdio>
#include <map>
#include <thread>

#include "commands.h"
#include "edgeforge/build_info.h"
#include "edgeforge/error.h"

namespace edgeforge::cli {
int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ProgressFn train_progress(ProgressLine& line) {
  return [&line](const TrainProgress& p) {
    char detail[128];
    std::snprintf(detail, sizeof detail, "epoch %d/%d  loss %.4f  %.0f samples/s", p.epoch,
                  p.epochs, p.loss, p.samples_per_s);
    line.update(p.step, p.steps, detail);
  };
}

}  // namespace edgeforge::cli

namespace {
// A one-line message: the first line of what went wrong.
std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}
}  // namespace

int main(int argc, char** argv) {
  using namespace edgeforge;
  CLI::App app{"edgeforge " + version() +
               ": train, transform, run and compare ML models for mobile, edge and cloud "
               "deployment.\nModels are ONNX files; see docs/ for the user guide."};
  app.set_version_flag("--version", version());
  app.require_subcommand(1);
  std::map<CLI::App*, cli::Action> actions;
  auto add = [&](cli::Action (*adder)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    cli::Action action = adder(app);
    actions[app.get_subcommands({}).at(before)] = std::move(action);
  };
  add(cli::add_train);
  add(cli::add_eval);
  add(cli::add_info);
  add(cli::add_zoo);
  add(cli::add_optimize);
  add(cli::add_partition);
  add(cli::add_tiers);
  add(cli::add_bench);
  add(cli::add_calibrate);
  add(cli::add_strategies);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, action] : actions)
      if (sub->parsed()) return action();
  } catch (const Error& e) {
    std::fprintf(stderr, "edgeforge: error: %s\n", first_line(e.what()).c_str());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "edgeforge: error: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgeforge: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 1;
}
