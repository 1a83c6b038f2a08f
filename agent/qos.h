// QosManager: the egress half of the personas' `qos` sections. On each [qos] egress
// interface it owns an HTB root (handle 7062:), a link class 7062:1 and one class per
// persona with QoS (7062:1000 + persona id), all through libnl-route, and attaches the
// classifier program (pbpf_qos_egress, TCX egress, pinned) that selects a packet's class
// and rewrites its DSCP. It keeps pbpf_qos (persona id -> struct pbpf_qos) in step with
// the stored personas. Everything is derived from the store, so sync() is idempotent: an
// apply, a removal, an agent restart and an interface that comes back all end in it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/config.h"
#include "agent/monitor.h"
#include "maps/abi/qos.h"
#include "maps/abi/settings.h"
#include "maps/result.h"

namespace pbpf::agent {

class ApiServer;
class Loader;
class LinkWatcher;

// A stored persona's QoS-relevant part.
struct PersonaQosInput {
    uint32_t id = 0;
    std::string name;
    pbpf_persona_settings settings{};
};

// The HTB class of one persona on an egress interface.
struct HtbClassSpec {
    uint32_t persona_id = 0;
    uint16_t minor = 0;        // PBPF_QOS_CLASS_BASE + persona id
    uint64_t rate_bps = 0;     // assured
    uint64_t ceil_bps = 0;     // at most
    uint32_t burst_bytes = 0;  // 0: the kernel's default for the rate
    uint32_t prio = 0;         // HTB prio: 0 is served first
    uint32_t quantum = 0;      // bytes per round among siblings
    bool operator==(const HtbClassSpec&) const = default;
};

// The model, pure so that it is unit-tested:
// - `egress rate R` is both assured (HTB rate) and the ceiling (HTB ceil), except under
//   `priority low`, where R is only the ceiling and the assured rate is a trickle;
// - a persona with a priority but no rate gets the trickle assured and the link rate as
//   its ceiling;
// - spare capacity of the link class goes to higher priorities first (HTB prio:
//   critical 0, high 1, normal or unset 2, low 3).
std::optional<HtbClassSpec> htb_class_for(uint32_t persona_id, const pbpf_persona_settings& s,
                                          uint64_t link_rate_bps);
// The pbpf_qos entry of a persona, nullopt when it needs none. `shaping` says whether
// any egress interface is configured (no interface: no class, no DSCP; the ingress limit
// holds everywhere).
std::optional<pbpf_qos> qos_entry_for(uint32_t persona_id, const pbpf_persona_settings& s,
                                      bool shaping);
// DSCP of a priority (PBPF_DSCP_*; normal and unset: 0).
uint8_t dscp_for(uint8_t priority);
// The ingress bucket depth for a rate without a burst: PBPF_INGRESS_BURST_MS of it, at
// least PBPF_INGRESS_MIN_BURST bytes.
uint64_t ingress_burst(uint64_t rate_bps);
// The quantum HTB gets for a class of this rate (tc's r2q of 10, kept in [MTU, 60000]).
uint32_t htb_quantum(uint64_t rate_bps);

// A persona's allocation as the monitor shows it against its current rates.
struct QosAllocation {
    uint64_t egress_ceil_bps = 0;  // 0: no egress class
    uint64_t egress_assured_bps = 0;
    uint64_t ingress_rate_bps = 0;  // 0: no ingress limit
    uint64_t ingress_burst_bytes = 0;
    uint8_t priority = 0;  // enum pbpf_priority
    int dscp = -1;         // -1: left alone
    uint16_t class_minor = 0;
};

class QosManager : public MonitorProvider {
  public:
    using PersonaSource = std::function<Result<std::vector<PersonaQosInput>>()>;

    ~QosManager();
    QosManager(const QosManager&) = delete;
    QosManager& operator=(const QosManager&) = delete;

    // Checks the config (an interface's root qdisc must be the kernel's default or ours),
    // sets up the interfaces that exist, syncs, and watches links so that an interface
    // that appears later (or comes back) is set up too. Missing interfaces are a warning.
    // `api_mutex` serialises the watcher's syncs with the API's changes (the store is read
    // there, and an apply in progress must not be half seen).
    static Result<std::unique_ptr<QosManager>> start(Loader& loader, const QosConfig& cfg,
                                                     PersonaSource source, std::mutex& api_mutex);

    // Brings pbpf_qos and every present interface's classes in line with the stored
    // personas. Safe from any thread.
    Result<void> sync();

    // GET /v1/qos: interfaces, their state and classes with the kernel's counters.
    nlohmann::json describe();
    void add_routes(ApiServer& server);

    void stop();  // the link watcher

    // MonitorProvider: the allocation next to the current rates in GET /v1/stats
    // (`qos`, and `allocation` per direction) and as Prometheus gauges.
    void persona_fields(const PersonaStats& ps, nlohmann::json& row) const override;
    void metrics(const MonitorSnapshot& snap, MetricsWriter& w) const override;

  private:
    QosManager(Loader& loader, QosConfig cfg, PersonaSource source, std::mutex& api_mutex);
    struct Iface {
        std::string name;
        uint32_t ifindex = 0;  // 0: absent
        std::string error;     // why it is not shaping, if it is not
    };
    Result<void> setup_interface(Iface& i);
    Result<void> sync_locked();
    void on_link_added(const std::string& name, uint32_t ifindex);
    void on_link_removed(const std::string& name);

    Loader& loader_;
    std::mutex& api_mu_;  // taken before mu_ on the watcher's thread
    QosConfig cfg_;
    PersonaSource source_;
    mutable std::mutex mu_;
    std::map<uint32_t, QosAllocation> alloc_;  // persona id -> allocation, of the last sync
    // (ifindex, class minor) -> what was last written there, to skip unchanged classes.
    std::map<std::pair<uint32_t, uint16_t>, HtbClassSpec> applied_;
    std::vector<Iface> ifaces_;
    std::map<uint32_t, std::string> names_;  // persona id -> name, of the last sync
    std::unique_ptr<LinkWatcher> watcher_;
};

// --uninstall: removes the HTB roots personabpf created on the configured interfaces and
// the classifier links pinned under <bpffs_root>/qos/.
Result<void> uninstall_qos(const std::string& bpffs_root, const QosConfig& cfg);

}  // namespace pbpf::agent
