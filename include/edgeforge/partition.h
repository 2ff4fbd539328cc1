// edgeforge/partition.h: cutting a model into two standalone ONNX graphs, part 1 (run on the
// device side) and part 2 (the rest), and the tensors that cross between them.
//
// A cut is named by a value: part 1 is every node up to and including the one that produces
// it (in the graph's topological order), part 2 every node after. What crosses is every value
// part 1 computes that part 2 (or the graph's output) reads, and every model input part 2 reads
// directly (the attention mask of a text model cut after its embeddings, say). The study's cut
// points are named values of the zoo models: "stage3.out" (image, after the third stage) and
// "embeddings.out" (text).
//
//   std::vector<CutPoint> cuts = list_cut_points(graph);   // every valid cut, in graph order
//   Partition p = partition_graph(graph, "stage3.out");    // Error naming near valid cuts
//   // running p.part1, then p.part2 on its outputs (and the model inputs it reads) gives the
//   // whole graph's outputs
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge {

struct CrossingTensor {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;  // for one sample (batch 1, sequence length as given)
  int64_t bytes = 0;
  bool model_input = false;  // a model input part 2 reads, not something part 1 computed
};

struct CutPoint {
  std::string value;    // the value the cut follows
  size_t position = 0;  // index of the last node of part 1
  std::vector<CrossingTensor> crossing;
  int64_t bytes = 0;  // total crossing bytes for one sample
};

struct Partition {
  Graph part1, part2;
  CutPoint cut;
};

// Every valid cut of `graph`, one per node output (except the last node's), with the crossing
// tensors' shapes and bytes for one sample; `seq_len` fixes a symbolic sequence length.
std::vector<CutPoint> list_cut_points(const Graph& graph, int64_t seq_len = 128);

// The study's cut point of a zoo model ("stage3.out" or "embeddings.out"), or "" when the
// graph has neither. In a quantized (QDQ) model it is the value's QuantizeLinear output
// ("stage3.out.quantized"), so the tensor crosses as uint8.
// With `why` given, a model without those values gets default_cut_point's choice, and `why`
// says how it was chosen.
std::string study_cut_point(const Graph& graph, int64_t seq_len = 128, std::string* why = nullptr);

// A sensible cut for any model: for a text model (a Gather of an initializer by integer model
// input), after the embeddings (the cut sending the fewest bytes between the lookup and the
// first MatMul or Gemm after it, the latest of equals);
// otherwise the cut sending the fewest bytes between half and 85% of the nodes, the latest of
// equals. In a QDQ model, the value's QuantizeLinear output where it has one. "" when the model
// has no such cut; `why` (optional) says how it chose or why there is none.
std::string default_cut_point(const Graph& graph, int64_t seq_len = 128, std::string* why = nullptr);

// Splits `graph` after `value`. Error when `value` does not exist (naming the nearest valid
// cut points), or cannot cut the graph (a model input, a constant, the last node's output).
Partition partition_graph(const Graph& graph, const std::string& value, int64_t seq_len = 128);

}  // namespace edgeforge
