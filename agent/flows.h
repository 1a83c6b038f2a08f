// The kernel's flow state as operators see it: the conntrack table (list, flush) and the
// flow-event stream (a reader thread on the pbpf_events ring, a bounded history that
// `personabpf events` reads and follows).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/cgroup.h"
#include "agent/loader.h"
#include "agent/rtt.h"
#include "agent/store.h"
#include "maps/abi/conntrack.h"
#include "maps/abi/events.h"

struct ring_buffer;

namespace pbpf::agent {

// Names for what the kernel reports by number: persona ids, cgroup ids (bound cgroups
// from the store; others found by a walk of the managed subtree, cached).
class Names {
  public:
    Names(Store& store, const CgroupTree& tree) : store_(store), tree_(tree) {}
    // Re-reads persona names and bound cgroups from the store (call under the API mutex).
    void refresh();
    std::string persona(uint32_t id) const;
    std::optional<uint32_t> persona_id(const std::string& name) const;
    // The text of rule `rule_id` (1-based) of the persona's current version, "" if none.
    std::string rule(uint32_t persona_id, uint32_t rule_id) const;
    // "/demo/web" for a cgroup of the managed subtree, "cgroup:<id>" if it is gone.
    std::string cgroup(uint64_t id);
    // "if:veth1" or "if:tap0@vmns" for a bound interface, "if:<ifindex>" otherwise.
    std::string interface(uint64_t netns_cookie, uint32_t ifindex) const;
    // Names learnt as workloads are bound (they may be gone when their events are read).
    void remember_cgroup(uint64_t id, const std::string& rel_path) { cgroups_[id] = rel_path; }
    void remember_persona(uint32_t id, const std::string& name) { personas_[id] = name; }
    void remember_interface(uint64_t netns_cookie, uint32_t ifindex, const std::string& name) {
        interfaces_[{netns_cookie, ifindex}] = "if:" + name;
    }
    // `kind "pattern"` of a binding rule, "" if unknown.
    std::string bind_rule(int64_t id) const;

  private:
    Store& store_;
    const CgroupTree& tree_;
    std::map<uint32_t, std::string> personas_;
    std::map<uint32_t, std::vector<std::string>> rules_;
    std::map<uint64_t, std::string> cgroups_;
    std::map<uint64_t, std::chrono::steady_clock::time_point> misses_;
    std::map<std::pair<uint64_t, uint32_t>, std::string> interfaces_;
    std::map<int64_t, std::string> bind_rules_;
};

// One conntrack entry, decoded; see maps/abi/conntrack.h.
nlohmann::json flow_json(const pbpf_ct_key& k, const pbpf_ct_value& v, uint64_t now_ns,
                         Names& names);
// One flow event, decoded; `seq` numbers the agent's history. A latency event
// (PBPF_EV_LATENCY) carries its figures in `latency`.
nlohmann::json event_json(const pbpf_flow_event& e, uint64_t seq, int64_t wall_offset_ns,
                          Names& names, const RttStatusChange* latency = nullptr);

// GET /v1/conntrack?persona=N&limit=N and DELETE /v1/conntrack?persona=N.
class ConntrackTable {
  public:
    ConntrackTable(Loader& loader, Names& names) : loader_(loader), names_(names) {}
    // Live flows (expired ones hidden), optionally of one persona; at most `limit`, the
    // answer says whether it was cut.
    nlohmann::json list(const std::optional<std::string>& persona, size_t limit);
    // Deletes the flows (of one persona, or all); their next packets are decided anew.
    nlohmann::json flush(const std::optional<std::string>& persona);

  private:
    std::optional<uint32_t> persona_filter(const std::optional<std::string>& persona);
    Loader& loader_;
    Names& names_;
};

// Reads pbpf_events on its own thread into a bounded history.
class EventStream {
  public:
    EventStream(Loader& loader, size_t history);
    ~EventStream();
    EventStream(const EventStream&) = delete;
    EventStream& operator=(const EventStream&) = delete;

    Result<void> start();
    void stop();

    struct Batch {
        std::vector<std::pair<uint64_t, pbpf_flow_event>> events;  // (seq, event)
        uint64_t next = 0;                                         // the seq to ask for next
        uint64_t overwritten = 0;  // events that left the history before being read
        std::map<uint64_t, RttStatusChange> latency;  // seq -> figures of latency events
    };
    // Events with seq >= since (all kept ones if since is 0), of one persona id if given,
    // at most `limit`, the newest `limit` if `tail`; waits up to wait_ms for the first
    // one to arrive.
    Batch read(uint64_t since, std::optional<uint32_t> persona, size_t limit, bool tail,
               int wait_ms);
    // Adds a binding event the agent made to the history, stamped now: verdict
    // PBPF_EV_BIND / PBPF_EV_UNBIND, an enum pbpf_bind_trigger, the workload (cgroup id, or
    // netns cookie with an ifindex), the persona, the binding rule (0: none).
    void publish_binding(uint8_t verdict, uint8_t trigger, uint64_t workload, uint32_t ifindex,
                         uint32_t persona_id, int64_t rule_id);
    // Adds a latency event (a persona's or a binding's SLO status changed) to the history,
    // stamped now.
    void publish_latency(const RttStatusChange& change);
    // Sums of the kernel's per-CPU counters: emitted, rate_limited, ring_full.
    nlohmann::json kernel_counters() const;

  private:
    static int on_event(void* ctx, void* data, size_t size);
    void push(const pbpf_flow_event& e, const RttStatusChange* latency = nullptr);
    void run();

    Loader& loader_;
    size_t capacity_;
    ring_buffer* ring_ = nullptr;
    std::thread thread_;
    bool stopping_ = false;
    mutable std::mutex mu_;
    std::condition_variable arrived_;
    std::deque<pbpf_flow_event> history_;
    std::map<uint64_t, RttStatusChange> latency_;  // seq -> figures, for latency events kept
    uint64_t first_seq_ = 1;                       // seq of history_.front()
    uint64_t received_ = 0;
    int waiting_ = 0;  // readers in a long poll (under mu_)
    static constexpr int kMaxWaiters = 4;
};

class ApiServer;
// GET|DELETE /v1/conntrack and GET /v1/events (long poll: `wait_ms`), see agent/README.md.
void add_flow_routes(ApiServer& server, ConntrackTable& conntrack, EventStream& events,
                     Names& names);

// CLOCK_REALTIME - CLOCK_MONOTONIC, to turn bpf_ktime_get_ns stamps into wall time.
int64_t wall_clock_offset_ns();

}  // namespace pbpf::agent
