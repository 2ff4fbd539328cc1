// edgeforge/prune.h: the mask and surgery functions behind the prune and prune-structured
// strategies, exposed for tests.
//
// Pattern pruning views a weight as a matrix [out, in x kernel] (a MatMul's [in, out] weight
// transposed) and removes whole blocks of `rows` output units by `cols` input elements: the
// blocks with the smallest L2 norm, exactly round(sparsity x blocks) of them per layer.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge {

struct BlockShape {
  int64_t rows = 1, cols = 1;  // along output units, along inputs
};
// "2x1" -> {2, 1}; Error for anything else.
BlockShape parse_block_shape(const std::string& text);

// A 0/1 float mask shaped like `weight`. `in_out` when the weight is stored [in, out].
at::Tensor block_mask(const at::Tensor& weight, BlockShape block, double sparsity, bool in_out);

// Sparsity at `step` of a gradual schedule reaching `final_sparsity` after `ramp_steps`
// (Zhu and Gupta's cubic schedule: s_f * (1 - (1 - t / ramp)^3)).
double cubic_sparsity(double final_sparsity, int64_t step, int64_t ramp_steps);

// A weight pruning applies to: the Conv / Gemm / MatMul node and its constant weight.
struct PruneTarget {
  std::string node, weight;
  bool in_out = false;
};
// Every Conv (2-D), Gemm and MatMul with a constant float weight, except the node reading a
// graph input (an image stem) and nodes producing a graph output (the classifier).
std::vector<PruneTarget> prune_targets(const Graph& graph);

// ---- structured pruning (prune-structured) ----

// A set of units (channels, feed-forward units) made by one weighted node and read by one other
// with only per-unit work between them, so removing a unit touches only these tensors.
struct PrunableDimension {
  std::string producer, consumer;        // node names
  std::string producer_weight, consumer_weight;
  int64_t producer_axis = 0, consumer_axis = 1;  // the units' axis in each weight
  int64_t units = 0;
  int64_t groups = 1;             // grouped conv on either side: each group keeps as many
  bool consumer_grouped = false;  // the consumer conv is grouped (inputs split per group)
  std::vector<std::string> zeroed;        // per-unit vectors zeroed with the unit (bias, gamma, beta)
  std::vector<std::string> kept_vectors;  // per-unit vectors only cut (running mean, variance)
  std::string bn_scale, bn_var;           // batch norm between them, for importance
  double bn_epsilon = 1e-5;
};

// Conv -> [BatchNormalization] -> [Relu] -> Conv, and MatMul -> Add bias -> element-wise ops
// with scalar constants -> MatMul, where every weight and vector is used once.
std::vector<PrunableDimension> prunable_dimensions(const Graph& graph);
// Per-unit importance: producing weights' L2 norm (times |gamma| / sqrt(var + eps) with a
// batch norm) times consuming weights' L2 norm.
at::Tensor unit_importance(const Graph& graph, const PrunableDimension& dim);
// 1 for the round((1 - ratio) x units per group) most important units of each group, else 0.
at::Tensor structured_keep_mask(const at::Tensor& importance, int64_t groups, double ratio);
// Zeroes the producing weights and `zeroed` vectors of masked units (in place).
void apply_unit_mask(Graph& graph, const PrunableDimension& dim, const at::Tensor& mask);
// Cuts masked units out of every tensor of the dimension.
void remove_units(Graph& graph, const PrunableDimension& dim, const at::Tensor& mask);

}  // namespace edgeforge
