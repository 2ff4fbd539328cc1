// Sliding-window attributes (window.h).
#include "window.h"

#include <algorithm>

#include "edgeforge/error.h"

namespace edgeforge::ops {
namespace {

AutoPad parse_auto_pad(const std::string& name, const Node& node) {
  if (name == "NOTSET") return AutoPad::kNotSet;
  if (name == "SAME_UPPER") return AutoPad::kSameUpper;
  if (name == "SAME_LOWER") return AutoPad::kSameLower;
  if (name == "VALID") return AutoPad::kValid;
  throw Error(detail::concat(node.describe(), ": auto_pad '", name,
                             "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"));
}

}  // namespace

void fill_window(Window& w, int64_t rank, const std::string& where) {
  w.rank = rank;
  if (w.strides.empty()) w.strides.assign(rank, 1);
  if (w.dilations.empty()) w.dilations.assign(rank, 1);
  if (w.pads.empty()) w.pads.assign(2 * rank, 0);
  auto check_size = [&](const std::vector<int64_t>& v, int64_t expected, const char* name) {
    EF_CHECK(static_cast<int64_t>(v.size()) == expected, where, ": ", name, " has ", v.size(),
             " values, expected ", expected, " for ", rank, " spatial dimensions");
  };
  if (!w.kernel.empty()) check_size(w.kernel, rank, "kernel_shape");
  check_size(w.strides, rank, "strides");
  check_size(w.dilations, rank, "dilations");
  check_size(w.pads, 2 * rank, "pads");
}

Window parse_window(const Node& node, bool kernel_required, int64_t known_rank) {
  Window w;
  w.auto_pad_name = node.attr_string("auto_pad", "NOTSET");
  w.auto_pad = parse_auto_pad(w.auto_pad_name, node);
  if (kernel_required) {
    w.kernel = node.attr_ints("kernel_shape");
  } else {
    w.kernel = node.attr_ints("kernel_shape", {});
  }
  w.strides = node.attr_ints("strides", {});
  w.dilations = node.attr_ints("dilations", {});
  w.pads = node.attr_ints("pads", {});
  for (int64_t k : w.kernel)
    EF_CHECK(k >= 1, node.describe(), ": kernel_shape value ", k, " is not positive");
  for (int64_t s : w.strides)
    EF_CHECK(s >= 1, node.describe(), ": strides value ", s, " is not positive");
  for (int64_t d : w.dilations)
    EF_CHECK(d >= 1, node.describe(), ": dilations value ", d, " is not positive");
  for (int64_t p : w.pads) EF_CHECK(p >= 0, node.describe(), ": pads value ", p, " is negative");
  bool explicit_pads = false;
  for (int64_t p : w.pads) explicit_pads = explicit_pads || p != 0;
  EF_CHECK(w.auto_pad == AutoPad::kNotSet || !explicit_pads, node.describe(), ": auto_pad '",
           w.auto_pad_name, "' with explicit pads is not supported");
  EF_CHECK(w.pads.size() % 2 == 0, node.describe(), ": pads has ", w.pads.size(),
           " values, expected two per spatial dimension");

  int64_t rank = known_rank;
  if (rank == 0 && !w.kernel.empty()) rank = static_cast<int64_t>(w.kernel.size());
  if (rank == 0 && !w.strides.empty()) rank = static_cast<int64_t>(w.strides.size());
  if (rank == 0 && !w.dilations.empty()) rank = static_cast<int64_t>(w.dilations.size());
  if (rank == 0 && !w.pads.empty()) rank = static_cast<int64_t>(w.pads.size() / 2);
  if (rank > 0) fill_window(w, rank, node.describe());
  return w;
}

std::vector<int64_t> resolve_pads(const Window& w, at::IntArrayRef x_sizes,
                                  at::IntArrayRef kernel) {
  if (w.auto_pad == AutoPad::kNotSet) return w.pads;
  std::vector<int64_t> pads(2 * w.rank, 0);
  if (w.auto_pad == AutoPad::kValid) return pads;
  for (int64_t i = 0; i < w.rank; ++i) {
    const int64_t in = x_sizes[2 + i];
    const int64_t out = (in + w.strides[i] - 1) / w.strides[i];
    const int64_t extent = (kernel[i] - 1) * w.dilations[i] + 1;
    const int64_t total = std::max<int64_t>(0, (out - 1) * w.strides[i] + extent - in);
    const int64_t small = total / 2;
    pads[i] = w.auto_pad == AutoPad::kSameUpper ? small : total - small;
    pads[w.rank + i] = total - pads[i];
  }
  return pads;
}

}  // namespace edgeforge::ops
