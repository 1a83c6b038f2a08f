// `migrate send` between agents (docs/migration.md, "migrate send"): the [migration] listener
// that takes a workload from a peer agent into Migration::import_workload, and
// POST /v1/migration/send, which exports a workload here and hands it to a peer's listener
// over agent/peer_tls.h. The protocol: one request message, one reply, JSON, versioned.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/config.h"
#include "agent/peer_tls.h"
#include "maps/result.h"

namespace pbpf::agent {

class ApiServer;
class Migration;

// The protocol's name and version, carried by every request and reply.
inline constexpr const char* kMigrationProtocol = "personabpf-migration/1";
// A bundle of 10,000 flows is about 4 MB of JSON; 64 MiB leaves room and bounds what an
// authenticated peer can make this agent hold per connection.
inline constexpr std::size_t kMigrationMaxMessage = std::size_t{64} << 20;

class MigrationPeer {
  public:
    MigrationPeer(MigrationConfig cfg, Migration& migration, ApiServer& api)
        : cfg_(std::move(cfg)), migration_(migration), api_(api) {}
    ~MigrationPeer() { stop(); }
    MigrationPeer(const MigrationPeer&) = delete;
    MigrationPeer& operator=(const MigrationPeer&) = delete;

    // Listens on [migration] listen when set (errors name the key and the file or address
    // at fault); nothing otherwise.
    Result<void> start();
    // Stops accepting, cancels what peers are sending and waits for imports in progress.
    void stop();

    // POST /v1/migration/send (admins, not under the API mutex: it takes it for the
    // export and the release only, never while waiting on the network) and the
    // "migration" member of GET /v1/status.
    void add_routes(ApiServer& server);
    nlohmann::json status() const;

    // POST /v1/migration/send {"cgroup" | "ifname", "netns"?, "to", "target_cgroup"? |
    // "target_ifname"?, "target_netns"?, "peer_name"?, "release"?}.
    // Throws ApiError naming the step that failed and the peer.
    nlohmann::json send(const nlohmann::json& body);

    // The receiving side's answer to one request message from `peer` (its certificate
    // name and address): {"protocol", "status", "result"} or {"protocol", "status",
    // "error", "details"}. The request's parsed tree is left in `request`, for the caller to
    // free after the reply is sent: freeing a bundle of 10,000 flows takes milliseconds
    // the sender need not wait for.
    nlohmann::json handle_request(const std::string& message, const std::string& peer,
                                  nlohmann::json& request);

  private:
    TlsIdentity identity() const;
    void serve(PeerConnection& conn);

    MigrationConfig cfg_;
    Migration& migration_;
    ApiServer& api_;
    std::unique_ptr<PeerServer> server_;
    std::atomic<uint64_t> refused_{0}, imports_ok_{0}, imports_failed_{0};
    std::atomic<uint64_t> sends_ok_{0}, sends_failed_{0};
};

}  // namespace pbpf::agent
