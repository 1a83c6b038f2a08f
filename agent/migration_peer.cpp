// `migrate send`: the listener for peer agents and the sending route (migration_peer.h).
#include "agent/migration_peer.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>

#include <cerrno>
#include <chrono>
#include <mutex>

#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/api_server.h"
#include "agent/clock.h"
#include "agent/migration.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

bool is_ip_literal(const std::string& host) {
    in6_addr a6{};
    in_addr a4{};
    return inet_pton(AF_INET, host.c_str(), &a4) == 1 ||
           inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

json reply_ok(json result) {
    return {{"protocol", kMigrationProtocol}, {"status", 200}, {"result", std::move(result)}};
}

json reply_error(int status, const std::string& error, json details = json::object()) {
    if (details.is_object()) details.erase("error");
    return {{"protocol", kMigrationProtocol},
            {"status", status},
            {"error", error},
            {"details", details.is_object() ? details : json::object()}};
}

// j[key] when it is a string, else "" (value() would throw on another type).
std::string string_member(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string optional_string(const json& body, const char* key) {
    if (!body.contains(key) || body[key].is_null()) return "";
    if (!body[key].is_string())
        throw ApiError(400, std::string("migrate send: \"") + key + "\" must be a string");
    return body[key].get<std::string>();
}

}  // namespace

TlsIdentity MigrationPeer::identity() const {
    return TlsIdentity{cfg_.cert, cfg_.key, cfg_.ca, cfg_.peers};
}

Result<void> MigrationPeer::start() {
    if (cfg_.listen.empty()) return {};
    TlsLimits limits;
    limits.max_message = kMigrationMaxMessage;
    auto server = PeerServer::start(
        cfg_.listen, identity(), [this](PeerConnection& conn) { serve(conn); }, limits,
        [this](const std::string&, const Error&) { refused_.fetch_add(1); });
    // EINVAL: the text is complete (personabpfd prints it as it is).
    if (!server)
        return Error{EINVAL,
                     "[migration] listen = \"" + cfg_.listen + "\": " + server.error().what()};
    server_ = std::move(*server);
    spdlog::info("migration: accepting workloads from peers on {} (peers: {})", server_->address(),
                 cfg_.peers.empty() ? std::string("any the CA signed") : json(cfg_.peers).dump());
    return {};
}

void MigrationPeer::stop() {
    if (server_) server_->stop();
}

json MigrationPeer::status() const {
    return {{"listen", cfg_.listen.empty() ? json() : json(cfg_.listen)},
            {"address", server_ ? json(server_->address()) : json()},
            {"identity", cfg_.has_identity()},
            {"peers", cfg_.peers},
            {"refused_peers", refused_.load()},
            {"imports", {{"ok", imports_ok_.load()}, {"failed", imports_failed_.load()}}},
            {"sends", {{"ok", sends_ok_.load()}, {"failed", sends_failed_.load()}}}};
}

void MigrationPeer::serve(PeerConnection& conn) {
    const std::string peer = conn.peer_name() + " (" + conn.peer_address() + ")";
    auto message = conn.receive();
    if (!message) {
        spdlog::warn("migration: peer {}: no request: {}", peer, message.error().what());
        return;
    }
    json request;  // freed after the reply is on its way
    const json reply = handle_request(*message, peer, request);
    message->clear();
    if (auto r = conn.send(reply.dump()); !r)
        spdlog::warn("migration: peer {}: the reply was not delivered: {} (the import {})", peer,
                     r.error().what(), reply["status"] == 200 ? "stands" : "had changed nothing");
}

json MigrationPeer::handle_request(const std::string& message, const std::string& peer, json& req) {
    try {
        req = json::parse(message);
    } catch (const json::parse_error& e) {
        imports_failed_.fetch_add(1);
        return reply_error(400, std::string("malformed JSON: ") + e.what());
    }
    if (!req.is_object() || !req.contains("protocol") || !req["protocol"].is_string()) {
        imports_failed_.fetch_add(1);
        return reply_error(400, std::string("not a migration request (no \"protocol\"; this "
                                            "agent speaks ") +
                                    kMigrationProtocol + ")");
    }
    if (req["protocol"] != kMigrationProtocol) {
        imports_failed_.fetch_add(1);
        return reply_error(400, "unsupported protocol '" + req["protocol"].get<std::string>() +
                                    "' (this agent speaks " + kMigrationProtocol + ")");
    }
    const std::string op = string_member(req, "op");
    if (op != "import") {
        imports_failed_.fetch_add(1);
        return reply_error(400, "unknown op '" + op + "' (ops: import)");
    }
    json& body = req;  // the import reads its members; "protocol" and "op" are ignored
    const std::string from = "peer " + peer;
    try {
        json result = api_.run_change("migrate-receive", "from " + from,
                                      [&] { return migration_.import_workload(body, from); });
        imports_ok_.fetch_add(1);
        spdlog::info("migration: imported a workload from {} into {}", from,
                     result.contains("ifname") ? "interface " + string_member(result, "ifname")
                                               : "cgroup " + string_member(result, "cgroup"));
        return reply_ok(std::move(result));
    } catch (const ApiError& e) {
        imports_failed_.fetch_add(1);
        spdlog::warn("migration: import from {} refused ({}): {}", from, e.status(), e.what());
        return reply_error(e.status(), e.what(), e.body());
    } catch (const std::exception& e) {
        imports_failed_.fetch_add(1);
        spdlog::error("migration: import from {}: {}", from, e.what());
        return reply_error(500, std::string("internal error: ") + e.what());
    }
}

json MigrationPeer::send(const json& body) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!body.is_object()) throw ApiError(400, "request must be a JSON object");
    const std::string to = optional_string(body, "to");
    if (to.empty()) throw ApiError(400, "migrate send needs \"to\" (HOST:PORT of the target)");
    auto hp = parse_host_port(to);
    if (!hp) throw ApiError(400, "migrate send: \"to\": " + hp.error().message);
    if (hp->port == 0) throw ApiError(400, "migrate send: \"to\": port 0 names no peer");
    const std::string peer_name = optional_string(body, "peer_name");
    bool release = false;
    if (body.contains("release")) {
        if (!body["release"].is_boolean())
            throw ApiError(400, "migrate send: \"release\" must be true or false");
        release = body["release"].get<bool>();
    }
    if (!cfg_.has_identity())
        throw ApiError(400,
                       "migrate send needs this agent's [migration] cert, key and ca (its "
                       "certificate, its key and the CA peers chain to): none are configured");
    // The export reads the same request members as POST /v1/migration/export.
    json selection = json::object();
    for (const char* key : {"cgroup", "ifname", "netns"})
        if (body.contains(key)) selection[key] = body[key];
    std::string target_cgroup = optional_string(body, "target_cgroup");
    const std::string target_ifname = optional_string(body, "target_ifname");
    const bool has_target_netns = body.contains("target_netns") && !body["target_netns"].is_null();
    const std::string target_netns = optional_string(body, "target_netns");
    if (!target_cgroup.empty() && (!target_ifname.empty() || has_target_netns))
        throw ApiError(400,
                       "migrate send: give \"target_cgroup\" or \"target_ifname\" (and "
                       "\"target_netns\"), not both");
    // A name dialled is a name the target's certificate must carry (as HTTPS does); an
    // address has none, and [migration] peers alone decides.
    const std::string expected = !peer_name.empty()        ? peer_name
                                 : is_ip_literal(hp->host) ? std::string()
                                                           : hp->host;
    audit_note("", "to " + to);

    const std::string prefix = "migrate send to " + to;
    auto failed = [&](int status, const std::string& step, const std::string& why,
                      json extra = json::object()) {
        sends_failed_.fetch_add(1);
        extra["step"] = step;
        extra["to"] = to;
        return ApiError(status, prefix + " failed at " + step + ": " + why, std::move(extra));
    };

    json bundle;
    {
        std::lock_guard<std::mutex> lock(api_.mutex());
        try {
            bundle = migration_.export_workload(selection);
        } catch (const ApiError& e) {
            throw failed(e.status(), "export", e.what(), e.body());
        }
    }
    const double export_ms = ms_since(t0);
    const std::string persona = bundle["persona"]["name"].get<std::string>();
    const json& bound = bundle["binding"];
    const bool on_interface = bound["kind"] == "interface";
    // The workload here, as the answer and the log name it.
    const std::string source = on_interface
                                   ? "interface " + bound["ifname"].get<std::string>() +
                                         (bound["netns"].get<std::string>().empty()
                                              ? std::string()
                                              : " in netns " + bound["netns"].get<std::string>())
                                   : "cgroup " + bound["cgroup"].get<std::string>();
    // The target's workload: by default the same cgroup path (relative to its cgroup2 mount)
    // or the same interface name and netns. A target interface given without a netns is in
    // the target agent's own netns. The kinds must agree: the target refuses otherwise.
    json target = json::object();
    if (!target_cgroup.empty() || (!on_interface && target_ifname.empty() && !has_target_netns)) {
        target["cgroup"] = target_cgroup.empty() ? bound["cgroup"] : json(target_cgroup);
    } else if (on_interface || !target_ifname.empty()) {
        target["ifname"] =
            target_ifname.empty() ? bound.value("ifname", std::string()) : target_ifname;
        target["netns"] = has_target_netns         ? target_netns
                          : !target_ifname.empty() ? std::string()
                                                   : bound.value("netns", std::string());
    } else {  // only target_netns, for a cgroup-bound workload
        target["netns"] = target_netns;
    }
    audit_note(persona, source + " to " + to);

    TlsLimits limits;
    limits.max_message = kMigrationMaxMessage;
    const auto t_connect = std::chrono::steady_clock::now();
    auto conn = connect_peer(hp->text(), identity(), expected, limits);
    if (!conn)
        throw failed(conn.error().err == ETIMEDOUT ? 504 : 502, "connect",
                     conn.error().what() + " (nothing was changed)");
    const std::string peer = conn->peer_name();
    json request = {{"protocol", kMigrationProtocol}, {"op", "import"}};
    for (auto& [key, value] : target.items()) request[key] = value;
    const double connect_ms = ms_since(t_connect);
    const auto t_exchange = std::chrono::steady_clock::now();
    // The bundle goes in and comes back out: no copy of its thousands of flows.
    request["bundle"] = std::move(bundle);
    const std::string message = request.dump();
    bundle = std::move(request["bundle"]);
    if (auto r = conn->send(message); !r)
        throw failed(r.error().err == ETIMEDOUT ? 504 : 502, "send",
                     r.error().what() + " (nothing was changed)", {{"peer", peer}});
    auto answer = conn->receive();
    if (!answer)
        throw failed(answer.error().err == ETIMEDOUT ? 504 : 502, "reply",
                     answer.error().what() +
                         " (the target may or may not have imported the workload: if it "
                         "stopped during the import, its next start undoes it; nothing was "
                         "changed here; sending again is safe: an import is idempotent)",
                     {{"peer", peer}});
    const double exchange_ms = ms_since(t_exchange);
    conn->close();
    json reply;
    try {
        reply = json::parse(*answer);
    } catch (const json::parse_error& e) {
        throw failed(502, "reply", std::string("the target's reply is not JSON: ") + e.what(),
                     {{"peer", peer}});
    }
    if (!reply.is_object() || string_member(reply, "protocol") != kMigrationProtocol ||
        !reply.contains("status") || !reply["status"].is_number_integer())
        throw failed(502, "reply",
                     std::string("the target's reply is not a ") + kMigrationProtocol +
                         " reply (an agent of another release?)",
                     {{"peer", peer}});
    const int status = reply["status"].get<int>();
    if (status != 200) {
        json extra = reply.contains("details") && reply["details"].is_object() ? reply["details"]
                                                                               : json::object();
        extra["peer"] = peer;
        // The target's status, so that 403 (sovereignty), 409 (versions) reach the caller.
        const int propagated = status >= 400 && status <= 599 ? status : 502;
        throw failed(
            propagated, "import",
            "peer " + peer + " refused the import: " + string_member(reply, "error") +
                (string_member(reply, "error").find("nothing was changed") == std::string::npos
                     ? " (nothing was changed)"
                     : ""),
            std::move(extra));
    }
    sends_ok_.fetch_add(1);
    json out = {{"to", to},
                {"peer", peer},
                {"workload", source},
                {"persona", persona},
                {"version", bundle["persona"]["version"]},
                {"flows", bundle["conntrack"]["rows"].size()},
                {"target", reply.contains("result") ? reply["result"] : json::object()},
                {"released", false},
                {"bytes", message.size()},
                // Export (here), connect (TCP + TLS handshake), exchange (the request out,
                // the target's import, the reply back), total to this point (before any
                // release).
                {"ms",
                 {{"export", export_ms},
                  {"connect", connect_ms},
                  {"exchange", exchange_ms},
                  {"total", ms_since(t0)}}}};
    if (on_interface) {
        out["ifname"] = bound["ifname"];
        out["netns"] = bound["netns"];
    } else {
        out["cgroup"] = bound["cgroup"];
    }
    if (release) {
        // The move stands whatever happens here: a failed release is said, not an error.
        std::lock_guard<std::mutex> lock(api_.mutex());
        try {
            json r = migration_.release_workload(bundle);
            out["released"] = r["released"];
            if (r.contains("reason")) out["release_skipped"] = r["reason"];
        } catch (const std::exception& e) {
            spdlog::error("migrate send: release of {} failed: {}", source, e.what());
            out["release_skipped"] = std::string("the unbind failed: ") + e.what();
        }
    }
    spdlog::info("migrate send: {} (persona '{}' version {}, {} flows) moved to {} ({}){}", source,
                 persona, out["version"].dump(), out["flows"].dump(), peer, to,
                 out["released"] == true ? ", released here" : "");
    return out;
}

void MigrationPeer::add_routes(ApiServer& server) {
    server.add_route(
        "POST", "/v1/migration/send",
        [this](const httplib::Request& req) {
            json body = parse_body(req);
            return send(body);
        },
        /*locked=*/false, "migrate-send");
    server.add_status("migration", [this] { return status(); });
}

}  // namespace pbpf::agent
