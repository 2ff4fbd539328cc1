// Helpers for op tests: a one-node graph builder run with edgeforge::Executor, a seeding
// fixture, tensor comparison and error-message checks.
//
//   at::Tensor y = OneNode("Conv").input(x).constant(w).attr("group", int64_t{2}).run();
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "edgeforge/error.h"
#include "edgeforge/graph.h"
#include "edgeforge/runtime.h"

namespace edgeforge::testing {

// Seeds ATen's generator so every test draws the same tensors on every run.
class SeededTest : public ::testing::Test {
 protected:
  void SetUp() override { at::manual_seed(0); }
};

// One node named "node" of `op_type` whose inputs are graph inputs (fed at run time) or
// initializers (constants the kernel may read at prepare time), in the order they are added.
class OneNode {
 public:
  explicit OneNode(std::string op_type) : op_type_(std::move(op_type)) {}

  OneNode& input(at::Tensor value) {
    inputs_.push_back({next_name(), std::move(value), false});
    return *this;
  }
  OneNode& constant(at::Tensor value) {
    inputs_.push_back({next_name(), std::move(value), true});
    return *this;
  }
  // An omitted optional input ("" in the node's input list).
  OneNode& omitted() {
    inputs_.push_back({"", at::Tensor(), false});
    return *this;
  }
  OneNode& attr(const std::string& key, Attribute value) {
    attributes_[key] = std::move(value);
    return *this;
  }
  OneNode& outputs(int n) {
    num_outputs_ = n;
    return *this;
  }

  // Builds the graph (kept alive by this object, as the executor requires) and prepares it.
  Executor& prepare() {
    graph_ = Graph("one_node");
    std::vector<std::string> names;
    for (const Slot& s : inputs_) {
      names.push_back(s.name);
      if (s.name.empty()) continue;
      if (s.is_constant) {
        graph_.add_initializer(s.name, s.value);
      } else {
        std::vector<Dim> shape(s.value.sizes().begin(), s.value.sizes().end());
        graph_.add_input({s.name, s.value.scalar_type(), shape});
      }
    }
    std::vector<std::string> outs;
    for (int i = 0; i < num_outputs_; ++i) outs.push_back("out" + std::to_string(i));
    Node node(op_type_, "node", names, outs);
    node.attributes = attributes_;
    graph_.add_node(std::move(node));
    for (const std::string& o : outs) graph_.add_output({o, at::kFloat, {}, false});
    executor_ = std::make_unique<Executor>(graph_);
    return *executor_;
  }

  std::vector<at::Tensor> run_all(bool training = false) {
    Executor& exec = prepare();
    std::vector<at::Tensor> feeds;
    for (const Slot& s : inputs_)
      if (!s.name.empty() && !s.is_constant) feeds.push_back(s.value);
    RunOptions opts;
    opts.threads = 1;
    opts.training = training;
    return exec.run(feeds, opts);
  }
  at::Tensor run(bool training = false) { return run_all(training).at(0); }

  Graph& graph() { return graph_; }

 private:
  struct Slot {
    std::string name;
    at::Tensor value;
    bool is_constant;
  };
  std::string next_name() { return "in" + std::to_string(inputs_.size()); }

  std::string op_type_;
  std::vector<Slot> inputs_;
  std::map<std::string, Attribute> attributes_;
  int num_outputs_ = 1;
  Graph graph_;
  std::unique_ptr<Executor> executor_;
};

// A float tensor of `shape` filled row-major with `values`.
inline at::Tensor tensor_of(std::initializer_list<float> values, std::vector<int64_t> shape) {
  return at::tensor(std::vector<float>(values), at::kFloat).reshape(shape);
}
inline at::Tensor ints_of(std::vector<int64_t> values) { return at::tensor(values, at::kLong); }

// Same shape and every element within `tolerance` (absolute plus relative).
inline void expect_close(const at::Tensor& actual, const at::Tensor& expected,
                         double tolerance = 1e-5) {
  ASSERT_TRUE(actual.defined());
  ASSERT_EQ(actual.sizes(), expected.sizes());
  at::Tensor a = actual.detach().to(at::kDouble);
  at::Tensor e = expected.detach().to(at::kDouble);
  const double worst = a.numel() == 0 ? 0.0 : (a - e).abs().max().item<double>();
  EXPECT_TRUE(at::allclose(a, e, tolerance, tolerance))
      << "largest difference " << worst << "\nactual:\n"
      << a << "\nexpected:\n"
      << e;
}

// Same shape, dtype and values, for integer and bool results.
inline void expect_equal(const at::Tensor& actual, const at::Tensor& expected) {
  ASSERT_TRUE(actual.defined());
  ASSERT_EQ(actual.sizes(), expected.sizes());
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type());
  EXPECT_TRUE(at::equal(actual, expected)) << "actual:\n" << actual << "\nexpected:\n" << expected;
}

// `fn` throws edgeforge::Error with one line containing every piece of `parts`.
inline void expect_error(const std::function<void()>& fn, std::vector<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    for (const std::string& p : parts)
      EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
    return;
  }
  ADD_FAILURE() << "no edgeforge::Error thrown";
}

}  // namespace edgeforge::testing
