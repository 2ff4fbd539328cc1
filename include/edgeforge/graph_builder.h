// edgeforge/graph_builder.h: emits ONNX-shaped graphs from C++ with scoped, meaningful names.
//
// GraphBuilder appends nodes, weights and constants to a Graph. A node is named
// "<scope>.<name>" and its output value "<scope>.<name>.out", so every value is a stable,
// readable cut point ("stage3.block2.conv1.out"). Weights are initializers named
// "<scope>.<name>.weight" / ".bias"; non-trainable constants (GELU's sqrt(2), a Reshape shape, a
// Dropout ratio) are Constant nodes, so every floating-point initializer except batch-norm
// running statistics is a trainable parameter. All randomness comes from one caller-seeded
// generator: the same seed and the same sequence of calls give bit-identical weights. Only ONNX
// opset-17 ops of the default domain are emitted, with their attributes written out in full.
//
//   Graph g("tiny");
//   GraphBuilder b(g, seeded_generator(0));
//   std::string x = b.input("input", at::kFloat, {Dim::symbol("N"), 1, 28, 28});
//   {
//     auto s = b.scope("stem");
//     x = b.conv("conv", x, 1, 16, 3, 1, 1);  // node "stem.conv", weight "stem.conv.weight"
//     x = b.relu("relu", b.batch_norm("bn", x, 16));
//   }
//   x = b.rename_output(x, "stem.out");         // "stem.relu.out" becomes "stem.out"
//
// A node or value name that is already taken throws Error (the graph may come from a user's
// file); other misuse (reading an undefined value, renaming a consumed one) is a bug in the
// caller and fails an EF_ASSERT.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "edgeforge/graph.h"

namespace edgeforge {

// A CPU generator with a fixed seed, for GraphBuilder and weight initialisation.
at::Generator seeded_generator(uint64_t seed);

// How a weight is drawn. Biases are zero except with kLinearUniform, which draws them like
// PyTorch's nn.Linear does.
struct WeightInit {
  enum class Kind {
    kKaimingNormalFanOut,  // N(0, sqrt(2 / fan_out)): torchvision's ResNet conv init
    kLinearUniform,        // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's nn.Linear default
    kNormal,               // N(0, std): BERT's initializer_range (std 0.02)
  };
  Kind kind = Kind::kLinearUniform;
  float std = 0.0f;  // kNormal only

  static WeightInit kaiming_normal_fan_out() { return {Kind::kKaimingNormalFanOut, 0.0f}; }
  static WeightInit linear_uniform() { return {Kind::kLinearUniform, 0.0f}; }
  static WeightInit normal(float std) { return {Kind::kNormal, std}; }
};

class GraphBuilder {
 public:
  // Appends to `graph`, which must outlive the builder; names already in it are taken.
  // `generator` is used for every random draw, in call order.
  GraphBuilder(Graph& graph, at::Generator generator);

  Graph& graph() { return *graph_; }

  // Prefixes names with `name` until the returned guard is destroyed; scopes nest with ".".
  class [[nodiscard]] Scope {
   public:
    Scope(Scope&& other) noexcept;
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    Scope& operator=(Scope&&) = delete;
    ~Scope();

   private:
    friend class GraphBuilder;
    Scope(GraphBuilder* builder, size_t saved_length) : builder_(builder), saved_(saved_length) {}
    GraphBuilder* builder_;
    size_t saved_;
  };
  Scope scope(const std::string& name);
  // "<scope>.<name>", or `name` at the top level.
  std::string scoped(const std::string& name) const;
  const std::string& current_scope() const { return scope_; }

  // ---- graph interface (names taken as given, not scoped) ----
  // Declares a graph input; returns its name.
  std::string input(const std::string& name, at::ScalarType dtype, std::vector<Dim> shape);
  // Declares `value` a graph output with the given type and shape.
  void output(const std::string& value, at::ScalarType dtype, std::vector<Dim> shape);
  // Renames `value`, an output of the most recently added node (so nothing reads it yet), to
  // `new_name`; returns `new_name`. Gives block and stage outputs their published names.
  std::string rename_output(const std::string& value, const std::string& new_name);

  // ---- weights and constants (scoped) ----
  // Adds an initializer "<scope>.<name>"; returns its name.
  std::string parameter(const std::string& name, at::Tensor value);
  // A Constant node "<scope>.<name>" whose output value has the same name.
  std::string constant(const std::string& name, at::Tensor value);
  std::string scalar(const std::string& name, float value);  // 0-d float
  std::string ints(const std::string& name, const std::vector<int64_t>& values);  // 1-D int64

  // ---- ops (scoped): node "<scope>.<name>", result "<scope>.<name>.out" ----
  // Any op: a node with `num_outputs` outputs "<node>.out", "<node>.out1", ...; set attributes
  // on the returned node, which stays valid until the next node is added.
  Node& op(const std::string& op_type, const std::string& name, std::vector<std::string> inputs,
           int num_outputs = 1);

  // Conv with weight [out_ch, in_ch / groups, kernel, kernel] and square stride and padding.
  std::string conv(const std::string& name, const std::string& x, int64_t in_ch, int64_t out_ch,
                   int64_t kernel, int64_t stride = 1, int64_t pad = 0, int64_t groups = 1,
                   bool bias = false,
                   WeightInit init = WeightInit::kaiming_normal_fan_out());
  // BatchNormalization in inference form (running statistics 0 and 1); gamma 1, or 0 when
  // `zero_gamma` (the last BN of a residual branch, so each block starts as the identity).
  std::string batch_norm(const std::string& name, const std::string& x, int64_t channels,
                         bool zero_gamma = false, float epsilon = 1e-5f);
  // Gemm y = x W^T + b with W [out, in] (transB = 1); x must be 2-D [N, in].
  std::string gemm(const std::string& name, const std::string& x, int64_t in, int64_t out,
                   WeightInit init = WeightInit::linear_uniform(), bool bias = true);
  // MatMul with W [in, out] then Add b, for inputs of any rank [..., in]: node
  // "<name>.matmul" (so a quantizer sees a MatMul with a weight) and "<name>.bias_add".
  std::string linear(const std::string& name, const std::string& x, int64_t in, int64_t out,
                     WeightInit init = WeightInit::linear_uniform());
  // Gather of rows of a [num, dim] table "<name>.weight": [...] int64 ids -> [..., dim].
  std::string embedding(const std::string& name, const std::string& ids, int64_t num,
                        int64_t dim, WeightInit init);
  // LayerNormalization over the last axis, scale 1 and bias 0.
  std::string layer_norm(const std::string& name, const std::string& x, int64_t dim,
                         float epsilon = 1e-5f);
  // Exact GELU, x * 0.5 * (1 + Erf(x / sqrt(2))): opset 17 has no Gelu op.
  std::string gelu(const std::string& name, const std::string& x);
  // Dropout with its ratio as a constant input; training_mode is left out so the runtime's
  // training flag decides (ONNX: omitted means inference, where Dropout is the identity).
  std::string dropout(const std::string& name, const std::string& x, float ratio);

  std::string relu(const std::string& name, const std::string& x);
  std::string tanh(const std::string& name, const std::string& x);
  std::string erf(const std::string& name, const std::string& x);
  std::string add(const std::string& name, const std::string& a, const std::string& b);
  std::string sub(const std::string& name, const std::string& a, const std::string& b);
  std::string mul(const std::string& name, const std::string& a, const std::string& b);
  std::string div(const std::string& name, const std::string& a, const std::string& b);
  std::string matmul(const std::string& name, const std::string& a, const std::string& b);
  std::string softmax(const std::string& name, const std::string& x, int64_t axis = -1);
  // Reshape to `shape` (a 0 copies the input's size, -1 is inferred; allowzero = 0).
  std::string reshape(const std::string& name, const std::string& x,
                      const std::vector<int64_t>& shape);
  std::string transpose(const std::string& name, const std::string& x,
                        const std::vector<int64_t>& perm);
  std::string gather(const std::string& name, const std::string& data,
                     const std::string& indices, int64_t axis = 0);
  std::string unsqueeze(const std::string& name, const std::string& x,
                        const std::vector<int64_t>& axes);
  std::string cast(const std::string& name, const std::string& x, at::ScalarType to);
  std::string global_average_pool(const std::string& name, const std::string& x);
  std::string flatten(const std::string& name, const std::string& x, int64_t axis = 1);
  // Shape(x)[start:end] as a 1-D int64 tensor (opset-15 start/end attributes).
  std::string shape(const std::string& name, const std::string& x, int64_t start, int64_t end);
  // Range(start, limit, delta) of 0-d values: [start, start + delta, ...) below limit.
  std::string range(const std::string& name, const std::string& start, const std::string& limit,
                    const std::string& delta);
  // Slice with starts, ends and axes given as value names (1-D int64), steps 1.
  std::string slice(const std::string& name, const std::string& data, const std::string& starts,
                    const std::string& ends, const std::string& axes);

 private:
  void claim_node_name(const std::string& name);
  void claim_value_name(const std::string& name);
  at::Tensor draw(std::vector<int64_t> shape, const WeightInit& init, int64_t fan_in,
                  int64_t fan_out);

  Graph* graph_;
  at::Generator generator_;
  std::string scope_;
  std::set<std::string> node_names_;
  std::set<std::string> value_names_;
};

}  // namespace edgeforge
