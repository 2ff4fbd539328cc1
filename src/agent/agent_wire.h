// Sending an InferRequest without copying its bulk bytes (src/agent).
//
// A request's payload (a raw frame) or tensors are most of its bytes. gRPC's protobuf path
// copies them once into its send buffer when it serialises the message; at a megabyte that
// copy is a fifth of a hop on loopback (build/agent_hops). InferChannel sends the same message
// as two slices instead: the message without its bulk, serialised, followed by the bulk's
// field tags and length and then the bulk itself, handed to gRPC by reference.
//
// The bytes on the wire are a valid InferRequest: protobuf merges a message field that occurs
// twice (`payload`) and keeps the last occurrence of a scalar one (`tensors`), so the agent
// receiving it parses it with the generated code, and any protobuf client still speaks the
// protocol.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_method.h>

#include <memory>
#include <string>

#include "edgeforge/agent.pb.h"

namespace edgeforge {

// An InferRequest split for sending: `head` is the message without its bulk, serialised;
// `prefix` the bulk's field tags and lengths; `bulk` the payload's bytes or the tensors. The
// three concatenated are a serialised InferRequest equal to the one split.
struct InferWire {
  std::string head;
  std::string prefix;
  std::shared_ptr<std::string> bulk;
  int64_t size() const { return static_cast<int64_t>(head.size() + prefix.size() + bulk->size()); }
};

// Splits `request`, moving its payload bytes or tensors into the bulk (not copying them).
InferWire split_for_sending(edgeforge::agent::InferRequest& request);

// For build/agent_hops: when on, every InferChannel in the process sends through protobuf's own
// serialisation instead (one more copy of the bulk), the reference the split send is timed
// against. Off by default.
void send_infer_by_copy(bool on);

class InferChannel {
 public:
  explicit InferChannel(std::shared_ptr<grpc::Channel> channel);

  // Calls Infer with `request`, whose payload bytes or tensors are moved out of it (it is left
  // without them). `sent_bytes`, when given, receives the size of the message sent.
  grpc::Status call(grpc::ClientContext* context, edgeforge::agent::InferRequest& request,
                    edgeforge::agent::InferReply* reply, int64_t* sent_bytes = nullptr);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  grpc::internal::RpcMethod method_;  // registered once per channel, as generated stubs do
};

}  // namespace edgeforge
