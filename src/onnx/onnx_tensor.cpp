#include "onnx_tensor.h"

#include <ATen/ATen.h>

#include <cctype>
#include <cstring>
#include <sstream>
#include <vector>

#include "edgeforge/error.h"

namespace edgeforge::onnx_detail {

// raw_data is little-endian by the ONNX spec; it is copied byte for byte into ATen storage.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "ONNX raw_data is little-endian; a big-endian host needs byte swapping here");

namespace {

using onnx::TensorProto;

struct TypePair {
  int32_t onnx;
  at::ScalarType aten;
};

// One table for both directions and for the "supported" list in messages.
constexpr TypePair kTypes[] = {
    {TensorProto::FLOAT, at::kFloat},   {TensorProto::DOUBLE, at::kDouble},
    {TensorProto::FLOAT16, at::kHalf},  {TensorProto::BFLOAT16, at::kBFloat16},
    {TensorProto::INT8, at::kChar},     {TensorProto::UINT8, at::kByte},
    {TensorProto::INT16, at::kShort},   {TensorProto::INT32, at::kInt},
    {TensorProto::INT64, at::kLong},    {TensorProto::BOOL, at::kBool},
};

std::string shape_string(const std::vector<int64_t>& dims) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
  out << ']';
  return out.str();
}

// Typed fields are wider than the element (INT8 values sit in int32_data), so each narrows.
template <typename T, typename Field>
void copy_field(const Field& field, void* dst) {
  T* out = static_cast<T*>(dst);
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<T>(field.Get(i));
}

// FLOAT16 and BFLOAT16 in int32_data hold the 16-bit pattern, not the value.
template <typename Field>
void copy_bits16(const Field& field, void* dst) {
  uint16_t* out = static_cast<uint16_t*>(dst);
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<uint16_t>(field.Get(i));
}

}  // namespace

std::optional<at::ScalarType> scalar_type_from_onnx(int32_t data_type) {
  for (const TypePair& p : kTypes)
    if (p.onnx == data_type) return p.aten;
  return std::nullopt;
}

std::optional<int32_t> onnx_type_from_scalar(at::ScalarType type) {
  for (const TypePair& p : kTypes)
    if (p.aten == type) return p.onnx;
  return std::nullopt;
}

std::string onnx_type_name(int32_t data_type) {
  if (TensorProto::DataType_IsValid(data_type))
    return TensorProto::DataType_Name(static_cast<TensorProto::DataType>(data_type));
  return "data type " + std::to_string(data_type);
}

std::string supported_onnx_types() {
  std::string names;
  for (const TypePair& p : kTypes) names += (names.empty() ? "" : ", ") + onnx_type_name(p.onnx);
  return names;
}

std::string one_line(const std::string& message) {
  std::string out;
  bool space = false;
  for (char c : message) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

at::Tensor tensor_from_proto(const TensorProto& proto, const std::string& context) {
  const int32_t data_type = proto.data_type();
  std::optional<at::ScalarType> type = scalar_type_from_onnx(data_type);
  EF_CHECK(type.has_value(), context, ": data type ", onnx_type_name(data_type),
           " is not supported (expected one of ", supported_onnx_types(), ")");
  EF_CHECK(proto.data_location() != TensorProto::EXTERNAL, context,
           ": data stored in an external file is not supported");
  EF_CHECK(!proto.has_segment(), context, ": segmented tensors are not supported");

  std::vector<int64_t> dims(proto.dims().begin(), proto.dims().end());
  int64_t numel = 1;
  for (int64_t d : dims) {
    EF_CHECK(d >= 0, context, ": shape ", shape_string(dims), " has a negative dimension");
    EF_CHECK(!__builtin_mul_overflow(numel, d, &numel), context, ": shape ", shape_string(dims),
             " is too large");
  }
  // Sizes are checked before allocating, so a corrupt shape cannot ask for terabytes.
  const uint64_t elem_bytes = c10::elementSize(*type);
  if (proto.has_raw_data()) {
    const std::string& raw = proto.raw_data();
    const uint64_t expected = static_cast<uint64_t>(numel) * elem_bytes;
    EF_CHECK(raw.size() == expected, context, ": raw_data holds ", raw.size(),
             " bytes, but shape ", shape_string(dims), " of ", onnx_type_name(data_type),
             " needs ", expected);
    at::Tensor tensor = at::empty(dims, at::TensorOptions().dtype(*type));
    if (expected > 0) std::memcpy(tensor.data_ptr(), raw.data(), expected);
    return tensor;
  }

  // Typed fields: which one holds the values depends on the type (onnx.proto comments).
  int stored = 0;
  const char* field = "";
  switch (data_type) {
    case TensorProto::FLOAT: stored = proto.float_data_size(); field = "float_data"; break;
    case TensorProto::DOUBLE: stored = proto.double_data_size(); field = "double_data"; break;
    case TensorProto::INT64: stored = proto.int64_data_size(); field = "int64_data"; break;
    default: stored = proto.int32_data_size(); field = "int32_data"; break;
  }
  EF_CHECK(stored == numel, context, ": ", field, " holds ", stored, " values, but shape ",
           shape_string(dims), " needs ", numel);
  at::Tensor tensor = at::empty(dims, at::TensorOptions().dtype(*type));
  void* dst = tensor.data_ptr();
  if (numel == 0) return tensor;
  switch (data_type) {
    case TensorProto::FLOAT: copy_field<float>(proto.float_data(), dst); break;
    case TensorProto::DOUBLE: copy_field<double>(proto.double_data(), dst); break;
    case TensorProto::INT64: copy_field<int64_t>(proto.int64_data(), dst); break;
    case TensorProto::INT32: copy_field<int32_t>(proto.int32_data(), dst); break;
    case TensorProto::INT16: copy_field<int16_t>(proto.int32_data(), dst); break;
    case TensorProto::INT8: copy_field<int8_t>(proto.int32_data(), dst); break;
    case TensorProto::UINT8: copy_field<uint8_t>(proto.int32_data(), dst); break;
    case TensorProto::BOOL: copy_field<bool>(proto.int32_data(), dst); break;
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16: copy_bits16(proto.int32_data(), dst); break;
    default: EF_ASSERT(false, "type table and typed-field switch disagree: ", data_type);
  }
  return tensor;
}

void tensor_to_proto(const at::Tensor& tensor, const std::string& name, TensorProto* proto,
                     const std::string& context) {
  EF_CHECK(tensor.defined(), context, ": the tensor is undefined");
  std::optional<int32_t> type = onnx_type_from_scalar(tensor.scalar_type());
  EF_CHECK(type.has_value(), context, ": tensor type ", c10::toString(tensor.scalar_type()),
           " has no ONNX equivalent that edgeforge writes (expected one of ",
           supported_onnx_types(), ")");
  // Weights being trained carry autograd state and may live on another device.
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  proto->Clear();
  if (!name.empty()) proto->set_name(name);
  proto->set_data_type(*type);
  for (int64_t d : t.sizes()) proto->add_dims(d);
  const size_t bytes = t.numel() * t.element_size();
  proto->set_raw_data(bytes > 0 ? std::string(static_cast<const char*>(t.data_ptr()), bytes)
                                : std::string());
}

}  // namespace edgeforge::onnx_detail
