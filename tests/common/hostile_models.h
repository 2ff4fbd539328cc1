// Models a hostile or careless user could send (issue 22): a valid model's ONNX bytes with one
// thing broken that the ONNX checker lets through. Each is refused by the validation pass every
// entry point runs (validate_model, edgeforge/onnx_io.h); the tests of the loader, the CLI and
// the agents use the same list.
#pragma once

#include <onnx/onnx_pb.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "edgeforge/onnx_io.h"
#include "test_util.h"

namespace edgeforge::test_util {

struct HostileModel {
  std::string name;   // what is broken
  std::string bytes;  // the serialised ModelProto
  std::string piece;  // a piece of the error that must name the problem
};

namespace hostile_detail {

inline onnx::NodeProto* first_node(onnx::ModelProto& m, const std::string& op) {
  for (onnx::NodeProto& n : *m.mutable_graph()->mutable_node())
    if (n.op_type() == op) return &n;
  ADD_FAILURE() << "no " << op << " node in the base model";
  return m.mutable_graph()->mutable_node(0);
}

// Attribute `name` of `n`, emptied (added when the node lacks it).
inline onnx::AttributeProto* fresh_attribute(onnx::NodeProto* n, const std::string& name) {
  onnx::AttributeProto* a = nullptr;
  for (onnx::AttributeProto& x : *n->mutable_attribute())
    if (x.name() == name) a = &x;
  if (a == nullptr) a = n->add_attribute();
  a->Clear();
  a->set_name(name);
  return a;
}

inline void set_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  onnx::AttributeProto* a = fresh_attribute(n, name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

inline void set_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
  onnx::AttributeProto* a = fresh_attribute(n, name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// Quantizes the graph's first input with a QuantizeLinear / DequantizeLinear pair of `scale`.
inline void add_qdq(onnx::ModelProto& m, float scale) {
  onnx::GraphProto* g = m.mutable_graph();
  const std::string x = g->input(0).name();
  for (onnx::NodeProto& n : *g->mutable_node())
    for (std::string& in : *n.mutable_input())
      if (in == x) in = "x_dq";
  onnx::TensorProto* s = g->add_initializer();
  s->set_name("x_scale");
  s->set_data_type(onnx::TensorProto::FLOAT);
  s->add_float_data(scale);
  onnx::TensorProto* z = g->add_initializer();
  z->set_name("x_zero");
  z->set_data_type(onnx::TensorProto::UINT8);
  z->add_int32_data(128);
  onnx::NodeProto dq;
  dq.set_op_type("DequantizeLinear");
  dq.set_name("x_dq");
  dq.add_input("x_q"), dq.add_input("x_scale"), dq.add_input("x_zero");
  dq.add_output("x_dq");
  onnx::NodeProto q;
  q.set_op_type("QuantizeLinear");
  q.set_name("x_q");
  q.add_input(x), q.add_input("x_scale"), q.add_input("x_zero");
  q.add_output("x_q");
  // Nodes in topological order: Q and DQ first.
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  *nodes.Add() = q;
  *nodes.Add() = dq;
  for (const onnx::NodeProto& n : g->node()) *nodes.Add() = n;
  g->mutable_node()->Swap(&nodes);
}

}  // namespace hostile_detail

// The valid base (small_image_model, a Fashion-MNIST resnet) and each broken variant of it.
inline std::string hostile_base_bytes() {
  static const std::string bytes = graph_to_onnx_bytes(small_image_model());
  return bytes;
}

inline std::vector<HostileModel> hostile_models() {
  using namespace hostile_detail;
  std::vector<HostileModel> out;
  auto add = [&](const std::string& name, const std::string& piece,
                 const std::function<void(onnx::ModelProto&)>& edit) {
    onnx::ModelProto m;
    EXPECT_TRUE(m.ParseFromString(hostile_base_bytes()));
    edit(m);
    std::string bytes;
    EXPECT_TRUE(m.SerializeToString(&bytes));
    out.push_back({name, bytes, piece});
  };
  add("conv strides 0", "strides value 0", [](auto& m) { set_ints(first_node(m, "Conv"), "strides", {0, 0}); });
  add("conv strides -1", "strides value -1", [](auto& m) { set_ints(first_node(m, "Conv"), "strides", {-1, 1}); });
  add("conv dilations 0", "dilations value 0", [](auto& m) { set_ints(first_node(m, "Conv"), "dilations", {0, 0}); });
  add("conv pads -5", "pads value -5", [](auto& m) { set_ints(first_node(m, "Conv"), "pads", {-5, -5, -5, -5}); });
  add("conv group 0", "group 0", [](auto& m) { set_int(first_node(m, "Conv"), "group", 0); });
  add("conv group 3", "group 3", [](auto& m) { set_int(first_node(m, "Conv"), "group", 3); });
  add("conv kernel_shape", "kernel_shape", [](auto& m) { set_ints(first_node(m, "Conv"), "kernel_shape", {5, 5}); });
  add("no outputs", "no outputs", [](auto& m) { m.mutable_graph()->clear_output(); });
  add("output is an input", "also a graph input", [](auto& m) {
    *m.mutable_graph()->mutable_output(0) = m.graph().input(0);
  });
  // Found by fuzz_onnx: libonnx's version converter dereferenced the missing producer.
  add("output never produced", "is never produced", [](auto& m) {
    m.mutable_graph()->mutable_output(0)->set_name("@");
  });
  add("node reads an undefined value", "which no earlier node, input or initializer defines",
      [](auto& m) { m.mutable_graph()->mutable_node(0)->set_input(0, "nowhere"); });
  // Found by fuzz_onnx: libonnx's shape inference for ConvTranspose read past a rank-2 weight
  // of a rank-3 input (under the version converter of a model importing opsets 0 and 13).
  add("input and weight ranks differ", "has an input of rank 3 and a weight of rank 4", [](auto& m) {
    m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()
        ->mutable_dim()->RemoveLast();
  });
  add("pads of the wrong length", "attribute 'pads' has 3 values for 2 spatial axes",
      [](auto& m) { set_ints(first_node(m, "Conv"), "pads", {1, 1, 1}); });
  add("the default domain imported twice", "imports the default ONNX domain 2 times", [](auto& m) {
    onnx::OperatorSetIdProto* o = m.add_opset_import();
    o->set_domain("");
    o->set_version(11);
  });
  add("negative input dimension", "negative dimension", [](auto& m) {
    m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()
        ->mutable_dim(1)->set_dim_value(-5);
  });
  add("input beyond memory", "memory", [](auto& m) {
    auto* shape = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
    for (int d = 1; d < shape->dim_size(); ++d) shape->mutable_dim(d)->set_dim_value(int64_t{1} << 20);
  });
  for (const float s : {0.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -0.5f})
    add("qdq scale " + std::to_string(s), "scale 'x_scale' value", [s](auto& m) { add_qdq(m, s); });
  return out;
}

}  // namespace edgeforge::test_util
