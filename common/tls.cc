#include "common/tls.h"

#include "absl/strings/str_cat.h"
#include "common/file_text.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace txn::common {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::optional<std::string> pem = ReadFileText(path);
  if (!pem) return absl::NotFoundError(absl::StrCat("--", flag, " ", path, ": cannot read"));
  if (pem->find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, " is not PEM"));
  }
  return *pem;
}

}  // namespace

void AddTlsFlags(FlagSet* f) {
  f->Add({"tls-cert", "FILE", "mutual TLS: this process's certificate (PEM)", ""});
  f->Add({"tls-key", "FILE", "mutual TLS: its private key (PEM)", ""});
  f->Add({"tls-ca", "FILE",
          "mutual TLS: the CA (PEM) that signs every peer's certificate; with the three set, "
          "plaintext and certificate-less peers are refused",
          ""});
}

absl::StatusOr<std::optional<TlsConfig>> TlsFromFlags(const ParsedFlags& flags) {
  const std::string cert = flags.Get("tls-cert"), key = flags.Get("tls-key"),
                    ca = flags.Get("tls-ca");
  if (cert.empty() && key.empty() && ca.empty()) return std::optional<TlsConfig>();
  if (cert.empty() || key.empty() || ca.empty()) {
    return absl::InvalidArgumentError("--tls-cert, --tls-key and --tls-ca go together");
  }
  TlsConfig tls;
  absl::StatusOr<std::string> pem = ReadPem("tls-cert", cert);
  if (!pem.ok()) return pem.status();
  tls.cert_pem = *pem;
  pem = ReadPem("tls-key", key);
  if (!pem.ok()) return pem.status();
  tls.key_pem = *pem;
  pem = ReadPem("tls-ca", ca);
  if (!pem.ok()) return pem.status();
  tls.ca_pem = *pem;
  return std::optional<TlsConfig>(std::move(tls));
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const std::optional<TlsConfig>& tls) {
  if (!tls) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls->ca_pem;
  options.pem_key_cert_pairs.push_back({tls->key_pem, tls->cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const std::optional<TlsConfig>& tls,
                                           const std::string& server_identity,
                                           grpc::ChannelArguments args) {
  if (!tls) return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls->ca_pem;
  options.pem_private_key = tls->key_pem;
  options.pem_cert_chain = tls->cert_pem;
  args.SetSslTargetNameOverride(server_identity);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(options), args);
}

std::vector<std::string> PeerIdentities(const grpc::ServerContextBase& ctx) {
  std::vector<std::string> out;
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return out;
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_subject_alternative_name")) {
    out.emplace_back(v.data(), v.size());
  }
  return out;
}

}  // namespace txn::common
