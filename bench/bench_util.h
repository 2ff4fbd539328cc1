// Shared helpers for the benchmarks in bench/: side-by-side timing and the environment record.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "edgeforge/build_info.h"
#include "edgeforge/stats.h"

namespace edgeforge::bench {

struct Timing {
  std::vector<double> samples_ms;
  // numpy's linear quantile, as the study's statistics compute it (edgeforge/stats.h).
  double percentile(double p) const { return edgeforge::stats::percentile(samples_ms, p); }
  double median() const { return percentile(0.5); }
};

// Times `a` and `b` alternately (warm-up first), so machine noise hits both alike.
inline std::pair<Timing, Timing> time_side_by_side(const std::function<void()>& a,
                                                   const std::function<void()>& b, int warmup,
                                                   int reps) {
  for (int i = 0; i < warmup; ++i) {
    a();
    b();
  }
  Timing ta, tb;
  auto time_one = [](const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int i = 0; i < reps; ++i) {
    if (i % 2 == 0) {
      ta.samples_ms.push_back(time_one(a));
      tb.samples_ms.push_back(time_one(b));
    } else {
      tb.samples_ms.push_back(time_one(b));
      ta.samples_ms.push_back(time_one(a));
    }
  }
  return {ta, tb};
}

// "a,b,c" -> {"a", "b", "c"} (empty items dropped), for --models and similar flags.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// The environment every benchmark records (edgeforge/build_info.h).
using edgeforge::cpu_model;
using edgeforge::git_commit;

}  // namespace edgeforge::bench
