// HTTP API of personabpfd on a unix socket.
#include "agent/api_server.h"

#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/auto_binder.h"
#include "agent/monitor.h"
#include "maps/abi/limits.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

// The bytes a request may take in all: headers, and a body of at most kMaxRequestBody
// however it is sent (httplib checks the limit only against a Content-Length, not for a
// chunked body or one that runs to the end of the connection).
constexpr size_t kMaxRequestBytes = kMaxRequestBody + 64 * 1024;
// How long a request may take to arrive, in all: a client sending a byte every few
// seconds must not hold one of the server's threads for longer.
constexpr auto kRequestDeadline = std::chrono::seconds(10);

// One connection's bytes, read through a small buffer (httplib reads request lines byte
// by byte), with httplib's timeouts, a deadline for the whole request and a size cap.
class ConnStream : public httplib::Stream {
  public:
    ConnStream(int fd, time_t read_sec, time_t write_sec)
        : fd_(fd),
          read_ms_(static_cast<int>(read_sec * 1000)),
          write_ms_(static_cast<int>(write_sec * 1000)),
          deadline_(std::chrono::steady_clock::now() + kRequestDeadline) {}

    bool is_readable() const override { return pos_ < len_ || wait(POLLIN, read_timeout()); }
    bool is_writable() const override { return wait(POLLOUT, write_ms_); }
    ssize_t read(char* ptr, size_t size) override {
        if (pos_ == len_) {
            if (total_ >= kMaxRequestBytes) return -1;  // too big: the request fails
            if (!wait(POLLIN, read_timeout())) return -1;
            ssize_t n;
            do {
                n = ::recv(fd_, buf_, sizeof buf_, 0);
            } while (n < 0 && errno == EINTR);
            if (n <= 0) return n;
            pos_ = 0;
            len_ = static_cast<size_t>(n);
            total_ += len_;
        }
        size_t n = std::min(size, len_ - pos_);
        std::memcpy(ptr, buf_ + pos_, n);
        pos_ += n;
        return static_cast<ssize_t>(n);
    }
    ssize_t write(const char* ptr, size_t size) override {
        if (!is_writable()) return -1;
        ssize_t n;
        do {
            n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        return n;
    }
    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        ip.clear();
        port = 0;
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        ip.clear();
        port = 0;
    }
    socket_t socket() const override { return fd_; }

  private:
    // httplib's per-read timeout, cut to what is left of the request's deadline.
    int read_timeout() const {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline_ - std::chrono::steady_clock::now())
                              .count();
        return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(read_ms_, left)));
    }
    bool wait(short events, int timeout_ms) const {
        pollfd p{fd_, events, 0};
        int rc;
        do {
            rc = ::poll(&p, 1, timeout_ms);
        } while (rc < 0 && errno == EINTR);
        return rc > 0 && (p.revents & (events | POLLHUP)) != 0;
    }

    int fd_;
    int read_ms_, write_ms_;
    std::chrono::steady_clock::time_point deadline_;
    char buf_[4096];
    size_t pos_ = 0, len_ = 0, total_ = 0;
};

// httplib's server with the caller's credentials: each connection's peer (SO_PEERCRED)
// is read before its request is parsed and is the current_caller() of the thread that
// serves it. One request per connection (the CLI makes one per call).
class PeerServer : public httplib::Server {
  private:
    bool process_and_close_socket(socket_t sock) override {
        set_current_caller(peer_of(sock));
        bool ok;
        {
            ConnStream strm(sock, read_timeout_sec_, write_timeout_sec_);
            bool closed = false;
            ok = process_request(strm, true, closed, nullptr);
        }
        ::shutdown(sock, SHUT_RDWR);
        ::close(sock);
        set_current_caller(Caller{});
        return ok;
    }
};

struct AuditNote {
    std::string persona, target, detail;
};
thread_local AuditNote t_note;

void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump() + "\n", "application/json");
}

// Is something accepting connections on this unix socket path?
bool socket_alive(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    bool alive = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return alive;
}

std::optional<std::string> query(const httplib::Request& req, const char* key) {
    if (!req.has_param(key)) return std::nullopt;
    return req.get_param_value(key);
}

bool truthy(const std::optional<std::string>& v) {
    return v && (*v == "1" || *v == "true" || *v == "yes" || v->empty());
}

// A user name or a numeric uid.
int64_t uid_of(const json& owner) {
    if (owner.is_number_integer() && owner.get<int64_t>() >= 0) return owner.get<int64_t>();
    if (!owner.is_string() || owner.get<std::string>().empty())
        throw ApiError(400, "\"owner\" must be a user name or a uid");
    const std::string name = owner.get<std::string>();
    if (name.find_first_not_of("0123456789") == std::string::npos) return std::stoll(name);
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* out = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out) != 0 || out == nullptr)
        throw ApiError(400, "no user '" + name + "'");
    return out->pw_uid;
}

// ?since=: unix seconds, ISO 8601 UTC (2026-11-30T03:00:00Z), or an age (90s, 30m, 2h,
// 7d). In unix milliseconds.
int64_t parse_since(const std::string& text) {
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    if (text.empty()) throw ApiError(400, "empty ?since=");
    const char unit = text.back();
    const std::string digits = text.substr(0, text.size() - 1);
    if ((unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') && !digits.empty() &&
        digits.find_first_not_of("0123456789") == std::string::npos && digits.size() < 10) {
        const int64_t n = std::stoll(digits);
        const int64_t sec = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
        return now_ms - n * sec * 1000;
    }
    if (text.find_first_not_of("0123456789") == std::string::npos && text.size() < 12)
        return std::stoll(text) * 1000;
    std::tm tm{};
    const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == nullptr) end = ::strptime(text.c_str(), "%Y-%m-%d", &tm);
    if (end == nullptr || (*end != '\0' && std::string(end) != "Z"))
        throw ApiError(400, "bad ?since=" + text +
                                ": give unix seconds, 2026-11-30T03:00:00Z or an age like 2h");
    return static_cast<int64_t>(::timegm(&tm)) * 1000;
}

std::string iso_ms(int64_t at_ms) {
    std::time_t sec = static_cast<std::time_t>(at_ms / 1000);
    std::tm tm{};
    ::gmtime_r(&sec, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(at_ms % 1000));
    return out;
}

int64_t version_param(const httplib::Request& req, const char* key) {
    auto v = query(req, key);
    if (!v || v->empty() || v->find_first_not_of("0123456789") != std::string::npos ||
        v->size() > 12)
        throw ApiError(400, std::string("?") + key + "= must be a version number");
    return std::stoll(*v);
}

}  // namespace

// "add binding rules" for the refusal of an admin-only change.
static std::string action_text(const std::string& action, const httplib::Request& req) {
    static const std::map<std::string, std::string> kText = {
        {"rule-add", "add binding rules"},
        {"rule-rm", "remove binding rules"},
        {"xdp-deny-add", "change the XDP deny list"},
        {"xdp-deny-rm", "change the XDP deny list"},
        {"conntrack-flush", "flush tracked flows"},
        {"owner", "change the owner of a persona"},
    };
    auto it = kText.find(action);
    return it != kText.end() ? it->second : req.method + " " + req.path;
}

void audit_note(const std::string& persona, const std::string& target, const std::string& detail) {
    if (!persona.empty()) t_note.persona = persona;
    if (!target.empty()) t_note.target = target;
    if (!detail.empty()) t_note.detail = detail;
}

Result<void> check_socket_free(const std::string& socket_path) {
    struct stat st {};
    if (::lstat(socket_path.c_str(), &st) != 0) return {};
    if (!S_ISSOCK(st.st_mode)) return Error{EEXIST, socket_path + " exists and is not a socket"};
    if (socket_alive(socket_path))
        return Error{EADDRINUSE, "another agent answers on " + socket_path};
    return {};
}

ApiServer::ApiServer(Store& store, Loader& loader, PersonaManager& personas, Binder& binder,
                     IfBinder& if_binder, InstanceInfo info)
    : store_(store),
      loader_(loader),
      personas_(personas),
      binder_(binder),
      if_binder_(if_binder),
      info_(std::move(info)),
      server_(std::make_unique<PeerServer>()),
      access_(info_.config.admin_group) {
    // More threads than httplib's default (8 on a small machine): every local user may
    // connect now, and long polls (`events --follow`) hold a thread each.
    server_->new_task_queue = [] { return new httplib::ThreadPool(32); };
    routes();
}

ApiServer::~ApiServer() {
    if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

Result<void> ApiServer::bind(const std::string& socket_path) {
    if (socket_path.size() >= sizeof(sockaddr_un::sun_path))
        return Error{ENAMETOOLONG, "socket path too long: " + socket_path};
    std::error_code ec;
    auto parent = std::filesystem::path(socket_path).parent_path();
    if (!parent.empty()) {
        std::filesystem::create_directories(parent, ec);
        if (ec) return Error{ec.value(), "create socket dir " + parent.string()};
    }
    if (auto r = check_socket_free(socket_path); !r) return r;
    struct stat st {};
    if (::lstat(socket_path.c_str(), &st) == 0) {
        spdlog::info("removing stale socket {}", socket_path);
        if (::unlink(socket_path.c_str()) != 0)
            return sys_error("remove stale socket " + socket_path);
    }
    server_->set_address_family(AF_UNIX);
    if (!server_->bind_to_port(socket_path, 80)) return sys_error("bind API socket " + socket_path);
    socket_path_ = socket_path;
    // Everyone may connect and read; who may change what is decided per request from the
    // caller's credentials (agent/access.h).
    if (::chmod(socket_path.c_str(), 0666) != 0) return sys_error("chmod " + socket_path);
    spdlog::info("API listening on unix:{}", socket_path);
    return {};
}

bool ApiServer::run() { return server_->listen_after_bind(); }

void ApiServer::stop() { server_->stop(); }

json ApiServer::status() {
    auto personas = store_.personas();
    auto bindings = store_.bindings();
    auto globals = loader_.read_globals();
    auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                               info_.started);
    json j = {{"version", PERSONABPF_VERSION},
              {"pid", ::getpid()},
              {"socket", info_.config.socket},
              {"state_dir", info_.config.state_dir},
              {"bpffs_root", info_.config.bpffs_root},
              {"cgroup_mount", info_.cgroup_mount},
              {"cgroup_root", info_.cgroup_root.rel_path},
              {"cgroup_root_path", info_.cgroup_root.fs_path},
              {"cgroup_root_id", info_.cgroup_root_id},
              {"personas", personas ? json(personas->size()) : json(nullptr)},
              {"bindings", bindings ? json(bindings->size()) : json(nullptr)},
              {"max_personas", PBPF_PERSONA_FAIL_CLOSED - 1},
              {"programs_attached", loader_.programs_attached()},
              {"start", info_.adopted ? "adopted" : "fresh"},
              {"uptime_seconds", up.count()}};
    const Limits& l = loader_.limits();
    j["limits"] = {{"bindings", l.bindings},
                   {"interface_bindings", l.interface_bindings},
                   {"policy_entries", l.policy_entries},
                   {"conntrack_entries", l.conntrack_entries}};
    if (globals) {
        j["policy_epoch"] = globals->policy_epoch;
        j["event_rate"] = globals->event_rate;
        j["event_burst"] = globals->event_burst;
        j["binding_epoch"] = globals->binding_epoch;
        j["schema_version"] = globals->schema_version;
        if (auto from = loader_.migrated_from()) j["migrated_from_schema"] = *from;
    }
    if (auto_) j["binding"] = auto_->status();
    for (const auto& [key, section] : status_sections_) j[key] = section();
    return j;
}

void ApiServer::record_audit(const std::string& action, const std::string& path, int status,
                             const std::string& detail) {
    const Caller& c = current_caller();
    AuditRecord a;
    a.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    a.uid = c.known ? c.uid : -1;
    a.pid = c.pid;
    // Capped: any local user can make a request fail, and their record must not be able
    // to fill the state directory.
    auto cap = [](std::string text, size_t n) {
        if (text.size() > n)
            text = text.substr(0, n) + "...(" + std::to_string(text.size()) + " bytes)";
        return text;
    };
    a.action = action;
    a.persona = cap(t_note.persona, 256);
    a.target = cap(t_note.target.empty() ? path : t_note.target, 512);
    a.status = status;
    a.outcome = status < 300 ? "ok" : status == 403 ? "refused" : "failed";
    a.detail = cap(detail.empty() ? t_note.detail : detail, 2048);
    // Under the API mutex: the store is one SQLite connection, and a record written while
    // another request's transaction is open would become part of it.
    std::lock_guard<std::mutex> lock(mu_);
    if (auto r = store_.add_audit(a); !r)
        spdlog::error("audit trail: {} (the change itself stands as answered)", r.error().what());
}

ApiServer::HttpHandler ApiServer::wrap(Handler h, bool locked, const std::string& action,
                                       Guard guard) {
    return [this, h = std::move(h), locked, action, guard](const httplib::Request& req,
                                                           httplib::Response& res) {
        t_note = AuditNote{};
        int status = 200;
        std::string error;
        {
            std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
            if (locked) lock.lock();
            try {
                if (!action.empty() && guard == Guard::Admin)
                    access_.require_admin(current_caller(), action_text(action, req));
                reply(res, 200, h(req));
            } catch (const ApiError& e) {
                if (e.status() >= 500) spdlog::error("{} {}: {}", req.method, req.path, e.what());
                status = e.status();
                error = e.what();
                reply(res, e.status(), e.body());
            } catch (const std::exception& e) {
                spdlog::error("{} {}: {}", req.method, req.path, e.what());
                status = 500;
                error = std::string("internal error: ") + e.what();
                reply(res, 500, {{"error", error}});
            } catch (...) {
                spdlog::error("{} {}: unknown exception", req.method, req.path);
                status = 500;
                error = "internal error";
                reply(res, 500, {{"error", error}});
            }
        }
        if (!action.empty()) {
            if (status == 403) spdlog::warn("refused: {}", error);
            record_audit(action, req.path, status, error);
        }
    };
}

json ApiServer::run_change(const std::string& action, const std::string& origin,
                           const std::function<json()>& change) {
    t_note = AuditNote{};
    int status = 200;
    std::string error;
    json out;
    std::exception_ptr failure;
    {
        std::lock_guard<std::mutex> lock(mu_);
        try {
            out = change();
        } catch (const ApiError& e) {
            status = e.status();
            error = e.what();
            failure = std::current_exception();
        } catch (const std::exception& e) {
            status = 500;
            error = std::string("internal error: ") + e.what();
            failure = std::current_exception();
        } catch (...) {
            status = 500;
            error = "internal error";
            failure = std::current_exception();
        }
    }
    const std::string detail = error.empty() ? t_note.detail : error;
    record_audit(action, origin, status, origin + (detail.empty() ? "" : ": " + detail));
    if (failure) std::rethrow_exception(failure);
    return out;
}

void ApiServer::add_route(const std::string& method, const std::string& pattern, Handler handler,
                          bool locked, const std::string& action, Guard guard) {
    const bool change = method != "GET";
    auto h = wrap(std::move(handler), locked,
                  change ? (action.empty() ? method + " " + pattern : action) : "", guard);
    if (method == "GET")
        server_->Get(pattern, h);
    else if (method == "POST")
        server_->Post(pattern, h);
    else if (method == "DELETE")
        server_->Delete(pattern, h);
    else
        throw std::invalid_argument("add_route: unsupported method " + method);
}

void ApiServer::routes() {
    using httplib::Request;
    using httplib::Response;

    auto& s = *server_;
    s.set_payload_max_length(kMaxRequestBody);
    s.set_error_handler(httplib::Server::HandlerWithResponse([](const Request& req, Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string msg;
        switch (res.status) {
            case 404:
                msg = "no route " + req.method + " " + req.path;
                break;
            case 413:
                msg =
                    "request body too large (limit " + std::to_string(kMaxRequestBody) + " bytes)";
                break;
            case 400:
                msg = "bad request";
                break;
            case 405:
                msg = "method not allowed";
                break;
            case 411:
                msg = "length required";
                break;
            case 414:
                msg = "request URI too long";
                break;
            default:
                msg = "HTTP status " + std::to_string(res.status);
                break;
        }
        res.set_content(json{{"error", msg}}.dump() + "\n", "application/json");
        return httplib::Server::HandlerResponse::Handled;
    }));
    s.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what += std::string(": ") + e.what();
        } catch (...) {
        }
        reply(res, 500, {{"error", what}});
    });

    const auto get = [this](const std::string& pattern, Handler h) {
        add_route("GET", pattern, std::move(h));
    };
    get("/v1/status", [this](const Request&) { return status(); });
    get("/v1/personas", [this](const Request&) { return personas_.list(); });
    add_route(
        "POST", "/v1/personas",
        [this](const Request& req) {
            json body = parse_body(req);
            if (!body.is_object() || !body.contains("source") || !body["source"].is_string())
                throw ApiError(400, "request needs \"source\" (PDL text)");
            std::string filename = "<api>";
            if (body.contains("filename")) {
                if (!body["filename"].is_string())
                    throw ApiError(400, "\"filename\" must be a string");
                filename = body["filename"].get<std::string>();
            }
            ApplyOptions opt;
            opt.author_uid = current_caller().uid;
            if (body.contains("message")) {
                if (!body["message"].is_string())
                    throw ApiError(400, "\"message\" must be a string");
                opt.message = body["message"].get<std::string>();
            }
            if (body.contains("owner")) {
                access_.require_admin(current_caller(), "set the owner of a persona");
                opt.owner_uid = uid_of(body["owner"]);
            }
            // Compiling and lowering can take seconds for big personas and touch no
            // state: only storing and flipping hold the mutex.
            std::vector<pdl::Source> imports;
            if (body.contains("imports")) {
                const json& list = body["imports"];
                if (!list.is_array())
                    throw ApiError(400,
                                   "\"imports\" must be an array of "
                                   "{\"filename\", \"source\"}");
                for (const auto& imp : list) {
                    if (!imp.is_object() || !imp.contains("filename") ||
                        !imp["filename"].is_string() || !imp.contains("source") ||
                        !imp["source"].is_string())
                        throw ApiError(400,
                                       "each of \"imports\" needs \"filename\" "
                                       "and \"source\" (strings)");
                    imports.push_back(
                        {imp["filename"].get<std::string>(), imp["source"].get<std::string>()});
                }
            }
            audit_note("", filename);
            auto compiled = PersonaManager::compile_file(body["source"].get<std::string>(),
                                                         filename, std::move(imports));
            std::string names;
            for (const auto& p : compiled.personas) names += (names.empty() ? "" : ",") + p.name;
            audit_note(compiled.personas.size() == 1 ? names : "", filename + ": " + names);
            std::lock_guard<std::mutex> lock(mu_);
            check_apply(compiled, std::nullopt, true);
            opt.replace_rules = access_.is_admin(current_caller());
            json res = personas_.apply(compiled, opt);
            if (auto_) auto_->reevaluate();
            return res;
        },
        false, "apply", Guard::Handler);
    get(R"(/v1/personas/([^/]+))", [this](const Request& req) {
        if (req.has_param("version"))
            return personas_.show_version(req.matches[1].str(), version_param(req, "version"));
        return personas_.show(req.matches[1].str());
    });
    get(R"(/v1/personas/([^/]+)/versions)",
        [this](const Request& req) { return personas_.history(req.matches[1].str()); });
    get(R"(/v1/personas/([^/]+)/diff)", [this](const Request& req) {
        return personas_.diff(req.matches[1].str(), version_param(req, "from"),
                              version_param(req, "to"));
    });
    add_route(
        "POST", R"(/v1/personas/([^/]+)/rollback)",
        [this](const Request& req) {
            const std::string name = req.matches[1].str();
            json body = parse_body(req);
            if (!body.is_object() || !body.contains("to") || !body["to"].is_number_integer())
                throw ApiError(400, "rollback needs \"to\" (a version number)");
            const int64_t to = body["to"].get<int64_t>();
            audit_note(name, "version " + std::to_string(to));
            ApplyOptions opt;
            opt.author_uid = current_caller().uid;
            opt.only = name;
            opt.message = "rollback to version " + std::to_string(to);
            if (body.contains("message")) {
                if (!body["message"].is_string())
                    throw ApiError(400, "\"message\" must be a string");
                opt.message += ": " + body["message"].get<std::string>();
            }
            PersonaVersion v;
            {
                std::lock_guard<std::mutex> lock(mu_);
                v = personas_.version_of(name, to);
            }
            json imports = json::parse(v.imports_json, nullptr, false);
            std::vector<pdl::Source> sources;
            if (imports.is_array())
                for (const auto& imp : imports)
                    sources.push_back({imp.value("filename", ""), imp.value("source", "")});
            // A persona removed since comes back with the owner it had then.
            opt.owner_uid = v.owner_uid;
            auto compiled = PersonaManager::compile_file(v.source, v.filename, std::move(sources));
            std::lock_guard<std::mutex> lock(mu_);
            // An owner's rollback restores the persona, not the version's bind blocks
            // (binding rules are for admins): those stay as they are.
            check_apply(compiled, name, false);
            opt.replace_rules = access_.is_admin(current_caller());
            json res = personas_.apply(compiled, opt);
            res["rolled_back_to"] = to;
            if (auto_) auto_->reevaluate();
            return res;
        },
        false, "rollback", Guard::Handler);
    add_route(
        "POST", R"(/v1/personas/([^/]+)/owner)",
        [this](const Request& req) {
            const std::string name = req.matches[1].str();
            json body = parse_body(req);
            if (!body.is_object() || !body.contains("owner"))
                throw ApiError(400, "request needs \"owner\" (a user name or uid)");
            const int64_t uid = uid_of(body["owner"]);
            audit_note(name, describe_uid(uid));
            return personas_.set_owner(name, uid);
        },
        true, "owner", Guard::Admin);
    add_route(
        "DELETE", R"(/v1/personas/([^/]+))",
        [this](const Request& req) {
            const std::string name = req.matches[1].str();
            audit_note(name, name);
            const bool force = truthy(query(req, "force"));
            if (auto rec = must(store_.persona(name))) {
                const Caller& c = current_caller();
                access_.require_change(c, *rec, "remove persona '" + name + "'");
                // What only admins make goes with the persona: its binding rules and,
                // forced, every workload bound to it (interfaces, other users' cgroups).
                if (!access_.is_admin(c)) {
                    if (force)
                        throw ApiError(403, describe(c) + " may not remove persona '" + name +
                                                "' with force: unbinding its workloads is for "
                                                "admins (" +
                                                access_.admins() + ")");
                    for (const auto& r : must(store_.bind_rules()))
                        if (r.persona == name)
                            throw ApiError(403, describe(c) + " may not remove persona '" + name +
                                                    "': it has binding rules, which only admins "
                                                    "may remove (" +
                                                    access_.admins() + ")");
                }
            }
            json res = personas_.remove(name, force);
            if (auto_) auto_->reevaluate();
            return res;
        },
        true, "persona-rm", Guard::Handler);
    // Cgroup bindings first, then interface bindings (the objects with "ifname").
    get("/v1/bindings", [this](const Request&) {
        json all = binder_.list();
        for (auto& b : if_binder_.list()) all.push_back(std::move(b));
        if (auto_)
            for (auto& b : auto_->user_bindings()) all.push_back(std::move(b));
        return all;
    });
    add_route(
        "POST", "/v1/bindings",
        [this](const Request& req) {
            json body = parse_body(req);
            if (body.is_object()) {
                int n = 0;
                for (const char* k : {"cgroup", "pid", "ifname", "user"}) n += body.contains(k);
                if (n > 1)
                    throw ApiError(400,
                                   "binding needs one of \"cgroup\", \"pid\", \"ifname\" or "
                                   "\"user\", not several");
                if (body.contains("persona") && body["persona"].is_string())
                    audit_note(body["persona"].get<std::string>());
                for (const char* k : {"cgroup", "pid", "ifname", "user"})
                    if (body.contains(k))
                        audit_note("", std::string(k) + " " +
                                           (body[k].is_string() ? body[k].get<std::string>()
                                                                : body[k].dump()));
            }
            body = check_bind(std::move(body));
            if (body.is_object() && body.contains("user")) {
                if (!auto_) throw ApiError(503, "automatic binding is not running");
                return auto_->bind_user(body);
            }
            json res;
            if (body.is_object() && body.contains("ifname")) {
                res = if_binder_.bind(body);
            } else {
                if (body.is_object() && body.contains("netns"))
                    throw ApiError(400, "\"netns\" goes with \"ifname\" only");
                res = binder_.bind(body);
            }
            return res;
        },
        true, "bind", Guard::Handler);
    add_route(
        "DELETE", "/v1/bindings",
        [this](const Request& req) {
            int targets = 0;
            for (const char* k : {"cgroup", "pid", "ifname", "user"})
                if (auto v = query(req, k)) {
                    audit_note("", std::string(k) + " " + *v);
                    ++targets;
                }
            if (targets > 1)
                throw ApiError(400,
                               "unbind needs one of ?cgroup=, ?pid=, ?ifname= or ?user=, not "
                               "several");
            const std::optional<std::string> checked = check_unbind(req);
            if (auto user = query(req, "user")) {
                if (!auto_) throw ApiError(503, "automatic binding is not running");
                return auto_->unbind_user(*user);
            }
            // A rule may apply to the workload once its explicit binding is gone.
            json res;
            if (auto ifname = query(req, "ifname"))
                res = if_binder_.unbind(*ifname, query(req, "netns").value_or(""));
            else if (checked)  // a non-admin's: the cgroup checked, resolved once
                res = binder_.unbind(checked, std::nullopt);
            else
                res = binder_.unbind(query(req, "cgroup"), query(req, "pid"));
            if (auto_) auto_->reevaluate();
            return res;
        },
        true, "unbind", Guard::Handler);
    get("/v1/stats", [this](const Request& req) {
        return monitor_ ? monitor_->stats_json(query(req, "persona"))
                        : personas_.stats(query(req, "persona"));
    });
    // Unlocked: the records are read under the API mutex, formatted outside it.
    add_route(
        "GET", "/v1/audit",
        [this](const Request& req) {
            int64_t since = 0;
            if (auto t = query(req, "since")) since = parse_since(*t);
            size_t limit = 1000;
            if (auto l = query(req, "limit")) {
                if (l->empty() || l->size() > 5 ||
                    l->find_first_not_of("0123456789") != std::string::npos ||
                    std::stoul(*l) > 10000 || std::stoul(*l) == 0)
                    throw ApiError(400, "?limit= must be a number from 1 to 10000");
                limit = std::stoul(*l);
            }
            std::vector<AuditRecord> records;
            {
                std::lock_guard<std::mutex> lock(mu_);
                records = must(store_.audit(since, query(req, "persona"), limit));
            }
            std::map<int64_t, std::string> users;
            json arr = json::array();
            for (const auto& a : records) {
                auto it = users.find(a.uid);
                if (it == users.end()) it = users.emplace(a.uid, describe_uid(a.uid)).first;
                arr.push_back({{"id", a.id},
                               {"at", iso_ms(a.at_ms)},
                               {"at_ms", a.at_ms},
                               {"uid", a.uid},
                               {"user", it->second},
                               {"pid", a.pid},
                               {"action", a.action},
                               {"persona", a.persona},
                               {"target", a.target},
                               {"outcome", a.outcome},
                               {"status", a.status},
                               {"detail", a.detail}});
            }
            return arr;
        },
        false);
}

void ApiServer::check_apply(const CompiledFile& file, const std::optional<std::string>& only,
                            bool refuse_binds) {
    const Caller& c = current_caller();
    if (access_.is_admin(c)) return;
    for (const auto& p : file.personas) {
        if (only && p.name != *only) continue;
        auto rec = must(store_.persona(p.name));
        if (!rec)
            throw ApiError(403, describe(c) + " may not create persona '" + p.name +
                                    "': only admins may (" + access_.admins() + ")");
        access_.require_change(c, *rec, "apply persona '" + p.name + "'");
    }
    for (const auto& b : file.binds)
        if (refuse_binds && (!only || b.persona == *only))
            throw ApiError(403, describe(c) + " may not apply the bind block of persona '" +
                                    b.persona + "': binding rules are for admins (" +
                                    access_.admins() + ")");
}

void ApiServer::require_own_cgroup(const Caller& c, const CgroupRef& ref, const std::string& verb) {
    struct stat st {};
    if (::stat(ref.fs_path.c_str(), &st) == 0 && static_cast<int64_t>(st.st_uid) == c.uid) return;
    throw ApiError(403, describe(c) + " may not " + verb + " cgroup " + ref.rel_path +
                            ": it is not delegated to them" +
                            (::stat(ref.fs_path.c_str(), &st) == 0
                                 ? " (owned by " + describe_uid(st.st_uid) + ")"
                                 : std::string()) +
                            "; admins may (" + access_.admins() + ")");
}

json ApiServer::check_bind(json body) {
    const Caller& c = current_caller();
    if (access_.is_admin(c) || !body.is_object()) return body;
    if (!body.contains("persona") || !body["persona"].is_string()) return body;  // 400 follows
    const std::string persona = body["persona"].get<std::string>();
    auto rec = must(store_.persona(persona));
    if (!rec) return body;  // 404 follows
    access_.require_change(c, *rec, "bind persona '" + persona + "'");
    // A binding it would replace must be one the caller could remove.
    auto may_replace = [&](const std::string& bound_to, const std::string& what) {
        if (bound_to == persona) return;
        if (auto old = must(store_.persona(bound_to)))
            access_.require_change(
                c, *old, "replace the binding of " + what + " to persona '" + bound_to + "'");
    };
    // An owner binds workloads of their own only: a cgroup delegated to them (its
    // directory is theirs; a process is named by its cgroup), their own user.
    if (body.contains("ifname"))
        throw ApiError(403, describe(c) + " may not bind interface " + body["ifname"].dump() +
                                ": interfaces are for admins (" + access_.admins() + ")");
    if (body.contains("user")) {
        if (uid_of(body["user"]) != c.uid)
            throw ApiError(403, describe(c) + " may not bind user " + body["user"].dump() +
                                    ": owners bind their own user only");
        const std::string user =
            body["user"].is_string() ? body["user"].get<std::string>() : body["user"].dump();
        if (auto_)
            if (auto old = auto_->user_binding_persona(user)) may_replace(*old, "user " + user);
        return body;
    }
    // Resolved once: what is checked is what gets bound (a pid could exit and its number
    // be reused by another process between a check and a second lookup).
    CgroupRef ref = binder_.named_cgroup(body);
    require_own_cgroup(c, ref, "bind");
    if (auto id = cgroup_id_of(ref.fs_path))
        if (auto old = must(store_.binding(*id))) may_replace(old->persona, ref.rel_path);
    body.erase("pid");
    body["cgroup"] = ref.rel_path;
    return body;
}

std::optional<std::string> ApiServer::check_unbind(const httplib::Request& req) {
    const Caller& c = current_caller();
    if (access_.is_admin(c)) return std::nullopt;
    if (query(req, "ifname"))
        throw ApiError(403, describe(c) + " may not unbind interfaces: only admins may (" +
                                access_.admins() + ")");
    if (auto user = query(req, "user")) {
        if (uid_of(json(*user)) != c.uid)
            throw ApiError(403, describe(c) + " may not unbind user " + *user +
                                    ": owners unbind their own user only");
        if (auto_)
            if (auto bound_to = auto_->user_binding_persona(*user))
                if (auto rec = must(store_.persona(*bound_to)))
                    access_.require_change(c, *rec, "unbind user " + *user);
        return std::nullopt;
    }
    // The cgroup, resolved once (see check_bind), must be the caller's, and so must the
    // persona bound to it.
    std::string path;
    if (auto pid = query(req, "pid")) {
        path = binder_.cgroup_of_pid(*pid).rel_path;
    } else if (auto cg = query(req, "cgroup")) {
        path = *cg;
    } else {
        return std::nullopt;  // 400 follows
    }
    auto ref = binder_.tree().resolve(path);
    if (!ref) return path;  // the unbind reports the bad path
    require_own_cgroup(c, *ref, "unbind");
    if (auto found = binder_.find(ref->rel_path, std::nullopt))
        if (auto rec = must(store_.persona(found->persona)))
            access_.require_change(c, *rec, "unbind " + found->cgroup_path);
    return ref->rel_path;
}

json parse_body(const httplib::Request& req) {
    try {
        return json::parse(req.body);
    } catch (const json::parse_error& e) {
        throw ApiError(400, std::string("malformed JSON: ") + e.what());
    }
}

}  // namespace pbpf::agent
