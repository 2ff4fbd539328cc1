// edgeforge/util.h: small shared helpers (hashing, base64, files, progress on stderr).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgeforge {

// FNV-1a 64-bit hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3): stable across
// machines and runs (used for data splits and cache keys).
uint64_t fnv1a64(const std::string& bytes, uint64_t seed = 0xcbf29ce484222325ULL);
std::string hex64(uint64_t value);  // 16 lowercase hex digits

std::string base64_encode(const std::string& bytes);
// Throws Error naming `what` when `text` is not valid base64.
std::string base64_decode(const std::string& text, const std::string& what);

// The items with `sep` between them: join({"a", "b"}, ", ") is "a, b".
std::string join(const std::vector<std::string>& items, const std::string& sep);

// Whole-file I/O; errors name the path.
std::string read_file(const std::string& path);

// Milliseconds of steady-clock time since `t0`.
double ms_since(std::chrono::steady_clock::time_point t0);

// Cores this machine has (std::thread::hardware_concurrency, at least 1).
int host_cores();
// This machine's physical memory in bytes; nullopt when the system does not say.
std::optional<int64_t> host_memory_bytes();
// Writes to a temporary file beside `path` and renames it, so a crash never leaves half a file.
void write_file_atomic(const std::string& path, const std::string& bytes);
// `path` as named inside the file `source`: relative to the folder of `source` unless absolute.
std::string path_beside(const std::string& source, const std::string& path);

// A progress line on stderr: redrawn in place on a terminal, else one line every 10 seconds
// (every $EDGEFORGE_PROGRESS_SECONDS when set).
class ProgressLine {
 public:
  // `show_eta` false prints the elapsed time instead of an ETA, for work whose parts take
  // unknown and unequal times (an ETA from the share done would mislead).
  explicit ProgressLine(std::string label, bool show_eta = true);
  // `done` of `total` units; `detail` is appended (e.g. "loss 0.41  2300 samples/s").
  void update(int64_t done, int64_t total, const std::string& detail);
  void finish(const std::string& detail);

 private:
  std::string label_;
  bool tty_;
  bool show_eta_;
  double log_interval_s_ = 10.0;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace edgeforge
