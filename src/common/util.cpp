#include "edgeforge/util.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "edgeforge/error.h"

namespace edgeforge {

uint64_t fnv1a64(const std::string& bytes, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

namespace {
constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out.push_back(kBase64Alphabet[(v >> (6 * k)) & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) v |= uint8_t(bytes[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& what) {
  int value_of[256];
  for (int& v : value_of) v = -1;
  for (int k = 0; k < 64; ++k) value_of[static_cast<unsigned char>(kBase64Alphabet[k])] = k;
  EF_CHECK(text.size() % 4 == 0, what, ": not valid base64 (length ", text.size(),
           " is not a multiple of 4)");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      const int d = value_of[static_cast<unsigned char>(c)];
      EF_CHECK(d >= 0 && pad == 0, what, ": not valid base64 (bad character at offset ", i + k,
               ")");
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<char>((v >> 16) & 255));
    if (pad < 2) out.push_back(static_cast<char>((v >> 8) & 255));
    if (pad < 1) out.push_back(static_cast<char>(v & 255));
  }
  return out;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int host_cores() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

std::optional<int64_t> host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return std::nullopt;
  return static_cast<int64_t>(pages) * static_cast<int64_t>(page);
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  EF_CHECK(std::filesystem::exists(path, ec), "file '", path, "' not found");
  EF_CHECK(!std::filesystem::is_directory(path, ec), "'", path, "' is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  EF_CHECK(in.good(), "file '", path, "' cannot be opened for reading");
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  std::error_code ec;
  // Missing folders are created, as a user writing `--out results/model.onnx` expects.
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  // Same folder as the target, so the rename is atomic (never across file systems).
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    EF_CHECK(out.good(), "file '", path, "' cannot be written: ", std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      const std::string reason = std::strerror(errno);
      fs::remove(tmp, ec);
      throw Error("file '" + path + "': write failed: " + reason);
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error("file '" + path + "' cannot be written: " + ec.message());
  }
}

ProgressLine::ProgressLine(std::string label, bool show_eta)
    : label_(std::move(label)), tty_(::isatty(STDERR_FILENO) != 0), show_eta_(show_eta),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {
  // A parent process that shows its children's progress asks for lines more often.
  if (const char* every = std::getenv("EDGEFORGE_PROGRESS_SECONDS")) {
    char* end = nullptr;
    const double v = std::strtod(every, &end);
    if (end != every && v >= 0) log_interval_s_ = v;
  }
}

namespace {
std::string format_duration(double seconds) {
  char buf[32];
  const long s = static_cast<long>(seconds + 0.5);
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}
}  // namespace

void ProgressLine::update(int64_t done, int64_t total, const std::string& detail) {
  const auto now = std::chrono::steady_clock::now();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  if (since_print < (tty_ ? 0.2 : log_interval_s_) && done < total) return;
  last_print_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
  constexpr int kBarWidth = 24;
  const int filled = static_cast<int>(frac * kBarWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kBarWidth, '.');
  std::fprintf(stderr, "%s%s [%s] %3d%%  %s  %s %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), static_cast<int>(frac * 100), detail.c_str(),
               show_eta_ ? "ETA" : "elapsed", format_duration(show_eta_ ? eta : elapsed).c_str(),
               tty_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressLine::finish(const std::string& detail) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s%s done in %s  %s\n", tty_ ? "\r\033[K" : "", label_.c_str(),
               format_duration(elapsed).c_str(), detail.c_str());
  std::fflush(stderr);
}

std::string path_beside(const std::string& source, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const auto slash = source.rfind('/');
  return slash == std::string::npos ? path : source.substr(0, slash + 1) + path;
}

}  // namespace edgeforge
