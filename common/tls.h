// Mutual TLS for every txcoord listener and channel, from the files `--tls-cert`, `--tls-key` and
// `--tls-ca` name (PEM). With TLS configured a server requires and verifies a client certificate
// signed by the CA (a plaintext or certificate-less client fails the handshake), and a client
// verifies the server's certificate against the CA and an expected identity.
//
// Identities are certificate subject alternative names (DNS names): txcoord's is "coordinator"
// unless configured otherwise, an agent's is its participant name. A client names the identity
// it expects of the server (`server_identity`; gRPC's ssl_target_name_override), so addresses
// (127.0.0.1, container names) need not appear in certificates. Thread-safe (immutable config).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/channel_arguments.h"

namespace txn::common {

struct TlsConfig {
  std::string cert_pem;  // this process's certificate chain
  std::string key_pem;   // its private key
  std::string ca_pem;    // the CA every peer's certificate must chain to
};

// Registers --tls-cert, --tls-key, --tls-ca.
void AddTlsFlags(FlagSet* flags);
// nullopt when none of the three flags is set; INVALID_ARGUMENT when only some are, NOT_FOUND
// naming a file that cannot be read.
absl::StatusOr<std::optional<TlsConfig>> TlsFromFlags(const ParsedFlags& flags);

// Mutual TLS credentials, or insecure ones without a config.
std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const std::optional<TlsConfig>& tls);
// A channel to `address`: mutual TLS expecting `server_identity` in the server's certificate, or
// plaintext without a config. `args` are added to.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const std::optional<TlsConfig>& tls,
                                           const std::string& server_identity,
                                           grpc::ChannelArguments args = {});

// The verified DNS names (subject alternative names) of the calling peer's certificate; empty
// without TLS.
std::vector<std::string> PeerIdentities(const grpc::ServerContextBase& ctx);

}  // namespace txn::common
