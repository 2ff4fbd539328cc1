// The subcommands of the edgeforge program, one file each; main.cpp wires them into CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "edgeforge/train.h"
#include "edgeforge/util.h"

namespace edgeforge::cli {

// Each adds its subcommand to `app` and returns the action to run when it is chosen.
using Action = std::function<int()>;
Action add_train(CLI::App& app);
Action add_eval(CLI::App& app);
Action add_info(CLI::App& app);
Action add_zoo(CLI::App& app);

// Default thread count for a command: the machine's cores.
int default_threads();

// Reports training progress (epoch, loss, samples/s) on `line`.
ProgressFn train_progress(ProgressLine& line);

}  // namespace edgeforge::cli
