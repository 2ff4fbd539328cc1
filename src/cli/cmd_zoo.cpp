#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/process.h"
#include "edgeforge/train.h"
#include "edgeforge/util.h"
#include "edgeforge/zoo.h"

namespace edgeforge::cli {

namespace {

// What training one zoo model produced, wherever it ran.
struct Trained {
  double seconds = 0;
  bool from_cache = false;
};

// The last progress line a child wrote ("train resnet [###...]  42%  ...  ETA 1m10s"), as
// "<name> 42% (1m10s left)", and its fraction done. Polled four times a second while the log
// grows a line a second, so only its tail is read.
std::pair<std::string, double> child_progress(const std::string& model, const std::string& log) {
  constexpr std::streamoff kTail = 4096;  // several progress lines
  std::ifstream in(log, std::ios::binary | std::ios::ate);
  const std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : 0;
  in.seekg(std::max<std::streamoff>(0, size - kTail));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const std::regex kLine(R"(\] +(\d+)%.*ETA (\S+))");
  std::smatch m;
  size_t end = text.size();
  while (end > 0) {
    const size_t begin = text.rfind('\n', end - 1);
    const std::string line =
        text.substr(begin == std::string::npos ? 0 : begin + 1,
                    end - (begin == std::string::npos ? 0 : begin + 1));
    if (std::regex_search(line, m, kLine))
      return {model + " " + m[1].str() + "% (" + m[2].str() + " left)", std::stod(m[1].str()) / 100.0};
    if (begin == std::string::npos) break;
    end = begin;
  }
  return {model + " starting", 0.0};
}

// The last line of a child's log without the "edgeforge: error: " its main() put there.
std::string last_error(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  const std::string prefix = "edgeforge: error: ";
  if (last.rfind(prefix, 0) == 0) last = last.substr(prefix.size());
  return last.empty() ? "no output" : last;
}

// What the zoo learned about one model, wherever it was trained and evaluated.
struct ZooRow {
  Trained trained;
  nlohmann::json eval;  // `edgeforge eval --json` output
};

nlohmann::json read_child_json(const std::string& what, const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": unreadable report " + path + ": " + e.what());
  }
}

// Trains and then evaluates every model in `models` with `jobs` child processes of this
// executable at a time (`edgeforge train|eval ... --json`), each with `threads` threads.
// Models go to <out_dir>/<model>.onnx, logs and reports to <out_dir>/logs/. A model's
// evaluation is queued as soon as its training ends, ahead of the next training, so the
// short evaluations fill the cores instead of running one after another at the end.
// Throws Error naming the model and its log if a job fails; the others are then killed.
std::map<std::string, ZooRow> run_zoo_jobs(const std::vector<std::string>& models,
                                           const std::string& out_dir, int jobs, int threads,
                                           bool quick) {
  const std::string logs = out_dir + "/logs";
  std::filesystem::create_directories(logs);
  const std::string exe = self_executable();
  JobPool pool(jobs, std::chrono::milliseconds(250));
  std::map<std::string, ZooRow> rows;
  const size_t total_jobs = 2 * models.size();
  size_t finished = 0;
  // The job of training (eval = false) or evaluating `model`, its log and report in logs/.
  std::function<Job(const std::string&, bool)> job_of = [&](const std::string& model, bool eval) {
    const std::string name = (eval ? "eval " : "train ") + model;
    const std::string stem = logs + "/" + model + (eval ? ".eval" : "");
    const std::string model_path = out_dir + "/" + model + ".onnx";
    Job job;
    job.name = name;
    job.argv = {exe, eval ? "eval" : "train", "--model"};
    if (eval) {
      job.argv.insert(job.argv.end(), {model_path, "--threads", std::to_string(threads), "--json"});
      if (quick) job.argv.insert(job.argv.end(), {"--limit", "256"});
    } else {
      job.argv.insert(job.argv.end(), {model, "--out", model_path, "--threads",
                                       std::to_string(threads), "--json"});
      if (quick) job.argv.push_back("--quick");
    }
    job.stdout_path = stem + ".json";
    job.stderr_path = stem + ".log";
    job.env = {"EDGEFORGE_PROGRESS_SECONDS=1"};
    job.ended = [&, model, eval, name, stem](int status, double) {
      const std::string log = stem + ".log";
      if (status != 0)
        throw Error((eval ? "evaluating " : "training ") + model + " failed (exit " +
                    std::to_string(status) + "): " + last_error(log) + " (full log: " + log + ")");
      const nlohmann::json report = read_child_json(name, stem + ".json");
      ZooRow& row = rows[model];
      std::string said;
      try {
        if (eval) {
          row.eval = report;
          said = eval_summary(report);
        } else {
          row.trained.seconds = report.at("train_seconds").get<double>();
          row.trained.from_cache = report.at("from_cache").get<bool>();
          said = row.trained.from_cache
                     ? "cached"
                     : std::to_string(static_cast<int>(row.trained.seconds + 0.5)) + " s";
          pool.add(job_of(model, true), /*urgent=*/true);
        }
      } catch (const nlohmann::json::exception& e) {
        throw Error(name + ": unexpected report " + stem + ".json: " + e.what());
      }
      std::fprintf(stderr, "%s%s: %s\n", ::isatty(STDERR_FILENO) ? "\r\033[K" : "",
                   name.c_str(), said.c_str());
      ++finished;
    };
    return job;
  };
  for (const std::string& m : models) pool.add(job_of(m, false));
  // Jobs take from seconds (an evaluation) to minutes: each running one shows its own ETA.
  ProgressLine line("zoo (" + std::to_string(jobs) + " jobs x " + std::to_string(threads) +
                        " threads)",
                    /*show_eta=*/false);
  pool.run([&](const std::vector<const Job*>& running) {
    std::string detail;
    double progress = static_cast<double>(finished);
    for (const Job* job : running) {
      const auto [text, fraction] = child_progress(job->name, job->stderr_path);
      detail += (detail.empty() ? "" : " | ") + text;
      progress += fraction;
    }
    line.update(static_cast<int64_t>(progress * 100), static_cast<int64_t>(total_jobs) * 100,
                std::to_string(finished) + "/" + std::to_string(total_jobs) + " jobs done" +
                    (detail.empty() ? "" : " | " + detail));
  });
  line.finish("");
  return rows;
}

// Longest jobs first keeps both cores busy to the end. Measured with two one-thread jobs on
// 2 cores (training, tokenizer included): resnext 457 s, roberta 280 s, resnet 267 s, bert
// 250 s, the students 35-80 s. A model missing from this list goes last.
std::vector<std::string> training_order() {
  static const std::vector<std::string> kLongestFirst = {
      "resnext", "roberta", "resnet", "bert", "resnet-small", "resnext-small", "bert-small",
      "roberta-small"};
  std::vector<std::string> names;
  for (const std::string& n : kLongestFirst)
    for (const ZooModelSpec& s : zoo_models())
      if (s.name == n) names.push_back(n);
  for (const ZooModelSpec& s : zoo_models())
    if (std::find(names.begin(), names.end(), s.name) == names.end()) names.push_back(s.name);
  return names;
}

}  // namespace

Action add_zoo(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "zoo", "List the default model zoo; with --train, train every model with its default\n"
             "recipe (cached), evaluate each on its test split and print a table.\n"
             "Training runs --jobs models at once, each in its own process with\n"
             "threads/jobs threads: on 2 cores two 1-thread jobs train two image models\n"
             "14% faster, two text models 27% faster, than one 2-thread job does one\n"
             "after the other (docs/models-and-data.md).");
  struct Args {
    bool train = false, quick = false, json = false;
    std::string out_dir = "out/zoo";
    int threads = default_threads();
    int jobs = 0;
  };
  auto args = std::make_shared<Args>();
  cmd->add_flag("--train", args->train, "train and evaluate the whole zoo");
  cmd->add_option("--out-dir", args->out_dir,
                  "where trained models, summary.json and training logs (logs/) go")
      ->capture_default_str();
  cmd->add_flag("--quick", args->quick, "seconds-long recipes and small evaluation slices");
  cmd->add_option("--threads", args->threads, "threads in all (shared by the jobs)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--jobs", args->jobs,
                  "models trained at once, each in a child process (default: --threads; 1 "
                  "trains in this process)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", args->json, "print the summary as JSON on stdout");
  return [args]() {
    if (!args->train) {
      std::printf("%-14s %-8s %-6s %-14s %-14s %s\n", "model", "family", "kind", "data set",
                  "teacher", "description");
      for (const ZooModelSpec& s : zoo_models())
        std::printf("%-14s %-8s %-6s %-14s %-14s %s\n", s.name.c_str(), s.family.c_str(),
                    s.modality.c_str(), s.dataset.c_str(), s.teacher.empty() ? "-" : s.teacher.c_str(),
                    s.description.c_str());
      return 0;
    }
    std::filesystem::create_directories(args->out_dir);
    const auto start = std::chrono::steady_clock::now();
    const int jobs = std::min<int>(args->jobs > 0 ? args->jobs : args->threads,
                                   static_cast<int>(zoo_models().size()));
    std::map<std::string, ZooRow> parallel;
    if (jobs > 1)
      parallel = run_zoo_jobs(training_order(), args->out_dir, jobs,
                              std::max(1, args->threads / jobs), args->quick);
    nlohmann::json summary = nlohmann::json::array();
    for (const ZooModelSpec& spec : zoo_models()) {
      const std::string path = args->out_dir + "/" + spec.name + ".onnx";
      nlohmann::json row = {{"model", spec.name}, {"teacher", spec.teacher}, {"file", path}};
      ZooRow r;
      if (jobs > 1) {
        r = parallel.at(spec.name);
        row["parameters"] = load_onnx(path).parameter_count();
      } else {
        TrainRecipe recipe = default_recipe(spec.name, args->quick);
        recipe.threads = args->threads;
        ProgressLine line("train " + spec.name);
        TrainZooResult t = train_zoo_model(spec.name, recipe, true, train_progress(line));
        if (t.from_cache)
          std::fprintf(stderr, "train %s: cached (%s)\n", spec.name.c_str(), t.cache_path.c_str());
        else
          line.finish("");
        save_onnx(t.graph, path);
        EvalOptions eo;
        eo.threads = args->threads;
        if (args->quick) eo.limit = 256;
        r.trained = {t.report.seconds, t.from_cache};
        r.eval = eval_json(evaluate(t.graph, eo));
        row["parameters"] = t.graph.parameter_count();
        std::fprintf(stderr, "eval %s: %s\n", spec.name.c_str(), eval_summary(r.eval).c_str());
      }
      row["train_seconds"] = r.trained.seconds;
      row["from_cache"] = r.trained.from_cache;
      for (const char* key : {"dataset", "split", "samples", "accuracy", "f1"})
        if (r.eval.contains(key)) row[key] = r.eval[key];
      summary.push_back(row);
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    write_file_atomic(args->out_dir + "/summary.json",
                      nlohmann::json{{"models", summary},
                                     {"wall_seconds", wall},
                                     {"threads", args->threads},
                                     {"jobs", jobs},
                                     {"quick", args->quick}}
                          .dump(2));
    if (args->json) {
      std::printf("%s\n", summary.dump(2).c_str());
      return 0;
    }
    std::printf("%-14s %-14s %-9s %8s %10s %9s\n", "model", "teacher", "metric", "value",
                "params", "train s");
    for (const auto& row : summary) {
      const bool text = row.contains("f1");
      const std::string teacher = row["teacher"].get<std::string>();
      char train_s[32];
      if (row["from_cache"].get<bool>())
        std::snprintf(train_s, sizeof train_s, "cached");
      else
        std::snprintf(train_s, sizeof train_s, "%.1f", row["train_seconds"].get<double>());
      std::printf("%-14s %-14s %-9s %8.4f %10lld %9s\n", row["model"].get<std::string>().c_str(),
                  teacher.empty() ? "-" : teacher.c_str(), text ? "spam F1" : "top-1",
                  text ? row["f1"].get<double>() : row["accuracy"].get<double>(),
                  row["parameters"].get<long long>(), train_s);
    }
    std::printf("wall time %.1f s (%d threads, %d jobs); models and summary.json in %s\n", wall,
                args->threads, jobs, args->out_dir.c_str());
    return 0;
  };
}

}  // namespace edgeforge::cli
