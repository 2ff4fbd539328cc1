// edgeforge/graph.h: the one model representation, an ONNX-shaped graph.
//
// A Graph is named values, nodes with ONNX op types and attributes, initializers (weights) held
// as at::Tensor, graph inputs and outputs, and model metadata. Op names and semantics follow the
// ONNX operator set (opset 17), so ONNX import and export (edgeforge/onnx_io.h) are a direct
// mapping. Nodes are kept in topological order.
//
//   Graph g("tiny");
//   g.add_input({"x", at::kFloat, {Dim::symbol("N"), Dim(4)}});
//   g.add_initializer("fc.weight", at::randn({2, 4}));
//   g.add_node(Node("Gemm", "fc", {"x", "fc.weight"}, {"logits"}).set("transB", int64_t{1}));
//   g.add_output({"logits", at::kFloat, {Dim::symbol("N"), Dim(2)}});
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace edgeforge {

// One dimension of a value's shape: a fixed size, a named symbolic size ("N"), or unknown.
struct Dim {
  int64_t size = -1;  // -1 when not fixed
  std::string param;  // symbolic name, e.g. "N" for the batch
  Dim() = default;
  Dim(int64_t s) : size(s) {}  // NOLINT: implicit from a size is the common case
  static Dim symbol(std::string name) {
    Dim d;
    d.param = std::move(name);
    return d;
  }
  bool is_fixed() const { return size >= 0; }
};

// A graph input, output or intermediate value with its element type and shape.
struct ValueInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<Dim> shape;
  bool has_shape = true;  // false when the rank is unknown
};

// An ONNX attribute value.
using Attribute = std::variant<int64_t, float, std::string, at::Tensor, std::vector<int64_t>,
                               std::vector<float>, std::vector<std::string>>;

struct Node {
  std::string op_type;               // ONNX op type, e.g. "Conv"
  std::string name;                  // unique, meaningful: "stage3.block1.conv1"
  std::vector<std::string> inputs;   // value names; "" marks an omitted optional input
  std::vector<std::string> outputs;  // value names
  std::map<std::string, Attribute> attributes;
  std::string domain;  // "" for the default ONNX domain

  Node() = default;
  Node(std::string op, std::string node_name, std::vector<std::string> ins,
       std::vector<std::string> outs)
      : op_type(std::move(op)), name(std::move(node_name)), inputs(std::move(ins)),
        outputs(std::move(outs)) {}

  Node& set(const std::string& key, Attribute value) {
    attributes[key] = std::move(value);
    return *this;
  }
  bool has(const std::string& key) const { return attributes.count(key) != 0; }

  // Typed attribute access. The versions without a default throw edgeforge::Error naming the
  // node and attribute when it is missing or has another type.
  int64_t attr_int(const std::string& key) const;
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key) const;
  std::vector<int64_t> attr_ints(const std::string& key, std::vector<int64_t> fallback) const;
  std::vector<float> attr_floats(const std::string& key) const;
  at::Tensor attr_tensor(const std::string& key) const;

  // True for an op of ONNX's default domain ("" or "ai.onnx") with this type: what graph
  // passes match on, so a node of another domain with the same name never passes for it.
  bool is(const char* type) const {
    return op_type == type && (domain.empty() || domain == "ai.onnx");
  }

  // "Conv 'stage1.conv1'": how errors name a node.
  std::string describe() const;
};

class Graph {
 public:
  explicit Graph(std::string name = "edgeforge") : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

  std::vector<ValueInfo>& inputs() { return inputs_; }
  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  std::vector<ValueInfo>& outputs() { return outputs_; }
  const std::vector<ValueInfo>& outputs() const { return outputs_; }
  std::vector<Node>& nodes() { return nodes_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  // Weights and constants by value name, in insertion order of their names.
  std::map<std::string, at::Tensor>& initializers() { return initializers_; }
  const std::map<std::string, at::Tensor>& initializers() const { return initializers_; }
  // Shapes of intermediate values, filled by shape inference (onnx_io.h: infer_shapes).
  std::map<std::string, ValueInfo>& value_info() { return value_info_; }
  const std::map<std::string, ValueInfo>& value_info() const { return value_info_; }
  // Model-level key/value metadata (ONNX metadata_props), e.g. "edgeforge.dataset".
  std::map<std::string, std::string>& metadata() { return metadata_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  void add_input(ValueInfo v) { inputs_.push_back(std::move(v)); }
  void add_output(ValueInfo v) { outputs_.push_back(std::move(v)); }
  Node& add_node(Node n);
  void add_initializer(const std::string& name, at::Tensor value);

  bool has_initializer(const std::string& name) const { return initializers_.count(name) != 0; }
  const Node* find_node(const std::string& name) const;
  // The node that produces `value`, or nullptr for graph inputs and initializers.
  const Node* producer(const std::string& value) const;

  // Checks structure: unique node names, every input defined before use, outputs produced.
  // Throws edgeforge::Error naming the first problem.
  void validate() const;

  // Number of scalar parameters in floating-point initializers.
  int64_t parameter_count() const;

  // A copy whose initializers have their own storage. A plain copy shares initializer tensors
  // (cheap, and right for read-only use); anything that trains or edits weights in place
  // works on a clone, so the model it came from stays as it was.
  Graph clone() const;

 private:
  std::string name_;
  std::vector<ValueInfo> inputs_;
  std::vector<ValueInfo> outputs_;
  std::vector<Node> nodes_;
  std::map<std::string, at::Tensor> initializers_;
  std::map<std::string, ValueInfo> value_info_;
  std::map<std::string, std::string> metadata_;
};

// Names of metadata keys edgeforge writes into every model it produces.
inline constexpr const char* kMetaDataset = "edgeforge.dataset";        // "fashion-mnist" | "spam"
inline constexpr const char* kMetaModel = "edgeforge.model";            // zoo name, e.g. "resnet"
inline constexpr const char* kMetaTokenizer = "edgeforge.tokenizer";    // base64 SentencePiece model
inline constexpr const char* kMetaPreprocess = "edgeforge.preprocess";  // JSON, e.g. mean and std
inline constexpr const char* kMetaRecipe = "edgeforge.recipe";          // JSON of the train recipe
inline constexpr const char* kMetaLabels = "edgeforge.labels";          // JSON array of class names

}  // namespace edgeforge
