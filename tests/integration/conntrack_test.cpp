// Connection tracking and flow events with real traffic: replies of allowed flows pass
// under `default ingress deny` (TCP, UDP, ICMP echo), `conntrack ls|flush` show and forget
// the flows, and `events` reports the new flows and the drops with their reasons.
#include <atomic>
#include <sstream>
#include <thread>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

class Conntrack : public IntegrationTest {
  protected:
    // `events -j -n N [--persona P]`: one JSON object per line.
    std::vector<json> events(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args = {"-j", "events", "-n", "1000"};
        args.insert(args.end(), extra.begin(), extra.end());
        CommandResult r = agent_->cli(args);
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        std::vector<json> out;
        std::istringstream in(r.out);
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            try {
                out.push_back(json::parse(line));
            } catch (const std::exception& e) {
                ADD_FAILURE() << "not JSON: " << line;
            }
        }
        return out;
    }
};

TEST_F(Conntrack, RepliesOfAllowedFlowsPassUnderDefaultIngressDeny) {
    const auto& v = *veth_;
    apply(*agent_, persona_pdl("it-ct", {"default ingress deny", "default egress deny",
                                         "allow egress tcp port 8080 to " + v.peer4,
                                         "allow egress udp port 9090 to " + v.peer4,
                                         "allow egress icmp to " + v.peer4}));
    bind("it-ct", "client");
    const Where w = in("client");

    Probe p = tcp_probe(w, v.peer4, kPortA);
    EXPECT_TRUE(p.ok()) << "tcp 8080 and its replies: " << p;
    p = udp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "udp 9090 and its reply: " << p;
    p = ping_probe(w, v.peer4);
    EXPECT_TRUE(p.ok()) << "ping and its reply: " << p;
    p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "tcp 9090 is not allowed: " << p;
    // Inbound connections are not replies: the ingress default applies to them.
    EchoServer listener(w, {{Proto::kTcp, v.host4, kPortA}});
    ASSERT_TRUE(listener.ok()) << listener.error();
    p = tcp_probe(from_netns(), v.host4, kPortA);
    EXPECT_TRUE(p.blocked()) << "inbound tcp under default ingress deny: " << p;

    json ls;
    ASSERT_TRUE(cli_json(*agent_, {"conntrack", "ls", "--persona", "it-ct"}, &ls));
    bool tcp = false, udp = false, icmp = false;
    for (const auto& f : ls["flows"]) {
        EXPECT_EQ(f["persona"], "it-ct");
        EXPECT_EQ(f["origin"], "egress") << f.dump();
        EXPECT_EQ(f["remote"], v.peer4) << f.dump();
        EXPECT_EQ(f["workload"].get<std::string>().find("client") != std::string::npos, true)
            << f.dump();
        if (f["proto"] == "tcp" && f["remote_port"] == kPortA) {
            tcp = true;
            EXPECT_EQ(f["rule"], 1) << f.dump();
            EXPECT_GT(f["packets"]["ingress"].get<uint64_t>(), 0u) << f.dump();
        }
        if (f["proto"] == "udp" && f["remote_port"] == kPortB) udp = true;
        if (f["proto"] == "icmp") icmp = f.contains("icmp_id");
    }
    EXPECT_TRUE(tcp && udp && icmp) << ls.dump(2);

    // Events: the three new flows allowed by their rules, the denied SYNs by the defaults.
    auto evs = events({"--persona", "it-ct"});
    bool allowed_tcp = false, dropped_egress = false, dropped_ingress = false;
    for (const auto& e : evs) {
        if (!e.contains("dst_port")) continue;  // binding events carry no flow
        if (e["verdict"] == "allowed" && e["proto"] == "tcp" && e["dst_port"] == kPortA)
            allowed_tcp = e["reason"] == "rule" && e["rule"] == 1 && e["direction"] == "egress" &&
                          e["rule_text"] == "allow egress tcp port 8080 to " + v.peer4;
        if (e["verdict"] == "dropped" && e["direction"] == "egress" && e["dst_port"] == kPortB)
            dropped_egress = e["reason"] == "default";
        if (e["verdict"] == "dropped" && e["direction"] == "ingress" && e["dst_port"] == kPortA)
            dropped_ingress = e["reason"] == "default" && e["tcp_flags"] == "SYN";
    }
    EXPECT_TRUE(allowed_tcp && dropped_egress && dropped_ingress) << "events:\n"
                                                                  << [&] {
                                                                         std::string s;
                                                                         for (const auto& e : evs)
                                                                             s += e.dump() + "\n";
                                                                         return s;
                                                                     }();
    CommandResult text = agent_->cli({"events", "-n", "5"});
    EXPECT_EQ(text.exit_code, 0) << text.describe();
    EXPECT_NE(text.out.find("DROPPED"), std::string::npos) << text.out;

    // Flush: the flows are gone, and a reply that arrives now is decided by the rules.
    json flushed;
    ASSERT_TRUE(cli_json(*agent_, {"conntrack", "flush", "--persona", "it-ct"}, &flushed));
    EXPECT_GE(flushed["flushed"].get<int>(), 3) << flushed.dump();
    ASSERT_TRUE(cli_json(*agent_, {"conntrack", "ls", "--persona", "it-ct"}, &ls));
    EXPECT_EQ(ls["total"], 0) << ls.dump(2);
    CommandResult table = agent_->cli({"conntrack", "ls"});
    EXPECT_EQ(table.exit_code, 0) << table.describe();
}

TEST_F(Conntrack, FollowPrintsNewEventsAndUnknownPersonasAreErrors) {
    const auto& v = *veth_;
    apply(*agent_, persona_pdl("it-follow", {"default egress deny"}));
    bind("it-follow", "f");
    // A follower (killed at its deadline) prints the drops of traffic sent meanwhile; it
    // starts with -n 0, so only events after its start count.
    std::atomic<bool> done{false};
    CommandResult follow;
    std::thread follower([&] {
        follow = run_command({cli_binary(), "--socket", agent_->paths().socket, "-j", "events",
                              "--follow", "-n", "0", "--persona", "it-follow"},
                             3s);
        done = true;
    });
    const Where w = in("f");
    while (!done) {
        (void)udp_probe(w, v.peer4, kPortA, 100);
        std::this_thread::sleep_for(100ms);  // pacing the traffic, not synchronisation
    }
    follower.join();
    EXPECT_TRUE(follow.timed_out) << follow.describe();
    EXPECT_NE(follow.out.find("\"verdict\":\"dropped\""), std::string::npos) << follow.describe();
    EXPECT_NE(follow.out.find("\"dst_port\":8080"), std::string::npos) << follow.describe();

    CommandResult bad = agent_->cli({"conntrack", "ls", "--persona", "nope"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.err.find("no persona 'nope'"), std::string::npos) << bad.describe();
    bad = agent_->cli({"events", "--persona", "nope"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.err.find("no persona 'nope'"), std::string::npos) << bad.describe();
}

}  // namespace
}  // namespace pbpf::it
