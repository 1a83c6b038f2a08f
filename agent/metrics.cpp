// Prometheus text exposition and the /metrics endpoint (see metrics.h).
#include "agent/metrics.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "agent/api_server.h"
#include "agent/peer_tls.h"

namespace pbpf::agent {

std::string ListenAddress::text() const {
    if (is_unix) return "unix:" + path;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

Result<ListenAddress> parse_listen_address(const std::string& text) {
    ListenAddress a;
    if (text.rfind("unix:", 0) == 0) {
        a.is_unix = true;
        a.path = text.substr(5);
        if (a.path.empty() || a.path[0] != '/')
            return Error{EINVAL,
                         "'" + text + "': a unix socket path must be absolute (unix:/path)"};
        if (a.path.size() >= sizeof(sockaddr_un::sun_path))
            return Error{EINVAL, "'" + text + "': socket path longer than " +
                                     std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes"};
        return a;
    }
    // HOST:PORT or [IPV6]:PORT as the migration listener reads it (agent/peer_tls.h).
    auto hp = parse_host_port(text);
    if (!hp) {
        const std::string& why = hp.error().message;
        const bool range =
            why.size() >= 12 && why.compare(why.size() - 12, 12, "out of range") == 0;
        return Error{EINVAL, why + (range ? " (1..65535)" : " (or unix:/PATH)")};
    }
    if (hp->port == 0) return Error{EINVAL, "'" + text + "': port 0 is out of range (1..65535)"};
    a.host = hp->host;
    a.port = hp->port;
    return a;
}

std::string escape_label_value(const std::string& v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string escape_help(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    else
        std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

void MetricsWriter::family(const std::string& name, Type type, const std::string& help) {
    if (index_.count(name)) return;
    index_[name] = families_.size();
    families_.push_back({name, type, help, {}});
}

void MetricsWriter::sample(const std::string& family, const Labels& labels, double value) {
    sample_suffixed(family, "", labels, value);
}

void MetricsWriter::sample_suffixed(const std::string& family, const std::string& suffix,
                                    const Labels& labels, double value) {
    auto it = index_.find(family);
    if (it == index_.end()) {
        ++dropped_;
        return;
    }
    std::string line = family + suffix;
    if (!labels.empty()) {
        line += '{';
        for (size_t i = 0; i < labels.size(); ++i) {
            if (i) line += ',';
            line += labels[i].first + "=\"" + escape_label_value(labels[i].second) + '"';
        }
        line += '}';
    }
    line += ' ';
    line += format_value(value);
    families_[it->second].lines.push_back(std::move(line));
}

std::string MetricsWriter::render() const {
    std::string out;
    for (const auto& f : families_) {
        out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
        out += "# TYPE " + f.name +
               (f.type == Type::Counter   ? " counter\n"
                : f.type == Type::Summary ? " summary\n"
                                          : " gauge\n");
        for (const auto& l : f.lines) out += l + "\n";
    }
    return out;
}

MetricsServer::MetricsServer(std::function<std::string()> render)
    : render_(std::move(render)), server_(std::make_unique<httplib::Server>()) {
    // httplib's default sets SO_REUSEPORT, which would let two agents share one port
    // silently; SO_REUSEADDR alone still fails on a port someone listens on.
    server_->set_socket_options([](int sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
    server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
        try {
            res.set_content(render_(), "text/plain; version=0.0.4; charset=utf-8");
        } catch (const std::exception& e) {
            res.status = 500;
            res.set_content(std::string("error: ") + e.what() + "\n", "text/plain");
        }
    });
}

MetricsServer::~MetricsServer() { stop(); }

Result<void> MetricsServer::start(const ListenAddress& addr) {
    const std::string what = "[metrics] listen = \"" + addr.text() + "\"";
    if (addr.is_unix) {
        if (auto r = check_socket_free(addr.path); !r)
            return Error{r.error().err, what + ": " + r.error().message};
        struct stat st {};
        if (::lstat(addr.path.c_str(), &st) == 0 && ::unlink(addr.path.c_str()) != 0)
            return sys_error(what + ": remove stale socket " + addr.path);
        server_->set_address_family(AF_UNIX);
        errno = 0;
        if (!server_->bind_to_port(addr.path, 80))
            return Error{errno ? errno : EADDRINUSE, what + ": cannot bind " + addr.path + ": " +
                                                         std::strerror(errno ? errno : EADDRINUSE)};
        unix_path_ = addr.path;
        ::chmod(addr.path.c_str(), 0666);
    } else {
        errno = 0;
        if (!server_->bind_to_port(addr.host, addr.port)) {
            int err = errno ? errno : EADDRINUSE;
            return Error{EADDRINUSE,
                         what + ": cannot listen on " + addr.text() + ": " + std::strerror(err) +
                             (err == EADDRINUSE ? " (is another agent using it?)" : "")};
        }
    }
    thread_ = std::thread([this] {
        if (!server_->listen_after_bind()) spdlog::error("metrics endpoint stopped");
    });
    // stop() before the listener runs would not reach it; wait until it does.
    for (int i = 0; i < 1000 && !server_->is_running(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    spdlog::info("metrics on {}", addr.text());
    return {};
}

void MetricsServer::stop() {
    if (thread_.joinable()) {
        server_->stop();
        thread_.join();
    }
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
    unix_path_.clear();
}

}  // namespace pbpf::agent
