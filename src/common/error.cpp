// The failure path of EF_ASSERT (edgeforge/error.h): an internal invariant broke, so the process
// stops with the expression and where it is, rather than going on with corrupt state.
#include "edgeforge/error.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>

namespace edgeforge {

std::string error_line(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  std::string s = torch_error != nullptr ? torch_error->what_without_backtrace() : e.what();
  const size_t start = s.find_first_not_of(" \t\r\n");
  if (start == std::string::npos) return "(no message)";
  s = s.substr(start, s.find_first_of("\r\n", start) - start);
  constexpr size_t kMax = 4000;
  if (s.size() > kMax) s = s.substr(0, kMax) + "...";
  return s;
}

}  // namespace edgeforge

namespace edgeforge::detail {

void assert_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "edgeforge: internal error: %s failed at %s:%d %s\n", expr, file, line,
               msg.c_str());
  std::abort();
}

}  // namespace edgeforge::detail
