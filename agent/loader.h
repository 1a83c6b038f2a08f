// Loader: the instance lock, the BPF skeleton (RAII), pinned maps and links, adoption of
// what a previous agent pinned, and --uninstall.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "agent/binding_slots.h"
#include "agent/cgroup.h"
#include "agent/config.h"
#include "maps/abi/binding.h"
#include "maps/fd.h"
#include "maps/result.h"

struct bpf_link;

namespace pbpf::agent {

class MapMigration;

struct Skeleton;  // the generated BPF skeleton (loader.cpp)

inline constexpr const char* kLinkIngress = "link_cgroup_ingress";
inline constexpr const char* kLinkEgress = "link_cgroup_egress";
// The sock_ops program that samples TCP RTT (personas with a latency target).
inline constexpr const char* kLinkSockops = "link_cgroup_sockops";
// The cgroup/sock_create program that gives sockets of personas with a topology section
// the persona mark (docs/topology.md).
inline constexpr const char* kLinkSockCreate = "link_cgroup_sock_create";

// Routes libbpf's own messages to spdlog (warnings as warnings, debug as debug).
void route_libbpf_logs_to_spdlog();

// Makes sure the pin dir can exist: mounts bpffs at /sys/fs/bpf if the dir lives there
// and nothing is mounted, creates the dir (mkdir -p), and refuses a pin dir that is a
// bpffs mount root itself (uninstall removes everything under it).
Result<void> prepare_pin_dir(const std::string& pin_dir);

// Exclusive ownership of one instance: flock on the pin dir and on <state_dir>/agent.lock,
// plus <state_dir>/agent.pid. Released (and the pid file removed) on destruction.
class InstanceLock {
  public:
    InstanceLock() = default;
    InstanceLock(InstanceLock&&) = default;
    InstanceLock& operator=(InstanceLock&&) = default;
    ~InstanceLock();

    // Fails with EWOULDBLOCK and "another agent owns <dir> (pid N)" when held.
    static Result<InstanceLock> acquire(const std::string& pin_dir, const std::string& state_dir);

  private:
    Fd pin_dir_fd_;
    Fd state_lock_fd_;
    std::string pid_file_;
};

struct LoaderOptions {
    std::string pin_dir;
    CgroupRef cgroup_root;
    uint64_t cgroup_root_id = 0;
    // The managed root the state dir recorded, if any (meta); pins of another root refuse.
    std::optional<std::string> recorded_root_path;
    std::optional<uint64_t> recorded_root_id;
    // Map sizes for maps created now; pinned maps keep theirs (a warning says so).
    Limits limits;
    // Written into pbpf_globals on every start, so a config change takes effect.
    EventsConfig events;
};

class Loader {
  public:
    ~Loader();
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    // Adopts the instance's pinned maps and links (zero-gap program swap) or, on first
    // start, loads, pins and attaches everything.
    static Result<std::unique_ptr<Loader>> start(const LoaderOptions& opts);

    bool adopted() const { return adopted_; }
    // The schema of the pinned maps this start migrated from, if it migrated any.
    std::optional<uint32_t> migrated_from() const { return migrated_from_; }
    // After every program runs this build's (interfaces too): copies what the old programs
    // added to migrated maps during the swap, then lets the old maps go. No-op otherwise.
    void finish_migration();
    bool maps_fresh() const { return !adopted_; }
    const std::string& pin_dir() const { return pin_dir_; }

    int policies_fd() const;
    int bindings_fd() const;
    int resolve_cache_fd() const;
    int globals_fd() const;
    int counters_fd() const;
    int binding_counters_fd() const;  // counter slot -> struct pbpf_binding_counters
    int binding_drops_fd() const;     // (slot, dir, reason) -> dropped packets (per CPU)
    // Counter slots of the bindings (seeded from the pinned binding maps at start).
    BindingSlots& slots() const { return *slots_; }
    int qos_fd() const;       // persona id -> struct pbpf_qos
    int rtt_fd() const;       // persona id -> struct pbpf_rtt_hist (per CPU)
    int topology_fd() const;  // persona id -> struct pbpf_topology
    int geo_fd() const;       // slot 0 -> the geo IPv6 trie in force (maps/abi/geo.h)
    int geo4_fd() const;      // slot 0 -> the geo IPv4 table in force
    int conntrack_fd() const;
    int if_bindings_fd() const;
    int events_fd() const;
    int event_state_fd() const;
    // The tc programs for interface-bound workloads (attached per interface by IfBinder).
    int tc_ingress_prog_fd() const;
    int tc_egress_prog_fd() const;
    // The classifier of the [qos] egress interfaces (attached by QosManager).
    int qos_egress_prog_fd() const;
    // Topology: the mark and hop clamp on bound interfaces (IfBinder, ahead of
    // tc_ingress), the next-hop check on the [topology] egress interfaces (TopologyManager).
    int topo_ingress_prog_fd() const;
    int topo_egress_prog_fd() const;

    // The limits in force: the config's for maps created by this start, the pinned maps'
    // own sizes for adopted ones.
    const Limits& limits() const { return limits_; }

    // Whether the pinned cgroup links (ingress, egress, sock_ops) are live and attached to
    // the managed root.
    bool programs_attached() const;

    Result<pbpf_globals> read_globals() const;
    // binding_epoch += 1; returns the new epoch.
    Result<uint64_t> bump_epoch() const;
    // policy_epoch += 1 (after a persona flip or removal: tracked flows decide again).
    Result<uint64_t> bump_policy_epoch() const;

  private:
    Loader() = default;
    Result<void> adopt(const LoaderOptions& opts, uint32_t pinned_schema);
    Result<void> fresh(const LoaderOptions& opts);
    Result<void> attach_missing_links(const LoaderOptions& opts);

    Skeleton* skel_ = nullptr;
    bpf_link* link_ingress_ = nullptr;
    bpf_link* link_egress_ = nullptr;
    bpf_link* link_sockops_ = nullptr;
    bpf_link* link_sock_create_ = nullptr;
    Result<void> size_maps(const LoaderOptions& opts, bool pinned);
    Result<void> write_event_limits(const EventsConfig& events) const;

    std::string pin_dir_;
    Limits limits_;
    uint64_t root_id_ = 0;
    bool adopted_ = false;
    std::unique_ptr<BindingSlots> slots_;
    std::unique_ptr<MapMigration> migration_;
    std::optional<uint32_t> migrated_from_;
};

// cgroup id a pinned cgroup link is attached to (0: the cgroup is gone and the link
// detached), or an error if the pin is not a cgroup link.
Result<uint64_t> pinned_link_cgroup_id(const std::string& path);

// --uninstall: detach and unpin every link, unpin every map, remove the pin dir. The
// caller holds the InstanceLock (so no agent runs meanwhile).
Result<void> uninstall(const std::string& pin_dir);

}  // namespace pbpf::agent
