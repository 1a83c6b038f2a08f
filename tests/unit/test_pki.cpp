// Throwaway CAs and host certificates for the TLS tests (see test_pki.h).
#include "tests/unit/test_pki.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>
#include <utility>

namespace pbpf::test {
namespace {

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
    void operator()(X509* p) const { X509_free(p); }
};
struct FileClose {
    void operator()(FILE* f) const { std::fclose(f); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using FilePtr = std::unique_ptr<FILE, FileClose>;

void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    check(ext != nullptr, "extension");
    check(X509_add_ext(cert, ext, -1) == 1, "add extension");
    X509_EXTENSION_free(ext);
}

// A certificate for `key`, named `cn`, valid [now + from_s, now + to_s]; self-signed when
// `issuer` is null.
X509Ptr make_cert(EVP_PKEY* key, const std::string& cn, long serial, long from_s, long to_s,
                  X509* issuer) {
    X509Ptr x(X509_new());
    check(x != nullptr, "X509_new");
    X509_set_version(x.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), to_s);
    check(X509_set_pubkey(x.get(), key) == 1, "set pubkey");
    X509_NAME* name = X509_get_subject_name(x.get());
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                     0) == 1,
          "CN");
    X509_set_issuer_name(x.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
    return x;
}

void write_cert(const std::string& path, X509* cert) {
    FilePtr f(std::fopen(path.c_str(), "w"));
    check(f != nullptr && PEM_write_X509(f.get(), cert) == 1, "write certificate");
}

void write_key(const std::string& path, EVP_PKEY* key) {
    FilePtr f(std::fopen(path.c_str(), "w"));
    check(f != nullptr &&
              PEM_write_PrivateKey(f.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "write key");
}

}  // namespace

struct TestPki::Ca {
    PkeyPtr key;
    X509Ptr cert;
    std::string file;
};

TestPki::TestPki(std::string dir) : dir_(std::move(dir)) {}
TestPki::~TestPki() = default;

std::string TestPki::make_ca(const std::string& name) {
    auto ca = std::make_unique<Ca>();
    ca->key.reset(EVP_EC_gen("P-256"));
    check(ca->key != nullptr, "CA key");
    ca->cert = make_cert(ca->key.get(), name, serial_++, -3600, 86400L * 30, nullptr);
    add_ext(ca->cert.get(), ca->cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_ext(ca->cert.get(), ca->cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(ca->cert.get(), ca->cert.get(), NID_subject_key_identifier, "hash");
    check(X509_sign(ca->cert.get(), ca->key.get(), EVP_sha256()) > 0, "sign CA");
    ca->file = dir_ + "/" + name + ".crt";
    write_cert(ca->file, ca->cert.get());
    std::string file = ca->file;
    cas_[name] = std::move(ca);
    return file;
}

TestPki::Leaf TestPki::issue(const std::string& ca_name, const std::string& file,
                             const std::string& cn, const LeafOptions& opt) {
    const Ca& ca = *cas_.at(ca_name);
    PkeyPtr key(EVP_EC_gen("P-256"));
    check(key != nullptr, "leaf key");
    X509Ptr cert = opt.expired
                       ? make_cert(key.get(), cn, serial_++, -2 * 86400, -86400, ca.cert.get())
                       : make_cert(key.get(), cn, serial_++, -3600, 86400L * 30, ca.cert.get());
    add_ext(cert.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), ca.cert.get(), NID_key_usage, "critical,digitalSignature");
    add_ext(cert.get(), ca.cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
    add_ext(cert.get(), ca.cert.get(), NID_authority_key_identifier, "keyid:always");
    if (!opt.dns.empty()) {
        std::string sans;
        for (const auto& d : opt.dns) sans += (sans.empty() ? "DNS:" : ",DNS:") + d;
        add_ext(cert.get(), ca.cert.get(), NID_subject_alt_name, sans);
    }
    check(X509_sign(cert.get(), ca.key.get(), EVP_sha256()) > 0, "sign leaf");
    Leaf leaf{dir_ + "/" + file + ".crt", dir_ + "/" + file + ".key"};
    write_cert(leaf.cert, cert.get());
    write_key(leaf.key, key.get());
    return leaf;
}

std::string TestPki::ca_file(const std::string& name) const { return cas_.at(name)->file; }

}  // namespace pbpf::test
