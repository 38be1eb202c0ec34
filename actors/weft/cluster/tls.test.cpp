// cluster.tls.* checked at start-up (load_tls): every way the files can be
// wrong fails before the node starts, naming the key and the fix. The
// certificates are made at test time by tools/weft-certs and the openssl
// command line.

#include "weft/cluster/tls.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>

#include "weft/config.hpp"

using weft::config;
using weft::errc;

namespace {

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/weft-tls-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

void run(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system((cmd + " >/dev/null 2>&1").c_str()) == 0);
}

std::string certs_tool() {
  return std::string{WEFT_SOURCE_DIR} + "/tools/weft-certs";
}

weft::result<std::optional<weft::cluster::tls_files>>
load(const std::string& cert, const std::string& key, const std::string& ca,
     const std::string& password = "") {
  auto c = config::from_map({{"application.id", "a"},
                             {"cluster.tls.enabled", "true"},
                             {"cluster.tls.certificate", cert},
                             {"cluster.tls.key", key},
                             {"cluster.tls.key.password", password},
                             {"cluster.tls.ca", ca}});
  REQUIRE(c.ok());
  return weft::cluster::load_tls(*c);
}

} // namespace

TEST_CASE("cluster TLS files made by tools/weft-certs pass the start-up checks") {
  temp_dir d;
  run(certs_tool() + " ca " + d.path + "/app");
  run(certs_tool() + " node " + d.path + "/app n1");
  auto r = load(d.path + "/app/n1.pem", d.path + "/app/n1.key", d.path + "/app/ca.pem");
  INFO((r ? "" : r.error().message()));
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK((*r)->certificate == d.path + "/app/n1.pem");
  CHECK((*r)->ca == d.path + "/app/ca.pem");

  auto off = config::from_map({{"application.id", "a"}});
  REQUIRE(off.ok());
  auto none = weft::cluster::load_tls(*off);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
}

TEST_CASE("cluster TLS: a certificate of another CA, a key of another node, or files "
          "that are no PEM fail at start-up naming the key") {
  temp_dir d;
  auto app = d.path + "/app", other = d.path + "/other";
  run(certs_tool() + " ca " + app);
  run(certs_tool() + " node " + app + " n1");
  run(certs_tool() + " node " + app + " n2");
  run(certs_tool() + " ca " + other + " stranger-ca");
  run(certs_tool() + " node " + other + " stranger");

  auto fails = [](const weft::result<std::optional<weft::cluster::tls_files>>& r) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == errc::invalid_config);
    return r.error().message();
  };

  auto foreign =
      fails(load(other + "/stranger.pem", other + "/stranger.key", app + "/ca.pem"));
  CHECK_THAT(foreign, Catch::Contains("'cluster.tls.certificate'") &&
                          Catch::Contains("does not verify against the CA in "
                                          "cluster.tls.ca") &&
                          Catch::Contains("tools/weft-certs"));

  auto wrong_key = fails(load(app + "/n1.pem", app + "/n2.key", app + "/ca.pem"));
  CHECK_THAT(wrong_key, Catch::Contains("'cluster.tls.key'") &&
                            Catch::Contains("is not the private key of the certificate"));

  auto key_as_cert = fails(load(app + "/n1.key", app + "/n1.key", app + "/ca.pem"));
  CHECK_THAT(key_as_cert, Catch::Contains("'cluster.tls.certificate'") &&
                              Catch::Contains("holds no PEM certificate"));

  auto cert_as_ca = fails(load(app + "/n1.pem", app + "/n1.key", app + "/n1.key"));
  CHECK_THAT(cert_as_ca, Catch::Contains("'cluster.tls.ca'"));

  // A certificate the CA did not sign, even with the CA's own name on it.
  run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
      "-subj '/CN=weft cluster CA' -keyout " +
      d.path + "/fake.key -out " + d.path + "/fake.pem");
  auto self_signed =
      fails(load(d.path + "/fake.pem", d.path + "/fake.key", app + "/ca.pem"));
  CHECK_THAT(self_signed, Catch::Contains("does not verify against the CA"));
}

TEST_CASE("cluster TLS: an encrypted key needs cluster.tls.key.password") {
  temp_dir d;
  auto app = d.path + "/app";
  run(certs_tool() + " ca " + app);
  run(certs_tool() + " node " + app + " n1");
  run("openssl pkey -in " + app + "/n1.key -aes256 -passout pass:right -out " + app +
      "/n1.enc.key");
  auto none = load(app + "/n1.pem", app + "/n1.enc.key", app + "/ca.pem");
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.error().message(), Catch::Contains("'cluster.tls.key'") &&
                                         Catch::Contains("set cluster.tls.key.password"));
  auto wrong = load(app + "/n1.pem", app + "/n1.enc.key", app + "/ca.pem", "wrong");
  REQUIRE_FALSE(wrong.ok());
  CHECK_THAT(wrong.error().message(), Catch::Contains("check cluster.tls.key.password"));
  auto right = load(app + "/n1.pem", app + "/n1.enc.key", app + "/ca.pem", "right");
  INFO((right ? "" : right.error().message()));
  CHECK(right.ok());
}
