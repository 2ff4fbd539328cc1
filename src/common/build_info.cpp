#include "edgeforge/build_info.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

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
// The GNU build-id note of the loaded object that holds `address`.
struct BuildIdSearch {
  const void* address;
  std::string id;
};
int find_build_id(dl_phdr_info* info, size_t, void* data) {
  auto* search = static_cast<BuildIdSearch*>(data);
  const auto target = reinterpret_cast<ElfW(Addr)>(search->address);
  bool holds = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && target >= info->dlpi_addr + ph.p_vaddr &&
        target < info->dlpi_addr + ph.p_vaddr + ph.p_memsz)
      holds = true;
  }
  if (!holds) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    const unsigned char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const unsigned char* name = p + sizeof(ElfW(Nhdr));
      const unsigned char* desc = name + ((note->n_namesz + 3) & ~3u);
      if (desc + note->n_descsz > end) break;
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
          std::string(reinterpret_cast<const char*>(name), 3) == "GNU") {
        static const char* hex = "0123456789abcdef";
        for (unsigned k = 0; k < note->n_descsz; ++k) {
          search->id += hex[desc[k] >> 4];
          search->id += hex[desc[k] & 15];
        }
        return 1;
      }
      p = desc + ((note->n_descsz + 3) & ~3u);
    }
  }
  return 1;
}
}  // namespace

std::string build_id() {
  static const std::string id = [] {
    BuildIdSearch search{reinterpret_cast<const void*>(&build_id), ""};
    dl_iterate_phdr(find_build_id, &search);
    return search.id.empty() ? std::string("unknown") : search.id;
  }();
  return id;
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
