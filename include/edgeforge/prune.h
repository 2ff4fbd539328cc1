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

// A set of units (channels, feed-forward units) that can only be removed together: every tensor
// holding one slice per unit. Found by a dependency analysis of the graph (as Torch-Pruning's
// DepGraph does): starting from each weighted node that makes units (Conv, MatMul, Gemm with a
// constant weight), the units are followed through per-unit ops (bias adds, batch norm,
// activations, pooling, Flatten after global pooling, depthwise convolutions) and joined where two
// sets meet element-wise (residual adds, squeeze-excitation and SiLU products), up to the
// weighted nodes that read them. A set is prunable when every op touching it is one of these,
// no graph output carries it, each of its weights is a constant used once, and a removed unit is
// exactly 0 wherever a weighted node reads it (so cutting it changes nothing).
struct PrunableDimension {
  struct Slice {
    std::string tensor;  // an initializer
    int64_t axis = 0;    // the units' axis in it
    int64_t groups = 1;  // > 1: a grouped conv's weight [out, units / groups, k, k] reading them
  };
  struct Norm {
    std::string scale, var;  // a batch norm's gamma and running variance on the units
    double epsilon = 1e-5;
  };
  std::string name;                               // the first node making the units
  std::vector<std::string> producers, consumers;  // node names, in graph order
  int64_t units = 0;
  int64_t groups = 1;  // grouped convs make or read them: each group keeps as many units
  std::vector<Slice> produced;  // weights making the units: zeroed by the mask, cut along axis
  std::vector<Slice> consumed;  // weights reading the units: cut along axis
  std::vector<std::string> zeroed;        // per-unit vectors zeroed with the unit (biases, gamma, beta)
  std::vector<std::string> kept_vectors;  // per-unit vectors only cut (running mean and variance)
  std::vector<Norm> norms;                // for importance
  std::vector<std::string> depthwise;     // depthwise convs on the units: group = units kept
};

// Every prunable set of units of `graph`, in the order of their first producer.
std::vector<PrunableDimension> prunable_dimensions(const Graph& graph);
// Per-unit importance: the L2 norm of the unit's slices of every producing weight (times the
// mean |gamma| / sqrt(var + eps) of its batch norms) times that of every consuming weight.
at::Tensor unit_importance(const Graph& graph, const PrunableDimension& dim);
// 1 for the round((1 - ratio) x units per group) most important units of each group, else 0.
at::Tensor structured_keep_mask(const at::Tensor& importance, int64_t groups, double ratio);
// Zeroes the producing weights and `zeroed` vectors of masked units (in place).
void apply_unit_mask(Graph& graph, const PrunableDimension& dim, const at::Tensor& mask);
// Cuts masked units out of every tensor of the dimension.
void remove_units(Graph& graph, const PrunableDimension& dim, const at::Tensor& mask);

}  // namespace edgeforge
