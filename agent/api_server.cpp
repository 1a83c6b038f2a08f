// HTTP API of personabpfd on a unix socket.
#include "agent/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/auto_binder.h"
#include "maps/abi/limits.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

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

json parse_body(const httplib::Request& req) {
    try {
        return json::parse(req.body);
    } catch (const json::parse_error& e) {
        throw ApiError(400, std::string("malformed JSON: ") + e.what());
    }
}

}  // namespace

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
      server_(std::make_unique<httplib::Server>()) {
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
    if (::chmod(socket_path.c_str(), 0660) != 0) return sys_error("chmod " + socket_path);
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
    }
    if (auto_) j["binding"] = auto_->status();
    return j;
}

namespace {

using HttpHandler = std::function<void(const httplib::Request&, httplib::Response&)>;

// Every route goes through here: one mutex, every failure a JSON error.
// `locked`: the handler runs under the mutex; otherwise it takes it itself.
HttpHandler wrap_with(std::mutex& mu, ApiServer::Handler h, bool locked) {
    return [&mu, h = std::move(h), locked](const httplib::Request& req, httplib::Response& res) {
        std::unique_lock<std::mutex> lock(mu, std::defer_lock);
        if (locked) lock.lock();
        try {
            reply(res, 200, h(req));
        } catch (const ApiError& e) {
            if (e.status() >= 500) spdlog::error("{} {}: {}", req.method, req.path, e.what());
            reply(res, e.status(), e.body());
        } catch (const std::exception& e) {
            spdlog::error("{} {}: {}", req.method, req.path, e.what());
            reply(res, 500, {{"error", std::string("internal error: ") + e.what()}});
        } catch (...) {
            spdlog::error("{} {}: unknown exception", req.method, req.path);
            reply(res, 500, {{"error", "internal error"}});
        }
    };
}

}  // namespace

void ApiServer::add_route(const std::string& method, const std::string& pattern, Handler handler,
                          bool locked) {
    auto h = wrap_with(mu_, std::move(handler), locked);
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
    auto wrap = [this](Handler h, bool locked = true) {
        return wrap_with(mu_, std::move(h), locked);
    };

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

    s.Get("/v1/status", wrap([this](const Request&) { return status(); }));
    s.Get("/v1/personas", wrap([this](const Request&) { return personas_.list(); }));
    s.Post("/v1/personas",
           wrap(
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
                           imports.push_back({imp["filename"].get<std::string>(),
                                              imp["source"].get<std::string>()});
                       }
                   }
                   auto compiled = PersonaManager::compile_file(body["source"].get<std::string>(),
                                                                filename, std::move(imports));
                   std::lock_guard<std::mutex> lock(mu_);
                   json res = personas_.apply(compiled);
                   if (auto_) auto_->reevaluate();
                   return res;
               },
               false));
    s.Get(R"(/v1/personas/([^/]+))",
          wrap([this](const Request& req) { return personas_.show(req.matches[1].str()); }));
    s.Delete(R"(/v1/personas/([^/]+))", wrap([this](const Request& req) {
                 json res = personas_.remove(req.matches[1].str(), truthy(query(req, "force")));
                 if (auto_) auto_->reevaluate();
                 return res;
             }));
    // Cgroup bindings first, then interface bindings (the objects with "ifname").
    s.Get("/v1/bindings", wrap([this](const Request&) {
              json all = binder_.list();
              for (auto& b : if_binder_.list()) all.push_back(std::move(b));
              if (auto_)
                  for (auto& b : auto_->user_bindings()) all.push_back(std::move(b));
              return all;
          }));
    s.Post("/v1/bindings", wrap([this](const Request& req) {
               json body = parse_body(req);
               if (body.is_object()) {
                   int n = 0;
                   for (const char* k : {"cgroup", "pid", "ifname", "user"}) n += body.contains(k);
                   if (n > 1)
                       throw ApiError(400,
                                      "binding needs one of \"cgroup\", \"pid\", \"ifname\" or "
                                      "\"user\", not several");
               }
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
           }));
    s.Delete("/v1/bindings", wrap([this](const Request& req) {
                 if (auto user = query(req, "user")) {
                     if (!auto_) throw ApiError(503, "automatic binding is not running");
                     return auto_->unbind_user(*user);
                 }
                 // A rule may apply to the workload once its explicit binding is gone.
                 json res = query(req, "ifname")
                                ? if_binder_.unbind(*query(req, "ifname"),
                                                    query(req, "netns").value_or(""))
                                : binder_.unbind(query(req, "cgroup"), query(req, "pid"));
                 if (auto_) auto_->reevaluate();
                 return res;
             }));
    s.Get("/v1/stats",
          wrap([this](const Request& req) { return personas_.stats(query(req, "persona")); }));
}

}  // namespace pbpf::agent
