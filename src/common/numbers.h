// Numbers read from files and flags, checked before any conversion: the one place the TOML
// readers (study files, topologies) and the command line (every numeric flag, src/cli/main.cpp)
// read a number. An integer setting is read as a TOML integer (or a float with a whole value),
// or as decimal digits, and must lie in [lo, hi]; a real setting must be finite and within its
// bounds. `inputs = 1e30`, `runs = 4294967297` or `--inputs 9223372036854775808` is an error
// naming the key, never a wrapped or saturated value. Not a public interface.
#pragma once

#include <sys/stat.h>
#include <toml++/toml.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
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

// The code points for which toml++ 3.3's is_non_ascii_horizontal_whitespace() reaches
// __builtin_unreachable() (found by enumerating all of them through a copy of the function).
inline bool toml_unsafe_code_point(uint32_t c) {
  return (c >= 0xA1 && c <= 0x499) || (c >= 0x2C5E && c <= 0x3057 && c != 0x3000) ||
         (c >= 0xFB26 && c <= 0xFEFE);
}

// Refuses a UTF-8 sequence of `text` that encodes a toml_unsafe_code_point, with its line.
inline void check_toml_code_points(const std::string& text, const std::string& source) {
  int line = 1;
  const size_t n = text.size();
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  auto cont = [&](size_t i) { return i < n && (byte(i) & 0xC0) == 0x80; };
  for (size_t i = 0; i < n; ++i) {
    const unsigned char b = byte(i);
    if (b == '\n') ++line;
    uint32_t c = 0;
    if ((b & 0xE0) == 0xC0 && cont(i + 1))
      c = ((b & 0x1Fu) << 6) | (byte(i + 1) & 0x3Fu);
    else if ((b & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2))
      c = ((b & 0x0Fu) << 12) | ((byte(i + 1) & 0x3Fu) << 6) | (byte(i + 2) & 0x3Fu);
    if (c != 0 && toml_unsafe_code_point(c)) {
      char code[16];
      std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
      throw Error(detail::concat(
          source, ":", line, ": character ", code, " cannot be read safely by the TOML reader "
          "(toml++ 3.3) in U+00A1-U+0499, U+2C5E-U+3057 or U+FB26-U+FEFE; write it as \\u",
          code + 2, " in a double-quoted string"));
    }
  }
}

// The TOML document in `text`; a syntax error is an Error "SOURCE:LINE: what". Two things are
// refused before toml++ 3.3 sees the text, each found by fuzz_settings:
// - a control character (U+0000 to U+001F but tab, newline and carriage return, and U+007F):
//   TOML allows none outside escapes, and toml++ asserts on one in a table header;
// - a non-ASCII character outside a string or a comment: TOML allows none there (bare keys are
//   ASCII), and toml++'s test of whether such a character is whitespace reaches
//   __builtin_unreachable() (undefined behaviour) for most code points (e.g. U+00E9, U+FEFB);
// - anywhere, even in a string or a comment, a character of the ranges where that test is
//   undefined (toml_unsafe_code_point): on a malformed line toml++ can read a string's
//   characters as a bare value's, and no scan of ours can know where it will.
// Such characters can be written as \uXXXX escapes in a double-quoted string.
inline toml::table parse_toml(const std::string& text, const std::string& source) {
  check_toml_code_points(text, source);
  enum class In { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral } in = In::kCode;
  int line = 1;
  const size_t n = text.size();
  auto starts = [&](size_t i, const char* three) { return text.compare(i, 3, three) == 0; };
  size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // a UTF-8 byte order mark
  char prev = '\n';  // in code: the last character that is not a blank
  // What follows a backslash in a basic string (after a line-ending backslash's blanks): toml++
  // asks whether it is whitespace, which for most non-ASCII characters is undefined behaviour.
  auto check_escape = [&](size_t j) {
    EF_CHECK(j >= n || static_cast<unsigned char>(text[j]) < 0x80, source, ":", line,
             ": a non-ASCII character right after a backslash in a string (write it without the "
             "backslash, or as \\uXXXX)");
  };
  for (; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
      char code[8];
      std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
      throw Error(detail::concat(source, ":", line, ": control character ", code,
                                 " (TOML allows control characters only escaped in strings)"));
    }
    if (c == '\n') {
      ++line;
      if (in == In::kComment || in == In::kBasic || in == In::kLiteral) in = In::kCode;
      if (in == In::kCode) prev = '\n';
      continue;
    }
    switch (in) {
      case In::kCode: {
        // A quote opens a string only where toml++ starts one: a key at a line's start, after
        // '.', '[' or '{' (or ','), a value after '='. Elsewhere (5"x) it is part of a bad
        // bare value, whose characters toml++ tests one by one.
        const bool string_may_start = std::strchr("\n=[{,.", prev) != nullptr;
        if (c == '#') in = In::kComment;
        else if (string_may_start && starts(i, "\"\"\"")) in = In::kMultiBasic, i += 2;
        else if (string_may_start && starts(i, "'''")) in = In::kMultiLiteral, i += 2;
        else if (string_may_start && c == '"') in = In::kBasic;
        else if (string_may_start && c == '\'') in = In::kLiteral;
        else
          EF_CHECK(c < 0x80, source, ":", line,
                   ": a non-ASCII character outside a string or comment (quote the key or value)");
        if (in != In::kCode) prev = '"';  // what is before the next token: a string
        else if (c != ' ' && c != '\t' && c != '\r') prev = static_cast<char>(c);
        break;
      }
      case In::kComment: break;
      case In::kBasic:
        if (c == '\\' && i + 1 < n) {
          check_escape(i + 1);
          if (text[i + 1] != '\n') ++i;  // the escaped character (a newline ends the line)
        } else if (c == '"') {
          in = In::kCode;
        }
        break;
      case In::kLiteral:
        if (c == '\'') in = In::kCode;
        break;
      case In::kMultiBasic:
        if (c == '\\' && i + 1 < n) {
          // An escape, or a line-ending backslash, after which toml++ skips blanks and newlines.
          size_t j = i + 1;
          while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n'))
            line += text[j++] == '\n';
          check_escape(j);
          i = j > i + 1 ? j - 1 : j;
        } else if (starts(i, "\"\"\"")) {
          in = In::kCode;
          i += 2;
          while (i + 1 < n && text[i + 1] == '"') ++i;  // up to two quotes may end the content
        }
        break;
      case In::kMultiLiteral:
        if (starts(i, "'''")) {
          in = In::kCode;
          i += 2;
          while (i + 1 < n && text[i + 1] == '\'') ++i;
        }
        break;
    }
  }
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw Error(detail::concat(source, ":", e.source().begin.line, ": ", e.description()));
  }
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
