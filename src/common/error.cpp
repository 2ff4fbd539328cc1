// The failure path of EF_ASSERT (edgeforge/error.h): an internal invariant broke, so the process
// stops with the expression and where it is, rather than going on with corrupt state.
#include "edgeforge/error.h"

#include <cstdio>
#include <cstdlib>

namespace edgeforge::detail {

void assert_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "edgeforge: internal error: %s failed at %s:%d %s\n", expr, file, line,
               msg.c_str());
  std::abort();
}

}  // namespace edgeforge::detail
