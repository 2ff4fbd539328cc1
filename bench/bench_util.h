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

namespace edgeforge::bench {

struct Timing {
  std::vector<double> samples_ms;
  double percentile(double p) const {
    std::vector<double> s = samples_ms;
    std::sort(s.begin(), s.end());
    const size_t i = std::min(s.size() - 1, static_cast<size_t>(p * (s.size() - 1) + 0.5));
    return s[i];
  }
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

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

inline std::string git_commit() {
  std::string cmd = "git -C '" + source_dir() + "' rev-parse --short HEAD 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "unknown";
  char buf[64] = {0};
  const bool ok = std::fgets(buf, sizeof buf, p) != nullptr;
  pclose(p);
  std::string s = ok ? buf : "unknown";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace edgeforge::bench
