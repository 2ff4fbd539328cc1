// What the agent server and its clients share (src/agent): credentials and the token header.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace edgeforge {

// The call metadata carrying the shared token.
inline constexpr const char* kTokenHeader = "x-edgeforge-token";

// Compares two secrets in time independent of where they differ.
bool same_secret(const std::string& a, const std::string& b);

// TLS trusting the PEM root certificate in `ca_file`, or plain when it is "". Error naming the
// file when it cannot be read.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const std::string& ca_file);
// TLS with the PEM certificate and key files, or plain when both are "".
std::shared_ptr<grpc::ServerCredentials> server_credentials(const std::string& cert_file,
                                                            const std::string& key_file);

}  // namespace edgeforge
