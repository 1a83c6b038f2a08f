// The agent-to-agent TLS transport (see peer_tls.h): OpenSSL over non-blocking sockets, every
// wait a poll() bounded by a deadline and, on the server, by its stop eventfd.
#include "agent/peer_tls.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "maps/fd.h"

namespace pbpf::agent {
namespace {

using Clock = std::chrono::steady_clock;

struct SslCtxFree {
    void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
    void operator()(SSL* p) const { SSL_free(p); }
};
struct BioFree {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct GeneralNamesFree {
    void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
struct AddrinfoFree {
    void operator()(addrinfo* p) const { freeaddrinfo(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;
using AddrinfoPtr = std::unique_ptr<addrinfo, AddrinfoFree>;

// After the TLS handshake each side sends one verdict frame, the server first: kAccepted, or
// kRefusedPrefix + why. Only then does the handler run, so neither side ever sends data to a
// peer that has not accepted it, and a refused side learns why.
constexpr std::string_view kAccepted = "personabpf-peer/1 accepted";
constexpr std::string_view kRefusedPrefix = "personabpf-peer/1 refused: ";
constexpr std::size_t kVerdictMax = 1024;
// Leaf, up to two intermediates, root.
constexpr int kVerifyDepth = 4;
// Big messages are read into a buffer grown in steps, not allocated whole on a header's word.
constexpr std::size_t kReadStep = std::size_t{1} << 20;

std::string ms_text(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

// Printable ASCII only: reasons a peer sends end up in our logs.
std::string sanitize(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, kVerdictMax)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

// ---------------------------------------------------------------- OpenSSL errors

struct SslErrors {
    std::string text;  // the reasons, "; "-joined, oldest first
    int lib = 0;       // of the oldest
    int reason = 0;
};

// Empties this thread's OpenSSL error queue.
SslErrors drain_errors() {
    SslErrors out;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (out.text.empty()) {
            out.lib = ERR_GET_LIB(e);
            out.reason = ERR_GET_REASON(e);
        }
        const char* r = ERR_reason_error_string(e);
        std::string s = r != nullptr ? r : "OpenSSL error " + std::to_string(e);
        if (out.text.find(s) == std::string::npos) out.text += (out.text.empty() ? "" : "; ") + s;
    }
    return out;
}

// What a TLS failure most likely means, for the reasons an operator will meet.
const char* hint_for(int lib, int reason) {
    if (lib != ERR_LIB_SSL) return nullptr;
    switch (reason) {
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
            return "the peer does not trust the CA that signed our certificate";
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
            return "the peer requires a certificate";
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
            return "the peer refused our certificate";
        case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
            return "the peer says our certificate has expired";
        case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
            return "the peer says our certificate is revoked";
        case SSL_R_HTTP_REQUEST:
        case SSL_R_HTTPS_PROXY_REQUEST:
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_RECORD_LENGTH_MISMATCH:
        case SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE:
            return "the peer does not speak TLS";
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        case SSL_R_NO_SHARED_CIPHER:
            return "the peer does not speak TLS 1.3";
        default:
            return nullptr;
    }
}

std::string name_text(const X509_NAME* name) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "?";
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : "";
}

// ---------------------------------------------------------------- certificate names

struct CertNames {
    std::vector<std::string> cn;   // subject commonName(s)
    std::vector<std::string> dns;  // DNS subjectAltNames
    std::string text() const {
        std::vector<std::string> parts;
        for (const auto& n : cn) parts.push_back("CN=" + n);
        for (const auto& n : dns) parts.push_back("DNS:" + n);
        return parts.empty() ? "none" : join(parts, ", ");
    }
};

// A name with control characters or embedded NULs is not a name (and never matches).
std::optional<std::string> printable(const unsigned char* p, int n) {
    if (p == nullptr || n <= 0) return std::nullopt;
    std::string s(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return std::nullopt;
    return s;
}

CertNames cert_names(X509* cert) {
    CertNames out;
    const X509_NAME* subject = X509_get_subject_name(cert);
    for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
        const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        unsigned char* utf8 = nullptr;
        int n = ASN1_STRING_to_UTF8(&utf8, data);
        if (auto s = printable(utf8, n)) out.cn.push_back(*s);
        OPENSSL_free(utf8);
    }
    GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), i);
        if (g->type != GEN_DNS) continue;
        if (auto s =
                printable(ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName)))
            out.dns.push_back(*s);
    }
    return out;
}

struct NameCheck {
    std::string name;    // accepted under this name, or
    std::string local;   // why not, for our log (lists what we expected)
    std::string remote;  // why not, for the peer (does not)
};

// The peer's names must include `expected` (if given) and one of `allowed` (if any).
NameCheck check_names(const CertNames& names, const std::string& expected,
                      const std::vector<std::string>& allowed) {
    std::vector<std::string> all = names.cn;
    all.insert(all.end(), names.dns.begin(), names.dns.end());
    auto find = [&](const std::string& want) {
        return std::find_if(all.begin(), all.end(),
                            [&](const std::string& n) { return iequals(n, want); });
    };
    NameCheck r;
    if (!expected.empty()) {
        if (find(expected) == all.end()) {
            r.local = "certificate names (" + names.text() + ") do not include the expected name " +
                      expected;
            r.remote = "certificate names (" + names.text() + ") do not include the name dialled";
            return r;
        }
        r.name = expected;
    }
    if (!allowed.empty()) {
        auto it = std::find_if(all.begin(), all.end(), [&](const std::string& n) {
            return std::any_of(allowed.begin(), allowed.end(),
                               [&](const std::string& a) { return iequals(n, a); });
        });
        if (it == all.end()) {
            r.name.clear();
            r.local = "certificate names (" + names.text() + ") are not among the allowed peers (" +
                      join(allowed, ", ") + ")";
            r.remote = "certificate names (" + names.text() + ") are not among its allowed peers";
            return r;
        }
        if (r.name.empty()) r.name = *it;
    }
    if (r.name.empty() && !all.empty()) r.name = all.front();
    return r;
}

// ---------------------------------------------------------------- verify callback

// Where the verify callback notes which certificate failed, for the error message.
struct VerifyNote {
    std::string detail;
};

int verify_note_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

int verify_callback(int ok, X509_STORE_CTX* store) {
    if (ok == 1) return 1;
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* note = ssl != nullptr
                     ? static_cast<VerifyNote*>(SSL_get_ex_data(ssl, verify_note_index()))
                     : nullptr;
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    if (note != nullptr && note->detail.empty() && cert != nullptr)
        note->detail = "subject " + name_text(X509_get_subject_name(cert)) + ", issuer " +
                       name_text(X509_get_issuer_name(cert));
    return 0;
}

// ---------------------------------------------------------------- socket BIO

// OpenSSL's socket BIO write()s, which raises SIGPIPE on a closed connection; this one
// send()s with MSG_NOSIGNAL, so the transport never depends on the process ignoring SIGPIPE.
struct BioSocket {
    int fd = -1;
    int last_errno = 0;
    bool eof = false;
};

int bio_write(BIO* b, const char* buf, int len) {
    auto* s = static_cast<BioSocket*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    ssize_t n = ::send(s->fd, buf, static_cast<std::size_t>(len), MSG_NOSIGNAL);
    if (n < 0) {
        s->last_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
        return -1;
    }
    return static_cast<int>(n);
}

int bio_read(BIO* b, char* buf, int len) {
    auto* s = static_cast<BioSocket*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    ssize_t n = ::recv(s->fd, buf, static_cast<std::size_t>(len), 0);
    if (n < 0) {
        s->last_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
        return -1;
    }
    if (n == 0) s->eof = true;
    return static_cast<int>(n);
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
    switch (cmd) {
        case BIO_CTRL_FLUSH:
            return 1;
        case BIO_CTRL_EOF:
            return static_cast<BioSocket*>(BIO_get_data(b))->eof ? 1 : 0;
        default:
            return 0;
    }
}

int bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

const BIO_METHOD* socket_bio_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m =
            BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pbpf peer socket");
        if (m != nullptr) {
            BIO_meth_set_write(m, bio_write);
            BIO_meth_set_read(m, bio_read);
            BIO_meth_set_ctrl(m, bio_ctrl);
            BIO_meth_set_create(m, bio_create);
        }
        return m;
    }();
    return method;
}

// ---------------------------------------------------------------- sockets

std::string sockaddr_text(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {  // a v4 client of a dual-stack listener
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);
            return std::string(buf) + ":" + std::to_string(ntohs(a->sin6_port));
        }
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    return "?";
}

// 0 when `fd` is ready for `events` (or has an error to report), else ETIMEDOUT, ECANCELED
// (stop_fd readable) or poll's errno.
int wait_socket(int fd, short events, Clock::time_point deadline, int stop_fd) {
    for (;;) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return ETIMEDOUT;
        pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
        int n =
            ::poll(p, stop_fd >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left, INT_MAX)));
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (stop_fd >= 0 && (p[1].revents & POLLIN) != 0) return ECANCELED;
        if (n > 0 && p[0].revents != 0) return 0;
    }
}

// Loads the identity into a context: TLS 1.3 only, our certificate and key, the CA as the
// only trust anchor, peer certificates required, no session resumption (every connection
// is authenticated in full).
Result<SslCtxPtr> make_context(const TlsIdentity& id, bool server) {
    const std::pair<const char*, const std::string*> files[] = {
        {"certificate", &id.cert_file}, {"key", &id.key_file}, {"CA", &id.ca_file}};
    for (const auto& [what, path] : files) {
        if (path->empty()) return Error{EINVAL, std::string("no ") + what + " file configured"};
        if (::access(path->c_str(), R_OK) != 0)
            return sys_error(std::string(what) + " file " + *path);
    }
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
    if (!ctx) return Error{ENOMEM, "SSL_CTX_new: " + drain_errors().text};
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx.get(), 0);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_clear_mode(ctx.get(), SSL_MODE_AUTO_RETRY);

    if (SSL_CTX_use_certificate_chain_file(ctx.get(), id.cert_file.c_str()) != 1)
        return Error{0, "certificate file " + id.cert_file + ": " + drain_errors().text};
    const std::string mismatch =
        "key file " + id.key_file + " does not match certificate " + id.cert_file;
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), id.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        SslErrors errs = drain_errors();
        if (errs.lib == ERR_LIB_X509 && errs.reason == X509_R_KEY_VALUES_MISMATCH)
            return Error{0, mismatch};
        return Error{0, "key file " + id.key_file + ": " + errs.text};
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
        drain_errors();
        return Error{0, mismatch};
    }
    if (SSL_CTX_load_verify_locations(ctx.get(), id.ca_file.c_str(), nullptr) != 1)
        return Error{0, "CA file " + id.ca_file + ": " + drain_errors().text};
    if (sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx.get()))) == 0)
        return Error{0, "CA file " + id.ca_file + ": no certificate in it"};
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       verify_callback);
    SSL_CTX_set_verify_depth(ctx.get(), kVerifyDepth);

    // Peers would refuse us; say so now rather than on every connection.
    if (X509* own = SSL_CTX_get0_certificate(ctx.get())) {
        if (X509_cmp_current_time(X509_get0_notAfter(own)) < 0)
            spdlog::warn("peer TLS: certificate {} has expired", id.cert_file);
        else if (X509_cmp_current_time(X509_get0_notBefore(own)) > 0)
            spdlog::warn("peer TLS: certificate {} is not valid yet", id.cert_file);
    }
    return ctx;
}

Result<void> check_limits(const TlsLimits& l) {
    using std::chrono::milliseconds;
    if (l.connect_timeout <= milliseconds(0) || l.handshake_timeout <= milliseconds(0) ||
        l.io_timeout <= milliseconds(0))
        return Error{EINVAL, "peer TLS limits: every timeout must be positive"};
    if (l.max_connections < 1)
        return Error{EINVAL, "peer TLS limits: max_connections must be >= 1"};
    return {};
}

}  // namespace

// ---------------------------------------------------------------- HostPort

std::string HostPort::text() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

Result<HostPort> parse_host_port(const std::string& text) {
    HostPort hp;
    std::string port;
    if (!text.empty() && text[0] == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return Error{EINVAL, "'" + text + "' is not [IPV6]:PORT"};
        hp.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        in6_addr v6{};
        if (inet_pton(AF_INET6, hp.host.c_str(), &v6) != 1)
            return Error{EINVAL, "'" + text + "': '" + hp.host + "' is not an IPv6 address"};
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string::npos || colon == 0)
            return Error{EINVAL, "'" + text + "' is not HOST:PORT or [IPV6]:PORT"};
        hp.host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (hp.host.find(':') != std::string::npos)
            return Error{EINVAL, "'" + text + "': write an IPv6 address in brackets ([::1]:7946)"};
        for (unsigned char c : hp.host)
            if (!std::isalnum(c) && c != '.' && c != '-' && c != '_')
                return Error{EINVAL, "'" + text + "': '" + hp.host + "' is not a host name"};
    }
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos)
        return Error{EINVAL, "'" + text + "': port '" + port + "' is not a number"};
    const int p = std::stoi(port);
    if (p > 65535) return Error{EINVAL, "'" + text + "': port " + port + " is out of range"};
    hp.port = static_cast<uint16_t>(p);
    return hp;
}

// ---------------------------------------------------------------- PeerConnection

struct PeerConnection::State {
    // Declared in this order so the SSL (which points at bio and note) goes first.
    Fd fd;
    BioSocket bio;
    VerifyNote note;
    SslPtr ssl;
    std::string peer;  // address text
    std::string name;  // verified certificate name
    TlsLimits limits;
    int stop_fd = -1;  // the server's, borrowed; -1 on the client side
    bool broken = false;
    bool eof_seen = false;  // the last failure was the peer closing
    bool peer_closed = false;
    bool closed = false;

    std::string prefix() const { return "peer " + peer + ": "; }

    Error failure(int ssl_error, const std::string& doing) {
        SslErrors errs = drain_errors();
        eof_seen = false;
        if (ssl_error == SSL_ERROR_ZERO_RETURN ||
            (ssl_error == SSL_ERROR_SSL && errs.lib == ERR_LIB_SSL &&
             errs.reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
            (ssl_error == SSL_ERROR_SYSCALL && bio.last_errno == 0)) {
            eof_seen = true;
            return Error{0, prefix() + doing + ": the peer closed the connection"};
        }
        if (ssl_error == SSL_ERROR_SYSCALL) return sys_error(prefix() + doing, bio.last_errno);
        if (ssl_error == SSL_ERROR_SSL && errs.lib == ERR_LIB_SSL) {
            if (errs.reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
                long v = SSL_get_verify_result(ssl.get());
                return Error{
                    0, prefix() + "certificate verify failed: " + X509_verify_cert_error_string(v) +
                           (note.detail.empty() ? "" : " (" + note.detail + ")")};
            }
            if (errs.reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
                return Error{0, prefix() +
                                    "presented no certificate (one signed by the CA is "
                                    "required)"};
        }
        std::string text = errs.text.empty() ? "TLS error " + std::to_string(ssl_error) : errs.text;
        if (const char* hint = hint_for(errs.lib, errs.reason))
            text += std::string(" (") + hint + ")";
        return Error{0, prefix() + doing + ": " + text};
    }

    // Runs `op` (an SSL call) until it returns > 0, waiting on the socket as OpenSSL asks,
    // until `deadline`. `limit` is only for the timeout message.
    template <class Op>
    Result<int> drive(Op op, Clock::time_point deadline, std::chrono::milliseconds limit,
                      const std::string& doing) {
        for (;;) {
            ERR_clear_error();
            bio.last_errno = 0;
            const int r = op();
            if (r > 0) return r;
            const int e = SSL_get_error(ssl.get(), r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return failure(e, doing);
            const int w = wait_socket(fd.get(), e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                      deadline, stop_fd);
            if (w == 0) continue;
            ERR_clear_error();
            eof_seen = false;
            if (w == ETIMEDOUT)
                return Error{ETIMEDOUT, prefix() + doing + " (" + ms_text(limit) + " limit)"};
            if (w == ECANCELED)
                return Error{ECANCELED, prefix() + doing + ": the transport is stopping"};
            return sys_error(prefix() + doing + ": poll", w);
        }
    }

    // `fixed`: one deadline for the whole write (handshake); else io_timeout per progress.
    Result<void> write_all(const char* data, std::size_t size, const std::string& doing,
                           std::optional<Clock::time_point> fixed) {
        std::size_t off = 0;
        while (off < size) {
            const int chunk = static_cast<int>(std::min<std::size_t>(size - off, INT_MAX));
            const auto limit = fixed ? limits.handshake_timeout : limits.io_timeout;
            auto r = drive([&] { return SSL_write(ssl.get(), data + off, chunk); },
                           fixed ? *fixed : Clock::now() + limit, limit, doing);
            if (!r) return r.error();
            off += static_cast<std::size_t>(r.value());
        }
        return {};
    }

    Result<void> read_exact(char* data, std::size_t size, std::size_t& got,
                            const std::string& doing, std::optional<Clock::time_point> fixed) {
        while (got < size) {
            const int chunk = static_cast<int>(std::min<std::size_t>(size - got, INT_MAX));
            const auto limit = fixed ? limits.handshake_timeout : limits.io_timeout;
            auto r = drive([&] { return SSL_read(ssl.get(), data + got, chunk); },
                           fixed ? *fixed : Clock::now() + limit, limit, doing);
            if (!r) return r.error();
            got += static_cast<std::size_t>(r.value());
        }
        return {};
    }

    static void put_be32(char* p, uint32_t v) {
        p[0] = static_cast<char>(v >> 24);
        p[1] = static_cast<char>(v >> 16);
        p[2] = static_cast<char>(v >> 8);
        p[3] = static_cast<char>(v);
    }
    static uint32_t get_be32(const char* p) {
        const auto* u = reinterpret_cast<const unsigned char*>(p);
        return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
    }

    Result<void> write_frame(std::string_view msg, const std::string& doing,
                             std::optional<Clock::time_point> fixed) {
        char header[4];
        put_be32(header, static_cast<uint32_t>(msg.size()));
        // Small messages go out as one TLS record.
        if (msg.size() <= 16384) {
            std::string buf(header, 4);
            buf.append(msg);
            return write_all(buf.data(), buf.size(), doing, fixed);
        }
        if (auto r = write_all(header, 4, doing, fixed); !r) return r;
        return write_all(msg.data(), msg.size(), doing, fixed);
    }

    // A frame of at most `max` bytes. `got_any`: whether any byte of it arrived.
    Result<std::string> read_frame(std::size_t max, const std::string& doing,
                                   std::optional<Clock::time_point> fixed, bool& got_any) {
        char header[4];
        std::size_t got = 0;
        auto h = read_exact(header, 4, got, doing, fixed);
        got_any = got > 0;
        if (!h) return h.error();
        const uint32_t len = get_be32(header);
        if (len > max)
            return Error{EMSGSIZE, prefix() + doing + ": message of " + std::to_string(len) +
                                       " bytes exceeds the limit of " + std::to_string(max) +
                                       " bytes"};
        std::string out;
        std::size_t have = 0;
        while (have < len) {
            out.resize(std::min<std::size_t>(len, have + std::max(kReadStep, have)));
            auto r = read_exact(out.data(), out.size(), have, doing, fixed);
            if (!r)
                return Error{r.error().err, r.error().message + " (" + std::to_string(have) +
                                                " of " + std::to_string(len) + " bytes received)"};
        }
        return out;
    }

    void close() {
        if (closed) return;
        closed = true;
        if (ssl && !broken) {
            // One close_notify; the peer's answer is not awaited.
            const auto limit = std::min(limits.io_timeout, std::chrono::milliseconds(1000));
            (void)drive(
                [&] {
                    const int r = SSL_shutdown(ssl.get());
                    return r >= 0 ? 1 : r;
                },
                Clock::now() + limit, limit, "closing");
        }
        ERR_clear_error();
        ssl.reset();
        fd.reset();
    }
};

PeerConnection::PeerConnection(std::unique_ptr<State> state) : s_(std::move(state)) {}
PeerConnection::PeerConnection(PeerConnection&&) noexcept = default;
PeerConnection& PeerConnection::operator=(PeerConnection&& o) noexcept {
    if (this != &o) {
        close();
        s_ = std::move(o.s_);
    }
    return *this;
}
PeerConnection::~PeerConnection() { close(); }

void PeerConnection::close() {
    if (s_) s_->close();
}

Result<void> PeerConnection::send(std::string_view message) {
    if (!s_ || s_->closed) return Error{ENOTCONN, "peer connection is closed"};
    if (s_->broken)
        return Error{ENOTCONN, s_->prefix() + "connection unusable after an earlier error"};
    const std::size_t max = std::min<std::size_t>(s_->limits.max_message, UINT32_MAX);
    if (message.size() > max)
        return Error{EMSGSIZE, s_->prefix() + "sending a message of " +
                                   std::to_string(message.size()) + " bytes: over the limit of " +
                                   std::to_string(max) + " bytes"};
    auto r = s_->write_frame(message, "sending a message", std::nullopt);
    if (!r) s_->broken = true;
    return r;
}

Result<std::string> PeerConnection::receive() {
    if (!s_ || s_->closed) return Error{ENOTCONN, "peer connection is closed"};
    if (s_->broken)
        return Error{ENOTCONN, s_->prefix() + "connection unusable after an earlier error"};
    bool got_any = false;
    auto r = s_->read_frame(std::min<std::size_t>(s_->limits.max_message, UINT32_MAX),
                            "receiving a message", std::nullopt, got_any);
    if (r) return r;
    // Nothing of the next message yet: still in step, the caller may wait again.
    if (!got_any && r.error().err == ETIMEDOUT) return r;
    s_->broken = true;
    if (!got_any && s_->eof_seen) {
        s_->peer_closed = true;
        return Error{0, "peer " + s_->peer + " closed the connection"};
    }
    return r;
}

const std::string& PeerConnection::peer_address() const { return s_->peer; }
const std::string& PeerConnection::peer_name() const { return s_->name; }
bool PeerConnection::peer_closed() const { return s_ && s_->peer_closed; }

namespace {

// TLS handshake, the peer's names, then the verdict frames (see kAccepted). `deadline`
// bounds it all.
Result<PeerConnection> authenticate(SSL_CTX* ctx, Fd fd, const std::string& peer, bool server,
                                    const TlsLimits& limits, int stop_fd,
                                    const std::string& expected_name,
                                    const std::vector<std::string>& allowed) {
    const auto deadline = Clock::now() + limits.handshake_timeout;
    auto st = std::make_unique<PeerConnection::State>();
    st->fd = std::move(fd);
    st->bio.fd = st->fd.get();
    st->peer = peer;
    st->limits = limits;
    st->stop_fd = stop_fd;

    ERR_clear_error();
    st->ssl.reset(SSL_new(ctx));
    const BIO_METHOD* method = socket_bio_method();
    BIO* bio = method != nullptr ? BIO_new(method) : nullptr;
    if (!st->ssl || bio == nullptr) {
        BIO_free(bio);
        return Error{ENOMEM, st->prefix() + "TLS setup: " + drain_errors().text};
    }
    BIO_set_data(bio, &st->bio);
    SSL_set_bio(st->ssl.get(), bio, bio);  // the SSL owns it now
    SSL_set_ex_data(st->ssl.get(), verify_note_index(), &st->note);
    if (server)
        SSL_set_accept_state(st->ssl.get());
    else
        SSL_set_connect_state(st->ssl.get());

    const std::string doing = "TLS handshake";
    if (auto r = st->drive([&] { return SSL_do_handshake(st->ssl.get()); }, deadline,
                           limits.handshake_timeout, doing);
        !r)
        return r.error();
    SSL_set_ex_data(st->ssl.get(), verify_note_index(), nullptr);

    X509* cert = SSL_get0_peer_certificate(st->ssl.get());
    if (cert == nullptr) return Error{0, st->prefix() + "presented no certificate"};
    NameCheck check = check_names(cert_names(cert), expected_name, allowed);
    const bool refuse = !check.local.empty();
    const std::string ours =
        refuse ? std::string(kRefusedPrefix) + check.remote : std::string(kAccepted);

    // The server speaks first; the client answers even when refused, so no side closes with
    // unread data (which would reset the connection before the peer read the reason).
    bool got_any = false;
    Result<std::string> theirs = Error{};
    if (server) {
        if (auto w = st->write_frame(ours, doing, deadline); !w) return w.error();
        theirs = st->read_frame(kVerdictMax, doing, deadline, got_any);
    } else {
        theirs = st->read_frame(kVerdictMax, doing, deadline, got_any);
        if (theirs)
            if (auto w = st->write_frame(ours, doing, deadline); !w) return w.error();
    }
    if (refuse) {
        st->close();
        return Error{0, st->prefix() + check.local};
    }
    if (!theirs) return theirs.error();
    if (theirs.value() != kAccepted) {
        const std::string& v = theirs.value();
        if (v.rfind(kRefusedPrefix, 0) == 0)
            return Error{0,
                         st->prefix() + "refused us: " + sanitize(v.substr(kRefusedPrefix.size()))};
        return Error{0, st->prefix() + "not a personabpf peer (unexpected greeting)"};
    }
    st->name = check.name;
    return PeerConnection(std::move(st));
}

}  // namespace

Result<PeerConnection> connect_peer(const std::string& host_port, const TlsIdentity& id,
                                    const std::string& expected_name, const TlsLimits& limits) {
    auto hp = parse_host_port(host_port);
    if (!hp) return Error{hp.error().err, "peer address " + hp.error().message};
    if (hp->port == 0) return Error{EINVAL, "peer address '" + host_port + "': port 0"};
    if (auto r = check_limits(limits); !r) return r.error();
    const std::string peer = hp->text();
    auto ctx = make_context(id, false);
    if (!ctx) return ctx.error();

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(hp->port);
    if (int rc = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &res); rc != 0)
        return Error{0, "peer " + peer + ": cannot resolve " + hp->host + ": " + gai_strerror(rc)};
    AddrinfoPtr addrs(res);

    // Each address in turn, within one connect_timeout.
    const auto deadline = Clock::now() + limits.connect_timeout;
    Fd fd;
    Error last{ECONNREFUSED, "peer " + peer + ": connect"};
    for (const addrinfo* ai = addrs.get(); ai != nullptr && !fd.valid(); ai = ai->ai_next) {
        Fd s(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!s.valid()) {
            last = sys_error("peer " + peer + ": socket");
            continue;
        }
        if (::connect(s.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                last = sys_error("peer " + peer + ": connect");
                continue;
            }
            if (int w = wait_socket(s.get(), POLLOUT, deadline, -1); w != 0) {
                last = w == ETIMEDOUT
                           ? Error{ETIMEDOUT, "peer " + peer + ": connect (" +
                                                  ms_text(limits.connect_timeout) + " limit)"}
                           : sys_error("peer " + peer + ": connect", w);
                if (w == ETIMEDOUT) break;
                continue;
            }
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                last = sys_error("peer " + peer + ": connect", err);
                continue;
            }
        }
        fd = std::move(s);
    }
    if (!fd.valid()) return last;
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return authenticate(ctx->get(), std::move(fd), peer, false, limits, -1, expected_name,
                        id.allowed_peers);
}

// ---------------------------------------------------------------- PeerServer

struct PeerServer::Impl {
    SslCtxPtr ctx;
    std::vector<std::string> allowed;
    TlsLimits limits;
    Handler handler;
    RefusedHandler on_refused;
    Fd listen_fd;
    Fd stop_fd;  // eventfd: readable once stop() ran
    std::string address;
    uint16_t port = 0;
    std::atomic<bool> stopped{false};
    std::thread acceptor;

    struct Conn {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    std::mutex mu;
    std::list<Conn> conns;  // guarded by mu
    std::atomic<int> active{0};

    void refuse(const std::string& peer, const Error& why) {
        spdlog::warn("peer TLS: refused {}", why.what());
        if (!on_refused) return;
        try {
            on_refused(peer, why);
        } catch (const std::exception& e) {
            spdlog::error("peer TLS: on_refused for {} threw: {}", peer, e.what());
        }
    }

    void serve(Fd fd, const std::string& peer) {
        auto conn =
            authenticate(ctx.get(), std::move(fd), peer, true, limits, stop_fd.get(), "", allowed);
        if (!conn) {
            if (conn.error().err == ECANCELED)
                spdlog::debug("peer TLS: {}", conn.error().message);
            else
                refuse(peer, conn.error());
            return;
        }
        spdlog::info("peer TLS: {} authenticated as {}", peer, conn->peer_name());
        try {
            handler(conn.value());
        } catch (const std::exception& e) {
            spdlog::error("peer TLS: handler for {} failed: {}", peer, e.what());
        } catch (...) {
            spdlog::error("peer TLS: handler for {} failed", peer);
        }
        conn->close();
    }

    // Joins the connection threads that have finished (all of them when `all`).
    void reap(bool all) {
        std::list<Conn> finished;
        {
            std::lock_guard lock(mu);
            for (auto it = conns.begin(); it != conns.end();) {
                auto next = std::next(it);
                if (all || it->done->load()) finished.splice(finished.end(), conns, it);
                it = next;
            }
        }
        for (auto& c : finished) c.thread.join();
    }

    void accept_loop() {
        for (;;) {
            pollfd p[2] = {{listen_fd.get(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                spdlog::error("peer TLS: poll on {}: {}", address, std::strerror(errno));
                return;
            }
            if ((p[1].revents & POLLIN) != 0) return;
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            Fd fd(::accept4(listen_fd.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                            SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!fd.valid()) {
                const int err = errno;
                if (err == EAGAIN || err == EINTR || err == ECONNABORTED) continue;
                spdlog::warn("peer TLS: accept on {}: {}", address, std::strerror(err));
                // Out of descriptors or memory: the pending connection would wake us at once.
                pollfd s{stop_fd.get(), POLLIN, 0};
                if (::poll(&s, 1, 100) > 0) return;
                continue;
            }
            const std::string peer = sockaddr_text(ss);
            reap(false);
            if (active.load() >= limits.max_connections) {
                refuse(peer,
                       Error{EBUSY, "peer " + peer + ": max_connections (" +
                                        std::to_string(limits.max_connections) + ") reached"});
                continue;
            }
            const int one = 1;
            ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            auto done = std::make_shared<std::atomic<bool>>(false);
            ++active;
            try {
                std::lock_guard lock(mu);
                conns.push_back(Conn{std::thread([this, fd = std::move(fd), peer, done]() mutable {
                                         serve(std::move(fd), peer);
                                         --active;
                                         done->store(true);
                                     }),
                                     done});
            } catch (const std::system_error& e) {
                --active;
                spdlog::error("peer TLS: no thread for {}: {}", peer, e.what());
            }
        }
    }
};

PeerServer::PeerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerServer::~PeerServer() { stop(); }

Result<std::unique_ptr<PeerServer>> PeerServer::start(const std::string& listen,
                                                      const TlsIdentity& id, Handler handler,
                                                      const TlsLimits& limits,
                                                      RefusedHandler on_refused) {
    auto hp = parse_host_port(listen);
    if (!hp) return Error{hp.error().err, "listen address " + hp.error().message};
    if (auto r = check_limits(limits); !r) return r.error();
    auto ctx = make_context(id, true);
    if (!ctx) return ctx.error();

    auto impl = std::make_unique<Impl>();
    impl->ctx = std::move(ctx.value());
    impl->allowed = id.allowed_peers;
    impl->limits = limits;
    impl->handler = std::move(handler);
    impl->on_refused = std::move(on_refused);

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(hp->port);
    if (int rc = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &res); rc != 0)
        return Error{
            0, "listen on " + listen + ": cannot resolve " + hp->host + ": " + gai_strerror(rc)};
    AddrinfoPtr addrs(res);
    Error last{EADDRNOTAVAIL, "listen on " + listen};
    for (const addrinfo* ai = addrs.get(); ai != nullptr; ai = ai->ai_next) {
        Fd s(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!s.valid()) {
            last = sys_error("listen on " + listen + ": socket");
            continue;
        }
        const int one = 1;
        ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(s.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(s.get(), 64) != 0) {
            last = sys_error("listen on " + listen);
            continue;
        }
        impl->listen_fd = std::move(s);
        break;
    }
    if (!impl->listen_fd.valid()) return last;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(impl->listen_fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return sys_error("listen on " + listen + ": getsockname");
    impl->port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    impl->address = HostPort{hp->host, impl->port}.text();
    impl->stop_fd = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!impl->stop_fd.valid()) return sys_error("listen on " + listen + ": eventfd");

    spdlog::info("peer TLS: listening on {} (TLS 1.3, client certificates from {}; peers: {})",
                 impl->address, id.ca_file,
                 id.allowed_peers.empty() ? "any the CA signed" : join(id.allowed_peers, ", "));
    Impl* raw = impl.get();
    impl->acceptor = std::thread([raw] { raw->accept_loop(); });
    return std::unique_ptr<PeerServer>(new PeerServer(std::move(impl)));
}

std::string PeerServer::address() const { return impl_->address; }
uint16_t PeerServer::port() const { return impl_->port; }

void PeerServer::stop() {
    if (!impl_ || impl_->stopped.exchange(true)) return;
    const uint64_t one = 1;
    if (::write(impl_->stop_fd.get(), &one, sizeof one) != sizeof one)
        spdlog::error("peer TLS: cannot signal stop: {}", std::strerror(errno));
    if (impl_->acceptor.joinable()) impl_->acceptor.join();
    impl_->listen_fd.reset();
    impl_->reap(true);
}

}  // namespace pbpf::agent
