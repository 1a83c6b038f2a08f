// The agent's HTTP/1.1 + JSON API on a unix socket (cpp-httplib). Every handler runs
// under one mutex; any failure becomes a JSON error response, never a crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/access.h"
#include "agent/binder.h"
#include "agent/cgroup.h"
#include "agent/config.h"
#include "agent/if_binder.h"
#include "agent/loader.h"
#include "agent/persona_manager.h"
#include "agent/store.h"
#include "maps/result.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace pbpf::agent {

class AutoBinder;
class Monitor;

inline constexpr size_t kMaxRequestBody = 4 * 1024 * 1024;

// What GET /v1/status reports besides live counts.
struct InstanceInfo {
    Config config;
    std::string cgroup_mount;
    CgroupRef cgroup_root;
    uint64_t cgroup_root_id = 0;
    bool adopted = false;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// What a change handler tells the audit trail about its change (the persona and target
// it concerns, a summary); the API server records it with the caller and the outcome.
void audit_note(const std::string& persona, const std::string& target = "",
                const std::string& detail = "");

// Fails if a live process answers on `socket_path` (or the path is not a socket); run
// before loading anything so a misconfigured second agent changes nothing.
Result<void> check_socket_free(const std::string& socket_path);

class ApiServer {
  public:
    ApiServer(Store& store, Loader& loader, PersonaManager& personas, Binder& binder,
              IfBinder& if_binder, InstanceInfo info);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    // Binds the socket: creates parent dirs, removes a stale socket file (only if no live
    // agent answers on it), chmod 0660.
    Result<void> bind(const std::string& socket_path);
    // Serves until stop(); false if the listener failed.
    bool run();
    void stop();

    nlohmann::json status();

    // Adds a route served like the built-in ones: the handler's JSON is the 200 answer,
    // an ApiError its status and body, any other exception a 500. `method` is GET, POST
    // or DELETE; `pattern` a regex as httplib takes it. `locked`: the handler runs under
    // the API mutex (false: it must take `mutex()` itself around shared state). Call
    // before run().
    // POST and DELETE routes are changes: `action` names them in the audit trail, and
    // unless `guard` is Guard::Handler (the handler checks the caller itself, see
    // access()), only admins may call them.
    using Handler = std::function<nlohmann::json(const httplib::Request&)>;
    enum class Guard { Admin, Handler };
    void add_route(const std::string& method, const std::string& pattern, Handler handler,
                   bool locked = true, const std::string& action = "", Guard guard = Guard::Admin);
    // Runs a change that does not come through the socket (a migration peer's import) as a
    // route runs one: under the API mutex, recorded in the audit trail as `action` with
    // `origin` ("peer host-a (10.0.0.1:40112)") before its detail. Returns what `change`
    // returns; rethrows what it throws.
    nlohmann::json run_change(const std::string& action, const std::string& origin,
                              const std::function<nlohmann::json()>& change);
    // A member of GET /v1/status filled by another part of the agent (called under the API
    // mutex). Call before run().
    void add_status(const std::string& key, std::function<nlohmann::json()> section) {
        status_sections_.emplace_back(key, std::move(section));
    }
    const Access& access() const { return access_; }
    std::mutex& mutex() { return mu_; }
    // Automatic binding: rules re-evaluated after every change, user bindings, status.
    void set_auto_binder(AutoBinder* a) { auto_ = a; }
    // GET /v1/stats from the monitor (rates, drops by reason, bindings) when set.
    void set_monitor(Monitor* m) { monitor_ = m; }

  private:
    void routes();
    using HttpHandler = std::function<void(const httplib::Request&, httplib::Response&)>;
    HttpHandler wrap(Handler h, bool locked, const std::string& action, Guard guard);
    // Records one change attempt (the handler's audit_note() plus outcome) in the store.
    // `path`: the target when the handler noted none.
    void record_audit(const std::string& action, const std::string& path, int status,
                      const std::string& detail);
    // Throw ApiError(403) unless the caller may make the change (agent/access.h).
    // `refuse_binds`: a non-admin's file with bind blocks is refused (an apply), rather
    // than applied without them (a rollback).
    void check_apply(const CompiledFile& file, const std::optional<std::string>& only,
                     bool refuse_binds);
    // For a non-admin: a bind body naming a pid comes back naming the checked cgroup; an
    // unbind gives the checked cgroup path to unbind instead of what the query names.
    nlohmann::json check_bind(nlohmann::json body);
    std::optional<std::string> check_unbind(const httplib::Request& req);
    void require_own_cgroup(const Caller& c, const CgroupRef& ref, const std::string& verb);

    Store& store_;
    Loader& loader_;
    PersonaManager& personas_;
    Binder& binder_;
    IfBinder& if_binder_;
    AutoBinder* auto_ = nullptr;
    Monitor* monitor_ = nullptr;
    InstanceInfo info_;
    std::unique_ptr<httplib::Server> server_;
    Access access_;
    std::mutex mu_;  // serialises every request that touches the store or the maps
    std::string socket_path_;
    std::vector<std::pair<std::string, std::function<nlohmann::json()>>> status_sections_;
};

// A request's body as JSON; ApiError 400 "malformed JSON: ..." when it is not.
nlohmann::json parse_body(const httplib::Request& req);

}  // namespace pbpf::agent
