#include "server/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"

namespace hybridserve::server {
namespace {

constexpr std::streamsize kMaxPemBytes = 1 << 20;

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::string text(static_cast<size_t>(kMaxPemBytes) + 1, '\0');
  in.read(text.data(), kMaxPemBytes + 1);
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(flag, ": error reading ", path));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > static_cast<size_t>(kMaxPemBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is larger than ",
                                                   kMaxPemBytes, " bytes"));
  }
  return text;
}

// OpenSSL objects freed on scope exit.
struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
struct KeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The certificates of a PEM bundle, in order (none when it holds none).
std::vector<X509Ptr> Certificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = MemoryBio(pem);
  while (bio != nullptr) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) break;
    out.push_back(std::move(cert));
  }
  ERR_clear_error();  // the read past the last certificate leaves an error
  return out;
}

// A builder option that drops the plugins registered for every builder
// (reflection): the health port serves health only.
class NoPluginsOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

}  // namespace

std::string TransportName(const ServerConfig& config) {
  if (config.tls_cert.empty()) return "plaintext";
  return config.tls_client_ca.empty() ? "TLS" : "mutual TLS";
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MainPortCredentials(
    const ServerConfig& config) {
  if (config.tls_cert.empty()) return grpc::InsecureServerCredentials();
  absl::StatusOr<std::string> cert = ReadPem("--tls-cert", config.tls_cert);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem("--tls-key", config.tls_key);
  if (!key.ok()) return key.status();

  std::vector<X509Ptr> chain = Certificates(*cert);
  if (chain.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cert: ", config.tls_cert, " holds no PEM certificate"));
  }
  BioPtr key_bio = MemoryBio(*key);
  KeyPtr private_key(key_bio == nullptr ? nullptr
                                        : PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (private_key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key: ", config.tls_key, " holds no PEM private key (or it is encrypted)"));
  }
  if (X509_check_private_key(chain.front().get(), private_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", config.tls_key,
                                                   " is not the key of the certificate in ",
                                                   config.tls_cert, " (--tls-cert)"));
  }

  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  if (!config.tls_client_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("--tls-client-ca", config.tls_client_ca);
    if (!ca.ok()) return ca.status();
    if (Certificates(*ca).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls-client-ca: ", config.tls_client_ca, " holds no PEM certificate"));
    }
    options.pem_root_certs = *std::move(ca);
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  } else {
    options.client_certificate_request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::unique_ptr<HealthPortServer>> HealthPortServer::Start(const std::string& host,
                                                                          int port) {
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<HealthPortServer> out(new HealthPortServer());
  out->unimplemented_ = std::make_unique<grpc::CallbackGenericService>();
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<NoPluginsOption>());
  builder.RegisterCallbackGenericService(out->unimplemented_.get());
  builder.AddListeningPort(absl::StrCat(host, ":", port), grpc::InsecureServerCredentials(),
                           &out->port_);
  out->server_ = builder.BuildAndStart();
  if (out->server_ == nullptr || out->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("--health-port: cannot listen on ", host, ":", port));
  }
  if (out->server_->GetHealthCheckService() == nullptr) {
    return absl::InternalError("--health-port: the server has no health service");
  }
  return out;
}

HealthPortServer::~HealthPortServer() {
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
}

void HealthPortServer::SetServing(const std::string& service_name, bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus(service_name, serving);
}

void HealthPortServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  server_->Shutdown(deadline);
}

}  // namespace hybridserve::server
