// Transport security of the gRPC ports: the main port's credentials (plaintext,
// TLS, or mutual TLS from --tls-cert / --tls-key / --tls-client-ca) and the
// plaintext health port (--health-port), a second gRPC server that serves only
// grpc.health.v1.Health, for kubelet probes (which cannot speak TLS).
#ifndef HYBRIDSERVE_SERVER_TLS_H_
#define HYBRIDSERVE_SERVER_TLS_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "server/config.h"

namespace hybridserve::server {

// Credentials of the main gRPC port: insecure when --tls-cert is empty, else
// TLS with the PEM certificate chain and key; with --tls-client-ca, clients
// must present a certificate signed by that CA (mutual TLS). The files are read
// and parsed here (the certificate, the key, that they belong together, the CA
// bundle), so a bad file is an error naming its flag rather than a server that
// fails every handshake.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MainPortCredentials(
    const ServerConfig& config);

// "plaintext", "TLS" or "mutual TLS", for the start-up log.
std::string TransportName(const ServerConfig& config);

// A plaintext gRPC server on host:port (0: a free port) with only the default
// health service (no reflection, no other service).
// Thread-safe.
class HealthPortServer {
 public:
  static absl::StatusOr<std::unique_ptr<HealthPortServer>> Start(const std::string& host, int port);
  ~HealthPortServer();

  int port() const { return port_; }

  // Sets the overall status ("") and that of `service_name` (SERVING or
  // NOT_SERVING), as the main server's health service reports them.
  void SetServing(const std::string& service_name, bool serving);

  void Shutdown(std::chrono::system_clock::time_point deadline);

 private:
  HealthPortServer() = default;

  // Answers every method but health with UNIMPLEMENTED (a server needs at
  // least one service of its own to start). Outlives server_.
  std::unique_ptr<grpc::CallbackGenericService> unimplemented_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace hybridserve::server

#endif  // HYBRIDSERVE_SERVER_TLS_H_
