#include "edgeforge/build_info.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace edgeforge {

std::string version() { return EDGEFORGE_VERSION; }
std::string source_dir() { return EDGEFORGE_SOURCE_DIR; }

std::string data_dir() {
  const char* env = std::getenv("EDGEFORGE_DATA_DIR");
  if (env != nullptr && *env != '\0') return env;
  return source_dir() + "/data";
}

std::string cache_dir() {
  const char* env = std::getenv("EDGEFORGE_CACHE_DIR");
  if (env != nullptr && *env != '\0') return env;
  return source_dir() + "/.cache";
}

std::string library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&library_dir), &info) == 0 || info.dli_fname == nullptr)
    return ".";
  std::string path = info.dli_fname;
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

namespace {
std::string first_line_of(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[256] = {0};
  const bool ok = std::fgets(buf, sizeof buf, p) != nullptr;
  pclose(p);
  std::string s = ok ? buf : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}
}  // namespace

std::string git_commit() {
  const std::string dir = "git -C '" + source_dir() + "' ";
  std::string commit = first_line_of(dir + "rev-parse --short HEAD 2>/dev/null");
  if (commit.empty()) return "unknown";
  if (!first_line_of(dir + "status --porcelain --untracked-files=no 2>/dev/null").empty())
    commit += "-dirty";
  return commit;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace edgeforge
