// Numbers read from files and flags, checked before any conversion: the one place the TOML
// readers (study files, topologies) and the command line (every numeric flag, src/cli/main.cpp)
// read a number. An integer setting is read as a TOML integer (or a float with a whole value),
// or as decimal digits, and must lie in [lo, hi]; a real setting must be finite and within its
// bounds. `inputs = 1e30`, `runs = 4294967297` or `--inputs 9223372036854775808` is an error
// naming the key, never a wrapped or saturated value. Not a public interface.
#pragma once

#include <toml++/toml.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "edgeforge/error.h"

namespace edgeforge::numbers {

// The integer at `n`, in [lo, hi]. Error "WHERE: 'KEY' V must be a whole number >= LO" (or
// "in LO..HI" when hi bounds it) otherwise.
inline int64_t integer(const toml::node& n, const std::string& key, int64_t lo, int64_t hi,
                       const std::string& where) {
  const std::string range = hi == INT64_MAX ? ">= " + std::to_string(lo)
                                            : "in " + std::to_string(lo) + ".." + std::to_string(hi);
  if (const auto* i = n.as_integer()) {
    const int64_t v = i->get();
    EF_CHECK(v >= lo && v <= hi, where, ": '", key, "' ", v, " must be a whole number ", range);
    return v;
  }
  const auto v = n.value<double>();
  EF_CHECK(v.has_value(), where, ": '", key, "' must be a number");
  // Compared as doubles before any conversion: 1e30 or inf never reaches an int64_t.
  EF_CHECK(std::isfinite(*v) && std::floor(*v) == *v && *v >= static_cast<double>(lo) &&
               *v <= static_cast<double>(hi),
           where, ": '", key, "' ", *v, " must be a whole number ", range);
  return static_cast<int64_t>(*v);
}

// `text` as a whole number: optional sign and decimal digits only (no base prefix, exponent or
// blanks), within int64; nullopt otherwise, so "9223372036854775808", "1e3", "0x10" or "" never
// become a number.
inline std::optional<int64_t> parse_integer(const std::string& text) {
  const size_t digits = text.empty() || (text[0] != '-' && text[0] != '+') ? 0 : 1;
  if (text.size() == digits || text.find_first_not_of("0123456789", digits) != std::string::npos)
    return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno == ERANGE || end != text.c_str() + text.size()) return std::nullopt;
  return static_cast<int64_t>(v);
}

// `text` as a finite real number (decimal or exponent form); nullopt for anything else,
// including "nan", "inf", an overflow such as "1e999" and trailing text.
inline std::optional<double> parse_real(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (errno == ERANGE || end != text.c_str() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The finite number at `n` in [lo, hi] (lo excluded when `lo_open`). Error naming the key
// and the range otherwise.
inline double real(const toml::node& n, const std::string& key, double lo, double hi,
                   const std::string& where, bool lo_open = false) {
  const auto v = n.value<double>();
  EF_CHECK(v.has_value(), where, ": '", key, "' must be a number");
  const bool above = lo_open ? *v > lo : *v >= lo;
  EF_CHECK(std::isfinite(*v) && above && *v <= hi, where, ": '", key, "' ", *v, " must be ",
           lo_open ? "> " : ">= ", lo, " and <= ", hi);
  return *v;
}

}  // namespace edgeforge::numbers

#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace edgeforge::numbers {

// The text of a settings file (a study file, a topology): it must be a regular file of at most
// `max_bytes` (a directory, a FIFO or /dev/zero is refused before anything is read) and not
// empty. `what` names it in the error ("study", "topology").
inline std::string read_settings_file(const std::string& path, const std::string& what,
                                      int64_t max_bytes = 1 << 20) {
  struct stat st {};
  EF_CHECK(::stat(path.c_str(), &st) == 0, what, " ", path, ": file not found or not readable");
  EF_CHECK(S_ISREG(st.st_mode), what, " ", path, ": not a regular file");
  EF_CHECK(st.st_size <= max_bytes, what, " ", path, ": ", st.st_size, " bytes, more than a ", what,
           " file may have (", max_bytes, ")");
  std::ifstream in(path, std::ios::binary);
  EF_CHECK(in.good(), what, " ", path, ": file not found or not readable");
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  EF_CHECK(static_cast<int64_t>(text.size()) <= max_bytes, what, " ", path, ": more than ", max_bytes, " bytes");
  EF_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, what, " ", path,
           ": the file is empty");
  return text;
}

}  // namespace edgeforge::numbers
