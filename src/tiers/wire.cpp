// The tensor messages tiers exchange (edgeforge/wire.h): what the agents send over gRPC and what
// the simulated deployment encodes to time serialisation.
#include "edgeforge/wire.h"

#include <ATen/ATen.h>

#include <cstring>

#include "edgeforge/error.h"

namespace edgeforge {
namespace {

// Wire codes of the tensor types a message carries.
constexpr std::pair<uint8_t, at::ScalarType> kWireTypes[] = {
    {1, at::kFloat}, {2, at::kByte}, {3, at::kChar}, {4, at::kLong}, {5, at::kInt},
    {6, at::kBool}, {7, at::kDouble}, {8, at::kHalf}};

uint8_t wire_code(at::ScalarType t) {
  for (const auto& [code, type] : kWireTypes)
    if (type == t) return code;
  throw Error(detail::concat("encode_tensors: type ", t, " cannot be sent"));
}

}  // namespace

int64_t wire_message_bytes(const std::vector<std::pair<size_t, int64_t>>& tensors) {
  int64_t n = 4;
  for (const auto& [rank, bytes] : tensors) n += 2 + 8 * static_cast<int64_t>(rank) + bytes;
  return n;
}

std::string encode_tensors(const std::vector<at::Tensor>& tensors) {
  std::string out;
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  const auto count = static_cast<uint32_t>(tensors.size());
  size_t size = 4;
  for (const at::Tensor& t : tensors) size += 2 + 8 * t.dim() + t.nbytes();
  out.reserve(size);
  put(&count, 4);
  for (const at::Tensor& t0 : tensors) {
    const at::Tensor t = t0.is_quantized() ? t0.int_repr().contiguous() : t0.contiguous();
    EF_CHECK(t.dim() <= 255, "encode_tensors: rank ", t.dim(), " is too large");
    const uint8_t head[2] = {wire_code(t.scalar_type()), static_cast<uint8_t>(t.dim())};
    put(head, 2);
    for (int64_t d : t.sizes()) put(&d, 8);
    put(t.data_ptr(), t.nbytes());
  }
  return out;
}

std::vector<at::Tensor> decode_tensors(const std::string& message, const std::string& what) {
  size_t at = 0;
  auto take = [&](void* dst, size_t n, const char* field) {
    EF_CHECK(message.size() - at >= n, what, ": message truncated in ", field, " at byte ", at,
             " of ", message.size());
    if (n > 0) std::memcpy(dst, message.data() + at, n);  // an empty tensor's data is null
    at += n;
  };
  uint32_t count = 0;
  take(&count, 4, "the tensor count");
  EF_CHECK(count <= 4096, what, ": ", count, " tensors is more than a message carries");
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t head[2];
    take(head, 2, "a tensor header");
    at::ScalarType type = at::kFloat;
    bool known = false;
    for (const auto& [code, t] : kWireTypes)
      if (code == head[0]) type = t, known = true;
    EF_CHECK(known, what, ": tensor ", i, " has unknown type code ", int{head[0]});
    std::vector<int64_t> dims(head[1]);
    int64_t n = static_cast<int64_t>(c10::elementSize(type));
    for (int64_t& d : dims) {
      take(&d, 8, "a tensor shape");
      EF_CHECK(d >= 0 && d <= (int64_t{1} << 40), what, ": tensor ", i, " has dimension ", d);
      EF_CHECK(d == 0 || n <= (int64_t{1} << 40) / d, what, ": tensor ", i, " is too large");
      n *= d;
    }
    EF_CHECK(static_cast<int64_t>(message.size() - at) >= n, what, ": tensor ", i, " needs ", n,
             " bytes for its type and shape, the message has ", message.size() - at, " left");
    at::Tensor t = at::empty(dims, at::TensorOptions().dtype(type));
    take(t.data_ptr(), static_cast<size_t>(n), "tensor data");
    out.push_back(std::move(t));
  }
  EF_CHECK(at == message.size(), what, ": ", message.size() - at, " bytes after the last tensor");
  return out;
}

}  // namespace edgeforge
