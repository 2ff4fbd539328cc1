// Shared helpers for the benchmarks in bench/.
//
// Kernel benchmarks (int8_engines, float_engines, image_decode, executor_vs_modules,
// train_memory_format, distill_targets, data_adapters) are Google Benchmark 1.7 programs: they
// register their cases and end in run_benchmarks(), which
//   - adds default flags the command line does not set: repetitions in random interleaving
//     (--benchmark_enable_random_interleaving=true --benchmark_repetitions=9
//     --benchmark_min_time=0.1 --benchmark_display_aggregates_only=true), so the cases being
//     compared take turns in one run, repetition by repetition;
//   - takes --json FILE as --benchmark_out=FILE --benchmark_out_format=json;
//   - records git_commit and cpu_model in the report's context;
//   - after the run prints, for each Comparison, the ratio of the two sides' medians case by
//     case (on stdout under the console table, on stderr when stdout carries JSON or CSV).
// Every other Google Benchmark flag works as usual (--benchmark_filter, --benchmark_format=json,
// --benchmark_out, --benchmark_list_tests, ...), and the JSON compares with its own tools
// (tools/compare.py in Google Benchmark's sources).
//
// End-to-end benchmarks (ort, agent_hops, strategies) compare whole runs with their own main
// and time them with time_side_by_side(): N contenders in rounds, in alternating order.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "edgeforge/build_info.h"
#include "edgeforge/lower.h"
#include "edgeforge/stats.h"

namespace edgeforge::bench {

// The environment every benchmark records (edgeforge/build_info.h).
using edgeforge::cpu_model;
using edgeforge::git_commit;

// "a,b,c" -> {"a", "b", "c"} (empty items dropped), for --models and similar flags.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// ------------------------------------------------------------------------------------------
// End-to-end comparisons: one timing helper for every custom main.

struct Timing {
  std::vector<double> samples_ms;
  std::vector<double> round_medians_ms;  // the median of each round's block
  // numpy's linear quantile, as the study's statistics compute it (edgeforge/stats.h).
  double percentile(double p) const { return edgeforge::stats::percentile(samples_ms, p); }
  double median() const { return percentile(0.5); }
};

// One contender's runs: runs n times in a row and returns one sample per run in milliseconds
// (or what it measures itself: a child process's own timings, a hop's share of a request).
using Runs = std::function<std::vector<double>(int n)>;

// Runs that time each call of `f` on the steady clock.
inline Runs timed(std::function<void()> f) {
  return [f = std::move(f)](int n) {
    std::vector<double> ms;
    ms.reserve(static_cast<size_t>(std::max(n, 0)));
    for (int i = 0; i < n; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return ms;
  };
}

struct Contender {
  Runs run;
  int block = 0;  // timed runs per round; 0: Rounds::block
};

struct Rounds {
  int rounds = 1;
  int block = 1;   // timed runs of each contender per round
  int settle = 0;  // runs at the start of each block that are not recorded (caches refilled
                   // after the other contenders ran)
  int warmup = 0;  // runs of each contender before the first round, not recorded
};

// Times the contenders side by side: after the warm-up, each round runs every contender's
// block, in order in even rounds and in reverse order in odd ones, so machine noise and cache
// state hit all of them alike. Returns one Timing per contender.
inline std::vector<Timing> time_side_by_side(const std::vector<Contender>& contenders,
                                             const Rounds& r) {
  std::vector<Timing> out(contenders.size());
  if (r.warmup > 0)
    for (const Contender& c : contenders) c.run(r.warmup);
  for (int round = 0; round < r.rounds; ++round) {
    for (size_t j = 0; j < contenders.size(); ++j) {
      const size_t k = round % 2 == 0 ? j : contenders.size() - 1 - j;
      const int block = contenders[k].block > 0 ? contenders[k].block : r.block;
      std::vector<double> ms = contenders[k].run(r.settle + block);
      ms.erase(ms.begin(), ms.begin() + std::min<ptrdiff_t>(r.settle, static_cast<ptrdiff_t>(ms.size())));
      if (!ms.empty()) out[k].round_medians_ms.push_back(edgeforge::stats::percentile(ms, 0.5));
      out[k].samples_ms.insert(out[k].samples_ms.end(), ms.begin(), ms.end());
    }
  }
  return out;
}

// The median over rounds of a's round median / b's: adjacent blocks share the machine's state,
// which on a shared host can shift between rounds for both alike.
inline double round_ratio(const Timing& a, const Timing& b) {
  std::vector<double> ratios;
  for (size_t i = 0; i < std::min(a.round_medians_ms.size(), b.round_medians_ms.size()); ++i)
    ratios.push_back(a.round_medians_ms[i] / b.round_medians_ms[i]);
  return ratios.empty() ? 0.0 : edgeforge::stats::percentile(ratios, 0.5);
}

// ------------------------------------------------------------------------------------------
// Kernel benchmarks on Google Benchmark.

// Two sides compared case by case: benchmarks whose names differ only in one '/'-separated
// component, `numerator` in one and `denominator` in the other ("conv/QNNPACK/in:16/..." and
// "conv/ONEDNN/in:16/..."). The ratio is of the medians over repetitions of the time per
// iteration (a single run's when there is one repetition); below 1 the numerator is faster.
// The counters of a bench that trains once per iteration: samples/s over the pass and the loss
// it ended at (edgeforge/train.h's TrainReport).
inline void training_counters(benchmark::State& state, int64_t samples_seen, double final_loss) {
  state.counters["samples"] = benchmark::Counter(static_cast<double>(samples_seen),
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["final_loss"] = final_loss;
}

struct Comparison {
  std::string numerator, denominator;
  bool cpu_time = false;  // compare this thread's CPU time instead of wall time
};

struct Suite {
  std::string name;                        // the program, for messages
  std::vector<std::string> default_flags;  // "--benchmark_x=v": added or replacing a common one
  std::vector<Comparison> comparisons;
  std::string usage;  // the program's own options, printed by --help and on a bad option
  // Gets the arguments Google Benchmark leaves (the program's own options); false: bad usage.
  std::function<bool(const std::vector<std::string>&)> parse_options;
  // Registers the benchmarks once the options are parsed; may add context and print notes.
  // An exception ends the program with its message and status 1.
  std::function<void()> setup;
};

namespace detail {

inline std::string flag_name(const std::string& arg) { return arg.substr(0, arg.find('=')); }

inline std::string& usage_text() {
  static std::string text;
  return text;
}

inline std::string& defaults_text() {
  static std::string text;
  return text;
}

inline bool& console_display() {
  static bool console = true;
  return console;
}

// Forwards to the reporter Google Benchmark would use (--benchmark_format and its options)
// and keeps each case's median, then prints the comparisons' ratios after the last report.
class RatioReporter : public benchmark::BenchmarkReporter {
 public:
  RatioReporter(std::unique_ptr<benchmark::BenchmarkReporter> inner,
                std::vector<Comparison> comparisons)
      : inner_(std::move(inner)), comparisons_(std::move(comparisons)) {}

  bool ReportContext(const Context& context) override {
    inner_->SetOutputStream(&GetOutputStream());
    inner_->SetErrorStream(&GetErrorStream());
    return inner_->ReportContext(context);
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred || run.iterations <= 0) continue;
      const double unit = benchmark::GetTimeUnitMultiplier(run.time_unit);
      Times t{run.GetAdjustedRealTime() / unit, run.GetAdjustedCPUTime() / unit,
              {run.family_index, run.per_family_instance_index}};
      const std::string key = case_key(run);
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median" && run.aggregate_unit == benchmark::kTime)
          medians_[key] = t;
      } else {
        singles_[key] = t;
        ++single_count_[key];
      }
    }
    inner_->ReportRuns(runs);
  }

  void Finalize() override {
    inner_->Finalize();
    std::ostream& out = console_display() ? GetOutputStream() : GetErrorStream();
    for (const Comparison& c : comparisons_) print(out, c);
    out.flush();
  }

 private:
  struct Times {
    double real_s, cpu_s;
    std::pair<int64_t, int64_t> order;  // registration order: family, instance
  };

  // A case's name without what Google Benchmark appends for its own settings.
  static std::string case_key(const Run& run) {
    std::string key = run.run_name.function_name;
    if (!run.run_name.args.empty()) key += "/" + run.run_name.args;
    if (!run.run_name.threads.empty()) key += "/" + run.run_name.threads;
    return key;
  }

  static std::vector<std::string> components(const std::string& s) {
    std::vector<std::string> out;
    std::string part;
    std::stringstream in(s);
    while (std::getline(in, part, '/')) out.push_back(part);
    return out;
  }

  const Times* find(const std::string& key, bool* median) const {
    auto m = medians_.find(key);
    if (m != medians_.end()) {
      *median = true;
      return &m->second;
    }
    auto s = singles_.find(key);
    if (s != singles_.end() && single_count_.at(key) == 1) {
      *median = false;
      return &s->second;
    }
    return nullptr;
  }

  void print(std::ostream& out, const Comparison& c) const {
    std::vector<std::string> keys;
    for (const auto& [key, t] : medians_) keys.push_back(key);
    for (const auto& [key, t] : singles_)
      if (medians_.count(key) == 0) keys.push_back(key);
    std::vector<std::pair<std::pair<int64_t, int64_t>, std::pair<std::string, double>>> found;
    bool all_medians = true;
    for (const std::string& key : keys) {
      std::vector<std::string> parts = components(key);
      auto side = std::find(parts.begin(), parts.end(), c.numerator);
      if (side == parts.end()) continue;
      std::string other, label;
      for (auto p = parts.begin(); p != parts.end(); ++p) {
        other += (p == parts.begin() ? "" : "/") + (p == side ? c.denominator : *p);
        if (p != side) label += (label.empty() ? "" : "/") + *p;
      }
      bool num_median = false, den_median = false;
      const Times* num = find(key, &num_median);
      const Times* den = find(other, &den_median);
      if (num == nullptr || den == nullptr) continue;
      all_medians = all_medians && num_median && den_median;
      const double a = c.cpu_time ? num->cpu_s : num->real_s;
      const double b = c.cpu_time ? den->cpu_s : den->real_s;
      if (b > 0) found.push_back({num->order, {label, a / b}});
    }
    std::sort(found.begin(), found.end());  // as registered (runs are reported as they end)
    std::vector<std::pair<std::string, double>> rows;
    for (const auto& f : found) rows.push_back(f.second);
    if (rows.empty()) return;
    size_t width = 0;
    for (const auto& [label, ratio] : rows) width = std::max(width, label.size());
    out << "\nratio " << c.numerator << " / " << c.denominator << " ("
        << (all_medians ? "medians over repetitions" : "one repetition") << ", "
        << (c.cpu_time ? "CPU time" : "wall time") << "; below 1: " << c.numerator
        << " is faster)\n";
    char line[64];
    for (const auto& [label, ratio] : rows) {
      std::snprintf(line, sizeof line, "%.3f", ratio);
      out << "  " << label << std::string(width - label.size() + 2, ' ') << line << "\n";
    }
  }

  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
  std::vector<Comparison> comparisons_;
  std::map<std::string, Times> medians_, singles_;
  std::map<std::string, int> single_count_;
};

inline void print_help() {
  benchmark::PrintDefaultHelp();
  std::fprintf(stdout,
               "\nDefaults here (a flag on the command line wins):%s\n"
               "--json FILE is --benchmark_out=FILE --benchmark_out_format=json.\n",
               defaults_text().c_str());
  if (!usage_text().empty()) std::fprintf(stdout, "%s\n", usage_text().c_str());
}

}  // namespace detail

// Where a kernel benchmark prints notes beside its results (output checks, accuracies):
// stdout under the console table, stderr when stdout carries --benchmark_format=json or csv.
inline std::FILE* notes() { return detail::console_display() ? stdout : stderr; }

// The main of a kernel benchmark (see the top of this file). Returns the exit status.
inline int run_benchmarks(int argc, char** argv, const Suite& suite) {
  std::vector<std::string> user(argv + 1, argv + argc), args = {argv[0]};
  // --json FILE: Google Benchmark's JSON file output.
  for (size_t i = 0; i < user.size(); ++i) {
    if (user[i] == "--json" && i + 1 < user.size()) {
      user[i] = "--benchmark_out=" + user[i + 1];
      user[i + 1] = "--benchmark_out_format=json";
      ++i;
    }
  }
  std::vector<std::string> defaults = {"--benchmark_enable_random_interleaving=true",
                                       "--benchmark_repetitions=9", "--benchmark_min_time=0.1",
                                       "--benchmark_display_aggregates_only=true"};
  for (const std::string& f : suite.default_flags) {
    auto same = std::find_if(defaults.begin(), defaults.end(), [&](const std::string& d) {
      return detail::flag_name(d) == detail::flag_name(f);
    });
    if (same != defaults.end()) *same = f;
    else defaults.push_back(f);
  }
  for (const std::string& d : defaults) {
    detail::defaults_text() += " " + d;
    const bool given = std::any_of(user.begin(), user.end(), [&](const std::string& u) {
      return detail::flag_name(u) == detail::flag_name(d);
    });
    if (!given) args.push_back(d);
  }
  for (const std::string& u : user) {
    if (u.rfind("--benchmark_format=", 0) == 0)
      detail::console_display() = u == "--benchmark_format=console";
    args.push_back(u);
  }
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  int n = static_cast<int>(args.size());
  detail::usage_text() = suite.usage;
  benchmark::Initialize(&n, ptrs.data(), detail::print_help);
  const std::vector<std::string> own(ptrs.begin() + 1, ptrs.begin() + n);
  bool ok = false;
  try {
    ok = suite.parse_options ? suite.parse_options(own) : own.empty();
  } catch (const std::exception&) {  // a number that does not parse
  }
  if (!ok) {
    std::fprintf(stderr, "%s: unknown option or missing value in:", suite.name.c_str());
    for (const std::string& o : own) std::fprintf(stderr, " %s", o.c_str());
    std::fprintf(stderr, "\n%s (and Google Benchmark's flags: --help)\n",
                 suite.usage.empty() ? "It has no options of its own" : suite.usage.c_str());
    return 2;
  }
  benchmark::AddCustomContext("git_commit", git_commit());
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("cpu_isa", edgeforge::plan_cpu_isa());
  try {
    if (suite.setup) suite.setup();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", suite.name.c_str(), e.what());
    return 1;
  }
  std::fflush(stdout);
  detail::RatioReporter reporter(
      std::unique_ptr<benchmark::BenchmarkReporter>(benchmark::CreateDefaultDisplayReporter()),
      suite.comparisons);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

// For Suite::parse_options: calls handle(name, value) for each "--name value" pair; false when
// a name lacks its value or the handler refuses it.
inline bool each_option(const std::vector<std::string>& args,
                        const std::function<bool(const std::string&, const std::string&)>& handle) {
  for (size_t i = 0; i < args.size(); i += 2)
    if (i + 1 >= args.size() || !handle(args[i], args[i + 1])) return false;
  return true;
}

}  // namespace edgeforge::bench
