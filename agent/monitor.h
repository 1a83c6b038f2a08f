// Monitor: samples the kernel's per-persona and per-binding counters once a second (and
// on demand), keeps current rates over the last interval, and renders them for the API
// (GET /v1/stats) and Prometheus (/metrics). Other components add their own per-persona
// fields and samples through MonitorProvider (QoS allocation, RTT, SLO status).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/binding_slots.h"
#include "agent/metrics.h"
#include "maps/abi/counters.h"
#include "maps/policy_map.h"

namespace pbpf::agent {

class Loader;

// Current rate of one direction over the last sampling interval.
struct Rate {
    double bits_per_second = 0;
    double packets_per_second = 0;
};
// (cur - prev) over `seconds`; a counter that went down (a reused slot or persona id)
// or a non-positive interval gives 0.
Rate rate_between(uint64_t prev_packets, uint64_t prev_bytes, uint64_t cur_packets,
                  uint64_t cur_bytes, double seconds);
// "rule", "default", ... for an enum pbpf_event_reason; "other" for slot 0 and unknowns.
std::string drop_reason_name(unsigned reason);

struct PersonaStats {
    std::string name;
    uint32_t id = 0;
    pbpf_counters counters{};
    Rate rate[2];  // by enum pbpf_direction; passed (allowed + audited) traffic
};

struct BindingStats {
    std::string kind;    // "cgroup" or "interface"
    std::string target;  // cgroup path, or ifname[@netns]
    std::string persona;
    BindingKey key;
    uint32_t slot = 0;  // 0: not counted per binding
    pbpf_binding_counters counters{};
    // Dropped packets by direction and reason (enum pbpf_event_reason); index 0 ("other")
    // holds drops the kernel could not attribute (its drop-reason map was full).
    BindingDropReasons dropped_by_reason{};
    Rate rate[2];
};

// Fills b.dropped_by_reason from `drops` (read_binding_drops), then puts into index 0 the
// binding's dropped packets that no reason accounts for.
void attribute_binding_drops(BindingStats& b, const std::map<uint32_t, BindingDropReasons>& drops);

struct MonitorSnapshot {
    std::vector<PersonaStats> personas;
    std::vector<BindingStats> bindings;
    double interval_seconds = 0;  // of the rates
    std::chrono::system_clock::time_point sampled_at{};
};

// What a component adds to the monitor's output. Called with the monitor's lock held:
// keep it quick and never call back into the monitor.
class MonitorProvider {
  public:
    virtual ~MonitorProvider() = default;
    // Called by the sampling thread once per interval, before the monitor samples, with no
    // lock held (reading the provider's own kernel state belongs here).
    virtual void tick() {}
    // Extra fields of a persona's row in GET /v1/stats.
    virtual void persona_fields(const PersonaStats&, nlohmann::json&) const {}
    // Extra fields of the row of one of that persona's bindings (its `bindings` array).
    virtual void binding_fields(const PersonaStats&, const BindingStats&, nlohmann::json&) const {}
    // Declare families and add samples.
    virtual void metrics(const MonitorSnapshot&, MetricsWriter&) const {}
};

class Monitor {
  public:
    struct PersonaRef {
        std::string name;
        uint32_t id = 0;
    };
    struct BindingRef {
        std::string kind, target, persona;
        BindingKey key;
    };
    struct Catalog {
        std::vector<PersonaRef> personas;
        std::vector<BindingRef> bindings;
    };
    // `catalog` lists what to sample (reads the store); it runs under `api_mutex`, which the
    // sampling thread takes around it (the API handlers already hold it).
    Monitor(const Loader& loader, std::function<Catalog()> catalog, std::mutex& api_mutex,
            std::chrono::milliseconds interval = std::chrono::seconds(1));
    ~Monitor();
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;

    void start();
    void stop();
    // Samples now; the caller holds the API mutex. Rates move on only when at least half an
    // interval passed since the last sample (an API call right after a tick keeps the
    // tick's rates, whose interval is meaningful).
    void sample_locked();
    MonitorSnapshot snapshot() const;
    void add_provider(MonitorProvider* p);

    // GET /v1/stats[?persona=N]: samples first (under the API mutex). Throws ApiError(404)
    // for an unknown persona.
    nlohmann::json stats_json(const std::optional<std::string>& persona);
    // /metrics: from the last sample, without the API mutex.
    std::string prometheus() const;

  private:
    void sample(const Catalog& cat);
    void run();

    const Loader& loader_;
    std::function<Catalog()> catalog_;
    std::mutex& api_mu_;
    std::chrono::milliseconds interval_;
    mutable std::mutex mu_;
    MonitorSnapshot snap_;
    std::vector<PersonaStats> base_personas_;  // the last tick's counters
    std::vector<BindingStats> base_bindings_;
    std::chrono::steady_clock::time_point last_tick_{};
    std::vector<MonitorProvider*> providers_;
    std::thread thread_;
    std::mutex wake_mu_;
    std::condition_variable wake_;
    bool stopping_ = false;
};

// Renders a snapshot as Prometheus text (the monitor's own families, then providers').
std::string render_metrics(const MonitorSnapshot& s,
                           const std::vector<const MonitorProvider*>& providers);
// One persona's row of GET /v1/stats, with its bindings (and the providers' fields of
// each binding row).
nlohmann::json persona_json(const PersonaStats& p, const std::vector<BindingStats>& bindings,
                            double interval_seconds,
                            const std::vector<const MonitorProvider*>& providers = {});

}  // namespace pbpf::agent
