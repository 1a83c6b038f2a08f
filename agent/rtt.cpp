// RTT percentiles and latency SLO status per persona (see rtt.h).
#include "agent/rtt.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <set>

#include <spdlog/spdlog.h>

#include "maps/abi/qos.h"

namespace pbpf::agent {

using nlohmann::json;

uint32_t rtt_bucket(uint64_t us) {
    if (us < PBPF_RTT_SUB) return static_cast<uint32_t>(us);
    const uint32_t msb = 63 - static_cast<uint32_t>(__builtin_clzll(us));
    const uint32_t g = msb - (PBPF_RTT_SUB_BITS - 1);
    if (g >= PBPF_RTT_GROUPS) return PBPF_RTT_BUCKETS - 1;
    return g * PBPF_RTT_SUB +
           static_cast<uint32_t>((us >> (msb - PBPF_RTT_SUB_BITS)) & (PBPF_RTT_SUB - 1));
}

std::pair<double, double> rtt_bucket_bounds(uint32_t i) {
    const uint32_t g = i / PBPF_RTT_SUB, s = i % PBPF_RTT_SUB;
    if (g == 0) return {static_cast<double>(s), static_cast<double>(s + 1)};
    const double unit = std::ldexp(1.0, static_cast<int>(g) - 1);
    return {(PBPF_RTT_SUB + s) * unit, (PBPF_RTT_SUB + s + 1) * unit};
}

std::optional<double> rtt_quantile_us(const RttHistogram& h, double q) {
    uint64_t n = 0;
    for (uint64_t c : h.buckets) n += c;
    if (n == 0 || !(q > 0)) return std::nullopt;
    q = std::min(q, 1.0);
    // Rank of the wanted sample, 1-based: ceil(q * n).
    const double rank = std::max(1.0, std::ceil(q * static_cast<double>(n)));
    uint64_t before = 0;
    for (uint32_t i = 0; i < PBPF_RTT_BUCKETS; ++i) {
        const uint64_t c = h.buckets[i];
        if (c == 0) continue;
        if (static_cast<double>(before + c) >= rank) {
            // The c samples of the bucket are taken as spread evenly over it: the k-th of
            // them (1-based) sits at lower + (k - 0.5) / c of its width.
            auto [lo, hi] = rtt_bucket_bounds(i);
            const double k = rank - static_cast<double>(before);
            return lo + (hi - lo) * (k - 0.5) / static_cast<double>(c);
        }
        before += c;
    }
    return std::nullopt;  // unreachable: n counts every bucket
}

RttRaw rtt_sum_cpus(const std::vector<pbpf_rtt_hist>& per_cpu) {
    RttRaw r;
    for (const auto& h : per_cpu) {
        r.samples += h.samples;
        r.sum_us += h.sum_us;
        for (size_t i = 0; i < PBPF_RTT_BUCKETS; ++i)
            r.buckets[i] = static_cast<uint32_t>(r.buckets[i] + h.buckets[i]);
    }
    return r;
}

RttHistogram rtt_delta(const RttRaw& prev, const RttRaw& cur) {
    RttHistogram d;
    for (size_t i = 0; i < PBPF_RTT_BUCKETS; ++i)
        d.buckets[i] = static_cast<uint32_t>(cur.buckets[i] - prev.buckets[i]);
    d.samples = cur.samples >= prev.samples ? cur.samples - prev.samples : 0;
    d.sum_us = cur.sum_us >= prev.sum_us ? cur.sum_us - prev.sum_us : 0;
    return d;
}

const char* rtt_status_name(RttStatus s) {
    switch (s) {
        case RttStatus::Met:
            return "met";
        case RttStatus::Violated:
            return "violated";
        case RttStatus::NoData:
            break;
    }
    return "no-data";
}

RttStatus rtt_status(uint64_t samples, std::optional<double> p99_us, uint64_t target_ns) {
    if (samples < kRttMinSamples || !p99_us) return RttStatus::NoData;
    return *p99_us * 1000.0 <= static_cast<double>(target_ns) ? RttStatus::Met
                                                              : RttStatus::Violated;
}

void RttWindow::push(const RttHistogram& interval) {
    intervals_.push_back(interval);
    for (size_t i = 0; i < PBPF_RTT_BUCKETS; ++i) total_.buckets[i] += interval.buckets[i];
    total_.samples += interval.samples;
    total_.sum_us += interval.sum_us;
    while (intervals_.size() > capacity_) {
        const auto& old = intervals_.front();
        for (size_t i = 0; i < PBPF_RTT_BUCKETS; ++i) total_.buckets[i] -= old.buckets[i];
        total_.samples -= old.samples;
        total_.sum_us -= old.sum_us;
        intervals_.pop_front();
    }
}

std::optional<RttStatusChange> RttTracker::observe(uint32_t persona_id, uint64_t target_ns,
                                                   const RttRaw& raw) {
    auto it = personas_.find(persona_id);
    if (it == personas_.end()) {
        State s{target_ns, raw, RttWindow(window_), RttStatus::NoData};
        personas_.emplace(persona_id, std::move(s));
        return std::nullopt;
    }
    State& s = it->second;
    // A histogram that went down was made anew since the last read: all of it is new.
    const bool recreated = raw.samples < s.last.samples;
    s.window.push(rtt_delta(recreated ? RttRaw{} : s.last, raw));
    s.last = raw;
    s.target_ns = target_ns;
    const RttView v = view_of(persona_id, s);
    if (v.status == s.status) return std::nullopt;
    RttStatusChange c;
    c.persona_id = persona_id;
    c.previous = s.status;
    c.status = v.status;
    c.target_ns = target_ns;
    c.samples = v.window_samples;
    c.p50_us = v.p50_us;
    c.p99_us = v.p99_us;
    s.status = v.status;
    return c;
}

void RttTracker::retain(const std::vector<uint32_t>& keep) {
    const std::set<uint32_t> k(keep.begin(), keep.end());
    std::erase_if(personas_, [&](const auto& e) { return !k.count(e.first); });
}

RttView RttTracker::view_of(uint32_t id, const State& s) const {
    RttView v;
    v.persona_id = id;
    v.target_ns = s.target_ns;
    uint64_t n = 0;
    for (uint64_t c : s.window.total().buckets) n += c;
    v.window_samples = n;
    v.p50_us = rtt_quantile_us(s.window.total(), 0.5);
    v.p99_us = rtt_quantile_us(s.window.total(), 0.99);
    v.status = rtt_status(n, v.p99_us, s.target_ns);
    v.total_samples = s.last.samples;
    v.total_sum_us = s.last.sum_us;
    return v;
}

std::optional<RttView> RttTracker::view(uint32_t persona_id) const {
    auto it = personas_.find(persona_id);
    if (it == personas_.end()) return std::nullopt;
    RttView v = view_of(it->first, it->second);
    v.status = it->second.status;
    return v;
}

std::vector<RttView> RttTracker::views() const {
    std::vector<RttView> out;
    for (const auto& [id, s] : personas_) {
        out.push_back(view_of(id, s));
        out.back().status = s.status;
    }
    return out;
}

namespace {

json micros(const std::optional<double>& us) {
    if (!us) return nullptr;
    return std::round(*us * 1000.0) / 1000.0;  // ns resolution
}

}  // namespace

json rtt_json(const RttView& v) {
    return {{"p50_us", micros(v.p50_us)},
            {"p99_us", micros(v.p99_us)},
            {"samples", v.window_samples},
            {"window_seconds", kRttWindowSeconds},
            {"target_us", static_cast<double>(v.target_ns) / 1000.0},
            {"status", rtt_status_name(v.status)}};
}

RttMonitor::RttMonitor(int rtt_fd, int qos_fd, ChangeHook on_change, size_t window_seconds)
    : rtt_fd_(rtt_fd),
      qos_fd_(qos_fd),
      on_change_(std::move(on_change)),
      tracker_(window_seconds) {}

Result<std::map<uint32_t, uint64_t>> RttMonitor::targets() const {
    std::map<uint32_t, uint64_t> out;
    __u32 key = 0, next = 0;
    bool first = true;
    while (bpf_map_get_next_key(qos_fd_, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        pbpf_qos q{};
        if (bpf_map_lookup_elem(qos_fd_, &next, &q) != 0) continue;  // removed meanwhile
        if ((q.flags & PBPF_QOS_F_RTT) && q.latency_target_ns != 0) out[next] = q.latency_target_ns;
    }
    if (errno != ENOENT) return sys_error("iterate pbpf_qos");
    return out;
}

Result<void> RttMonitor::reconcile() {
    auto r = reconcile_targets();
    if (!r) return r.error();
    return {};
}

Result<std::map<uint32_t, uint64_t>> RttMonitor::reconcile_targets() {
    std::lock_guard<std::mutex> serial(reconcile_mu_);
    auto want = targets();
    if (!want) return want.error();
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return Error{-ncpu, "number of possible CPUs"};
    const std::vector<pbpf_rtt_hist> zero(static_cast<size_t>(ncpu));
    for (const auto& [id, target] : *want) {
        __u32 key = id;
        // NOEXIST: an existing histogram keeps counting.
        if (bpf_map_update_elem(rtt_fd_, &key, zero.data(), BPF_NOEXIST) != 0 && errno != EEXIST)
            return sys_error("create pbpf_rtt[" + std::to_string(id) + "]");
    }
    std::vector<__u32> gone;
    __u32 key = 0, next = 0;
    bool first = true;
    while (bpf_map_get_next_key(rtt_fd_, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        if (!want->count(next)) gone.push_back(next);
    }
    for (__u32 id : gone)
        if (bpf_map_delete_elem(rtt_fd_, &id) != 0 && errno != ENOENT)
            return sys_error("delete pbpf_rtt[" + std::to_string(id) + "]");
    // New targets show (no-data) at once, gone ones vanish, without waiting for a tick. A
    // persona seen for the first time only takes its baseline here, so no interval and no
    // change comes of it; known ones are left for the tick.
    std::vector<pbpf_rtt_hist> per(static_cast<size_t>(ncpu));
    std::vector<uint32_t> keep;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, target] : *want) {
        __u32 key = id;
        if (tracker_.tracks(id)) {
            keep.push_back(id);
            continue;
        }
        if (bpf_map_lookup_elem(rtt_fd_, &key, per.data()) != 0) continue;
        tracker_.observe(id, target, rtt_sum_cpus(per));
        keep.push_back(id);
    }
    tracker_.retain(keep);
    return want;
}

void RttMonitor::tick() {
    auto want = reconcile_targets();
    if (!want) {
        spdlog::warn("rtt: {}", want.error().what());
        return;
    }
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return;
    std::vector<pbpf_rtt_hist> per(static_cast<size_t>(ncpu));
    std::vector<RttStatusChange> changes;
    std::vector<uint32_t> keep;
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [id, target] : *want) {
            __u32 key = id;
            if (bpf_map_lookup_elem(rtt_fd_, &key, per.data()) != 0) continue;
            keep.push_back(id);
            if (auto c = tracker_.observe(id, target, rtt_sum_cpus(per))) changes.push_back(*c);
        }
        tracker_.retain(keep);
    }
    for (const auto& c : changes) {
        spdlog::info("persona id {}: latency {} -> {} (p99 {} us, target {} us, {} samples)",
                     c.persona_id, rtt_status_name(c.previous), rtt_status_name(c.status),
                     c.p99_us ? std::to_string(static_cast<int64_t>(*c.p99_us)) : "-",
                     c.target_ns / 1000, c.samples);
        if (on_change_) on_change_(c);
    }
}

void RttMonitor::persona_fields(const PersonaStats& p, json& row) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto v = tracker_.view(p.id)) row["rtt"] = rtt_json(*v);
}

void RttMonitor::metrics(const MonitorSnapshot& s, MetricsWriter& w) const {
    using T = MetricsWriter::Type;
    w.family("personabpf_persona_rtt_seconds", T::Summary,
             "Smoothed TCP RTT of a persona's sockets: quantiles over the last " +
                 std::to_string(kRttWindowSeconds) + " s, count and sum since sampling began");
    w.family("personabpf_persona_latency_target_seconds", T::Gauge,
             "A persona's latency target (qos latency target)");
    w.family("personabpf_persona_latency_slo_met", T::Gauge,
             "1 while the persona's RTT p99 is within its latency target, 0 while it is not; "
             "absent while there are too few samples");
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& p : s.personas) {
        auto v = tracker_.view(p.id);
        if (!v) continue;
        const Labels l = {{"persona", p.name}};
        auto secs = [](const std::optional<double>& us) { return us ? *us / 1e6 : std::nan(""); };
        w.sample("personabpf_persona_rtt_seconds", {{"persona", p.name}, {"quantile", "0.5"}},
                 secs(v->p50_us));
        w.sample("personabpf_persona_rtt_seconds", {{"persona", p.name}, {"quantile", "0.99"}},
                 secs(v->p99_us));
        w.sample_suffixed("personabpf_persona_rtt_seconds", "_sum", l,
                          static_cast<double>(v->total_sum_us) / 1e6);
        w.sample_suffixed("personabpf_persona_rtt_seconds", "_count", l,
                          static_cast<double>(v->total_samples));
        w.sample("personabpf_persona_latency_target_seconds", l,
                 static_cast<double>(v->target_ns) / 1e9);
        if (v->status != RttStatus::NoData)
            w.sample("personabpf_persona_latency_slo_met", l, v->status == RttStatus::Met ? 1 : 0);
    }
}

}  // namespace pbpf::agent
