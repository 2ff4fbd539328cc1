// edgeforge/error.h: how edgeforge reports problems.
//
// Bad user input (a file, a flag, a config value, a model) throws edgeforge::Error whose message
// names the input, the bad value and what was expected, e.g.
//   throw Error("spam data: file 'x.json' has no field \"text\"");
// The CLI prints the message on one line and exits non-zero. Internal invariants use
// EF_ASSERT, which is never the way a user error is reported.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace edgeforge {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// The one line a caller is shown for `e`: the first line of its message (a LibTorch error
// without its backtrace), at most 4000 characters.
std::string error_line(const std::exception& e);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
[[noreturn]] void assert_failed(const char* expr, const char* file, int line, const std::string& msg);
}  // namespace detail

// Throws edgeforge::Error with the pieces concatenated when `cond` is false.
#define EF_CHECK(cond, ...)                                                  \
  do {                                                                       \
    if (!(cond)) throw ::edgeforge::Error(::edgeforge::detail::concat(__VA_ARGS__)); \
  } while (0)

// Internal invariant: a failure is a bug in edgeforge, not bad input.
#define EF_ASSERT(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::edgeforge::detail::assert_failed(#cond, __FILE__, __LINE__,                       \
                                         ::edgeforge::detail::concat("", ##__VA_ARGS__)); \
  } while (0)

}  // namespace edgeforge
