// RTT percentiles and latency status (agent/rtt.h): the bucket layout shared with
// bpf/rtt.h, the interpolated quantiles and their error bound, per-interval differences of
// wrapping counters, the sliding window and the no-data / met / violated transitions. The
// kernel side is tested by tests/integration/latency_test.
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

TEST(RttTracker, TransitionsAndOneChangePerTransition) {
    RttTracker t(3);
    const uint32_t id = 5;
    const uint64_t target = 2'000'000;  // 2 ms
    RttRaw raw;
    // First read: a baseline, no interval, no change (it starts in no-data).
    EXPECT_FALSE(t.observe(id, target, add(raw, 100, 1000)));
    raw = add(raw, 100, 1000);
    ASSERT_TRUE(t.view(id));
    EXPECT_EQ(t.view(id)->status, RttStatus::NoData);
    EXPECT_EQ(t.view(id)->window_samples, 0u) << "the baseline's samples are not in the window";

    // Too few samples: still no-data, no change.
    raw = add(raw, 100, kRttMinSamples - 1);
    EXPECT_FALSE(t.observe(id, target, raw));
    // Enough, all fast: met, once.
    raw = add(raw, 100, 50);
    auto c = t.observe(id, target, raw);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->previous, RttStatus::NoData);
    EXPECT_EQ(c->status, RttStatus::Met);
    EXPECT_EQ(c->persona_id, id);
    EXPECT_EQ(c->target_ns, target);
    EXPECT_EQ(c->samples, kRttMinSamples - 1 + 50);
    ASSERT_TRUE(c->p99_us);
    EXPECT_LT(*c->p99_us, 104.0);
    raw = add(raw, 100, 50);
    EXPECT_FALSE(t.observe(id, target, raw)) << "met again is no change";

    // A slow second: p99 above the target -> violated.
    raw = add(raw, 10'000, 100);
    c = t.observe(id, target, raw);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->previous, RttStatus::Met);
    EXPECT_EQ(c->status, RttStatus::Violated);
    EXPECT_GT(*c->p99_us, 2000.0);

    // Silence until the window has forgotten everything: no-data.
    EXPECT_FALSE(t.observe(id, target, raw));
    EXPECT_FALSE(t.observe(id, target, raw));
    c = t.observe(id, target, raw);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->previous, RttStatus::Violated);
    EXPECT_EQ(c->status, RttStatus::NoData);
    EXPECT_FALSE(c->p99_us);
    EXPECT_EQ(t.view(id)->window_samples, 0u);
    EXPECT_EQ(t.view(id)->total_samples, raw.samples) << "totals stay cumulative";
}

TEST(RttTracker, RaisedTargetTurnsViolatedIntoMet) {
    RttTracker t(30);
    RttRaw raw;
    t.observe(1, 1'000, raw);  // 1 us
    raw = add(raw, 500, 100);
    auto c = t.observe(1, 1'000, raw);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, RttStatus::Violated);
    c = t.observe(1, 1'000'000'000, raw);  // the persona now says 1 s
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, RttStatus::Met);
}

TEST(RttTracker, RecreatedHistogramCountsFromZeroAndRetainForgets) {
    RttTracker t(30);
    RttRaw raw = add(RttRaw{}, 100, 1000);
    t.observe(2, 1'000'000, raw);
    // The histogram was deleted and made anew: the counters went down.
    RttRaw fresh = add(RttRaw{}, 100, 30);
    auto c = t.observe(2, 1'000'000, fresh);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->samples, 30u) << "not 2^32 - 970";
    EXPECT_EQ(c->status, RttStatus::Met);
    EXPECT_TRUE(t.tracks(2));
    t.retain({3});
    EXPECT_FALSE(t.tracks(2));
    EXPECT_FALSE(t.view(2));
    EXPECT_TRUE(t.views().empty());
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
