// Map migration across agent releases: personabpfd_next is the same agent built with
// another conntrack layout (PBPF_LAYOUT_TEST_NEXT: a member inserted near the front, so
// every later member moves). Killing one release and starting the other on the same pins
// must migrate the pinned maps, in both directions, with traffic flowing; a failed or
// interrupted migration must leave the old release's enforcement in force.
#include <signal.h>
#include <sys/wait.h>

#include "maps/abi/limits.h"
#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

constexpr uint16_t kSinkPort = 7311;
constexpr uint32_t kCtValueSize = 72;      // pbpf_ct_value in this release
constexpr uint32_t kCtValueSizeNext = 80;  // with layout_test_next

class MapMigration : public IntegrationTest {
  protected:
    void SetUp() override {
        IntegrationTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        // Replies come in only through conntrack (default ingress deny): a flow the
        // migration lost or garbled would be cut.
        apply(*agent_,
              persona_pdl(
                  "it-mig",
                  {"mode enforce", "default ingress deny", "default egress deny",
                   "allow egress tcp port " + std::to_string(kSinkPort) + " to " + veth_->peer4,
                   "allow egress udp port " + std::to_string(kPortA) + " to " + veth_->peer4}));
        bind("it-mig", "w");
    }

    // Kills the running agent and starts `binary` ("" = this release) on the same pins.
    ::testing::AssertionResult restart_as(const std::string& binary) {
        agent_->stop(SIGKILL);
        agent_->binary = binary;
        agent_->extra_env.clear();
        return agent_->start();
    }

    // Runs `binary` with a failpoint armed; returns its wait status.
    std::optional<int> run_failing(const std::string& binary, const std::string& failpoint) {
        agent_->stop(SIGKILL);
        agent_->binary = binary;
        agent_->extra_env = {"PERSONABPF_FAILPOINT=" + failpoint};
        agent_->spawn();
        return agent_->wait_exit(30s);
    }

    // bytes_value of the pinned conntrack map.
    uint32_t ct_value_size() {
        CommandResult r = run_command({"bpftool", "-j", "map", "show", "pinned",
                                       agent_->paths().bpffs_root + "/pbpf_conntrack"});
        if (r.exit_code != 0) return 0;
        json j = json::parse(r.out, nullptr, false);
        return j.is_object() ? j.value("bytes_value", 0u) : 0;
    }

    // The log of the latest start only.
    std::string last_run_log() {
        const std::string all = agent_->log();
        const size_t at = all.rfind("=== harness: starting personabpfd");
        return at == std::string::npos ? all : all.substr(at);
    }

    bool staged_pins_left() {
        CommandResult r = run_command({"ls", agent_->paths().bpffs_root});
        return r.out.find("__next") != std::string::npos;
    }

    // Waits until the persona has received `n` more packets (the sink's ACKs: replies that
    // only conntrack lets in).
    ::testing::AssertionResult replies_flow(uint64_t n, const std::string& when) {
        PersonaStats st;
        if (!stats(*agent_, "it-mig", &st)) return ::testing::AssertionFailure() << when;
        const uint64_t before = st.ingress.allowed_packets;
        auto r = wait_stats(
            *agent_, "it-mig",
            [&](const PersonaStats& s) { return s.ingress.allowed_packets >= before + n; }, &st,
            10s);
        if (!r) return ::testing::AssertionFailure() << when << ": replies stopped: " << st.ingress;
        return ::testing::AssertionSuccess();
    }

    // The workload's traffic across the restarts: a TCP connection to a sink in the netns
    // (its replies pass only through conntrack) and UDP to an allowed and a denied port.
    struct Traffic {
        Traffic(const Where& netns, const Where& w, const std::string& peer)
            : sink(netns, kSinkPort),
              bulk(w, peer, kSinkPort, /*sndbuf=*/65536),
              hammer(w, peer, kPortA, kPortB) {}
        ::testing::AssertionResult ok() const {
            if (!sink.ok()) return ::testing::AssertionFailure() << sink.error();
            if (!bulk.ok()) return ::testing::AssertionFailure() << bulk.error();
            if (!hammer.ok()) return ::testing::AssertionFailure() << hammer.error();
            return ::testing::AssertionSuccess();
        }
        TcpSink sink;
        TcpBulk bulk;
        UdpHammer hammer;
    };

    // Nothing was mis-enforced since `before`: the denied UDP port never passed, the
    // allowed one was never dropped, and no reply was dropped for lack of its flow.
    void expect_nothing_misenforced(Traffic& t, const PersonaStats& before) {
        HammerCounts c = t.hammer.stop();
        EXPECT_GT(c.allowed_passed, 0u) << c;
        EXPECT_EQ(c.allowed_dropped, 0u) << c;
        EXPECT_EQ(c.denied_passed, 0u) << c;
        PersonaStats after;
        ASSERT_TRUE(stats(*agent_, "it-mig", &after));
        EXPECT_EQ(after.ingress.denied_packets, before.ingress.denied_packets)
            << "replies dropped: " << after.ingress;
    }

    // The TCP flow to the sink, as the running agent lists it.
    json sink_flow() {
        json ls;
        if (!cli_json(*agent_, {"conntrack", "ls", "--persona", "it-mig"}, &ls) ||
            !ls["flows"].is_array())
            return {};
        for (const auto& f : ls["flows"])
            if (f.value("remote_port", 0) == kSinkPort && f.value("proto", "") == "tcp") return f;
        return {};
    }
};

TEST_F(MapMigration, UpgradeAndDowngradeCarryFlowsBindingsAndCountersUnderTraffic) {
    Traffic traffic(from_netns(), in("w"), veth_->peer4);
    ASSERT_TRUE(traffic.ok());
    ASSERT_TRUE(replies_flow(100, "before"));
    EXPECT_EQ(ct_value_size(), kCtValueSize);
    PersonaStats before;
    ASSERT_TRUE(stats(*agent_, "it-mig", &before));
    const json flow_before = sink_flow();
    ASSERT_TRUE(flow_before.is_object()) << "no tracked flow to the sink";

    // Upgrade: the next release migrates the pinned maps, converting every flow.
    ASSERT_TRUE(restart_as(PBPF_AGENT_NEXT_BIN));
    const std::string up = last_run_log();
    EXPECT_NE(up.find("migrated pinned maps"), std::string::npos) << up;
    EXPECT_NE(up.find("pbpf_conntrack (migrated"), std::string::npos) << up;
    EXPECT_EQ(ct_value_size(), kCtValueSizeNext);
    EXPECT_FALSE(staged_pins_left());
    json status;
    ASSERT_TRUE(cli_json(*agent_, {"status"}, &status));
    EXPECT_EQ(status.value("schema_version", 0), 1007) << status.dump();
    EXPECT_EQ(status.value("migrated_from_schema", 0), PBPF_MAP_SCHEMA_VERSION) << status.dump();
    ASSERT_TRUE(replies_flow(100, "after the upgrade"));
    // The flow came over member by member: same persona, its counts went on.
    const json flow_next = sink_flow();
    ASSERT_TRUE(flow_next.is_object()) << "the flow is not listed after the upgrade";
    EXPECT_EQ(flow_next.value("persona", ""), "it-mig") << flow_next.dump();
    EXPECT_EQ(flow_next.value("state", ""), "established") << flow_next.dump();
    EXPECT_GT(flow_next["packets"].value("egress", uint64_t{0}),
              flow_before["packets"].value("egress", uint64_t{0}))
        << flow_before.dump() << "\n"
        << flow_next.dump();
    PersonaStats mid;
    ASSERT_TRUE(stats(*agent_, "it-mig", &mid));
    EXPECT_GE(mid.egress.allowed_packets, before.egress.allowed_packets) << "counters kept";
    json bindings;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bindings));
    EXPECT_EQ(bindings.size(), 1u) << bindings.dump();

    // Downgrade: back to this release's layout, the new member dropped.
    ASSERT_TRUE(restart_as(""));
    EXPECT_NE(last_run_log().find("pbpf_conntrack (migrated"), std::string::npos) << last_run_log();
    EXPECT_EQ(ct_value_size(), kCtValueSize);
    ASSERT_TRUE(replies_flow(100, "after the downgrade"));
    ASSERT_TRUE(sink_flow().is_object());

    expect_nothing_misenforced(traffic, before);
}

TEST_F(MapMigration, AFailedOrInterruptedMigrationLeavesTheOldReleaseEnforcing) {
    Traffic traffic(from_netns(), in("w"), veth_->peer4);
    ASSERT_TRUE(traffic.ok());
    ASSERT_TRUE(replies_flow(50, "before"));
    PersonaStats before;
    ASSERT_TRUE(stats(*agent_, "it-mig", &before));

    // A conversion error: the next release stops with an error; nothing changed.
    auto st = run_failing(PBPF_AGENT_NEXT_BIN, "migrate-fail");
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) != 0) << *st;
    EXPECT_NE(last_run_log().find("nothing changed"), std::string::npos) << last_run_log();
    EXPECT_EQ(ct_value_size(), kCtValueSize);
    EXPECT_FALSE(staged_pins_left());

    // A program swap that fails half way: the swapped link goes back to the old program.
    st = run_failing(PBPF_AGENT_NEXT_BIN, "migrate-swap-fail");
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) != 0) << *st;
    EXPECT_EQ(ct_value_size(), kCtValueSize);
    EXPECT_FALSE(staged_pins_left());

    // Killed after staging, before the swap: the next start (either release) undoes it.
    st = run_failing(PBPF_AGENT_NEXT_BIN, "migrate-staged");
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << *st;
    EXPECT_TRUE(staged_pins_left());
    ASSERT_TRUE(restart_as(""));
    EXPECT_NE(last_run_log().find("was interrupted; undid it"), std::string::npos)
        << last_run_log();
    EXPECT_FALSE(staged_pins_left());
    EXPECT_EQ(ct_value_size(), kCtValueSize);
    ASSERT_TRUE(replies_flow(50, "after undoing"));

    // Killed after the swap, before the pins moved: the next start finishes it.
    st = run_failing(PBPF_AGENT_NEXT_BIN, "migrate-swapped");
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << *st;
    ASSERT_TRUE(restart_as(PBPF_AGENT_NEXT_BIN));
    EXPECT_NE(last_run_log().find("was interrupted; finished it"), std::string::npos)
        << last_run_log();
    EXPECT_EQ(last_run_log().find("differ from this build's"), std::string::npos)
        << "finished, nothing left to migrate";
    EXPECT_FALSE(staged_pins_left());
    EXPECT_EQ(ct_value_size(), kCtValueSizeNext);
    ASSERT_TRUE(replies_flow(50, "after finishing"));

    expect_nothing_misenforced(traffic, before);
}

}  // namespace
}  // namespace pbpf::it
