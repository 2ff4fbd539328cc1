#include <ATen/ATen.h>

#include <algorithm>

#include "edgeforge/error.h"
#include "edgeforge/ops.h"
#include "util.h"

namespace edgeforge {

OpRegistry& OpRegistry::global() {
  static OpRegistry registry;
  return registry;
}

namespace {
std::string canonical_domain(const std::string& domain) {
  return domain == "ai.onnx" ? std::string() : domain;
}
}  // namespace

void OpRegistry::add(OpDef def) {
  def.domain = canonical_domain(def.domain);
  EF_ASSERT(find(def.op_type, def.domain) == nullptr, "op registered twice: ", def.op_type);
  defs_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& op_type, const std::string& domain) const {
  const std::string d = canonical_domain(domain);
  for (const OpDef& def : defs_)
    if (def.op_type == op_type && def.domain == d) return &def;
  return nullptr;
}

std::vector<std::string> OpRegistry::op_types() const {
  std::vector<std::string> names;
  for (const OpDef& d : defs_)
    if (d.domain.empty()) names.push_back(d.op_type);
  std::sort(names.begin(), names.end());
  return names;
}

at::Tensor constant_input(const Graph& graph, const std::string& value) {
  if (value.empty()) return {};
  auto it = graph.initializers().find(value);
  if (it != graph.initializers().end()) return it->second;
  const Node* p = graph.producer(value);
  // Any value attribute counts, not only `value`: exporters write scalars as value_float/value_int.
  if (p != nullptr && p->is("Constant"))
    return ops::constant_node_value(*p);
  return {};
}

}  // namespace edgeforge
