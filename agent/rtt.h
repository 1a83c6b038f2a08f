// RTT percentiles and latency SLO status per binding and per persona. The sock_ops
// program adds the smoothed RTT of a persona's TCP sockets to a per-CPU histogram
// (maps/abi/rtt.h) per (persona, binding counter slot) for every persona with a `latency
// target`; RttMonitor reads the histograms once a second, keeps the per-second differences
// of the last kRttWindowSeconds per binding and, summed, per persona, and from them p50,
// p99 and the status against the target, reporting every change of status as an event.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/monitor.h"
#include "maps/abi/binding.h"
#include "maps/abi/rtt.h"
#include "maps/result.h"

namespace pbpf::agent {

// The window the percentiles and the status are computed over, in sampling intervals
// (seconds).
inline constexpr size_t kRttWindowSeconds = 30;
// Fewer RTT samples than this in the window: status no-data (too few to speak of a p99).
inline constexpr uint64_t kRttMinSamples = 20;

// The bucket of a value in microseconds; the same function as bpf/rtt.h's rtt_bucket().
uint32_t rtt_bucket(uint64_t us);
// [lower, upper) of bucket i, microseconds (the last bucket's upper bound is nominal: it
// also holds everything larger).
std::pair<double, double> rtt_bucket_bounds(uint32_t i);

// RTT samples per bucket (summed over CPUs), with their count and sum.
struct RttHistogram {
    std::array<uint64_t, PBPF_RTT_BUCKETS> buckets{};
    uint64_t samples = 0;  // the kernel's count (may differ from the buckets' sum by a race)
    uint64_t sum_us = 0;
};

// The q-quantile (0 < q <= 1) of the histogram in microseconds: the bucket holding the
// sample of rank ceil(q * n), linearly interpolated inside it by rank. Its error is less
// than that bucket's width: 1 us below 8 us, at most 12.5% of the value above. nullopt
// when the histogram is empty.
std::optional<double> rtt_quantile_us(const RttHistogram& h, double q);

// The kernel's raw counters of one histogram, summed over CPUs: buckets modulo 2^32 (they
// wrap per CPU; a sum modulo 2^32 keeps differences right).
struct RttRaw {
    std::array<uint32_t, PBPF_RTT_BUCKETS> buckets{};
    uint64_t samples = 0;
    uint64_t sum_us = 0;
};
RttRaw rtt_sum_cpus(const std::vector<pbpf_rtt_hist>& per_cpu);
// What was added between two reads (buckets modulo 2^32; samples and sum: 0 if they went
// down, which only a recreated histogram does).
RttHistogram rtt_delta(const RttRaw& prev, const RttRaw& cur);

enum class RttStatus : uint8_t { NoData = 1, Met = 2, Violated = 3 };
const char* rtt_status_name(RttStatus s);  // "no-data", "met", "violated"
// met: p99 <= target; violated: p99 > target; no-data: fewer than kRttMinSamples samples.
RttStatus rtt_status(uint64_t samples, std::optional<double> p99_us, uint64_t target_ns);

// The last `seconds` intervals of one histogram (or of a persona's sum), as a running sum.
class RttWindow {
  public:
    explicit RttWindow(size_t seconds = kRttWindowSeconds) : capacity_(seconds ? seconds : 1) {}
    void push(const RttHistogram& interval);
    const RttHistogram& total() const { return total_; }
    size_t intervals() const { return intervals_.size(); }

  private:
    size_t capacity_;
    std::deque<RttHistogram> intervals_;
    RttHistogram total_;
};

// A histogram: a persona and the counter slot of one of its bindings (0: the persona's
// bindings without a slot), as in struct pbpf_rtt_key.
struct RttKey {
    uint32_t persona_id = 0;
    uint32_t slot = 0;
    auto operator<=>(const RttKey&) const = default;
};

// One read of one histogram: its key, the binding that holds the slot (its cgroup id; 0
// for slot 0) and the counters.
struct RttRead {
    RttKey key;
    uint64_t workload = 0;
    RttRaw raw;
};

// The current view of one binding's histogram, or of a persona (the sum of its bindings).
struct RttView {
    uint32_t persona_id = 0;
    std::optional<uint32_t> slot;  // the binding's slot; none: the persona
    uint64_t workload = 0;         // the binding's cgroup id
    uint64_t target_ns = 0;
    uint64_t window_samples = 0;
    std::optional<double> p50_us, p99_us;
    RttStatus status = RttStatus::NoData;
    uint64_t total_samples = 0;  // since sampling began (Prometheus _count)
    uint64_t total_sum_us = 0;   // (Prometheus _sum)
};

// A change of status, as the event stream reports it: of a binding (slot set, workload its
// cgroup id) or of the persona as a whole (no slot).
struct RttStatusChange {
    uint32_t persona_id = 0;
    std::optional<uint32_t> slot;
    uint64_t workload = 0;
    RttStatus status = RttStatus::NoData;
    RttStatus previous = RttStatus::NoData;
    uint64_t target_ns = 0;
    uint64_t samples = 0;  // in the window
    std::optional<double> p50_us, p99_us;
};

// The windows and statuses of every histogram and every persona with a target, fed by
// begin() and observe() (pure, for the tests) or by RttMonitor from the maps. A persona's
// window is pushed the sum of its histograms' intervals, so it keeps what a binding
// contributed after the binding is gone, and its totals only grow.
class RttTracker {
  public:
    explicit RttTracker(size_t window_seconds = kRttWindowSeconds) : window_(window_seconds) {}
    // Starts following a histogram (and its persona, with `target_ns`, if new): this read
    // is its baseline, no interval; both start in no-data. Known keys are left alone.
    void begin(const RttRead& read, uint64_t target_ns);
    // One interval: the personas' targets and a read of each histogram. A key or persona
    // seen for the first time begins (as above); a key read with another workload than
    // before (its slot went to another binding) begins anew. Keys not read and personas
    // without a target are forgotten. Returns the changes of status: of bindings (slot 0
    // is no binding: it has none) and of personas.
    std::vector<RttStatusChange> observe(const std::map<uint32_t, uint64_t>& targets,
                                         const std::vector<RttRead>& reads);
    // Forgets the personas not in `targets` and the keys not in `keys` (or of such
    // personas), and takes the new targets (their statuses move at the next observe).
    void retain(const std::map<uint32_t, uint64_t>& targets, const std::set<RttKey>& keys);
    bool tracks(const RttKey& key) const { return keys_.count(key) != 0; }
    bool tracks_persona(uint32_t persona_id) const { return personas_.count(persona_id) != 0; }
    std::optional<RttView> persona_view(uint32_t persona_id) const;
    std::optional<RttView> binding_view(const RttKey& key) const;

  private:
    struct Series {
        RttWindow window;
        RttStatus status = RttStatus::NoData;
        uint64_t total_samples = 0, total_sum_us = 0;
    };
    struct KeyState {
        uint64_t workload = 0;
        RttRaw last;
        Series s;
    };
    struct PersonaState {
        uint64_t target_ns = 0;
        Series s;
    };
    RttView view_of(const Series& s, uint64_t target_ns) const;
    std::optional<RttStatusChange> settle(Series& s, uint64_t target_ns) const;
    size_t window_;
    std::map<RttKey, KeyState> keys_;
    std::map<uint32_t, PersonaState> personas_;
};

// The "rtt" object of a persona's or a binding's GET /v1/stats row.
nlohmann::json rtt_json(const RttView& v);

// The maps RttMonitor works on.
struct RttMaps {
    int rtt_fd = -1;       // pbpf_rtt
    int qos_fd = -1;       // pbpf_qos: the targets
    int bindings_fd = -1;  // pbpf_bindings: which slots the personas' bindings hold
    int globals_fd = -1;   // pbpf_globals: the binding epoch (rescan the bindings on a change)
};

// Reads pbpf_rtt against pbpf_qos and pbpf_bindings once per monitor tick, keeps the
// histograms in step with the targets and bindings (creates the missing ones zeroed,
// deletes those of bindings or personas gone or without a target), and renders the views
// for the monitor.
class RttMonitor : public MonitorProvider {
  public:
    using ChangeHook = std::function<void(const RttStatusChange&)>;
    RttMonitor(const RttMaps& maps, ChangeHook on_change,
               size_t window_seconds = kRttWindowSeconds);

    // Makes pbpf_rtt hold a zeroed histogram for slot 0 and for the slot of every cgroup
    // binding of every persona whose pbpf_qos entry has PBPF_QOS_F_RTT, and none for the
    // others. Safe from any thread; call after pbpf_qos or the bindings changed (the tick
    // does too).
    Result<void> reconcile();
    // Makes the histogram of the cgroup binding just written, if its persona has a target,
    // so that its sockets are sampled from the start (one binding's worth of work; the
    // tick removes what is gone).
    void bound(uint64_t cgroup_id);

    void tick() override;
    void persona_fields(const PersonaStats& p, nlohmann::json& row) const override;
    void binding_fields(const PersonaStats& p, const BindingStats& b,
                        nlohmann::json& row) const override;
    void metrics(const MonitorSnapshot& s, MetricsWriter& w) const override;

  private:
    // What the histograms are made to match: the targets, and each wanted key's workload.
    struct Wanted {
        std::map<uint32_t, uint64_t> targets;  // persona id -> target, ns
        std::map<RttKey, uint64_t> keys;       // -> cgroup id of the binding (0: slot 0)
    };
    Result<std::map<uint32_t, uint64_t>> targets() const;
    // (cgroup id, binding) of pbpf_bindings, read anew when the binding epoch moved.
    Result<void> scan_bindings();
    Result<Wanted> reconcile_wanted();
    RttMaps maps_;
    ChangeHook on_change_;
    // One reconcile at a time (an apply's, a bind's and the tick's): interleaved, one could
    // make again a histogram the other had just deleted.
    std::mutex reconcile_mu_;
    std::optional<uint64_t> scanned_epoch_;                 // under reconcile_mu_
    std::vector<std::pair<uint64_t, pbpf_binding>> bound_;  // under reconcile_mu_
    std::map<RttKey, uint64_t> made_;  // key -> workload it was made for (reconcile_mu_)
    mutable std::mutex mu_;
    RttTracker tracker_;
};

}  // namespace pbpf::agent
