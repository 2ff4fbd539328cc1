// Sending an InferRequest with its bulk bytes by reference (agent_wire.h).
#include "agent_wire.h"

#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/serialization_traits.h>

#include <atomic>

namespace edgeforge {
namespace wire {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}

// Protobuf's tag byte for a length-delimited field (wire type 2) with a small number.
constexpr char length_delimited(int field) { return static_cast<char>((field << 3) | 2); }

}  // namespace wire
}  // namespace edgeforge

namespace grpc {

template <>
class SerializationTraits<edgeforge::InferWire, void> {
 public:
  static Status Serialize(const edgeforge::InferWire& m, ByteBuffer* buffer, bool* own_buffer) {
    std::string first = m.head + m.prefix;
    // The bulk stays alive while gRPC holds the slice: the slice owns a reference to it.
    auto* keep = new std::shared_ptr<std::string>(m.bulk);
    const Slice slices[2] = {
        Slice(first.data(), first.size()),
        Slice(static_cast<void*>((*keep)->data()), (*keep)->size(),
              [](void* p) { delete static_cast<std::shared_ptr<std::string>*>(p); }, keep)};
    ByteBuffer out(slices, 2);
    buffer->Swap(&out);
    *own_buffer = true;
    return Status::OK;
  }
  static Status Deserialize(ByteBuffer*, edgeforge::InferWire*) {
    return Status(StatusCode::INTERNAL, "an outgoing request is never received");
  }
};

}  // namespace grpc

namespace edgeforge {

namespace pb = edgeforge::agent;
static_assert(pb::InferRequest::kPayloadFieldNumber < 16 && pb::InferRequest::kTensorsFieldNumber < 16 &&
                  pb::Payload::kBytesFieldNumber < 16,
              "the bulk's tags are written as one byte");

InferChannel::InferChannel(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      method_("/edgeforge.agent.Agent/Infer", grpc::internal::RpcMethod::NORMAL_RPC, channel_) {}

namespace {
std::atomic<bool> by_copy{false};
}  // namespace

void send_infer_by_copy(bool on) { by_copy = on; }

InferWire split_for_sending(pb::InferRequest& request) {
  InferWire m;
  m.bulk = std::make_shared<std::string>();
  if (request.has_payload()) {
    // field 3 `payload` again, holding only its field 2 `bytes`; parsing merges it into the
    // payload the head carries (kind, height, width).
    m.bulk->swap(*request.mutable_payload()->mutable_bytes());
    const uint64_t n = m.bulk->size();
    m.head = request.SerializeAsString();
    m.prefix.push_back(wire::length_delimited(pb::InferRequest::kPayloadFieldNumber));
    wire::put_varint(m.prefix, 1 + wire::varint_size(n) + n);
    m.prefix.push_back(wire::length_delimited(pb::Payload::kBytesFieldNumber));
    wire::put_varint(m.prefix, n);
  } else if (request.input_case() == pb::InferRequest::kTensors) {
    m.bulk->swap(*request.mutable_tensors());
    request.clear_input();
    m.head = request.SerializeAsString();
    m.prefix.push_back(wire::length_delimited(pb::InferRequest::kTensorsFieldNumber));
    wire::put_varint(m.prefix, m.bulk->size());
  } else {
    m.head = request.SerializeAsString();
  }
  return m;
}

grpc::Status InferChannel::call(grpc::ClientContext* context, pb::InferRequest& request,
                                pb::InferReply* reply, int64_t* sent_bytes) {
  if (by_copy) {
    if (sent_bytes != nullptr) *sent_bytes = static_cast<int64_t>(request.ByteSizeLong());
    return grpc::internal::BlockingUnaryCall<pb::InferRequest, pb::InferReply, google::protobuf::MessageLite,
                                             google::protobuf::MessageLite>(channel_.get(), method_,
                                                                            context, request, reply);
  }
  const InferWire m = split_for_sending(request);
  if (sent_bytes != nullptr) *sent_bytes = m.size();
  return grpc::internal::BlockingUnaryCall<InferWire, pb::InferReply, InferWire,
                                           google::protobuf::MessageLite>(channel_.get(), method_,
                                                                          context, m, reply);
}

}  // namespace edgeforge
