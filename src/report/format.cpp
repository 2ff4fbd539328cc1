// How the report writes numbers and marks (edgeforge/report.h, report_internal.h), so that the
// findings, the tables and the charts agree.
#include <cmath>
#include <cstdio>
#include <set>

#include "edgeforge/report.h"
#include "edgeforge/util.h"
#include "report_internal.h"

namespace edgeforge {

using report_detail::printf_string;

std::string mode_mark(const std::vector<std::string>& modes) {
  std::set<std::string> unique(modes.begin(), modes.end());
  unique.erase("");
  if (unique.empty()) return "";
  return "(" + join(std::vector<std::string>(unique.begin(), unique.end()), ", ") + ")";
}

namespace report_detail {

std::string printf_string(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

}  // namespace report_detail

std::string format_ms(double ms) {
  if (!std::isfinite(ms)) return "n/a";
  const double a = std::fabs(ms);
  if (a >= 99.95) return printf_string("%.0f", ms);
  if (a >= 9.995) return printf_string("%.1f", ms);
  if (a >= 0.9995) return printf_string("%.2f", ms);
  return printf_string("%.3f", ms);
}

std::string format_p(double p) {
  if (!std::isfinite(p)) return "n/a";
  if (p <= 0) return "0";
  if (p >= 0.00995) return printf_string("%.2f", p);
  if (p >= 0.000995) return printf_string("%.3f", p);
  return printf_string("%.1e", p);
}

namespace report_detail {

std::string fixed(double x, int decimals) {
  if (!std::isfinite(x)) return "n/a";
  char format[16];
  std::snprintf(format, sizeof format, "%%.%df", decimals);
  return printf_string(format, x);
}
std::string general(double x) {
  if (!std::isfinite(x)) return "n/a";
  return printf_string("%g", x);
}
std::string ratio_text(double r) { return std::isfinite(r) ? fixed(r, 2) + "x" : "n/a"; }
double change_pt(double drop_pt) { return std::round(-drop_pt * 100) / 100 + 0.0; }

std::string words(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  return out;
}

}  // namespace report_detail

}  // namespace edgeforge
