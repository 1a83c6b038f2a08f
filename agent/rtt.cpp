// RTT percentiles and latency SLO status per persona (see rtt.h).
#include "agent/rtt.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
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

namespace {

void add(RttHistogram& to, const RttHistogram& h) {
    for (size_t i = 0; i < PBPF_RTT_BUCKETS; ++i) to.buckets[i] += h.buckets[i];
    to.samples += h.samples;
    to.sum_us += h.sum_us;
}

}  // namespace

RttView RttTracker::view_of(const Series& s, uint64_t target_ns) const {
    RttView v;
    v.target_ns = target_ns;
    uint64_t n = 0;
    for (uint64_t c : s.window.total().buckets) n += c;
    v.window_samples = n;
    v.p50_us = rtt_quantile_us(s.window.total(), 0.5);
    v.p99_us = rtt_quantile_us(s.window.total(), 0.99);
    v.status = s.status;  // the one announced (a new target moves it at the next observe)
    v.total_samples = s.total_samples;
    v.total_sum_us = s.total_sum_us;
    return v;
}

// The series' status now; a change (figures filled, no persona or binding yet) if it moved.
std::optional<RttStatusChange> RttTracker::settle(Series& s, uint64_t target_ns) const {
    const RttView v = view_of(s, target_ns);
    const RttStatus now = rtt_status(v.window_samples, v.p99_us, target_ns);
    if (now == s.status) return std::nullopt;
    RttStatusChange c;
    c.previous = s.status;
    c.status = now;
    c.target_ns = target_ns;
    c.samples = v.window_samples;
    c.p50_us = v.p50_us;
    c.p99_us = v.p99_us;
    s.status = now;
    return c;
}

void RttTracker::begin(const RttRead& read, uint64_t target_ns) {
    auto p = personas_.find(read.key.persona_id);
    if (p == personas_.end())
        p = personas_
                .emplace(read.key.persona_id, PersonaState{target_ns, Series{RttWindow(window_)}})
                .first;
    if (auto it = keys_.find(read.key); it != keys_.end()) {
        if (it->second.workload == read.workload) return;
        keys_.erase(it);  // the slot is another binding's now
    }
    KeyState k{read.workload, read.raw, Series{RttWindow(window_)}};
    k.s.total_samples = read.raw.samples;
    k.s.total_sum_us = read.raw.sum_us;
    keys_.emplace(read.key, std::move(k));
    // What the histogram counted before it was followed counts in the persona's totals (an
    // agent restart: the pinned histograms kept counting), not in its window.
    p->second.s.total_samples += read.raw.samples;
    p->second.s.total_sum_us += read.raw.sum_us;
}

std::vector<RttStatusChange> RttTracker::observe(const std::map<uint32_t, uint64_t>& targets,
                                                 const std::vector<RttRead>& reads) {
    std::set<RttKey> read_keys;
    std::map<uint32_t, RttHistogram> sums;  // the personas' intervals
    std::set<uint32_t> known;               // personas followed before this interval
    for (const auto& [id, st] : personas_)
        if (targets.count(id)) known.insert(id);
    std::vector<RttStatusChange> changes;
    for (const RttRead& r : reads) {
        auto t = targets.find(r.key.persona_id);
        if (t == targets.end()) continue;
        read_keys.insert(r.key);
        auto it = keys_.find(r.key);
        if (it == keys_.end() || it->second.workload != r.workload) {
            begin(r, t->second);
            continue;
        }
        KeyState& k = it->second;
        // A histogram that went down was made anew since the last read: all of it is new.
        const bool recreated = r.raw.samples < k.last.samples;
        const RttHistogram d = rtt_delta(recreated ? RttRaw{} : k.last, r.raw);
        k.last = r.raw;
        k.s.window.push(d);
        k.s.total_samples = recreated ? r.raw.samples : k.s.total_samples + d.samples;
        k.s.total_sum_us = recreated ? r.raw.sum_us : k.s.total_sum_us + d.sum_us;
        add(sums[r.key.persona_id], d);
        if (r.key.slot == 0) continue;  // no binding: no status of its own
        if (auto c = settle(k.s, t->second)) {
            c->persona_id = r.key.persona_id;
            c->slot = r.key.slot;
            c->workload = k.workload;
            changes.push_back(*c);
        }
    }
    for (const auto& [id, target] : targets) {
        auto it = personas_.find(id);
        if (it == personas_.end()) {
            personas_.emplace(id, PersonaState{target, Series{RttWindow(window_)}});
            continue;
        }
        PersonaState& p = it->second;
        p.target_ns = target;
        if (!known.count(id)) continue;
        const RttHistogram& d = sums[id];  // zero when none of its histograms moved
        p.s.window.push(d);
        p.s.total_samples += d.samples;
        p.s.total_sum_us += d.sum_us;
        if (auto c = settle(p.s, target)) {
            c->persona_id = id;
            changes.push_back(*c);
        }
    }
    std::erase_if(keys_, [&](const auto& e) { return !read_keys.count(e.first); });
    std::erase_if(personas_, [&](const auto& e) { return !targets.count(e.first); });
    return changes;
}

void RttTracker::retain(const std::map<uint32_t, uint64_t>& targets, const std::set<RttKey>& keys) {
    std::erase_if(keys_, [&](const auto& e) {
        return !keys.count(e.first) || !targets.count(e.first.persona_id);
    });
    std::erase_if(personas_, [&](const auto& e) { return !targets.count(e.first); });
    for (auto& [id, p] : personas_) p.target_ns = targets.at(id);
}

std::optional<RttView> RttTracker::persona_view(uint32_t persona_id) const {
    auto it = personas_.find(persona_id);
    if (it == personas_.end()) return std::nullopt;
    RttView v = view_of(it->second.s, it->second.target_ns);
    v.persona_id = persona_id;
    return v;
}

std::optional<RttView> RttTracker::binding_view(const RttKey& key) const {
    auto it = keys_.find(key);
    auto p = personas_.find(key.persona_id);
    if (it == keys_.end() || p == personas_.end()) return std::nullopt;
    RttView v = view_of(it->second.s, p->second.target_ns);
    v.persona_id = key.persona_id;
    v.slot = key.slot;
    v.workload = it->second.workload;
    return v;
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

RttMonitor::RttMonitor(const RttMaps& maps, ChangeHook on_change, size_t window_seconds)
    : maps_(maps), on_change_(std::move(on_change)), tracker_(window_seconds) {}

Result<std::map<uint32_t, uint64_t>> RttMonitor::targets() const {
    std::map<uint32_t, uint64_t> out;
    __u32 key = 0, next = 0;
    bool first = true;
    while (bpf_map_get_next_key(maps_.qos_fd, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        pbpf_qos q{};
        if (bpf_map_lookup_elem(maps_.qos_fd, &next, &q) != 0) continue;  // removed meanwhile
        if ((q.flags & PBPF_QOS_F_RTT) && q.latency_target_ns != 0) out[next] = q.latency_target_ns;
    }
    if (errno != ENOENT) return sys_error("iterate pbpf_qos");
    return out;
}

// Every binding write bumps the epoch after it, so a scan made after reading epoch E has
// seen every binding of E; a later one is read at the next reconcile.
Result<void> RttMonitor::scan_bindings() {
    std::optional<uint64_t> epoch;
    __u32 zero = 0;
    pbpf_globals g{};
    if (bpf_map_lookup_elem(maps_.globals_fd, &zero, &g) == 0) epoch = g.binding_epoch;
    if (epoch && scanned_epoch_ == epoch) return {};
    constexpr __u32 kBatch = 1024;
    std::vector<__u64> keys(kBatch);
    std::vector<pbpf_binding> values(kBatch);
    std::vector<std::pair<uint64_t, pbpf_binding>> bound;
    __u64 in = 0, out = 0;  // the kernel's cursor (a bucket index for hash maps)
    bool first = true;
    while (true) {
        __u32 n = kBatch;
        const int rc = bpf_map_lookup_batch(maps_.bindings_fd, first ? nullptr : &in, &out,
                                            keys.data(), values.data(), &n, nullptr);
        const int err = rc == 0 ? 0 : errno;
        if (rc != 0 && err != ENOENT) return Error{err, "read pbpf_bindings"};
        for (__u32 i = 0; i < n; ++i) bound.emplace_back(keys[i], values[i]);
        if (rc != 0) break;  // ENOENT: that was the last batch
        in = out;
        first = false;
    }
    bound_ = std::move(bound);
    scanned_epoch_ = epoch;
    return {};
}

Result<void> RttMonitor::reconcile() {
    auto r = reconcile_wanted();
    if (!r) return r.error();
    return {};
}

Result<RttMonitor::Wanted> RttMonitor::reconcile_wanted() {
    std::lock_guard<std::mutex> serial(reconcile_mu_);
    Wanted want;
    auto targets = this->targets();
    if (!targets) return targets.error();
    want.targets = std::move(*targets);
    if (auto r = scan_bindings(); !r) return r.error();
    for (const auto& [id, target] : want.targets) want.keys[{id, 0}] = 0;
    for (const auto& [cgroup, b] : bound_)
        if (b.counter_slot != 0 && want.targets.count(b.persona_id))
            want.keys.emplace(RttKey{b.persona_id, b.counter_slot}, cgroup);
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return Error{-ncpu, "number of possible CPUs"};
    const std::vector<pbpf_rtt_hist> zero(static_cast<size_t>(ncpu));
    auto key_text = [](const RttKey& k) {
        return "pbpf_rtt[" + std::to_string(k.persona_id) + "/" + std::to_string(k.slot) + "]";
    };
    // Deletions first: the map has room for every wanted key once the unwanted are gone.
    std::vector<pbpf_rtt_key> gone;
    pbpf_rtt_key key{}, next{};
    bool first = true;
    while (bpf_map_get_next_key(maps_.rtt_fd, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        if (!want.keys.count({next.persona_id, next.counter_slot})) gone.push_back(next);
    }
    for (auto& k : gone) {
        if (bpf_map_delete_elem(maps_.rtt_fd, &k) != 0 && errno != ENOENT)
            return sys_error("delete " + key_text({k.persona_id, k.counter_slot}));
    }
    std::set<RttKey> fresh;  // made zeroed now
    for (const auto& [k, workload] : want.keys) {
        const pbpf_rtt_key kk{k.persona_id, k.slot};
        // A slot that went to another binding of the same persona starts from zero.
        if (auto m = made_.find(k); m != made_.end() && m->second != workload)
            if (bpf_map_delete_elem(maps_.rtt_fd, &kk) != 0 && errno != ENOENT)
                return sys_error("delete " + key_text(k));
        // NOEXIST: an existing histogram keeps counting.
        if (bpf_map_update_elem(maps_.rtt_fd, &kk, zero.data(), BPF_NOEXIST) == 0)
            fresh.insert(k);
        else if (errno != EEXIST)
            return sys_error("create " + key_text(k));
        made_[k] = workload;
    }
    std::erase_if(made_, [&](const auto& e) { return !want.keys.count(e.first); });
    // New histograms show (no-data) at once, gone ones vanish, without waiting for a tick:
    // one seen for the first time only takes its baseline here (zero for one made now, so
    // that its first samples are in its first interval), so no interval and no change
    // comes of it; known ones are left for the tick.
    std::vector<pbpf_rtt_hist> per(static_cast<size_t>(ncpu));
    std::set<RttKey> keep;
    for (const auto& [k, w] : want.keys) keep.insert(k);
    std::lock_guard<std::mutex> lock(mu_);
    tracker_.retain(want.targets, keep);
    for (const auto& [k, workload] : want.keys) {
        const uint64_t target = want.targets.at(k.persona_id);
        if (fresh.count(k)) {
            tracker_.begin({k, workload, RttRaw{}}, target);
            continue;
        }
        if (tracker_.tracks(k)) continue;
        pbpf_rtt_key kk{k.persona_id, k.slot};
        if (bpf_map_lookup_elem(maps_.rtt_fd, &kk, per.data()) != 0) continue;
        tracker_.begin({k, workload, rtt_sum_cpus(per)}, target);
    }
    return want;
}

void RttMonitor::bound(uint64_t cgroup_id) {
    std::lock_guard<std::mutex> serial(reconcile_mu_);
    __u64 cg = cgroup_id;
    pbpf_binding b{};
    if (bpf_map_lookup_elem(maps_.bindings_fd, &cg, &b) != 0 || b.counter_slot == 0) return;
    __u32 id = b.persona_id;
    pbpf_qos q{};
    if (bpf_map_lookup_elem(maps_.qos_fd, &id, &q) != 0 || !(q.flags & PBPF_QOS_F_RTT) ||
        q.latency_target_ns == 0)
        return;
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return;
    const RttKey k{b.persona_id, b.counter_slot};
    pbpf_rtt_key key{k.persona_id, k.slot};
    if (auto m = made_.find(k); m != made_.end() && m->second != cgroup_id)
        (void)bpf_map_delete_elem(maps_.rtt_fd, &key);  // the slot's previous binding
    const std::vector<pbpf_rtt_hist> zero(static_cast<size_t>(ncpu));
    if (bpf_map_update_elem(maps_.rtt_fd, &key, zero.data(), BPF_NOEXIST) != 0) {
        if (errno != EEXIST)
            spdlog::warn("rtt: create pbpf_rtt[{}/{}]: {}", k.persona_id, k.slot,
                         std::strerror(errno));
        return;
    }
    made_[k] = cgroup_id;
    std::lock_guard<std::mutex> lock(mu_);
    tracker_.begin({k, cgroup_id, RttRaw{}}, q.latency_target_ns);
}

void RttMonitor::tick() {
    auto want = reconcile_wanted();
    if (!want) {
        spdlog::warn("rtt: {}", want.error().what());
        return;
    }
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return;
    std::vector<pbpf_rtt_hist> per(static_cast<size_t>(ncpu));
    std::vector<RttRead> reads;
    for (const auto& [k, workload] : want->keys) {
        pbpf_rtt_key key{k.persona_id, k.slot};
        if (bpf_map_lookup_elem(maps_.rtt_fd, &key, per.data()) != 0) continue;
        reads.push_back({k, workload, rtt_sum_cpus(per)});
    }
    std::vector<RttStatusChange> changes;
    {
        std::lock_guard<std::mutex> lock(mu_);
        changes = tracker_.observe(want->targets, reads);
    }
    for (const auto& c : changes) {
        const std::string who = c.slot ? "binding slot " + std::to_string(*c.slot) +
                                             " (cgroup id " + std::to_string(c.workload) +
                                             ") of persona id " + std::to_string(c.persona_id)
                                       : "persona id " + std::to_string(c.persona_id);
        spdlog::info("{}: latency {} -> {} (p99 {} us, target {} us, {} samples)", who,
                     rtt_status_name(c.previous), rtt_status_name(c.status),
                     c.p99_us ? std::to_string(static_cast<int64_t>(*c.p99_us)) : "-",
                     c.target_ns / 1000, c.samples);
        if (on_change_) on_change_(c);
    }
}

void RttMonitor::persona_fields(const PersonaStats& p, json& row) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto v = tracker_.persona_view(p.id)) row["rtt"] = rtt_json(*v);
}

namespace {

// Only cgroup bindings with a slot have figures of their own: sockets are sampled where
// they are created (an interface-bound workload's TCP stack is not the host's), and
// bindings without a slot share the persona's slot-0 histogram. The workload check keeps
// a slot just handed to another binding from showing its previous owner's figures.
std::optional<RttView> binding_view(const RttTracker& t, uint32_t persona_id,
                                    const BindingStats& b) {
    if (b.slot == 0 || b.key.ifindex != 0) return std::nullopt;
    auto v = t.binding_view({persona_id, b.slot});
    if (!v || v->workload != b.key.id) return std::nullopt;
    return v;
}

}  // namespace

void RttMonitor::binding_fields(const PersonaStats& p, const BindingStats& b, json& row) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto v = binding_view(tracker_, p.id, b)) row["rtt"] = rtt_json(*v);
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
    w.family("personabpf_binding_rtt_seconds", T::Summary,
             "Smoothed TCP RTT of the sockets of one binding's workloads: quantiles over the "
             "last " +
                 std::to_string(kRttWindowSeconds) +
                 " s, count and sum since the binding's sampling began");
    w.family("personabpf_binding_latency_slo_met", T::Gauge,
             "1 while the binding's RTT p99 is within its persona's latency target, 0 while it "
             "is not; absent while there are too few samples");
    auto secs = [](const std::optional<double>& us) { return us ? *us / 1e6 : std::nan(""); };
    // One summary: quantiles, _sum and _count, labelled `l` (+ quantile).
    auto summary = [&](const std::string& family, const Labels& l, const RttView& v) {
        for (auto [q, value] : {std::pair{"0.5", v.p50_us}, std::pair{"0.99", v.p99_us}}) {
            Labels lq = l;
            lq.emplace_back("quantile", q);
            w.sample(family, lq, secs(value));
        }
        w.sample_suffixed(family, "_sum", l, static_cast<double>(v.total_sum_us) / 1e6);
        w.sample_suffixed(family, "_count", l, static_cast<double>(v.total_samples));
    };
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, uint32_t> ids;
    for (const auto& p : s.personas) {
        auto v = tracker_.persona_view(p.id);
        if (!v) continue;
        ids[p.name] = p.id;
        const Labels l = {{"persona", p.name}};
        summary("personabpf_persona_rtt_seconds", l, *v);
        w.sample("personabpf_persona_latency_target_seconds", l,
                 static_cast<double>(v->target_ns) / 1e9);
        if (v->status != RttStatus::NoData)
            w.sample("personabpf_persona_latency_slo_met", l, v->status == RttStatus::Met ? 1 : 0);
    }
    for (const auto& b : s.bindings) {
        auto id = ids.find(b.persona);
        if (id == ids.end()) continue;
        auto v = binding_view(tracker_, id->second, b);
        if (!v) continue;
        const Labels l = {{"binding", b.target}, {"kind", b.kind}, {"persona", b.persona}};
        summary("personabpf_binding_rtt_seconds", l, *v);
        if (v->status != RttStatus::NoData)
            w.sample("personabpf_binding_latency_slo_met", l, v->status == RttStatus::Met ? 1 : 0);
    }
}

}  // namespace pbpf::agent
