// The validation pass every model goes through as it enters (load_onnx, graph_from_onnx_bytes):
// what the ONNX checker leaves to a runtime. Each check is one that, skipped, let a model crash
// a command or an agent (issue 22): a Conv with strides 0 divided by zero in the inference plan,
// a graph with no outputs was dereferenced, NaN scales gave an accuracy.
#include <ATen/ATen.h>

#include <limits>
#include <set>
#include <string>

#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/ops.h"
#include "edgeforge/util.h"

namespace edgeforge {
namespace {

// Bytes of one tensor of `v`'s type and fixed dimensions (symbolic and unknown ones count as 1),
// or -1 when the count overflows int64.
int64_t fixed_bytes(const ValueInfo& v) {
  int64_t n = static_cast<int64_t>(c10::elementSize(v.dtype));
  for (const Dim& d : v.shape) {
    if (!d.is_fixed()) continue;
    if (d.size != 0 && n > std::numeric_limits<int64_t>::max() / d.size) return -1;
    n *= d.size;
  }
  return n;
}

std::string gigabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

// Throws Error unless one sample of `v` (its fixed dimensions; symbolic ones count as 1) fits in
// this host's memory without overflowing a 64-bit size; `where` names it ("model 'x': input").
void check_fits_in_memory(const ValueInfo& v, const std::string& where) {
  const int64_t bytes = fixed_bytes(v);
  const int64_t limit = host_memory_bytes().value_or(std::numeric_limits<int64_t>::max());
  EF_CHECK(bytes >= 0 && bytes <= limit, where, " '", v.name, "' has a shape whose one sample ",
           bytes < 0 ? std::string("overflows a 64-bit size") : "needs " + gigabytes(bytes),
           ", more than this host's ", gigabytes(limit), " of memory");
}

}  // namespace

void validate_model(const Graph& graph, const std::string& label) {
  try {
    graph.validate();
  } catch (const Error& e) {
    throw Error(label + ": " + e.what());
  }
  EF_CHECK(!graph.outputs().empty(), label, ": the graph has no outputs, so there is nothing to run");
  std::set<std::string> inputs;
  for (const ValueInfo& v : graph.inputs()) {
    inputs.insert(v.name);
    check_fits_in_memory(v, label + ": input");
  }
  // A graph without nodes that passes its inputs through is the form of the agents'
  // preprocessor parts (their inputs and metadata, src/agent); it computes nothing.
  const bool pass_through = graph.nodes().empty();
  for (const ValueInfo& v : graph.outputs()) {
    EF_CHECK(pass_through || !inputs.count(v.name), label, ": output '", v.name,
             "' is also a graph input (the ONNX checker rejects this; an output must be computed)");
    check_fits_in_memory(v, label + ": output");
  }
  // Each node's kernel is prepared once, which parses and range-checks its attributes and
  // constant inputs (strides, pads, groups, axes, QDQ scales) exactly as the runtime will:
  // every fast path (the inference plan, int8 lowering, constant folding) runs only on nodes
  // that passed. Ops the runtime lacks are left to the commands, which name them.
  const OpRegistry& registry = OpRegistry::global();
  int index = 0;
  for (const Node& node : graph.nodes()) {
    const std::string where = label + ": node " + std::to_string(index++) + " (" + node.describe() + ")";
    const OpDef* def = registry.find(node.op_type, node.domain);
    if (def == nullptr) continue;
    const int n_in = static_cast<int>(node.inputs.size());
    EF_CHECK(n_in >= def->min_inputs && n_in <= def->max_inputs, where, " has ", n_in,
             " inputs, expected ", def->min_inputs, " to ", def->max_inputs);
    try {
      (void)def->prepare(node, graph);
    } catch (const Error& e) {
      throw Error(label + ": " + e.what());
    } catch (const std::exception& e) {
      throw Error(where + ": " + error_line(e));
    }
  }
}

}  // namespace edgeforge
