// The subcommands of the edgeforge program, one file each; main.cpp wires them into CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgeforge/dataset.h"
#include "edgeforge/graph.h"
#include "edgeforge/train.h"
#include "edgeforge/util.h"

namespace edgeforge::cli {

// Each adds its subcommand to `app` and returns the action to run when it is chosen.
using Action = std::function<int()>;
Action add_train(CLI::App& app);
Action add_eval(CLI::App& app);
Action add_info(CLI::App& app);
Action add_zoo(CLI::App& app);
Action add_optimize(CLI::App& app);
Action add_strategies(CLI::App& app);
Action add_partition(CLI::App& app);
Action add_tiers(CLI::App& app);
Action add_bench(CLI::App& app);
Action add_calibrate(CLI::App& app);
Action add_study(CLI::App& app);
Action add_recommend(CLI::App& app);
Action add_report(CLI::App& app);
Action add_agent(CLI::App& app);
Action add_data(CLI::App& app);

// Adds --data to a subcommand: the data set to read the model with, in place of the one it
// carries (a built-in name, a shorthand or a data spec .toml).
CLI::Option* add_data_option(CLI::App* cmd, std::string& data);
// Loads a model; with `data` given, binds that data set to it (attach_data_spec).
Graph load_model(const std::string& path, const std::string& data);

// What `edgeforge data --json` prints of a data set bound to a model: name, kind, modality,
// metric, classes, samples per split (null for a split the spec does not give), the first
// sample's input shapes and label, the kind's details and the stored spec (without an embedded
// tokenizer). Reads one sample, so a file that does not decode or fit the model is an Error.
nlohmann::json data_summary(const Dataset& data);

// Default thread count for a command: the machine's cores.
int default_threads();

// "512 B", "4.1 kB", "1.25 MB": a byte count for people.
std::string human_bytes(int64_t bytes);
// "1,10,200" -> {1, 10, 200}; an Error naming `flag` for an item that is not a number > 0.
std::vector<double> parse_positive_list(const std::string& list, const std::string& flag);

// Reports training progress (epoch, loss, samples/s) on `line`.
ProgressFn train_progress(ProgressLine& line);

// An evaluation as `edgeforge eval --json` prints it (without the model and threads):
// dataset, split, samples, accuracy, seconds, and f1, precision, recall for text.
nlohmann::json eval_json(const EvalResult& result);
// One line for progress logs: "top-1 0.9128 on 10000 test samples" or "spam F1 ...".
std::string eval_summary(const nlohmann::json& eval);

}  // namespace edgeforge::cli
