#include "edgeforge/build_info.h"

#include <dlfcn.h>

#include <cstdlib>

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

}  // namespace edgeforge
