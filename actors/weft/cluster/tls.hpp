#pragma once
// TLS between the nodes of a cluster (cluster.tls.enabled): the CAF port
// (cluster.port) speaks TLS through CAF's openssl module, and both ends of
// every connection must present a certificate signed by the application's
// CA (cluster.tls.ca). A process without such a certificate cannot finish
// the handshake, so it never reaches an actor of this node.
//
// What CAF 0.17.6's module leaves to us, and this file does:
// - It reads the files again for every connection and throws from its I/O
//   thread when one cannot be used: load_tls() checks them once, at
//   start-up, and fails naming the key and the fix.
// - It logs nothing a user can see (logging is compiled out of Debian's
//   build): refused handshakes, either way, are logged here, rate-limited.
// - It never clears OpenSSL's per-thread error queue, so one failed
//   connection (a stranger's, a killed peer's) made the next read on any
//   other connection of the same I/O thread fail too: the queue is
//   emptied before each of its calls. (A connection whose very first
//   handshake step fails is closed by its doorman; this file must not
//   close it again.)
// - It never closes a connection that stays silent (nor does CAF's
//   connection timeout): an accepted connection must finish its handshake
//   within 10 s, or a watcher thread shuts its socket down.
// The last two work by wrapping, in this process, the few OpenSSL calls the
// module makes (SSL_CTX_set_verify, SSL_accept, SSL_connect, SSL_read,
// SSL_write); calls from anything else (librdkafka's TLS included) pass
// through untouched.
//
// Internal to weft.

#include <cstdint>
#include <optional>
#include <string>

#include "weft/status.hpp"

namespace caf {
class actor_system_config;
} // namespace caf

namespace weft {
class config;
} // namespace weft

namespace weft::cluster {

/// The PEM files of one node.
struct tls_files {
  std::string certificate;  ///< this node's certificate (chain), signed by `ca`
  std::string key;          ///< its private key
  std::string key_password; ///< empty: the key is not encrypted
  std::string ca;           ///< the application's CA: the only one trusted
};

/// The cluster.tls.* keys of `cfg`: nullopt when cluster.tls.enabled is
/// false. Checks every file now (readable, PEM, the key belongs to the
/// certificate, the certificate verifies against the CA today) and returns
/// errc::invalid_config naming the key and the fix otherwise.
result<std::optional<tls_files>> load_tls(const config& cfg);

/// Points CAF's openssl module at `files`, loads it, and turns on the
/// refusal log and the fixes above. Call once, before the actor system is
/// made, after the io middleman was loaded.
void use_tls(caf::actor_system_config& cfg, const tls_files& files);

/// Connections refused during the TLS handshake since start (both
/// directions); logged or not (the log is rate-limited).
uint64_t tls_refusals();

} // namespace weft::cluster
