// RTT percentiles and latency status (agent/rtt.h): the bucket layout shared with
// bpf/rtt.h, the interpolated quantiles and their error bound, per-interval differences of
// wrapping counters, the sliding window, the no-data / met / violated transitions, and
// the per-binding histograms whose sum is the persona's. The kernel side is tested by
// tests/integration/latency_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "agent/rtt.h"

namespace pbpf::agent {
namespace {

TEST(RttBuckets, LayoutIsLogLinearAndContiguous) {
    // Every microsecond below 8 has its own bucket; then 8 per power of two.
    for (uint64_t us = 0; us < 8; ++us) EXPECT_EQ(rtt_bucket(us), us);
    EXPECT_EQ(rtt_bucket(8), 8u);
    EXPECT_EQ(rtt_bucket(15), 15u);
    EXPECT_EQ(rtt_bucket(16), 16u);
    EXPECT_EQ(rtt_bucket(17), 16u);  // [16, 18)
    EXPECT_EQ(rtt_bucket(18), 17u);
    EXPECT_EQ(rtt_bucket(1000), rtt_bucket(1023));
    EXPECT_EQ(rtt_bucket((1ull << 26) - 1), PBPF_RTT_BUCKETS - 1);
    EXPECT_EQ(rtt_bucket(1ull << 26), PBPF_RTT_BUCKETS - 1) << "overflow goes to the last";
    EXPECT_EQ(rtt_bucket(UINT64_MAX), PBPF_RTT_BUCKETS - 1);
    // Bounds are contiguous, and each value falls inside its bucket's bounds.
    for (uint32_t i = 0; i + 1 < PBPF_RTT_BUCKETS; ++i)
        EXPECT_EQ(rtt_bucket_bounds(i).second, rtt_bucket_bounds(i + 1).first) << i;
    for (uint64_t us : {0ull, 1ull, 7ull, 8ull, 9ull, 100ull, 999ull, 12345ull, 1000000ull,
                        30000000ull, (1ull << 26) - 1}) {
        auto [lo, hi] = rtt_bucket_bounds(rtt_bucket(us));
        EXPECT_LE(lo, static_cast<double>(us)) << us;
        EXPECT_LT(static_cast<double>(us), hi) << us;
        if (us >= 8) {
            EXPECT_LE((hi - lo) / lo, 0.125 + 1e-12) << us;
        }
    }
}

RttHistogram of(const std::vector<uint64_t>& values) {
    RttHistogram h;
    for (uint64_t v : values) {
        ++h.buckets[rtt_bucket(v)];
        ++h.samples;
        h.sum_us += v;
    }
    return h;
}

TEST(RttQuantile, EmptyIsNone) {
    EXPECT_FALSE(rtt_quantile_us(RttHistogram{}, 0.5));
    EXPECT_FALSE(rtt_quantile_us(of({100}), 0));
}

TEST(RttQuantile, InterpolatesInsideTheBucket) {
    // 4 samples in [64, 72): spread evenly, the k-th sits at 64 + 8 * (k - 0.5) / 4.
    auto h = of({64, 65, 66, 67});
    EXPECT_DOUBLE_EQ(*rtt_quantile_us(h, 0.25), 65.0);  // rank 1
    EXPECT_DOUBLE_EQ(*rtt_quantile_us(h, 0.5), 67.0);   // rank 2
    EXPECT_DOUBLE_EQ(*rtt_quantile_us(h, 1.0), 71.0);   // rank 4
    // One sample: the middle of its bucket.
    EXPECT_DOUBLE_EQ(*rtt_quantile_us(of({3}), 0.99), 3.5);
}

TEST(RttQuantile, PicksTheRankAcrossBuckets) {
    // 98 samples at 100 us and 2 at 10 ms: p50 near 100 us, p99 (rank 99) among the slow.
    std::vector<uint64_t> v(98, 100);
    v.push_back(10000);
    v.push_back(10000);
    auto h = of(v);
    auto p50 = *rtt_quantile_us(h, 0.5), p99 = *rtt_quantile_us(h, 0.99);
    EXPECT_GE(p50, 96.0);
    EXPECT_LT(p50, 104.0);
    EXPECT_GE(p99, 9216.0);  // [9216, 10240) holds 10000
    EXPECT_LT(p99, 10240.0);
    // 99 fast and 1 slow: rank 99 is still fast.
    std::vector<uint64_t> w(99, 100);
    w.push_back(10000);
    EXPECT_LT(*rtt_quantile_us(of(w), 0.99), 104.0);
}

TEST(RttQuantile, ErrorStaysWithinTheBucketWidth) {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> dist(std::log(800.0), 1.0);  // around 800 us
    std::vector<uint64_t> v;
    for (int i = 0; i < 5000; ++i) v.push_back(static_cast<uint64_t>(dist(rng)));
    auto h = of(v);
    std::sort(v.begin(), v.end());
    for (double q : {0.5, 0.9, 0.99}) {
        const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
        const double exact = static_cast<double>(v[rank - 1]);
        const double est = *rtt_quantile_us(h, q);
        auto [lo, hi] = rtt_bucket_bounds(rtt_bucket(v[rank - 1]));
        EXPECT_LT(std::fabs(est - exact), hi - lo) << "q=" << q;
        EXPECT_LE(std::fabs(est - exact) / exact, 0.125) << "q=" << q;
    }
}

TEST(RttRaw, SumsCpusAndDiffersModulo2To32) {
    std::vector<pbpf_rtt_hist> cpus(2);
    cpus[0].samples = 5;
    cpus[0].sum_us = 50;
    cpus[0].buckets[10] = 0xfffffffe;
    cpus[1].samples = 1;
    cpus[1].sum_us = 7;
    cpus[1].buckets[10] = 1;
    RttRaw a = rtt_sum_cpus(cpus);
    EXPECT_EQ(a.samples, 6u);
    EXPECT_EQ(a.sum_us, 57u);
    EXPECT_EQ(a.buckets[10], 0xffffffffu);
    // Both CPUs count 3 more; CPU 0's bucket wraps.
    cpus[0].buckets[10] += 3;
    cpus[1].buckets[10] += 3;
    cpus[0].samples += 3;
    cpus[1].samples += 3;
    cpus[0].sum_us += 30;
    RttHistogram d = rtt_delta(a, rtt_sum_cpus(cpus));
    EXPECT_EQ(d.buckets[10], 6u);
    EXPECT_EQ(d.samples, 6u);
    EXPECT_EQ(d.sum_us, 30u);
    EXPECT_EQ(d.buckets[11], 0u);
}

TEST(RttWindow, KeepsTheLastIntervalsOnly) {
    RttWindow w(3);
    for (int i = 0; i < 5; ++i) w.push(of({100}));
    EXPECT_EQ(w.intervals(), 3u);
    EXPECT_EQ(w.total().samples, 3u);
    EXPECT_EQ(w.total().buckets[rtt_bucket(100)], 3u);
    w.push(of({5000, 5000}));
    EXPECT_EQ(w.total().samples, 4u);
    EXPECT_EQ(w.total().buckets[rtt_bucket(100)], 2u);
    EXPECT_EQ(w.total().sum_us, 10200u);
}

TEST(RttStatusRule, MetViolatedNoData) {
    EXPECT_EQ(rtt_status(kRttMinSamples - 1, 10.0, 1'000'000), RttStatus::NoData);
    EXPECT_EQ(rtt_status(kRttMinSamples, std::nullopt, 1'000'000), RttStatus::NoData);
    EXPECT_EQ(rtt_status(kRttMinSamples, 1000.0, 1'000'000), RttStatus::Met) << "p99 == target";
    EXPECT_EQ(rtt_status(kRttMinSamples, 1000.001, 1'000'000), RttStatus::Violated);
    EXPECT_STREQ(rtt_status_name(RttStatus::NoData), "no-data");
    EXPECT_STREQ(rtt_status_name(RttStatus::Met), "met");
    EXPECT_STREQ(rtt_status_name(RttStatus::Violated), "violated");
    EXPECT_STREQ(rtt_status_name(static_cast<RttStatus>(77)), "no-data");
}

// Raw counters after adding `n` samples of `us` to `r`.
RttRaw add(RttRaw r, uint64_t us, uint64_t n) {
    r.buckets[rtt_bucket(us)] += static_cast<uint32_t>(n);
    r.samples += n;
    r.sum_us += us * n;
    return r;
}

// One interval of a persona with one binding (slot 1, cgroup 77) holding all its samples.
std::vector<RttStatusChange> one(RttTracker& t, uint32_t id, uint64_t target, const RttRaw& raw) {
    return t.observe({{id, target}}, {{{id, 1}, 77, raw}});
}
// The change of the persona (no slot) among `cs`, if any.
std::optional<RttStatusChange> of_persona(const std::vector<RttStatusChange>& cs) {
    for (const auto& c : cs)
        if (!c.slot) return c;
    return std::nullopt;
}
std::optional<RttStatusChange> of_slot(const std::vector<RttStatusChange>& cs, uint32_t slot) {
    for (const auto& c : cs)
        if (c.slot == slot) return c;
    return std::nullopt;
}

TEST(RttTracker, TransitionsAndOneChangePerTransition) {
    RttTracker t(3);
    const uint32_t id = 5;
    const uint64_t target = 2'000'000;  // 2 ms
    RttRaw raw;
    // First read: a baseline, no interval, no change (it starts in no-data).
    EXPECT_TRUE(one(t, id, target, add(raw, 100, 1000)).empty());
    raw = add(raw, 100, 1000);
    ASSERT_TRUE(t.persona_view(id));
    EXPECT_EQ(t.persona_view(id)->status, RttStatus::NoData);
    EXPECT_EQ(t.persona_view(id)->window_samples, 0u)
        << "the baseline's samples are not in the window";
    ASSERT_TRUE(t.binding_view({id, 1}));
    EXPECT_EQ(t.binding_view({id, 1})->status, RttStatus::NoData);

    // Too few samples: still no-data, no change.
    raw = add(raw, 100, kRttMinSamples - 1);
    EXPECT_TRUE(one(t, id, target, raw).empty());
    // Enough, all fast: met, once for the binding and once for the persona.
    raw = add(raw, 100, 50);
    auto cs = one(t, id, target, raw);
    ASSERT_EQ(cs.size(), 2u);
    auto c = of_persona(cs);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->previous, RttStatus::NoData);
    EXPECT_EQ(c->status, RttStatus::Met);
    EXPECT_EQ(c->persona_id, id);
    EXPECT_EQ(c->workload, 0u);
    EXPECT_EQ(c->target_ns, target);
    EXPECT_EQ(c->samples, kRttMinSamples - 1 + 50);
    ASSERT_TRUE(c->p99_us);
    EXPECT_LT(*c->p99_us, 104.0);
    auto b = of_slot(cs, 1);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->persona_id, id);
    EXPECT_EQ(b->workload, 77u);
    EXPECT_EQ(b->status, RttStatus::Met);
    EXPECT_EQ(b->samples, c->samples);
    raw = add(raw, 100, 50);
    EXPECT_TRUE(one(t, id, target, raw).empty()) << "met again is no change";

    // A slow second: p99 above the target -> violated.
    raw = add(raw, 10'000, 100);
    cs = one(t, id, target, raw);
    ASSERT_EQ(cs.size(), 2u);
    c = of_persona(cs);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->previous, RttStatus::Met);
    EXPECT_EQ(c->status, RttStatus::Violated);
    EXPECT_GT(*c->p99_us, 2000.0);

    // Silence until the window has forgotten everything: no-data.
    EXPECT_TRUE(one(t, id, target, raw).empty());
    EXPECT_TRUE(one(t, id, target, raw).empty());
    cs = one(t, id, target, raw);
    c = of_persona(cs);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->previous, RttStatus::Violated);
    EXPECT_EQ(c->status, RttStatus::NoData);
    EXPECT_FALSE(c->p99_us);
    EXPECT_TRUE(of_slot(cs, 1));
    EXPECT_EQ(t.persona_view(id)->window_samples, 0u);
    EXPECT_EQ(t.persona_view(id)->total_samples, raw.samples) << "totals stay cumulative";
    EXPECT_EQ(t.binding_view({id, 1})->total_samples, raw.samples);
}

TEST(RttTracker, RaisedTargetTurnsViolatedIntoMet) {
    RttTracker t(30);
    RttRaw raw;
    one(t, 1, 1'000, raw);  // 1 us
    raw = add(raw, 500, 100);
    auto c = of_persona(one(t, 1, 1'000, raw));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, RttStatus::Violated);
    auto cs = one(t, 1, 1'000'000'000, raw);  // the persona now says 1 s
    ASSERT_TRUE(of_persona(cs));
    EXPECT_EQ(of_persona(cs)->status, RttStatus::Met);
    ASSERT_TRUE(of_slot(cs, 1));
    EXPECT_EQ(of_slot(cs, 1)->status, RttStatus::Met);
    EXPECT_EQ(of_slot(cs, 1)->target_ns, 1'000'000'000u) << "a binding has its persona's target";
}

TEST(RttTracker, RecreatedHistogramCountsFromZeroAndRetainForgets) {
    RttTracker t(30);
    RttRaw raw = add(RttRaw{}, 100, 1000);
    one(t, 2, 1'000'000, raw);
    // The histogram was deleted and made anew: the counters went down.
    RttRaw fresh = add(RttRaw{}, 100, 30);
    auto c = of_persona(one(t, 2, 1'000'000, fresh));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->samples, 30u) << "not 2^32 - 970";
    EXPECT_EQ(c->status, RttStatus::Met);
    EXPECT_EQ(t.persona_view(2)->total_samples, 1030u) << "the persona's total only grows";
    EXPECT_EQ(t.binding_view({2, 1})->total_samples, 30u) << "the histogram's own restarts";
    EXPECT_TRUE(t.tracks({2, 1}));
    EXPECT_TRUE(t.tracks_persona(2));
    t.retain({{2, 1'000'000}}, {{2, 0}});
    EXPECT_FALSE(t.tracks({2, 1})) << "its binding is gone";
    EXPECT_TRUE(t.persona_view(2));
    t.retain({{3, 1'000'000}}, {{2, 1}, {3, 0}});
    EXPECT_FALSE(t.tracks_persona(2)) << "its target is gone";
    EXPECT_FALSE(t.persona_view(2));
    EXPECT_FALSE(t.binding_view({2, 1}));
}

// Two bindings of one persona, one fast and one slow, and slot 0 (bindings without a slot
// of their own): each binding has its own status; the persona's figures are the sum of all
// three histograms.
TEST(RttTracker, PersonaIsTheMergeOfItsBindings) {
    RttTracker t(30);
    const uint32_t id = 9;
    const uint64_t target = 1'000'000;  // 1 ms
    RttRaw fast, slow, none;
    auto tick = [&] {
        return t.observe({{id, target}},
                         {{{id, 0}, 0, none}, {{id, 3}, 300, fast}, {{id, 4}, 400, slow}});
    };
    EXPECT_TRUE(tick().empty());
    fast = add(fast, 80, 500);
    slow = add(slow, 20'000, 100);
    none = add(none, 80, 10);
    auto cs = tick();
    ASSERT_EQ(cs.size(), 3u) << "two bindings and the persona; slot 0 has no status";
    ASSERT_TRUE(of_slot(cs, 3));
    EXPECT_EQ(of_slot(cs, 3)->status, RttStatus::Met);
    EXPECT_EQ(of_slot(cs, 3)->workload, 300u);
    ASSERT_TRUE(of_slot(cs, 4));
    EXPECT_EQ(of_slot(cs, 4)->status, RttStatus::Violated);
    EXPECT_EQ(of_slot(cs, 4)->workload, 400u);
    EXPECT_FALSE(of_slot(cs, 0));
    auto p = of_persona(cs);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->status, RttStatus::Violated) << "1 in 6 samples is slow: p99 among them";
    EXPECT_EQ(p->samples, 610u);

    auto pv = t.persona_view(id), fv = t.binding_view({id, 3}), sv = t.binding_view({id, 4});
    ASSERT_TRUE(pv && fv && sv);
    EXPECT_EQ(pv->window_samples, fv->window_samples + sv->window_samples + 10);
    EXPECT_LT(*fv->p99_us, 90.0);
    EXPECT_GT(*sv->p50_us, 17'000.0);
    EXPECT_LT(*pv->p50_us, 90.0) << "most samples are fast";
    EXPECT_GT(*pv->p99_us, 17'000.0);
    EXPECT_EQ(pv->total_sum_us, fast.sum_us + slow.sum_us + none.sum_us);
    EXPECT_FALSE(fv->slot == std::nullopt);
    EXPECT_EQ(*fv->slot, 3u);
    EXPECT_FALSE(pv->slot);
    EXPECT_EQ(sv->target_ns, target);
    // No binding view for slot 0's row is ever asked for, but it is followed.
    EXPECT_TRUE(t.tracks({id, 0}));
}

// A binding that goes (its histogram deleted) leaves its samples in the persona's window
// and totals; only its own view goes.
TEST(RttTracker, PersonaKeepsWhatAGoneBindingContributed) {
    RttTracker t(30);
    const uint32_t id = 4;
    RttRaw a, b;
    t.observe({{id, 1'000'000}}, {{{id, 1}, 10, a}, {{id, 2}, 20, b}});
    a = add(a, 100, 40);
    b = add(b, 200, 40);
    t.observe({{id, 1'000'000}}, {{{id, 1}, 10, a}, {{id, 2}, 20, b}});
    EXPECT_EQ(t.persona_view(id)->window_samples, 80u);
    a = add(a, 100, 5);
    auto cs = t.observe({{id, 1'000'000}}, {{{id, 1}, 10, a}});  // binding 2 gone
    EXPECT_TRUE(cs.empty());
    EXPECT_FALSE(t.binding_view({id, 2}));
    EXPECT_EQ(t.persona_view(id)->window_samples, 85u);
    EXPECT_EQ(t.persona_view(id)->total_samples, 85u);
    EXPECT_EQ(t.persona_view(id)->status, RttStatus::Met);
}

// A slot handed to another binding (another cgroup) of the same persona: the new owner's
// figures start from that read, none of the previous owner's count as its own.
TEST(RttTracker, SlotOfAnotherBindingStartsAnew) {
    RttTracker t(30);
    RttRaw raw = add(RttRaw{}, 100, 50);
    t.observe({{1, 1'000'000}}, {{{1, 6}, 111, RttRaw{}}});
    auto cs = t.observe({{1, 1'000'000}}, {{{1, 6}, 111, raw}});
    ASSERT_TRUE(of_slot(cs, 6));
    EXPECT_EQ(t.binding_view({1, 6})->workload, 111u);
    raw = add(raw, 100, 5);
    cs = t.observe({{1, 1'000'000}}, {{{1, 6}, 222, raw}});
    EXPECT_FALSE(of_slot(cs, 6)) << "a new binding starts in no-data, without a change";
    auto v = t.binding_view({1, 6});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->workload, 222u);
    EXPECT_EQ(v->window_samples, 0u);
    EXPECT_EQ(v->status, RttStatus::NoData);
    EXPECT_EQ(t.persona_view(1)->window_samples, 50u) << "the persona keeps what it had";
}

// begin(): a histogram made zeroed by the agent starts from zero, so the samples it takes
// before the next interval land in that interval; a known one is left alone.
TEST(RttTracker, BeginFromZeroCountsTheFirstSamples) {
    RttTracker t(30);
    t.begin({{8, 2}, 55, RttRaw{}}, 5'000'000);
    EXPECT_TRUE(t.tracks({8, 2}));
    ASSERT_TRUE(t.persona_view(8));
    EXPECT_EQ(t.persona_view(8)->target_ns, 5'000'000u);
    t.begin({{8, 2}, 55, add(RttRaw{}, 100, 7)}, 5'000'000);  // known: no new baseline
    const RttRaw raw = add(RttRaw{}, 100, 30);
    auto cs = t.observe({{8, 5'000'000}}, {{{8, 2}, 55, raw}});
    ASSERT_TRUE(of_slot(cs, 2));
    EXPECT_EQ(of_slot(cs, 2)->samples, 30u);
    EXPECT_EQ(t.binding_view({8, 2})->window_samples, 30u);
    EXPECT_EQ(t.persona_view(8)->window_samples, 30u);
}

TEST(RttJson, Fields) {
    RttView v;
    v.target_ns = 5'000'000;
    v.window_samples = 42;
    v.p50_us = 120.12345;
    v.status = RttStatus::Violated;
    auto j = rtt_json(v);
    EXPECT_EQ(j["target_us"], 5000.0);
    EXPECT_EQ(j["samples"], 42);
    EXPECT_DOUBLE_EQ(j["p50_us"].get<double>(), 120.123);
    EXPECT_TRUE(j["p99_us"].is_null());
    EXPECT_EQ(j["status"], "violated");
    EXPECT_EQ(j["window_seconds"], kRttWindowSeconds);
}

}  // namespace
}  // namespace pbpf::agent
