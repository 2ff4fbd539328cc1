// Shared by the libFuzzer targets in fuzz/ (docs/fuzzing.md): what counts as a clean refusal,
// and a scratch file for readers that take a path.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>

#include "edgeforge/error.h"

namespace edgeforge::fuzz {

// Runs `f`; a thrown exception is the clean refusal every bad input must get (edgeforge::Error,
// or a LibTorch or protobuf error the commands print on one line). Crashes, sanitizer reports,
// hangs and out-of-memory are what the fuzzer looks for.
template <typename F>
void refused_or_ok(F&& f) {
  try {
    f();
  } catch (const std::exception&) {
  }
}

// A file holding `bytes`, under /dev/shm (or /tmp), private to this process; rewritten on
// every call.
inline std::string scratch_file(const std::string& bytes, const std::string& suffix) {
  const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = std::string(base) + "/edgeforge-fuzz-" + std::to_string(getpid()) + suffix;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string bytes_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace edgeforge::fuzz
