#include "edgeforge/graph.h"

#include <ATen/ATen.h>

#include <set>

#include "edgeforge/error.h"

namespace edgeforge {

namespace {
template <typename T>
const T& get_attr(const Node& node, const std::string& key, const char* type_name) {
  auto it = node.attributes.find(key);
  EF_CHECK(it != node.attributes.end(), node.describe(), ": missing attribute '", key, "'");
  const T* v = std::get_if<T>(&it->second);
  EF_CHECK(v != nullptr, node.describe(), ": attribute '", key, "' is not of type ", type_name);
  return *v;
}
}  // namespace

int64_t Node::attr_int(const std::string& key) const {
  return get_attr<int64_t>(*this, key, "int");
}
int64_t Node::attr_int(const std::string& key, int64_t fallback) const {
  return has(key) ? attr_int(key) : fallback;
}
float Node::attr_float(const std::string& key) const {
  auto it = attributes.find(key);
  if (it != attributes.end()) {
    if (const int64_t* i = std::get_if<int64_t>(&it->second)) return static_cast<float>(*i);
  }
  return get_attr<float>(*this, key, "float");
}
float Node::attr_float(const std::string& key, float fallback) const {
  return has(key) ? attr_float(key) : fallback;
}
std::string Node::attr_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_attr<std::string>(*this, key, "string") : fallback;
}
std::vector<int64_t> Node::attr_ints(const std::string& key) const {
  return get_attr<std::vector<int64_t>>(*this, key, "ints");
}
std::vector<int64_t> Node::attr_ints(const std::string& key,
                                     std::vector<int64_t> fallback) const {
  return has(key) ? attr_ints(key) : fallback;
}
std::vector<float> Node::attr_floats(const std::string& key) const {
  return get_attr<std::vector<float>>(*this, key, "floats");
}
at::Tensor Node::attr_tensor(const std::string& key) const {
  return get_attr<at::Tensor>(*this, key, "tensor");
}

std::string Node::describe() const { return op_type + " node '" + name + "'"; }

Node& Graph::add_node(Node n) {
  nodes_.push_back(std::move(n));
  return nodes_.back();
}

void Graph::add_initializer(const std::string& name, at::Tensor value) {
  initializers_[name] = std::move(value);
}

const Node* Graph::find_node(const std::string& name) const {
  for (const Node& n : nodes_)
    if (n.name == name) return &n;
  return nullptr;
}

const Node* Graph::producer(const std::string& value) const {
  for (const Node& n : nodes_)
    for (const std::string& o : n.outputs)
      if (o == value) return &n;
  return nullptr;
}

void Graph::validate() const {
  std::set<std::string> defined;
  for (const ValueInfo& v : inputs_) {
    EF_CHECK(!v.name.empty(), "graph '", name_, "': an input has an empty name");
    EF_CHECK(defined.insert(v.name).second, "graph '", name_, "': input '", v.name,
             "' is defined twice");
  }
  for (const auto& [name, t] : initializers_) defined.insert(name);
  std::set<std::string> node_names;
  for (const Node& n : nodes_) {
    EF_CHECK(!n.op_type.empty(), "graph '", name_, "': node '", n.name, "' has no op type");
    EF_CHECK(n.name.empty() || node_names.insert(n.name).second, "graph '", name_,
             "': two nodes are named '", n.name, "'");
    for (const std::string& in : n.inputs) {
      EF_CHECK(in.empty() || defined.count(in), "graph '", name_, "': ", n.describe(),
               " reads '", in, "', which no earlier node, input or initializer defines");
    }
    for (const std::string& out : n.outputs) {
      if (out.empty()) continue;
      EF_CHECK(defined.insert(out).second, "graph '", name_, "': value '", out,
               "' is produced twice (by ", n.describe(), ")");
    }
  }
  for (const ValueInfo& v : outputs_) {
    EF_CHECK(defined.count(v.name), "graph '", name_, "': output '", v.name,
             "' is never produced");
  }
}

int64_t Graph::parameter_count() const {
  int64_t count = 0;
  for (const auto& [name, t] : initializers_)
    if (t.defined() && at::isFloatingType(t.scalar_type())) count += t.numel();
  return count;
}

Graph Graph::clone() const {
  Graph g = *this;
  for (auto& [name, t] : g.initializers_)
    if (t.defined()) t = t.detach().clone();
  for (Node& n : g.nodes_)
    for (auto& [key, value] : n.attributes)
      if (auto* t = std::get_if<at::Tensor>(&value); t != nullptr && t->defined())
        *t = t->detach().clone();
  return g;
}

}  // namespace edgeforge
