// edgeforge: decide how to deploy a model across mobile, edge and cloud tiers.
#include <c10/util/Exception.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <thread>

#include "commands.h"
#include "edgeforge/build_info.h"
#include "edgeforge/dataset.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/util.h"
#include "../common/numbers.h"

namespace edgeforge::cli {
int default_threads() { return host_cores(); }

CLI::Option* add_data_option(CLI::App* cmd, std::string& data) {
  return cmd->add_option(
      "--data", data,
      "data set: fashion-mnist, spam, imagefolder:DIR, jsonl:FILE, csv:FILE, npy:DIR, npz:FILE\n"
      "or a data spec .toml (default: the one the model carries; `edgeforge data --help`)");
}

Graph load_model(const std::string& path, const std::string& data) {
  Graph g = load_onnx(path);
  if (!data.empty()) attach_data_spec(g, parse_data_spec(data), path);
  return g;
}

std::string human_bytes(int64_t b) {
  char buf[32];
  if (b >= 1000000) std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(b) / 1e6);
  else if (b >= 1000) std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(b) / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  return buf;
}

std::vector<double> parse_positive_list(const std::string& list, const std::string& flag) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, comma - start);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EF_CHECK(!item.empty() && used == item.size(), flag, ": '", item, "' is not a number");
    EF_CHECK(v > 0 && std::isfinite(v), flag, ": ", v, " must be > 0");
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

ProgressFn train_progress(ProgressLine& line) {
  return [&line](const TrainProgress& p) {
    char detail[128];
    // Real-size models train at a few samples a second: keep a significant digit.
    std::snprintf(detail, sizeof detail, "epoch %d/%d  loss %.4f  %.*f samples/s", p.epoch,
                  p.epochs, p.loss, p.samples_per_s < 10 ? 2 : 0, p.samples_per_s);
    line.update(p.step, p.steps, detail);
  };
}

}  // namespace edgeforge::cli

namespace {
// Every numeric flag's text is read by the same checked parsers as the settings files
// (src/common/numbers.h) before CLI11 converts it: CLI11 2.1 takes "9223372036854775808" as
// INT64_MAX, "010" as 8 and "nan" as a number, so `--inputs 9223372036854775808` passed its
// range check. The options' own ranges (CLI::Range) still apply after.
void strict_numbers(CLI::App& app) {
  // Run first (transform), and give CLI11 the number's plain decimal form: "010" is ten.
  auto whole = [](bool is_unsigned) {
    return CLI::Validator(
        [is_unsigned](std::string& text) -> std::string {
          const std::optional<int64_t> v = edgeforge::numbers::parse_integer(text);
          if (!v) return "'" + text + "' is not a whole number (decimal digits, within 64 bits)";
          if (is_unsigned && *v < 0) return "'" + text + "' is negative";
          text = std::to_string(*v);
          return "";
        },
        "", "whole number");
  };
  const CLI::Validator integer = whole(false), natural = whole(true);
  const CLI::Validator real(
      [](std::string& text) -> std::string {
        return edgeforge::numbers::parse_real(text) ? "" : "'" + text + "' is not a finite number";
      },
      "", "finite number");
  for (CLI::App* sub : app.get_subcommands({})) {
    for (CLI::Option* o : sub->get_options()) {
      if (o->get_expected_min() == 0) continue;  // a flag
      const std::string type = o->get_type_name();
      if (type.rfind("INT", 0) == 0) o->transform(integer);
      else if (type.rfind("UINT", 0) == 0) o->transform(natural);
      else if (type.rfind("FLOAT", 0) == 0) o->transform(real);
    }
    strict_numbers(*sub);
  }
}
}  // namespace

int main(int argc, char** argv) {
  using namespace edgeforge;
  // A job of a study (or of the zoo) dies with the process that started it, so a killed study
  // leaves no orphan writing into its folder.
  if (const char* parent = std::getenv("EDGEFORGE_PARENT_PID"); parent != nullptr) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (std::to_string(getppid()) != parent) return 1;  // the parent died before prctl
  }
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
  add(cli::add_study);
  add(cli::add_recommend);
  add(cli::add_report);
  add(cli::add_strategies);
  add(cli::add_agent);
  add(cli::add_data);
  strict_numbers(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, action] : actions)
      if (sub->parsed()) return action();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgeforge: error: %s\n", error_line(e).c_str());
    return 1;
  }
  return 1;
}
