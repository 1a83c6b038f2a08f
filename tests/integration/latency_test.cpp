// Latency targets with real TCP: workloads in managed cgroups keep opening echo
// connections to the fixture's netns over its veth. A persona whose target (1s) is far
// above the veth's RTT becomes `met`, one whose target (1us) is below it `violated`, and
// one without a target is not sampled at all (no histogram, no `rtt` field). Each change
// of status is exactly one `latency` event per persona and per binding; GET /v1/stats and
// /metrics carry the figures. Two bindings of one persona, one behind a slow link, get
// statuses of their own while the persona shows their sum.
#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

std::string latency_pdl(const std::string& name, const std::string& target) {
    return "persona " + name +
           " {\n  security {\n    mode enforce\n    default ingress allow\n"
           "    default egress allow\n  }\n" +
           (target.empty()
                ? ""
                : "  qos {\n    priority normal\n    latency target " + target + "\n  }\n") +
           "}\n";
}

class Latency : public IntegrationTest {
  protected:
    void SetUp() override {
        IntegrationTest::SetUp();
        if (HasFatalFailure()) return;
        metrics_sock_ = scratch_.path() + "/metrics.sock";
        std::string cfg =
            scratch_.write("agent.toml", "[metrics]\nlisten = \"unix:" + metrics_sock_ + "\"\n");
        agent_->stop();
        agent_->extra_args = {"--config", cfg};
        ASSERT_TRUE(agent_->start());
    }

    // The persona's GET /v1/stats row (`stats -j NAME`), null if unreadable.
    json row(const std::string& persona) {
        json j;
        if (!cli_json(*agent_, {"stats", persona}, &j)) return nullptr;
        if (j.is_array() && j.size() == 1) return j[0];
        if (j.is_object() && j.contains("personas") && j["personas"].size() == 1)
            return j["personas"][0];
        return nullptr;
    }
    std::string status_of(const json& r) {
        if (!r.is_object() || !r.contains("rtt")) return "";
        return r["rtt"].value("status", "");
    }
    // Latency events of a persona (`events -j` prints one JSON object per line): those of
    // the persona as a whole (scope "persona"), or those of its bindings ("binding").
    std::vector<json> latency_events(const std::string& persona,
                                     const std::string& scope = "persona") {
        std::vector<json> out;
        CommandResult r = agent_->cli_json({"events", "--persona", persona, "-n", "100000"});
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        std::istringstream lines(r.out);
        std::string line;
        while (std::getline(lines, line)) {
            json e = json::parse(line, nullptr, false);
            EXPECT_FALSE(e.is_discarded()) << line;
            if (e.is_object() && e.value("type", "") == "latency" && e.value("scope", "") == scope)
                out.push_back(e);
        }
        return out;
    }
    // The (persona id, counter slot) keys of the histograms in the pinned pbpf_rtt map.
    std::vector<std::pair<uint64_t, uint64_t>> histogram_keys() {
        CommandResult r = run_command(
            {"bpftool", "-j", "map", "dump", "pinned", agent_->paths().bpffs_root + "/pbpf_rtt"},
            10s);
        std::vector<std::pair<uint64_t, uint64_t>> keys;
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        try {
            for (const auto& e : json::parse(r.out)) {
                if (e.contains("formatted")) {  // with BTF: {"persona_id": 3, "counter_slot": 1}
                    const json& k = e["formatted"]["key"];
                    keys.emplace_back(k.at("persona_id").get<uint64_t>(),
                                      k.at("counter_slot").get<uint64_t>());
                    continue;
                }
                // Raw bytes, two little-endian __u32: ["0x03","0x00","0x00","0x00",...].
                const json& k = e["key"];
                auto u32 = [&](size_t at) {
                    uint64_t v = 0;
                    for (size_t i = at + 4; i-- > at;)
                        v = (v << 8) | std::stoul(k.at(i).get<std::string>(), nullptr, 16);
                    return v;
                };
                keys.emplace_back(u32(0), u32(4));
            }
        } catch (const std::exception& e) {
            ADD_FAILURE() << "bpftool output: " << e.what() << "\n" << r.out;
        }
        return keys;
    }
    // The persona ids among those keys.
    std::set<uint64_t> histogram_personas() {
        std::set<uint64_t> ids;
        for (const auto& [id, slot] : histogram_keys()) ids.insert(id);
        return ids;
    }
    // The row of one binding in a persona's row, null if absent.
    static json binding_row(const json& persona_row, const std::string& target) {
        if (!persona_row.is_object() || !persona_row.contains("bindings")) return nullptr;
        for (const auto& b : persona_row["bindings"])
            if (b.value("target", "") == target) return b;
        return nullptr;
    }
    // A few echo round trips from each workload: fresh TCP connections whose data and
    // FIN segments give the kernel RTT samples.
    void traffic(const std::vector<Where>& from) {
        for (int i = 0; i < 3; ++i)
            for (const auto& w : from) {
                Probe p = tcp_probe(w, veth_->peer4, kPortA);
                EXPECT_TRUE(p.ok()) << p;
            }
    }

    std::string metrics_sock_;
};

TEST_F(Latency, TargetsBecomeMetOrViolatedUnderRealTcpWithOneEventEach) {
    const std::string met = "it-rtt-met", vio = "it-rtt-vio", none = "it-rtt-none";
    std::string pdl = latency_pdl(met, "1s") + latency_pdl(vio, "1us") + latency_pdl(none, "");
    apply(*agent_, pdl, "latency.pdl");
    const std::vector<Where> from = {in("met"), in("vio"), in("none")};
    bind(met, "met");
    bind(vio, "vio");
    bind(none, "none");

    // Before any traffic: rows with a target carry rtt, starting in no-data.
    json r = row(met);
    ASSERT_TRUE(r.is_object());
    EXPECT_EQ(status_of(r), "no-data") << r.dump(2);
    EXPECT_EQ(r["rtt"]["target_us"], 1e6) << r.dump(2);
    EXPECT_EQ(row(vio)["rtt"]["target_us"], 1.0);
    EXPECT_FALSE(row(none).contains("rtt"));

    json met_row, vio_row;
    ASSERT_TRUE(wait_until(
        [&] {
            traffic(from);
            met_row = row(met);
            vio_row = row(vio);
            return status_of(met_row) == "met" && status_of(vio_row) == "violated";
        },
        30s, 200ms))
        << "met: " << met_row.dump(2) << "\nviolated: " << vio_row.dump(2)
        << "\nevents: " << agent_->cli({"events", "-n", "100000"}).out;

    for (const json* j : {&met_row, &vio_row}) {
        const json& rtt = (*j)["rtt"];
        EXPECT_GE(rtt["samples"].get<uint64_t>(), 20u) << rtt.dump();
        ASSERT_TRUE(rtt["p50_us"].is_number()) << rtt.dump();
        ASSERT_TRUE(rtt["p99_us"].is_number()) << rtt.dump();
        EXPECT_GT(rtt["p50_us"].get<double>(), 0) << rtt.dump();
        EXPECT_LE(rtt["p50_us"].get<double>(), rtt["p99_us"].get<double>()) << rtt.dump();
        // A veth's RTT: microseconds to a few milliseconds on a busy 2-CPU machine.
        EXPECT_LT(rtt["p99_us"].get<double>(), 1e6) << rtt.dump();
        EXPECT_EQ(rtt["window_seconds"], 30);
    }
    std::cout << "[latency] p50 " << met_row["rtt"]["p50_us"] << " us, p99 "
              << met_row["rtt"]["p99_us"] << " us over " << met_row["rtt"]["samples"]
              << " samples\n";

    // Keep the traffic going over a few more monitor ticks (the window's sample count
    // moves on): the statuses hold, and each persona has had exactly one change.
    const uint64_t seen = met_row["rtt"]["samples"].get<uint64_t>();
    ASSERT_TRUE(wait_until(
        [&] {
            traffic(from);
            met_row = row(met);
            return met_row.contains("rtt") && met_row["rtt"]["samples"].get<uint64_t>() > seen + 20;
        },
        20s, 200ms))
        << met_row.dump(2);
    EXPECT_EQ(status_of(row(met)), "met");
    EXPECT_EQ(status_of(row(vio)), "violated");

    auto ev_met = latency_events(met);
    ASSERT_EQ(ev_met.size(), 1u) << agent_->cli({"events", "-n", "100000"}).out;
    EXPECT_EQ(ev_met[0]["status"], "met");
    EXPECT_EQ(ev_met[0]["previous"], "no-data");
    EXPECT_EQ(ev_met[0]["persona"], met);
    EXPECT_EQ(ev_met[0]["rtt"]["target_us"], 1e6);
    EXPECT_TRUE(ev_met[0]["rtt"]["p99_us"].is_number()) << ev_met[0].dump();
    EXPECT_FALSE(ev_met[0].contains("workload")) << ev_met[0].dump();
    auto ev_vio = latency_events(vio);
    ASSERT_EQ(ev_vio.size(), 1u) << agent_->cli({"events", "-n", "100000"}).out;
    EXPECT_EQ(ev_vio[0]["status"], "violated");
    EXPECT_EQ(ev_vio[0]["previous"], "no-data");
    // The one binding of each persona had the same change, named by its workload.
    for (const auto& [persona, sub, status] :
         {std::tuple{met, "met", "met"}, std::tuple{vio, "vio", "violated"}}) {
        auto ev = latency_events(persona, "binding");
        ASSERT_EQ(ev.size(), 1u) << agent_->cli({"events", "-n", "100000"}).out;
        EXPECT_EQ(ev[0]["status"], status);
        EXPECT_EQ(ev[0]["workload"], cg_->rel(sub)) << ev[0].dump();
        EXPECT_EQ(ev[0]["persona"], persona);
    }
    EXPECT_TRUE(latency_events(none).empty());
    EXPECT_TRUE(latency_events(none, "binding").empty());
    // The text form names the change.
    CommandResult text = agent_->cli({"events", "--persona", vio, "-n", "100000"});
    EXPECT_NE(text.out.find("LATENCY violated"), std::string::npos) << text.describe();

    // The persona without a target was never sampled: no histogram, no rtt field.
    json none_row = row(none);
    EXPECT_FALSE(none_row.contains("rtt")) << none_row.dump(2);
    EXPECT_GT(none_row["egress"]["allowed_packets"].get<uint64_t>(), 0u) << "it had traffic";
    // One histogram per persona with a target for its bindings without a slot (slot 0), and
    // one for its binding's slot.
    const auto keys = histogram_keys();
    EXPECT_EQ(keys.size(), 4u);
    for (const json* j : {&met_row, &vio_row}) {
        const uint64_t id = (*j)["id"].get<uint64_t>();
        EXPECT_EQ(std::count(keys.begin(), keys.end(), std::pair<uint64_t, uint64_t>{id, 0}), 1);
        EXPECT_EQ(std::count_if(keys.begin(), keys.end(),
                                [&](const auto& k) { return k.first == id && k.second != 0; }),
                  1);
    }
    EXPECT_FALSE(histogram_personas().count(none_row["id"].get<uint64_t>()));
    // The binding rows carry the binding's own figures; with one binding they are the
    // persona's.
    for (const auto& [r, sub] : {std::pair{&met_row, "met"}, std::pair{&vio_row, "vio"}}) {
        json b = binding_row(row((*r)["persona"].get<std::string>()), cg_->rel(sub));
        ASSERT_TRUE(b.is_object()) << r->dump(2);
        ASSERT_TRUE(b.contains("rtt")) << b.dump(2);
        EXPECT_EQ(b["rtt"]["status"], (*r)["rtt"]["status"]) << b.dump(2);
        EXPECT_EQ(b["rtt"]["target_us"], (*r)["rtt"]["target_us"]) << b.dump(2);
    }
    EXPECT_FALSE(binding_row(none_row, cg_->rel("none")).contains("rtt")) << none_row.dump(2);

    // Prometheus: the summary and the SLO gauge.
    HttpResponse m = http(metrics_sock_, "GET", "/metrics");
    ASSERT_EQ(m.status, 200) << m.raw;
    EXPECT_NE(m.body.find("# TYPE personabpf_persona_rtt_seconds summary\n"), std::string::npos);
    for (const auto& q : {"0.5", "0.99"})
        EXPECT_NE(m.body.find("personabpf_persona_rtt_seconds{persona=\"" + met + "\",quantile=\"" +
                              q + "\"} "),
                  std::string::npos)
            << m.body;
    EXPECT_NE(m.body.find("personabpf_persona_rtt_seconds_count{persona=\"" + met + "\"} "),
              std::string::npos);
    EXPECT_NE(m.body.find("personabpf_persona_rtt_seconds_sum{persona=\"" + vio + "\"} "),
              std::string::npos);
    EXPECT_NE(m.body.find("personabpf_persona_latency_slo_met{persona=\"" + met + "\"} 1\n"),
              std::string::npos)
        << m.body;
    EXPECT_NE(m.body.find("personabpf_persona_latency_slo_met{persona=\"" + vio + "\"} 0\n"),
              std::string::npos);
    const std::string target_line =
        "personabpf_persona_latency_target_seconds{persona=\"" + vio + "\"} ";
    const size_t at = m.body.find(target_line);
    ASSERT_NE(at, std::string::npos) << m.body;
    EXPECT_NEAR(std::stod(m.body.substr(at + target_line.size())), 1e-6, 1e-12);
    EXPECT_EQ(m.body.find("persona=\"" + none + "\",quantile"), std::string::npos);

    // Removing the target stops the sampling: the histogram goes, the row loses rtt.
    apply(*agent_, latency_pdl(met, "") + latency_pdl(vio, "1us") + latency_pdl(none, ""),
          "latency.pdl");
    const uint64_t met_id = met_row["id"].get<uint64_t>();
    EXPECT_TRUE(wait_until([&] { return !histogram_personas().count(met_id); }, 5s, 100ms));
    EXPECT_TRUE(wait_until([&] { return !row(met).contains("rtt"); }, 5s, 100ms));
}

// One persona, two bindings. The `fast` workload keeps opening echo connections over the
// fixture's veth; the `slow` one keeps a bulk TCP transfer going over a second veth into
// the same netns whose host side a tbf qdisc shapes to 1 Mbit/s. There is no netem on
// these kernels ("Specified qdisc kind is unknown"), but a token bucket under a sender that
// never stops is a real queue: what the connection has in flight waits there for its
// tokens. A small send buffer bounds that to some 10 segments, so the queue never
// overflows (losses would stall the connection in retransmission timeouts, and a stalled
// connection gives almost no RTT samples) and holds a few hundred milliseconds: the
// connection's smoothed RTT climbs well above the 100 ms target within a few samples,
// while the veth's are microseconds. Each binding gets its own status and event, the
// persona the sum of both (violated: its p99 is among the slow samples).
TEST_F(Latency, BindingsOfOnePersonaHaveTheirOwnStatusAndThePersonaTheirSum) {
    const std::string name = "it-rtt-two";
    apply(*agent_, latency_pdl(name, "100ms"), "two.pdl");
    const Where fast = in("fast"), slow = in("slow");
    bind(name, "fast");
    bind(name, "slow");
    const std::string fast_target = cg_->rel("fast"), slow_target = cg_->rel("slow");

    Veth slow_link(*net_);
    ASSERT_TRUE(slow_link.ok()) << slow_link.error();
    CommandResult tc = run_command({"tc", "qdisc", "add", "dev", slow_link.host_if(), "root", "tbf",
                                    "rate", "1mbit", "burst", "1600", "limit", "200000"},
                                   10s);
    ASSERT_EQ(tc.exit_code, 0) << tc.describe();
    constexpr uint16_t kSinkPort = 7071;
    TcpSink sink(from_netns(), kSinkPort);
    ASSERT_TRUE(sink.ok()) << sink.error();
    TcpBulk bulk(slow, slow_link.peer4, kSinkPort, /*sndbuf=*/16384);
    ASSERT_TRUE(bulk.ok()) << bulk.error();

    json p, f, sl;
    auto samples = [](const json& r) {
        return r.is_object() && r.contains("rtt") ? r["rtt"]["samples"].get<uint64_t>() : 0;
    };
    ASSERT_TRUE(wait_until(
        [&] {
            traffic({fast});
            p = row(name);
            f = binding_row(p, fast_target);
            sl = binding_row(p, slow_target);
            // Rows of one answer come from one tick, unless a tick fell between them.
            return status_of(f) == "met" && status_of(sl) == "violated" &&
                   status_of(p) == "violated" && samples(p) == samples(f) + samples(sl);
        },
        60s, 200ms))
        << "persona: " << p.dump(2) << "\nevents: " << agent_->cli({"events", "-n", "100000"}).out
        << "\ntc: " << run_command({"tc", "-s", "qdisc", "show", "dev", slow_link.host_if()}).out;
    std::cout << "[latency] fast binding p99 " << f["rtt"]["p99_us"] << " us ("
              << f["rtt"]["samples"] << " samples), slow binding p50 " << sl["rtt"]["p50_us"]
              << " us, p99 " << sl["rtt"]["p99_us"] << " us (" << sl["rtt"]["samples"]
              << " samples); persona p50 " << p["rtt"]["p50_us"] << " us, p99 "
              << p["rtt"]["p99_us"] << " us\n";
    EXPECT_LT(f["rtt"]["p99_us"].get<double>(), 100'000.0);
    EXPECT_GT(sl["rtt"]["p99_us"].get<double>(), 100'000.0);
    EXPECT_GE(p["rtt"]["p99_us"].get<double>(), f["rtt"]["p99_us"].get<double>());
    EXPECT_EQ(f["rtt"]["target_us"], 1e5);
    EXPECT_EQ(sl["rtt"]["target_us"], 1e5);

    // Prometheus: a summary and an SLO gauge per binding, labelled as the other per-binding
    // families are, next to the persona's.
    HttpResponse m = http(metrics_sock_, "GET", "/metrics");
    ASSERT_EQ(m.status, 200) << m.raw;
    EXPECT_NE(m.body.find("# TYPE personabpf_binding_rtt_seconds summary\n"), std::string::npos);
    auto labels = [&](const std::string& target) {
        return "{binding=\"" + target + "\",kind=\"cgroup\",persona=\"" + name + "\"";
    };
    for (const auto& t : {fast_target, slow_target}) {
        for (const auto& q : {"0.5", "0.99"})
            EXPECT_NE(m.body.find("personabpf_binding_rtt_seconds" + labels(t) + ",quantile=\"" +
                                  q + "\"} "),
                      std::string::npos)
                << m.body;
        EXPECT_NE(m.body.find("personabpf_binding_rtt_seconds_count" + labels(t) + "} "),
                  std::string::npos)
            << m.body;
        EXPECT_NE(m.body.find("personabpf_binding_rtt_seconds_sum" + labels(t) + "} "),
                  std::string::npos)
            << m.body;
    }
    EXPECT_NE(m.body.find("personabpf_binding_latency_slo_met" + labels(fast_target) + "} 1\n"),
              std::string::npos)
        << m.body;
    EXPECT_NE(m.body.find("personabpf_binding_latency_slo_met" + labels(slow_target) + "} 0\n"),
              std::string::npos)
        << m.body;
    EXPECT_NE(m.body.find("personabpf_persona_latency_slo_met{persona=\"" + name + "\"} 0\n"),
              std::string::npos)
        << m.body;

    // One event per binding, naming it; the persona's own events end in `violated`.
    auto ev = latency_events(name, "binding");
    std::map<std::string, std::vector<std::string>> by_workload;
    for (const auto& e : ev) by_workload[e.value("workload", "?")].push_back(e["status"]);
    EXPECT_EQ(by_workload[fast_target], std::vector<std::string>{"met"})
        << agent_->cli({"events", "-n", "100000"}).out;
    EXPECT_EQ(by_workload[slow_target], std::vector<std::string>{"violated"})
        << agent_->cli({"events", "-n", "100000"}).out;
    EXPECT_EQ(by_workload.size(), 2u);
    auto pev = latency_events(name);
    ASSERT_FALSE(pev.empty());
    EXPECT_EQ(pev.back()["status"], "violated");
    CommandResult text = agent_->cli({"events", "--persona", name, "-n", "100000"});
    EXPECT_NE(text.out.find(name + " (" + slow_target + ")  LATENCY violated"), std::string::npos)
        << text.describe();

    // The stats table shows the persona's row and both bindings'.
    CommandResult st = agent_->cli({"stats", name});
    ASSERT_EQ(st.exit_code, 0) << st.describe();
    const size_t lt = st.out.find("RTT-P99");
    ASSERT_NE(lt, std::string::npos) << st.out;
    for (const auto& t : {fast_target, slow_target})
        EXPECT_NE(st.out.find(t, lt), std::string::npos) << st.out;

    // Unbinding the slow workload removes its histogram and its figures; the persona keeps
    // the samples the binding had added to its window (more than the fast binding's).
    CommandResult u = agent_->cli({"unbind", "--cgroup", slow_target});
    ASSERT_EQ(u.exit_code, 0) << u.describe();
    const uint64_t id = p["id"].get<uint64_t>();
    EXPECT_TRUE(wait_until(
        [&] {
            const auto keys = histogram_keys();
            return std::count_if(keys.begin(), keys.end(),
                                 [&](const auto& k) { return k.first == id; }) == 2;
        },
        5s, 100ms));
    json after = row(name);
    EXPECT_FALSE(binding_row(after, slow_target).is_object()) << after.dump(2);
    EXPECT_GT(samples(after), samples(binding_row(after, fast_target))) << after.dump(2);
}

// The sock_ops link is pinned like the cgroup_skb ones: sampling goes on while no agent
// runs, a new agent adopts it (the histogram keeps counting), --uninstall removes it.
TEST_F(Latency, SamplingOutlivesTheAgentAndUninstallRemovesTheLink) {
    apply(*agent_, latency_pdl("it-rtt-keep", "1s"), "keep.pdl");
    const Where w = in("keep");
    bind("it-rtt-keep", "keep");
    const std::string link = agent_->paths().bpffs_root + "/link_cgroup_sockops";
    ASSERT_TRUE(path_exists(link));
    auto histogram_samples = [&]() -> uint64_t {
        CommandResult r = run_command(
            {"bpftool", "-j", "map", "dump", "pinned", agent_->paths().bpffs_root + "/pbpf_rtt"},
            10s);
        uint64_t n = 0;
        json j = json::parse(r.out, nullptr, false);
        if (!j.is_array()) return 0;
        for (const auto& e : j) {
            const json& values = e.contains("formatted") ? e["formatted"]["values"] : e["values"];
            for (const auto& v : values)
                if (v.contains("value") && v["value"].is_object())
                    n += v["value"].value("samples", uint64_t{0});
        }
        return n;
    };
    ASSERT_TRUE(wait_until(
        [&] {
            traffic({w});
            return status_of(row("it-rtt-keep")) == "met";
        },
        20s, 200ms));

    agent_->stop(SIGKILL);
    const uint64_t before = histogram_samples();
    ASSERT_GT(before, 0u) << "bpftool could not read the samples";
    traffic({w});
    EXPECT_GT(histogram_samples(), before) << "sampled while no agent ran";

    ASSERT_TRUE(agent_->start()) << "restart after SIGKILL";
    EXPECT_NE(agent_->log().find("adopted pinned maps and links"), std::string::npos);
    json st;
    ASSERT_TRUE(cli_json(*agent_, {"status"}, &st));
    EXPECT_EQ(st["programs_attached"], true) << st.dump(2);
    // A new agent starts its window afresh (no-data) and reaches met again.
    EXPECT_TRUE(wait_until(
        [&] {
            traffic({w});
            return status_of(row("it-rtt-keep")) == "met";
        },
        20s, 200ms));

    CommandResult attached = run_command({"bpftool", "cgroup", "show", cg_->path()}, 10s);
    EXPECT_NE(attached.out.find("sock_ops"), std::string::npos) << attached.describe();
    agent_->stop();
    CommandResult u = agent_->uninstall(/*purge_state=*/false);
    ASSERT_EQ(u.exit_code, 0) << u.describe();
    EXPECT_FALSE(path_exists(link));
    CommandResult links = run_command({"bpftool", "cgroup", "show", cg_->path()}, 10s);
    EXPECT_EQ(links.out.find("sock_ops"), std::string::npos) << links.out;
    ASSERT_TRUE(agent_->start()) << "start after uninstall";
}

TEST_F(Latency, ApplyNoLongerReportsTheTargetAsNotEnforced) {
    CommandResult r = try_apply(*agent_, latency_pdl("it-rtt-note", "5ms"), "note.pdl");
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.out.find("latency target"), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find("latency target"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pbpf::it
