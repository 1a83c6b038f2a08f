// TopologyManager: the personas' `topology` sections (docs/topology.md). It keeps
// pbpf_topology (persona id -> struct pbpf_topology: mark, hop clamp, next hops) in step
// with the stored personas, owns the policy-routing rules that send a persona's marked
// traffic to its table (`fwmark <id << 20>/0xfff00000 lookup T`, plus an `unreachable`
// fallback so that marked traffic never falls through to the main table) and, for
// `route via GW`, one table per persona holding `default via GW`, all through libnl-route;
// and it attaches the next-hop check (pbpf_topo_egress) to the [topology] egress
// interfaces. Everything is derived from the store, so sync() is idempotent: after every
// apply or removal, at start, and when a configured interface appears.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/config.h"
#include "agent/qos.h"
#include "maps/abi/topology.h"
#include "maps/result.h"

namespace pbpf::agent {

class ApiServer;
class Loader;
class LinkWatcher;

// One policy-routing rule of the agent's: packets whose mark bits 20-31 name the persona
// look up `table`, or (unreachable) are refused a route.
struct TopologyRule {
    int family = 0;  // AF_INET or AF_INET6
    uint32_t priority = 0;
    uint32_t mark = 0;   // persona id << PBPF_MARK_PERSONA_SHIFT
    uint32_t table = 0;  // 0 with unreachable
    bool unreachable = false;
    uint32_t persona_id = 0;
    auto operator<=>(const TopologyRule&) const = default;
};

// `default via gateway` in the agent's table of a persona with `route via`.
struct TopologyRoute {
    int family = 0;
    uint32_t table = 0;
    std::string gateway;  // address text
    uint32_t persona_id = 0;
    auto operator<=>(const TopologyRoute&) const = default;
};

struct TopologyPlan {
    std::map<uint32_t, pbpf_topology> entries;  // persona id -> pbpf_topology
    std::vector<TopologyRule> rules;            // sorted
    std::vector<TopologyRoute> routes;          // sorted
};

// The pbpf_topology entry of a persona, nullopt when it has no topology section.
std::optional<pbpf_topology> topology_entry_for(const pbpf_persona_settings& s);
// Everything the stored personas need, pure so that it is unit-tested:
// - `route table T`: in both families, a rule at cfg.rule_priority looking up T and an
//   unreachable rule at cfg.rule_priority + 1 (marked traffic that T has no route for is
//   refused, not routed by the main table);
// - `route via GW`: the same two rules in GW's family only, looking up table
//   cfg.table_base + persona id, which holds `default via GW`.
TopologyPlan plan_topology(const std::vector<PersonaQosInput>& personas, const TopologyConfig& cfg);

class TopologyManager {
  public:
    using PersonaSource = std::function<Result<std::vector<PersonaQosInput>>()>;

    ~TopologyManager();
    TopologyManager(const TopologyManager&) = delete;
    TopologyManager& operator=(const TopologyManager&) = delete;

    // Attaches the next-hop check to the configured interfaces that exist (missing ones
    // are a warning, attached when they appear), syncs, and watches links.
    static Result<std::unique_ptr<TopologyManager>> start(Loader& loader, const TopologyConfig& cfg,
                                                          PersonaSource source,
                                                          std::mutex& api_mutex);

    // Brings pbpf_topology, the rules and the agent's tables in line with the stored
    // personas. Safe from any thread.
    Result<void> sync();

    // GET /v1/topology: interfaces, rules, routes and each persona's entry.
    nlohmann::json describe();
    void add_routes(ApiServer& server);
    void stop();

  private:
    TopologyManager(Loader& loader, TopologyConfig cfg, PersonaSource source, std::mutex& api_mu);
    struct Iface {
        std::string name;
        uint32_t ifindex = 0;  // 0: absent
        std::string error;
    };
    Result<void> sync_locked();
    void attach_interface(Iface& i);
    void on_link_added(const std::string& name, uint32_t ifindex);
    void on_link_removed(const std::string& name);

    Loader& loader_;
    std::mutex& api_mu_;
    TopologyConfig cfg_;
    PersonaSource source_;
    std::mutex mu_;
    std::vector<Iface> ifaces_;
    std::map<uint32_t, std::string> names_;  // persona id -> name, of the last sync
    std::unique_ptr<LinkWatcher> watcher_;
};

// --uninstall: the agent's rules (its priorities and mark mask), routes in its tables and
// the next-hop links pinned under <bpffs_root>/topology/.
Result<void> uninstall_topology(const std::string& bpffs_root, const TopologyConfig& cfg);

}  // namespace pbpf::agent
