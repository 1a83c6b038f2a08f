// RTT percentiles and latency SLO status per persona. The sock_ops program adds the
// smoothed RTT of a persona's TCP sockets to a per-CPU histogram (maps/abi/rtt.h) for
// every persona with a `latency target`; RttMonitor reads the histograms once a second,
// keeps the per-second differences of the last kRttWindowSeconds, and from them p50, p99
// and the status against the target, reporting every change of status as an event.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/monitor.h"
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

// The kernel's raw counters of one persona, summed over CPUs: buckets modulo 2^32 (they
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

// The last `seconds` intervals of one persona, as a running sum.
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

// One persona's current view.
struct RttView {
    uint32_t persona_id = 0;
    uint64_t target_ns = 0;
    uint64_t window_samples = 0;
    std::optional<double> p50_us, p99_us;
    RttStatus status = RttStatus::NoData;
    uint64_t total_samples = 0;  // since the histogram was made (Prometheus _count)
    uint64_t total_sum_us = 0;   // (Prometheus _sum)
};

// A change of status, as the event stream reports it.
struct RttStatusChange {
    uint32_t persona_id = 0;
    RttStatus status = RttStatus::NoData;
    RttStatus previous = RttStatus::NoData;
    uint64_t target_ns = 0;
    uint64_t samples = 0;  // in the window
    std::optional<double> p50_us, p99_us;
};

// The windows and statuses of every persona with a target, fed by observe() (pure, for
// the tests) or by RttMonitor::tick() from the maps.
class RttTracker {
  public:
    explicit RttTracker(size_t window_seconds = kRttWindowSeconds) : window_(window_seconds) {}
    // One interval of one persona: the raw counters read now and its target. A persona
    // seen for the first time starts from this read (no interval yet) in no-data. Returns
    // the change of status, if any.
    std::optional<RttStatusChange> observe(uint32_t persona_id, uint64_t target_ns,
                                           const RttRaw& raw);
    // Forgets the personas not in `keep` (their target or the persona is gone).
    void retain(const std::vector<uint32_t>& keep);
    bool tracks(uint32_t persona_id) const { return personas_.count(persona_id) != 0; }
    std::optional<RttView> view(uint32_t persona_id) const;
    std::vector<RttView> views() const;

  private:
    struct State {
        uint64_t target_ns = 0;
        RttRaw last;
        RttWindow window;
        RttStatus status = RttStatus::NoData;
    };
    RttView view_of(uint32_t id, const State& s) const;
    size_t window_;
    std::map<uint32_t, State> personas_;
};

// The "rtt" object of a persona's GET /v1/stats row.
nlohmann::json rtt_json(const RttView& v);

// Reads pbpf_rtt against pbpf_qos once per monitor tick, keeps the histograms in step
// with the personas' targets (creates the missing ones zeroed, deletes those of personas
// without a target), and renders the views for the monitor.
class RttMonitor : public MonitorProvider {
  public:
    using ChangeHook = std::function<void(const RttStatusChange&)>;
    RttMonitor(int rtt_fd, int qos_fd, ChangeHook on_change,
               size_t window_seconds = kRttWindowSeconds);

    // Makes pbpf_rtt hold a zeroed histogram for every persona whose pbpf_qos entry has
    // PBPF_QOS_F_RTT and none for the others. Safe from any thread; call after pbpf_qos
    // changed (the tick does too).
    Result<void> reconcile();

    void tick() override;
    void persona_fields(const PersonaStats& p, nlohmann::json& row) const override;
    void metrics(const MonitorSnapshot& s, MetricsWriter& w) const override;

  private:
    Result<std::map<uint32_t, uint64_t>> targets() const;  // persona id -> target, ns
    // reconcile(), returning the targets it made the histograms match.
    Result<std::map<uint32_t, uint64_t>> reconcile_targets();
    int rtt_fd_, qos_fd_;
    ChangeHook on_change_;
    // One reconcile at a time (an apply's and the tick's): interleaved, one could make
    // again a histogram the other had just deleted.
    std::mutex reconcile_mu_;
    mutable std::mutex mu_;
    RttTracker tracker_;
};

}  // namespace pbpf::agent
