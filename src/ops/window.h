// The attributes of sliding-window ops (Conv, the pools, ConvInteger, QLinearConv):
// kernel_shape, strides, dilations, pads and auto_pad, parsed and checked once, with the pads
// auto_pad implies for a given input.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge::ops {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// Attributes of a sliding-window op with defaults filled in for `rank` spatial dimensions.
struct Window {
  int64_t rank = 0;  // spatial rank, 0 while unknown (then resolved from the input per run)
  AutoPad auto_pad = AutoPad::kNotSet;
  std::string auto_pad_name = "NOTSET";
  std::vector<int64_t> kernel;  // empty for Conv without kernel_shape: taken from the weight
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // rank begins, then rank ends
};

// Fills absent attributes with their ONNX defaults for `rank` spatial dimensions and checks
// every list has the length that rank implies.
void fill_window(Window& w, int64_t rank, const std::string& where);

// The window attributes of `node`, checked (positive kernel, strides and dilations, no negative
// pads, no explicit pads beside auto_pad); `known_rank` 0 takes the rank from the attributes,
// or leaves it to the run when none gives it.
Window parse_window(const Node& node, bool kernel_required, int64_t known_rank);

// Pads for this input under auto_pad: begins then ends. SAME keeps ceil(in / stride) outputs;
// SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
std::vector<int64_t> resolve_pads(const Window& w, at::IntArrayRef x_sizes,
                                  at::IntArrayRef kernel);

}  // namespace edgeforge::ops
