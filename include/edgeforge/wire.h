// edgeforge/wire.h: the messages tiers exchange: tensors as raw bytes with their type and shape.
//
// The agents send these in their gRPC messages (proto/edgeforge/agent.proto, docs/agents.md); a
// simulated deployment encodes and decodes the same messages to time serialisation, so the
// format sits below both.
//
//   const std::string message = encode_tensors({x});
//   std::vector<at::Tensor> back = decode_tensors(message, "reply of tier edge");
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace edgeforge {

// [u32 count] then per tensor [u8 type][u8 rank][i64 dims...][raw bytes, row-major]. Types:
// float, uint8, int8, int64, int32, bool, double, half; a quantized tensor is sent as its
// integer representation.
std::string encode_tensors(const std::vector<at::Tensor>& tensors);
// Error naming `what` when the message is truncated, has trailing bytes, an unknown type or a
// byte count that does not match its type and shape.
std::vector<at::Tensor> decode_tensors(const std::string& message, const std::string& what);
// The size of the message encode_tensors makes of tensors with these (rank, data bytes).
int64_t wire_message_bytes(const std::vector<std::pair<size_t, int64_t>>& tensors);

}  // namespace edgeforge
