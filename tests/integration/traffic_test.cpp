// Enforcement of real traffic: TCP, UDP, ICMP/ICMPv6 and IPv6 on egress, TCP on ingress,
// audit mode, each checked by probes from a bound cgroup and by the persona's counters.
#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

class Traffic : public IntegrationTest {};

TEST_F(Traffic, TcpAllowedPortPassesDeniedPortDropped) {
    const auto& v = *veth_;
    apply(*agent_,
          persona_pdl("it-tcp", {"mode enforce", "default ingress allow", "default egress deny",
                                 "allow egress tcp port 8080 to " + v.peer4}));
    bind("it-tcp", "web");
    const Where web = in("web");

    // The server answers on both ports for a process outside the managed subtree.
    ASSERT_TRUE(tcp_probe(Where{}, v.peer4, kPortB).ok()) << "control: server unreachable";

    Probe allowed = tcp_probe(web, v.peer4, kPortA);
    EXPECT_TRUE(allowed.ok()) << "allowed port 8080: " << allowed;
    Probe denied = tcp_probe(web, v.peer4, kPortB);
    EXPECT_TRUE(denied.blocked()) << "denied port 9090: " << denied;
    Probe other_addr = tcp_probe(web, v.alt4, kPortA);
    EXPECT_TRUE(other_addr.blocked())
        << "8080 on an address the rule does not name: " << other_addr;

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-tcp",
        [](const PersonaStats& st) {
            return st.egress.allowed_packets > 0 && st.egress.denied_packets > 0 &&
                   st.egress.allowed_bytes > 0 && st.egress.denied_bytes > 0 &&
                   st.ingress.allowed_packets > 0;
        },
        &s));
    EXPECT_EQ(s.egress.audited_packets, 0u) << s.egress;
}

TEST_F(Traffic, UdpAllowedPortEchoesDeniedPortDropped) {
    const auto& v = *veth_;
    apply(*agent_,
          persona_pdl("it-udp", {"mode enforce", "default ingress allow", "default egress deny",
                                 "allow egress udp port 9090 to " + v.peer4,
                                 "allow egress tcp port 8080 to " + v.peer4}));
    bind("it-udp", "dns");
    const Where w = in("dns");

    ASSERT_TRUE(udp_probe(Where{}, v.peer4, kPortA).ok()) << "control: UDP server unreachable";

    Probe udp_allowed = udp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(udp_allowed.ok()) << "udp 9090: " << udp_allowed;
    // A cgroup egress drop fails sendto with EPERM.
    Probe udp_denied = udp_probe(w, v.peer4, kPortA);
    EXPECT_EQ(udp_denied.outcome, Outcome::kEperm) << "udp 8080: " << udp_denied;
    Probe udp_other_addr = udp_probe(w, v.alt4, kPortB);
    EXPECT_TRUE(udp_other_addr.blocked()) << "udp 9090 to another address: " << udp_other_addr;
    // The protocol is part of the rule: tcp 8080 is allowed, tcp 9090 is not.
    Probe tcp_allowed = tcp_probe(w, v.peer4, kPortA);
    EXPECT_TRUE(tcp_allowed.ok()) << "tcp 8080: " << tcp_allowed;
    Probe tcp_denied = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(tcp_denied.blocked()) << "tcp 9090: " << tcp_denied;

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-udp",
        [](const PersonaStats& st) {
            return st.egress.allowed_packets >= 2 && st.egress.denied_packets >= 3;
        },
        &s));
}

TEST_F(Traffic, IcmpAndIcmpv6AllowedAndDenied) {
    const auto& v = *veth_;
    // Two personas in one file: one denies echo to the second peer address only, the
    // other allows nothing but ICMP to the first.
    apply(*agent_,
          persona_pdl("it-icmp-deny",
                      {"mode enforce", "default ingress allow", "default egress allow",
                       "deny egress icmp to " + v.alt4, "deny egress icmpv6 to " + v.alt6}) +
              persona_pdl("it-icmp-only", {"mode enforce", "default ingress allow",
                                           "default egress deny", "allow egress icmp to " + v.peer4,
                                           "allow egress icmpv6 to " + v.peer6}));
    bind("it-icmp-deny", "pinger");
    bind("it-icmp-only", "icmp-only");
    const Where pinger = in("pinger");
    const Where only = in("icmp-only");

    ASSERT_TRUE(ping_probe(Where{}, v.alt4).ok()) << "control: alt4 does not answer";
    ASSERT_TRUE(ping_probe(Where{}, v.alt6).ok()) << "control: alt6 does not answer";

    Probe p;
    p = ping_probe(pinger, v.peer4);
    EXPECT_TRUE(p.ok()) << "icmp to peer4: " << p;
    p = ping_probe(pinger, v.alt4);
    EXPECT_TRUE(p.blocked()) << "icmp to alt4: " << p;
    p = ping_probe(pinger, v.peer6);
    EXPECT_TRUE(p.ok()) << "icmpv6 to peer6: " << p;
    p = ping_probe(pinger, v.alt6);
    EXPECT_TRUE(p.blocked()) << "icmpv6 to alt6: " << p;
    // The deny names ICMP only: TCP to the same address passes.
    p = tcp_probe(pinger, v.alt4, kPortA);
    EXPECT_TRUE(p.ok()) << "tcp to alt4: " << p;
    p = tcp_probe(pinger, v.alt6, kPortA);
    EXPECT_TRUE(p.ok()) << "tcp to alt6: " << p;

    p = ping_probe(only, v.peer4);
    EXPECT_TRUE(p.ok()) << "icmp-only: icmp to peer4: " << p;
    p = ping_probe(only, v.peer6);
    EXPECT_TRUE(p.ok()) << "icmp-only: icmpv6 to peer6: " << p;
    p = ping_probe(only, v.alt4);
    EXPECT_TRUE(p.blocked()) << "icmp-only: icmp to alt4: " << p;
    p = ping_probe(only, v.alt6);
    EXPECT_TRUE(p.blocked()) << "icmp-only: icmpv6 to alt6: " << p;
    p = tcp_probe(only, v.peer4, kPortA);
    EXPECT_TRUE(p.blocked()) << "icmp-only: tcp to peer4: " << p;

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-icmp-deny",
        [](const PersonaStats& st) {
            return st.egress.allowed_packets >= 4 && st.egress.denied_packets >= 2;
        },
        &s));
}

TEST_F(Traffic, Ipv6TcpAllowedAndDenied) {
    const auto& v = *veth_;
    apply(*agent_,
          persona_pdl("it-v6", {"mode enforce", "default ingress allow", "default egress deny",
                                "allow egress tcp port 8080 to " + v.peer6,
                                "allow egress tcp port 9090 to " + v.alt6 + "/128"}));
    bind("it-v6", "v6");
    const Where w = in("v6");

    ASSERT_TRUE(tcp_probe(Where{}, v.peer6, kPortB).ok()) << "control: v6 server unreachable";

    Probe p;
    p = tcp_probe(w, v.peer6, kPortA);
    EXPECT_TRUE(p.ok()) << "[peer6]:8080: " << p;
    p = tcp_probe(w, v.peer6, kPortB);
    EXPECT_TRUE(p.blocked()) << "[peer6]:9090: " << p;
    p = tcp_probe(w, v.alt6, kPortB);
    EXPECT_TRUE(p.ok()) << "[alt6]:9090: " << p;
    p = tcp_probe(w, v.alt6, kPortA);
    EXPECT_TRUE(p.blocked()) << "[alt6]:8080: " << p;
    // IPv4 is governed by its own (default deny) table.
    p = tcp_probe(w, v.peer4, kPortA);
    EXPECT_TRUE(p.blocked()) << "peer4:8080: " << p;
    p = udp_probe(w, v.peer6, kPortA);
    EXPECT_EQ(p.outcome, Outcome::kEperm) << "udp [peer6]:8080: " << p;

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-v6",
        [](const PersonaStats& st) {
            return st.egress.allowed_packets >= 2 && st.egress.denied_packets >= 4;
        },
        &s));
}

TEST_F(Traffic, IngressAllowedPortPassesDeniedPortDropped) {
    const auto& v = *veth_;
    apply(*agent_,
          persona_pdl("it-ingress", {"mode enforce", "default ingress deny", "default egress allow",
                                     "allow ingress tcp port 8080 from " + v.peer4,
                                     "allow ingress tcp port 8080 from " + v.peer6,
                                     "allow ingress udp port 9090 from " + v.net4}));
    bind("it-ingress", "srv");
    // The listener runs in the bound cgroup in the root netns, on the host side of the veth.
    EchoServer listener(in("srv"), {{Proto::kTcp, v.host4, kPortA},
                                    {Proto::kTcp, v.host4, kPortB},
                                    {Proto::kTcp, v.host6, kPortA},
                                    {Proto::kUdp, v.host4, kPortA},
                                    {Proto::kUdp, v.host4, kPortB}});
    ASSERT_TRUE(listener.ok()) << listener.error();
    const Where client = from_netns();

    Probe p;
    p = tcp_probe(client, v.host4, kPortA, 1000, v.peer4);
    EXPECT_TRUE(p.ok()) << "peer4 -> host4:8080: " << p;
    p = tcp_probe(client, v.host4, kPortB, 1000, v.peer4);
    EXPECT_TRUE(p.blocked()) << "peer4 -> host4:9090: " << p;
    p = tcp_probe(client, v.host4, kPortA, 1000, v.alt4);
    EXPECT_TRUE(p.blocked()) << "alt4 -> host4:8080 (source not allowed): " << p;
    p = tcp_probe(client, v.host6, kPortA, 1000, v.peer6);
    EXPECT_TRUE(p.ok()) << "peer6 -> [host6]:8080: " << p;
    p = tcp_probe(client, v.host6, kPortA, 1000, v.alt6);
    EXPECT_TRUE(p.blocked()) << "alt6 -> [host6]:8080 (source not allowed): " << p;
    p = udp_probe(client, v.host4, kPortB);
    EXPECT_TRUE(p.ok()) << "udp -> host4:9090: " << p;
    p = udp_probe(client, v.host4, kPortA);
    EXPECT_TRUE(p.blocked()) << "udp -> host4:8080: " << p;
    // Ingress sees datagrams after reassembly.
    p = udp_probe(client, v.host4, kPortB, 1000, UdpShape::kFragmented);
    EXPECT_TRUE(p.ok()) << "fragmented udp -> host4:9090: " << p;
    p = udp_probe(client, v.host4, kPortA, 1000, UdpShape::kFragmented);
    EXPECT_TRUE(p.blocked()) << "fragmented udp -> host4:8080: " << p;

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-ingress",
        [](const PersonaStats& st) {
            return st.ingress.allowed_packets >= 4 && st.ingress.denied_packets >= 5 &&
                   st.egress.allowed_packets >= 2;
        },
        &s));
}

TEST_F(Traffic, AuditModeReportsButNeverDrops) {
    const auto& v = *veth_;
    const std::vector<std::string> rules = {"default ingress allow", "default egress allow",
                                            "deny egress tcp port 9090 to " + v.peer4};
    std::vector<std::string> audit = {"mode audit"};
    audit.insert(audit.end(), rules.begin(), rules.end());
    apply(*agent_, persona_pdl("it-audit", audit));
    bind("it-audit", "audited");
    const Where w = in("audited");

    Probe p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "audit mode must pass 9090: " << p;
    p = tcp_probe(w, v.peer4, kPortA);
    EXPECT_TRUE(p.ok()) << "8080: " << p;

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-audit",
        [](const PersonaStats& st) {
            return st.egress.audited_packets > 0 && st.egress.audited_bytes > 0;
        },
        &s));
    EXPECT_EQ(s.egress.denied_packets, 0u) << s.egress;
    EXPECT_GT(s.egress.allowed_packets, 0u) << s.egress;

    // The same rules in enforce mode drop: the mode flips with the persona version.
    std::vector<std::string> enforce = {"mode enforce"};
    enforce.insert(enforce.end(), rules.begin(), rules.end());
    apply(*agent_, persona_pdl("it-audit", enforce));
    p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "enforce mode must drop 9090: " << p;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-audit", [](const PersonaStats& st) { return st.egress.denied_packets > 0; },
        &s));
}

TEST_F(Traffic, CountersOfARecreatedPersonaStartAtZero) {
    const auto& v = *veth_;
    const std::string pdl =
        persona_pdl("it-count", {"mode enforce", "default ingress allow", "default egress allow",
                                 "deny egress udp port 9090 to " + v.peer4});
    apply(*agent_, pdl);
    bind("it-count", "c");
    const Where w = in("c");
    EXPECT_EQ(udp_probe(w, v.peer4, kPortB).outcome, Outcome::kEperm);
    EXPECT_TRUE(udp_probe(w, v.peer4, kPortA).ok());
    PersonaStats s;
    ASSERT_TRUE(wait_stats(
        *agent_, "it-count",
        [](const PersonaStats& st) {
            return st.egress.denied_packets > 0 && st.egress.allowed_packets > 0;
        },
        &s));

    CommandResult r = agent_->cli({"persona", "rm", "it-count", "--force"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    // A new persona (whatever id it gets, possibly the freed one) has counted nothing yet.
    apply(*agent_, pdl);
    ASSERT_TRUE(stats(*agent_, "it-count", &s));
    EXPECT_EQ(s.egress.denied_packets, 0u) << "egress " << s.egress;
    EXPECT_EQ(s.egress.allowed_packets, 0u) << "egress " << s.egress;
    EXPECT_EQ(s.ingress.allowed_packets, 0u) << "ingress " << s.ingress;
}

TEST_F(Traffic, HeaderOptionsAndFragmentsDoNotEvadeRules) {
    const auto& v = *veth_;
    apply(*agent_,
          persona_pdl("it-shapes", {"mode enforce", "default ingress allow", "default egress allow",
                                    "deny egress udp port 9090 to " + v.peer4,
                                    "deny egress udp port 9090 to " + v.peer6}));
    bind("it-shapes", "shapes");
    const Where w = in("shapes");
    for (UdpShape shape : {UdpShape::kHeaderOptions, UdpShape::kFragmented}) {
        for (const std::string& peer : {v.peer4, v.peer6}) {
            SCOPED_TRACE("peer " + peer);
            ASSERT_TRUE(udp_probe(Where{}, peer, kPortB, 1000, shape).ok())
                << "control: this datagram shape does not get through at all";
            Probe p = udp_probe(w, peer, kPortB, 1000, shape);
            EXPECT_EQ(p.outcome, Outcome::kEperm) << "denied port: " << p;
            p = udp_probe(w, peer, kPortA, 1000, shape);
            EXPECT_TRUE(p.ok()) << "allowed port: " << p;
        }
    }
}

TEST_F(Traffic, SetsRangesCidrsAndDenyOverAllow) {
    const auto& v = *veth_;
    const std::string pdl =
        "set peers = { " + v.peer4 + ", " + v.peer6 + " }\n" + "set svc = { 8080, 9090 }\n" +
        persona_pdl("it-rules", {"mode enforce", "default ingress allow", "default egress deny",
                                 "allow egress tcp port $svc to $peers",
                                 // A matching deny beats a matching allow.
                                 "deny egress tcp port 9090 to " + v.peer6,
                                 "allow egress udp port 8000-8099 to " + v.net4,
                                 "allow egress any to " + v.alt6, "allow egress icmp to any"});
    apply(*agent_, pdl);
    bind("it-rules", "rules");
    const Where w = in("rules");

    struct Case {
        const char* what;
        Probe probe;
        bool pass;
    };
    const std::vector<Case> cases = {
        {"tcp peer4:8080 ($svc to $peers)", tcp_probe(w, v.peer4, kPortA), true},
        {"tcp peer4:9090 ($svc to $peers)", tcp_probe(w, v.peer4, kPortB), true},
        {"tcp [peer6]:8080 ($svc to $peers)", tcp_probe(w, v.peer6, kPortA), true},
        {"tcp [peer6]:9090 (deny beats allow)", tcp_probe(w, v.peer6, kPortB), false},
        {"tcp alt4:8080 (not in $peers)", tcp_probe(w, v.alt4, kPortA), false},
        {"udp peer4:8080 (range, CIDR)", udp_probe(w, v.peer4, kPortA), true},
        {"udp alt4:8080 (range, CIDR)", udp_probe(w, v.alt4, kPortA), true},
        {"udp peer4:9090 (outside the range)", udp_probe(w, v.peer4, kPortB), false},
        {"tcp [alt6]:9090 (any protocol)", tcp_probe(w, v.alt6, kPortB), true},
        {"udp [alt6]:8080 (any protocol)", udp_probe(w, v.alt6, kPortA), true},
        {"icmpv6 alt6 (any protocol)", ping_probe(w, v.alt6), true},
        {"icmp peer4 (icmp to any)", ping_probe(w, v.peer4), true},
        {"icmpv6 peer6 (icmp is IPv4 only)", ping_probe(w, v.peer6), false},
    };
    for (const auto& c : cases) {
        if (c.pass) {
            EXPECT_TRUE(c.probe.ok()) << c.what << ": " << c.probe;
        } else {
            EXPECT_TRUE(c.probe.blocked()) << c.what << ": " << c.probe;
        }
    }
}

}  // namespace
}  // namespace pbpf::it
