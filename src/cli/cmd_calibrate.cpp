// edgeforge calibrate: measure the machine it runs on and write its tier profile, so a user
// makes the profile of a real device (a phone-class board, an edge box) by running it there.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <thread>

#include "commands.h"
#include "edgeforge/build_info.h"
#include "edgeforge/deploy.h"
#include "edgeforge/error.h"
#include "edgeforge/util.h"

namespace edgeforge::cli {

Action add_calibrate(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Measure this machine and write its tier profile (TOML): its cores, its memory, and the\n"
      "median time of edgeforge's reference workload (the untrained zoo teachers resnet and\n"
      "bert, batch 1, one thread). A topology uses it with `profile = \"FILE\"` in a [[tier]];\n"
      "the tier's speed is then this host's reference time over the device's, measured when\n"
      "the topology is used. Run it on the device whose profile you want.");
  struct Args {
    std::string out, name;
    int reps = 40;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--out", args->out, "profile .toml to write")->required();
  cmd->add_option("--name", args->name, "tier name in the profile (default: this host's name)");
  cmd->add_option("--reps", args->reps, "rounds of the reference workload")
      ->check(CLI::Range(5, 100000))
      ->capture_default_str();
  return [args]() {
    std::string name = args->name;
    if (name.empty()) {
      char host[256] = {0};
      name = gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "device";
    }
    for (char c : name)
      EF_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.',
               "--name '", name, "': use letters, digits, '_' and '.' (a '-' would read as a split)");
    const int cores = default_threads();
    const std::optional<int64_t> memory = host_memory_bytes();
    EF_CHECK(memory.has_value(), "calibrate: cannot read this machine's memory size");
    const double memory_gb = static_cast<double>(*memory) / 1e9;
    std::fprintf(stderr, "calibrate: timing the reference workload (%d rounds)...\n", args->reps);
    const double ms = reference_workload_ms(args->reps);
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    char body[1024];
    std::snprintf(body, sizeof body,
                  "# Tier profile measured by edgeforge calibrate %s (%s) on %s, %s.\n"
                  "# Use it in a topology: [[tier]] name = \"...\" profile = \"this file\".\n"
                  "[[tier]]\n"
                  "name = \"%s\"\n"
                  "cores = %d\n"
                  "memory_gb = %.1f\n"
                  "reference_ms = %.4f  # %s: median of %d rounds, one thread\n",
                  version().c_str(), git_commit().c_str(), cpu_model().c_str(), date,
                  name.c_str(), cores, memory_gb, ms, kReferenceWorkload, args->reps);
    write_file_atomic(args->out, body);
    std::printf("wrote %s: %s, %d cores, %.1f GB, reference workload %.3f ms\n", args->out.c_str(),
                name.c_str(), cores, memory_gb, ms);
    return 0;
  };
}

}  // namespace edgeforge::cli
