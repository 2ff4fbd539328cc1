// What the agent server and its clients share (src/agent): credentials and the token header.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace edgeforge {

// The call metadata carrying the shared token.
inline constexpr const char* kTokenHeader = "x-edgeforge-token";

// Transport settings for large messages (a frame or a cut's tensors per request): a stream
// window and frames large enough that a megabyte crosses without waiting for window updates,
// and socket reads in large chunks (build/agent_hops measures the cost per hop). Channels
// (agent_channel) and agents' servers get the same ones.
void tune_server(grpc::ServerBuilder& builder);

// Compares two secrets in time independent of where they differ.
bool same_secret(const std::string& a, const std::string& b);

// A channel to the agent at `address`, never through a proxy, with the transport settings
// above: TLS trusting the PEM root certificate in `ca_file`, or plain when it is "" (Error
// naming the file when it cannot be read); messages up to `max_message_bytes` both ways.
std::shared_ptr<grpc::Channel> agent_channel(const std::string& address, const std::string& ca_file,
                                             int64_t max_message_bytes);
// TLS with the PEM certificate and key files, or plain when both are "".
std::shared_ptr<grpc::ServerCredentials> server_credentials(const std::string& cert_file,
                                                            const std::string& key_file);

}  // namespace edgeforge
