// Private to src/onnx: at::Tensor <-> onnx::TensorProto and element types.
#pragma once

#include <ATen/core/Tensor.h>
#include <onnx/onnx_pb.h>

#include <optional>
#include <string>

namespace edgeforge::onnx_detail {

// The ATen type of an ONNX TensorProto::DataType, or nullopt when edgeforge lacks it.
std::optional<at::ScalarType> scalar_type_from_onnx(int32_t data_type);

// The ONNX TensorProto::DataType of an ATen type, or nullopt when ONNX or edgeforge lacks it.
std::optional<int32_t> onnx_type_from_scalar(at::ScalarType type);

// "FLOAT", "STRING", or "data type 42" for a number that is not in the enum.
std::string onnx_type_name(int32_t data_type);

// The ONNX types edgeforge converts, for error messages: "FLOAT, DOUBLE, ...".
std::string supported_onnx_types();

// Converts `proto` (raw_data or the typed fields) into a new contiguous CPU tensor.
// `context` starts every error message, e.g. "model 'x.onnx': initializer 'fc.weight'".
at::Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& context);

// Writes `tensor` into `proto` as dims, data_type and little-endian raw_data; `name` may be empty.
void tensor_to_proto(const at::Tensor& tensor, const std::string& name, onnx::TensorProto* proto,
                     const std::string& context);

// ONNX's default domain, by either of its names.
inline bool is_default_domain(const std::string& domain) {
  return domain.empty() || domain == "ai.onnx";
}

// `message` with every run of whitespace (libonnx messages span lines) made one space.
std::string one_line(const std::string& message);

}  // namespace edgeforge::onnx_detail
