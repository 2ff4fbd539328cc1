// edgeforge/runtime.h: the reference executor.
//
// Runs a Graph node by node with the ATen kernels of the op registry (edgeforge/ops.h). In float
// mode every op is differentiable, so training uses this same executor. Kernels are prepared
// once at construction; a run only moves tensors between slots.
//
//   Executor exec(graph);                       // throws Error for an op the runtime lacks
//   RunOptions opts; opts.threads = 1;
//   std::vector<at::Tensor> outs = exec.run({input}, opts);
//
// The executor keeps a reference to `graph`: the graph must outlive it, and in-place updates to
// initializer tensors (an optimizer step) are seen by the next run.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "edgeforge/graph.h"
#include "edgeforge/ops.h"

namespace edgeforge {

// Time spent per node, accumulated over runs (RunOptions::profile).
struct NodeProfile {
  std::vector<std::string> nodes;  // in execution order
  std::vector<std::string> op_types;
  std::vector<double> ms;          // total milliseconds per node
  int64_t runs = 0;
};

struct RunOptions {
  int threads = 1;        // intra-op threads for this run; set explicitly, never a default
  bool training = false;  // batch norm on batch statistics, dropout active
  bool freeze_batch_norm = false;  // with training: batch norm keeps its running statistics
  NodeProfile* profile = nullptr;  // when set, each node's wall time is added to it
};

class Executor {
 public:
  explicit Executor(const Graph& graph);

  // Runs with the graph inputs in declaration order; returns the graph outputs in order.
  // Throws Error naming the input when the count, dtype or rank does not match.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const RunOptions& opts);

  // Like run(), and also returns the named intermediate values in `fetch`.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const RunOptions& opts,
                              const std::vector<std::string>& fetch,
                              std::map<std::string, at::Tensor>* fetched);

  const Graph& graph() const { return *graph_; }

 private:
  struct Step {
    const Node* node;
    Kernel kernel;
    std::vector<int> input_slots;  // -1 for an omitted optional input
    std::vector<int> output_slots;
    TensorList in;   // reused between runs
    TensorList out;
    // An exact GELU (Div, Erf, Add, Mul, Mul) starting at this step spans `fused_span` steps:
    // training runs them as one at::gelu from slot `fused_input` into `fused_output`, an eighth
    // of a text model's step in elementwise passes and their gradients. Inference runs the
    // nodes as they are, so the reference stays the graph's own arithmetic.
    size_t fused_span = 0;
    int fused_input = -1, fused_output = -1;
    std::vector<int> fused_inside;  // the slots only the span reads and writes
  };
  const Graph* graph_;
  std::map<std::string, int> slot_of_;
  std::vector<at::Tensor> constants_;  // initializer values by slot (undefined otherwise)
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  std::vector<Step> steps_;
  std::vector<int> last_use_;  // index of the last step reading each slot, to free early
};

// Sets the intra-op thread count for the calling thread's ATen work when it differs.
void set_threads(int threads);

}  // namespace edgeforge
