#include "weft/cluster/tls.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <link.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "weft/config.hpp"
#include "weft/log.hpp"

namespace weft::cluster {

namespace {

// ---------------------------------------------------------------------------
// Start-up checks of the files.

std::string ssl_errors() {
  std::string out;
  while (auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string{buf};
  }
  return out.empty() ? "no details" : out;
}

status bad_file(const std::string& key, const std::string& path, const std::string& what,
                const std::string& fix) {
  return make_error(errc::invalid_config,
                    "config key '" + key + "': '" + path + "' " + what + "; " + fix);
}

struct file_closer {
  void operator()(FILE* f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<FILE, file_closer>;
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;

result<file_ptr> open_file(const std::string& key, const std::string& path,
                           const std::string& fix) {
  if (path.empty())
    return make_error(errc::invalid_config, "config key '" + key +
                                                "' must be set when "
                                                "cluster.tls.enabled=true; " +
                                                fix);
  file_ptr f{std::fopen(path.c_str(), "rb")};
  if (!f)
    return bad_file(key, path,
                    std::string{"cannot be read ("} + std::strerror(errno) + ")", fix);
  return f;
}

int password_cb(char* buf, int size, int, void* user) {
  auto* pw = static_cast<const std::string*>(user);
  if (pw->empty() || size <= 0) return 0;
  auto n = std::min(static_cast<size_t>(size), pw->size());
  std::memcpy(buf, pw->data(), n);
  return static_cast<int>(n);
}

const char* const make_hint =
    "tools/weft-certs makes a CA and node certificates (see README, Security)";

// ---------------------------------------------------------------------------
// The guard around CAF's openssl module: see tls.hpp. Only calls whose
// return address lies in libcaf_openssl's code are touched.

struct code_range {
  uintptr_t lo = 0, hi = 0;
};

/// An accepted connection whose TLS handshake has not finished yet.
struct pending_accept {
  int fd = -1;
  std::string peer; ///< its address when accepted: the fd's identity
  std::chrono::steady_clock::time_point since;
};

struct guard_state {
  std::atomic<bool> on{false};
  std::vector<code_range> caf_code; // written once, before `on`
  int ex_index = -1;                // per-SSL flags (see flag_*)
  std::atomic<uint64_t> refusals{0};
  std::mutex log_mu;
  std::chrono::steady_clock::time_point window{};
  int logged_in_window = 0;
  uint64_t unlogged = 0;
  // Handshakes in progress on accepted connections (CAF closes no
  // connection that stays silent) and those ended by the deadline.
  std::mutex pending_mu;
  std::map<const SSL*, pending_accept> pending;
  std::map<const SSL*, std::string> timed_out; ///< to the peer's address
};

guard_state& guard() {
  static guard_state g;
  return g;
}

// Flags kept in the SSL's ex_data slot (as a small integer).
constexpr uintptr_t flag_logged = 1;         // its refusal was logged
constexpr uintptr_t flag_accept_started = 2; // SSL_accept was called once

uintptr_t flags_of(const SSL* s) {
  auto& g = guard();
  return g.ex_index < 0 ? 0 : reinterpret_cast<uintptr_t>(SSL_get_ex_data(s, g.ex_index));
}

void set_flag(const SSL* s, uintptr_t f) {
  auto& g = guard();
  if (g.ex_index < 0) return;
  SSL_set_ex_data(const_cast<SSL*>(s), g.ex_index,
                  reinterpret_cast<void*>(flags_of(s) | f));
}

bool from_caf(void* return_address) {
  auto& g = guard();
  if (!g.on.load(std::memory_order_acquire)) return false;
  auto a = reinterpret_cast<uintptr_t>(return_address);
  for (auto& r : g.caf_code)
    if (a >= r.lo && a < r.hi) return true;
  return false;
}

std::string peer_of_fd(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return "an unknown address";
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return std::string{host} + ":" + std::to_string(port);
  }
  if (addr.ss_family == AF_INET6) {
    auto* in = reinterpret_cast<sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
    port = ntohs(in->sin6_port);
    return "[" + std::string{host} + "]:" + std::to_string(port);
  }
  return "an unknown address";
}

std::string peer_of(const SSL* s) {
  return peer_of_fd(SSL_get_fd(s));
}

/// How long an accepted connection may take to finish its TLS handshake: a
/// node needs milliseconds; a stranger that connects and sends nothing is
/// cut off then.
constexpr auto handshake_deadline = std::chrono::seconds(10);

void forget_pending(const SSL* s) {
  auto& g = guard();
  std::lock_guard<std::mutex> lock{g.pending_mu};
  g.pending.erase(s);
}

/// The peer's address if the deadline ended this handshake (its socket is
/// shut down: getpeername no longer tells).
std::optional<std::string> ended_by_deadline(const SSL* s) {
  auto& g = guard();
  std::lock_guard<std::mutex> lock{g.pending_mu};
  auto i = g.timed_out.find(s);
  if (i == g.timed_out.end()) return std::nullopt;
  return i->second;
}

/// Called by OpenSSL when an SSL object is freed: it leaves every list.
void on_ssl_free(void* parent, void*, CRYPTO_EX_DATA*, int, long, void*) {
  auto& g = guard();
  std::lock_guard<std::mutex> lock{g.pending_mu};
  g.pending.erase(static_cast<const SSL*>(parent));
  g.timed_out.erase(static_cast<const SSL*>(parent));
}

/// Once a second: shuts down (SHUT_RDWR) the sockets of handshakes older
/// than the deadline. The I/O thread then sees the connection end and CAF
/// closes it as any other failed one. The socket is shut only while its
/// SSL lives (an entry leaves the list when it is freed) and still has the
/// peer it was accepted from (its descriptor was not reused).
void watch_handshakes() {
  auto& g = guard();
  while (true) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock{g.pending_mu};
    for (auto i = g.pending.begin(); i != g.pending.end();) {
      if (now - i->second.since < handshake_deadline) {
        ++i;
        continue;
      }
      if (peer_of_fd(i->second.fd) == i->second.peer) {
        g.timed_out[i->first] = i->second.peer;
        ::shutdown(i->second.fd, SHUT_RDWR);
      }
      i = g.pending.erase(i);
    }
  }
}

/// Logs one refused connection, at most 10 lines per 10 s (a stranger
/// hammering the port must not flood the log); counts every one.
void refusal(const SSL* s, const std::string& what, std::string peer = "") {
  auto& g = guard();
  if (flags_of(s) & flag_logged) return;
  set_flag(s, flag_logged);
  g.refusals.fetch_add(1);
  if (peer.empty()) peer = peer_of(s);
  std::string text =
      SSL_is_server(s)
          ? "cluster: refused a connection from " + peer + " to the cluster port: " + what
          : "cluster: connection to " + peer + " refused: " + what;
  std::lock_guard<std::mutex> lock{g.log_mu};
  auto now = std::chrono::steady_clock::now();
  if (now - g.window > std::chrono::seconds(10)) {
    g.window = now;
    g.logged_in_window = 0;
  }
  if (g.logged_in_window >= 10) {
    ++g.unlogged;
    return;
  }
  ++g.logged_in_window;
  if (g.unlogged > 0) {
    text += " (and " + std::to_string(g.unlogged) + " more refused, not logged)";
    g.unlogged = 0;
  }
  log::warn("{}", text);
}

std::string subject_of(X509* cert) {
  if (!cert) return "";
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

int verify_cb(int ok, X509_STORE_CTX* ctx) {
  if (ok) return ok;
  auto* s = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (!s) return ok;
  auto err = X509_STORE_CTX_get_error(ctx);
  auto subject = subject_of(X509_STORE_CTX_get_current_cert(ctx));
  refusal(s, std::string{SSL_is_server(s) ? "its" : "the node's"} + " certificate (" +
                 subject + ") is not trusted: " + X509_verify_cert_error_string(err) +
                 " — only certificates signed by this application's CA "
                 "(cluster.tls.ca) may join");
  return ok;
}

void info_cb(const SSL* s, int where, int ret) {
  // A fatal alert from the other side, also after our handshake step
  // finished (TLS 1.3: a server judges the client's certificate after the
  // client is done).
  if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT &&
      std::strcmp(SSL_alert_type_string(ret), "F") == 0) {
    switch (ret & 0xff) {
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REQUIRED:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_HANDSHAKE_FAILURE:
      refusal(s, std::string{"the other side refused this node ("} +
                     SSL_alert_desc_string_long(ret) +
                     "): does the same CA (cluster.tls.ca) sign both certificates?");
      break;
    default:
      if (!(flags_of(s) & flag_logged)) {
        set_flag(s, flag_logged);
        log::debug("cluster: a TLS connection with {} ended with a fatal alert ({})",
                   peer_of(s), SSL_alert_desc_string_long(ret));
      }
    }
    return;
  }
  if (where & SSL_CB_HANDSHAKE_DONE) forget_pending(s);
  if (!(where & SSL_CB_EXIT) || ret > 0) return;
  // The wrappers below empty the error queue before each call, so an error
  // now is this handshake's; none means it only waits for more bytes.
  auto e = ERR_peek_error();
  if (e == 0) return;
  forget_pending(s);
  if (auto peer = ended_by_deadline(s)) {
    refusal(
        s, "no TLS handshake within " + std::to_string(handshake_deadline.count()) + " s",
        *peer);
    return;
  }
  char reason[256];
  ERR_error_string_n(e, reason, sizeof reason);
  std::string why = reason;
  if (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER ||
      ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST ||
      ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG ||
      ERR_GET_REASON(e) == SSL_R_RECORD_LENGTH_MISMATCH)
    why = "it does not speak TLS (" + why + ")";
  else if (ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
    why = "it presented no certificate (" + why + ")";
  refusal(s, "TLS handshake failed: " + why);
}

int find_caf_code(dl_phdr_info* info, size_t, void* out) {
  auto* ranges = static_cast<std::vector<code_range>*>(out);
  if (!info->dlpi_name || !std::strstr(info->dlpi_name, "libcaf_openssl.so")) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
      ranges->push_back(
          {info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz});
  }
  return 1;
}

template <class Fn>
Fn next_definition(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  Fn fn = nullptr;
  static_assert(sizeof fn == sizeof p);
  std::memcpy(&fn, &p, sizeof fn);
  return fn;
}

} // namespace

result<std::optional<tls_files>> load_tls(const config& cfg) {
  if (!cfg.get_bool("cluster.tls.enabled")) return std::optional<tls_files>{};
  tls_files f;
  f.certificate = cfg.get_string("cluster.tls.certificate");
  f.key = cfg.get_string("cluster.tls.key");
  f.key_password = cfg.get_string("cluster.tls.key.password");
  f.ca = cfg.get_string("cluster.tls.ca");
  ERR_clear_error();

  auto cf =
      open_file("cluster.tls.certificate", f.certificate,
                std::string{"point it at this node's certificate (PEM); "} + make_hint);
  if (!cf) return cf.error();
  x509_ptr cert{PEM_read_X509(cf->get(), nullptr, nullptr, nullptr)};
  if (!cert)
    return bad_file(
        "cluster.tls.certificate", f.certificate,
        "holds no PEM certificate (" + ssl_errors() + ")",
        std::string{"use the node's certificate, '-----BEGIN CERTIFICATE-----'; "} +
            make_hint);
  // The rest of the file: intermediate CAs, sent along with the certificate.
  STACK_OF(X509)* chain = sk_X509_new_null();
  while (X509* extra = PEM_read_X509(cf->get(), nullptr, nullptr, nullptr))
    sk_X509_push(chain, extra);
  ERR_clear_error(); // the end of the file reads as an error
  struct chain_free {
    STACK_OF(X509) * c;
    ~chain_free() { sk_X509_pop_free(c, X509_free); }
  } chain_guard{chain};

  auto kf =
      open_file("cluster.tls.key", f.key,
                std::string{"point it at this node's private key (PEM); "} + make_hint);
  if (!kf) return kf.error();
  EVP_PKEY* key = PEM_read_PrivateKey(kf->get(), nullptr, password_cb, &f.key_password);
  if (!key)
    return bad_file("cluster.tls.key", f.key,
                    "cannot be read as a PEM private key (" + ssl_errors() + ")",
                    f.key_password.empty()
                        ? "if the key is encrypted, set cluster.tls.key.password "
                          "(better: WEFT_CLUSTER_TLS_KEY_PASSWORD)"
                        : "check cluster.tls.key.password");
  struct key_free {
    EVP_PKEY* k;
    ~key_free() { EVP_PKEY_free(k); }
  } key_guard{key};
  if (X509_check_private_key(cert.get(), key) != 1) {
    ERR_clear_error();
    return bad_file("cluster.tls.key", f.key,
                    "is not the private key of the certificate in "
                    "cluster.tls.certificate ('" +
                        f.certificate + "')",
                    "use the key the certificate was made for");
  }

  auto af = open_file(
      "cluster.tls.ca", f.ca,
      std::string{"point it at the application's CA certificate (PEM); "} + make_hint);
  if (!af) return af.error();
  af->reset();
  X509_STORE* store = X509_STORE_new();
  struct store_free {
    X509_STORE* s;
    ~store_free() { X509_STORE_free(s); }
  } store_guard{store};
  if (X509_STORE_load_file(store, f.ca.c_str()) != 1)
    return bad_file("cluster.tls.ca", f.ca,
                    "holds no PEM CA certificate (" + ssl_errors() + ")",
                    std::string{"use the CA certificate that signed the nodes' "
                                "certificates; "} +
                        make_hint);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  struct ctx_free {
    X509_STORE_CTX* c;
    ~ctx_free() { X509_STORE_CTX_free(c); }
  } ctx_guard{ctx};
  X509_STORE_CTX_init(ctx, store, cert.get(), chain);
  if (X509_verify_cert(ctx) != 1) {
    auto why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
    ERR_clear_error();
    return bad_file("cluster.tls.certificate", f.certificate,
                    std::string{"does not verify against the CA in cluster.tls.ca ('"} +
                        f.ca + "'): " + why,
                    "every node needs a current certificate signed by the "
                    "application's CA; " +
                        std::string{make_hint});
  }
  return std::optional<tls_files>{std::move(f)};
}

void use_tls(caf::actor_system_config& cfg, const tls_files& files) {
  cfg.openssl_certificate = files.certificate;
  cfg.openssl_key = files.key;
  cfg.openssl_passphrase = files.key_password;
  cfg.openssl_cafile = files.ca;
  cfg.load<caf::openssl::manager>();
  auto& g = guard();
  if (g.on.load()) return;
  g.ex_index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, on_ssl_free);
  dl_iterate_phdr(find_caf_code, &g.caf_code);
  // The wrappers work only if the dynamic linker hands them the module's
  // calls: this program's definitions must come before libssl's.
  void* seen = dlsym(RTLD_DEFAULT, "SSL_read");
  int (*ours)(SSL*, void*, int) = &SSL_read;
  void* ours_p = nullptr;
  std::memcpy(&ours_p, &ours, sizeof ours_p);
  if (g.caf_code.empty() || seen != ours_p) {
    log::warn("cluster: TLS is on, but this program cannot watch CAF's TLS "
              "connections (libcaf_openssl {}, OpenSSL calls {}): refused "
              "connections are not logged, and one failed connection may drop others",
              g.caf_code.empty() ? "not found" : "found",
              seen == ours_p ? "wrapped" : "not wrapped (link order)");
    return;
  }
  g.on.store(true, std::memory_order_release);
  // Sleeps between its checks; ends with the process.
  std::thread{watch_handshakes}.detach();
}

uint64_t tls_refusals() {
  return guard().refusals.load();
}

} // namespace weft::cluster

// ---------------------------------------------------------------------------
// The wrapped OpenSSL calls (see tls.hpp). Each forwards to libssl; for calls
// made by libcaf_openssl it first empties this thread's error queue, as
// OpenSSL requires before an I/O call and the module does not.

using weft::cluster::from_caf;

extern "C" {

void SSL_CTX_set_verify(SSL_CTX* ctx, int mode, SSL_verify_cb cb) {
  static auto real =
      weft::cluster::next_definition<void (*)(SSL_CTX*, int, SSL_verify_cb)>(
          "SSL_CTX_set_verify");
  if (cb == nullptr && (mode & SSL_VERIFY_PEER) &&
      from_caf(__builtin_return_address(0))) {
    cb = weft::cluster::verify_cb;
    SSL_CTX_set_info_callback(ctx, weft::cluster::info_cb);
  }
  real(ctx, mode, cb);
}

int SSL_accept(SSL* s) {
  static auto real = weft::cluster::next_definition<int (*)(SSL*)>("SSL_accept");
  if (!from_caf(__builtin_return_address(0))) return real(s);
  ERR_clear_error();
  bool first = !(weft::cluster::flags_of(s) & weft::cluster::flag_accept_started);
  weft::cluster::set_flag(s, weft::cluster::flag_accept_started);
  int r = real(s);
  if (first && r <= 0) {
    auto e = SSL_get_error(s, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      auto& g = weft::cluster::guard();
      int fd = SSL_get_fd(s);
      std::lock_guard<std::mutex> lock{g.pending_mu};
      g.pending[s] = {fd, weft::cluster::peer_of_fd(fd),
                      std::chrono::steady_clock::now()};
    }
    // A first step that failed outright needs nothing here: CAF's doorman
    // (Debian's 0.17.6 guards the accepted socket) closes the descriptor
    // when the session is refused. Closing it here too was a double close:
    // another thread could be handed the number in between and lose it.
  }
  return r;
}

int SSL_connect(SSL* s) {
  static auto real = weft::cluster::next_definition<int (*)(SSL*)>("SSL_connect");
  if (from_caf(__builtin_return_address(0))) ERR_clear_error();
  return real(s);
}

int SSL_read(SSL* s, void* buf, int num) {
  static auto real =
      weft::cluster::next_definition<int (*)(SSL*, void*, int)>("SSL_read");
  if (from_caf(__builtin_return_address(0))) ERR_clear_error();
  return real(s, buf, num);
}

int SSL_write(SSL* s, const void* buf, int num) {
  static auto real =
      weft::cluster::next_definition<int (*)(SSL*, const void*, int)>("SSL_write");
  if (from_caf(__builtin_return_address(0))) ERR_clear_error();
  return real(s, buf, num);
}

} // extern "C"
