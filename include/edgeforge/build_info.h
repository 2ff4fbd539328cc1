// edgeforge/build_info.h: facts fixed when edgeforge was built.
#pragma once
#include <string>

namespace edgeforge {
std::string version();     // "0.1.0"
std::string source_dir();  // the checkout edgeforge was built from
// Folder holding fetched data sets: $EDGEFORGE_DATA_DIR, else <source_dir>/data.
std::string data_dir();
// Folder for caches (trained models): $EDGEFORGE_CACHE_DIR, else <source_dir>/.cache.
std::string cache_dir();
// Directory of the loaded libedgeforge_core, where its plug-in modules live.
std::string library_dir();
// The environment a measurement records: the checkout's commit ("unknown" outside git, with
// "-dirty" when it has uncommitted changes) and this CPU's model name from /proc/cpuinfo.
std::string git_commit();
// The linker's build id of the edgeforge library that is running (hex; "unknown" without one):
// the same on every machine that runs this build, and different for any other build.
std::string build_id();
std::string cpu_model();
}  // namespace edgeforge
