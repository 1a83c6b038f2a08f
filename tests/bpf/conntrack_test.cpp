// Connection tracking and flow events of persona.bpf.o under bpf_prog_test_run: replies of
// allowed flows pass under `default ingress deny`, ICMP echo replies and ICMP errors about
// tracked flows pass, a persona change re-decides tracked flows, expired and closed flows
// are decided anew, and the event ring reports verdicts within its rate limit.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "maps/abi/binding.h"
#include "maps/abi/conntrack.h"
#include "maps/abi/events.h"
#include "pdl-compiler/compiler.h"
#include "tests/bpf/cgroup_util.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

constexpr uint32_t kPass = 1;
constexpr uint32_t kDrop = 0;
constexpr uint32_t kPersona = 3;
constexpr const char* kMe = "192.168.1.10";
constexpr const char* kPeer = "10.0.0.1";
constexpr const char* kMe6 = "fd00::10";
constexpr const char* kPeer6 = "2001:db8::1";

// Workload: may open TCP to port 80 and UDP to 53, ping; nothing may come in.
constexpr const char* kClientPdl = R"(
persona client {
  security {
    default ingress deny
    default egress deny
    allow egress tcp port 80 to 10.0.0.0/8
    allow egress tcp port 80 to 2001:db8::/32
    allow egress udp port 53 to 10.0.0.0/8
    allow egress icmp to 10.0.0.0/8
    allow egress icmpv6 to 2001:db8::/32
  }
}
)";
// The same workload after an update that no longer allows port 80.
constexpr const char* kNo80Pdl = R"(
persona client {
  security {
    default ingress deny
    default egress deny
    allow egress udp port 53 to 10.0.0.0/8
  }
}
)";
constexpr const char* kAuditPdl = R"(
persona client {
  security {
    mode audit
    default ingress deny
    default egress deny
  }
}
)";

std::vector<PolicyEntry> entries_of(const char* pdl_text) {
    auto out = pdl::compile(pdl::Source{"ct.pdl", pdl_text});
    EXPECT_TRUE(out.ok()) << pdl_text;
    if (!out.ok() || out.personas.empty()) return {};
    return pdl::lower(out.personas.front()).entries;
}

// An ICMPv4 "port unreachable" from the peer about a UDP datagram me -> peer.
Packet icmp_unreachable_about(uint16_t inner_sport, uint16_t inner_dport) {
    Bytes inner = Packet().ipv4(kMe, kPeer).udp(inner_sport, inner_dport).bytes();
    inner.erase(inner.begin(), inner.begin() + 14);  // the embedded header starts at IP
    return Packet()
        .ipv4(kPeer, kMe)
        .l4_proto(1)
        .payload(8 + inner.size())
        .mutate("icmp type 3 code 3 + embedded udp", [inner](Bytes& b) {
            const size_t icmp = 14 + 20;
            std::fill(b.begin() + icmp, b.begin() + icmp + 8, 0);
            b[icmp] = 3;
            b[icmp + 1] = 3;
            std::copy(inner.begin(), inner.end(), b.begin() + icmp + 8);
        });
}

// The same about a TCP segment me -> peer, quoting only 8 bytes of its header (RFC 792's
// minimum, what routers send).
Packet icmp_frag_needed_about_tcp(uint16_t inner_sport, uint16_t inner_dport) {
    Bytes inner = Packet().ipv4(kMe, kPeer).tcp(inner_sport, inner_dport).bytes();
    inner.erase(inner.begin(), inner.begin() + 14);
    inner.resize(20 + 8);
    return Packet()
        .ipv4(kPeer, kMe)
        .l4_proto(1)
        .payload(8 + inner.size())
        .mutate("icmp type 3 code 4 + 8 bytes of tcp", [inner](Bytes& b) {
            const size_t icmp = 14 + 20;
            std::fill(b.begin() + icmp, b.begin() + icmp + 8, 0);
            b[icmp] = 3;
            b[icmp + 1] = 4;
            std::copy(inner.begin(), inner.end(), b.begin() + icmp + 8);
        });
}

class Conntrack : public ::testing::Test {
  protected:
    void SetUp() override {
        PBPF_REQUIRE_ROOT();
        auto skel = load_persona_skeleton();
        if (!skel) PBPF_KERNEL_UNAVAILABLE(skel.error().what());
        skel_ = std::move(skel.value());
        auto self = self_cgroup_path();
        auto mount = cgroup2_mount();
        ASSERT_TRUE(self && mount);
        auto id = cgroup_id(*mount + (*self == "/" ? "" : *self));
        ASSERT_TRUE(id);
        cgroup_ = *id;
        ASSERT_TRUE(bind_cgroup(skel_.get(), cgroup_, kPersona));
        install(kClientPdl);
    }

    void install(const char* pdl_text) {
        auto entries = entries_of(pdl_text);
        ASSERT_FALSE(entries.empty());
        ASSERT_TRUE(install_policy(skel_.get(), kPersona, entries));
        ASSERT_TRUE(bump_policy_epoch(skel_.get()));
    }

    uint32_t run(Prog prog, const Packet& p) {
        auto r = run_prog(skel_.get(), prog, p.bytes());
        EXPECT_TRUE(r) << r.error().what();
        return r ? r->retval : 0xffffffff;
    }
    uint32_t egress(const Packet& p) { return run(Prog::Egress, p); }
    uint32_t ingress(const Packet& p) { return run(Prog::Ingress, p); }

    int ct_fd() const { return bpf_map__fd(skel_->maps.pbpf_conntrack); }

    std::vector<std::pair<pbpf_ct_key, pbpf_ct_value>> flows() const {
        std::vector<std::pair<pbpf_ct_key, pbpf_ct_value>> out;
        pbpf_ct_key k{}, next{};
        const pbpf_ct_key* prev = nullptr;
        while (bpf_map_get_next_key(ct_fd(), prev, &next) == 0) {
            pbpf_ct_value v{};
            if (bpf_map_lookup_elem(ct_fd(), &next, &v) == 0) out.emplace_back(next, v);
            k = next;
            prev = &k;
        }
        return out;
    }

    Skeleton skel_;
    uint64_t cgroup_ = 0;
};

TEST_F(Conntrack, ReplyOfAnAllowedFlowPassesUnderDefaultIngressDeny) {
    const Packet syn_ack = Packet().ipv4(kPeer, kMe).tcp(80, 40000, kTcpSyn | kTcpAck);
    EXPECT_EQ(ingress(syn_ack), kDrop) << "no flow yet: the ingress default applies";

    EXPECT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn)), kPass);
    EXPECT_EQ(ingress(syn_ack), kPass);
    EXPECT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpAck)), kPass);
    // Another local port, or another peer port, is another flow.
    EXPECT_EQ(ingress(Packet().ipv4(kPeer, kMe).tcp(80, 40001, kTcpAck)), kDrop);
    EXPECT_EQ(ingress(Packet().ipv4(kPeer, kMe).tcp(81, 40000, kTcpAck)), kDrop);

    auto f = flows();
    ASSERT_EQ(f.size(), 1u);
    const auto& [key, val] = f.front();
    EXPECT_EQ(key.workload, cgroup_);
    EXPECT_EQ(key.ifindex, 0u);
    EXPECT_EQ(key.family, PBPF_FAMILY_IPV4);
    EXPECT_EQ(key.proto, IPPROTO_TCP);
    EXPECT_EQ(ntohs(key.local_port), 40000);
    EXPECT_EQ(ntohs(key.remote_port), 80);
    EXPECT_EQ(val.origin, PBPF_DIR_EGRESS);
    EXPECT_EQ(val.state, PBPF_CT_ESTABLISHED);
    EXPECT_EQ(val.persona_id, kPersona);
    EXPECT_EQ(val.rule_id, 1u);
    EXPECT_EQ(val.packets[PBPF_DIR_EGRESS], 2u);
    EXPECT_EQ(val.packets[PBPF_DIR_INGRESS], 1u);
}

TEST_F(Conntrack, Ipv6ReplyPasses) {
    EXPECT_EQ(ingress(Packet().ipv6(kPeer6, kMe6).tcp(80, 40000, kTcpSyn | kTcpAck)), kDrop);
    EXPECT_EQ(egress(Packet().ipv6(kMe6, kPeer6).tcp(40000, 80, kTcpSyn)), kPass);
    EXPECT_EQ(ingress(Packet().ipv6(kPeer6, kMe6).tcp(80, 40000, kTcpSyn | kTcpAck)), kPass);
    EXPECT_EQ(egress(Packet().ipv6(kMe6, kPeer6).icmpv6_echo(7)), kPass);
    EXPECT_EQ(ingress(Packet()
                          .ipv6(kPeer6, kMe6)
                          .icmpv6_echo(7)
                          .mutate("echo reply", [](Bytes& b) { b[14 + 40] = 129; })),
              kPass);
}

TEST_F(Conntrack, DeniedFlowsAreNotTracked) {
    EXPECT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 81, kTcpSyn)), kDrop);
    EXPECT_EQ(ingress(Packet().ipv4(kPeer, kMe).tcp(81, 40000, kTcpSyn | kTcpAck)), kDrop);
    EXPECT_TRUE(flows().empty());
}

TEST_F(Conntrack, EchoReplyPassesForItsIdentifierOnly) {
    auto reply = [](uint16_t id) {
        return Packet().ipv4(kPeer, kMe).icmp_echo(id).mutate("echo reply", [](Bytes& b) {
            b[14 + 20] = 0;
        });
    };
    EXPECT_EQ(ingress(reply(7)), kDrop);
    EXPECT_EQ(egress(Packet().ipv4(kMe, kPeer).icmp_echo(7)), kPass);
    EXPECT_EQ(ingress(reply(7)), kPass);
    EXPECT_EQ(ingress(reply(8)), kDrop);
}

TEST_F(Conntrack, IcmpErrorAboutATrackedFlowIsRelated) {
    EXPECT_EQ(ingress(icmp_unreachable_about(5353, 53)), kDrop) << "no flow: not related";
    EXPECT_EQ(egress(Packet().ipv4(kMe, kPeer).udp(5353, 53)), kPass);
    EXPECT_EQ(ingress(icmp_unreachable_about(5353, 53)), kPass);
    EXPECT_EQ(ingress(icmp_unreachable_about(5354, 53)), kDrop) << "about another flow";

    EXPECT_EQ(ingress(icmp_frag_needed_about_tcp(40000, 80)), kDrop) << "no tcp flow yet";
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn)), kPass);
    EXPECT_EQ(ingress(icmp_frag_needed_about_tcp(40000, 80)), kPass)
        << "8 bytes of the quoted tcp header are enough";
}

TEST_F(Conntrack, PersonaChangeDecidesTrackedFlowsAgain) {
    const Packet out = Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn);
    const Packet back = Packet().ipv4(kPeer, kMe).tcp(80, 40000, kTcpSyn | kTcpAck);
    const Packet dns = Packet().ipv4(kMe, kPeer).udp(5353, 53);
    ASSERT_EQ(egress(out), kPass);
    ASSERT_EQ(egress(dns), kPass);
    ASSERT_EQ(flows().size(), 2u);

    install(kNo80Pdl);  // flip + policy epoch bump, as the agent does
    EXPECT_EQ(ingress(back), kDrop) << "the reply's flow is denied by the new rules";
    EXPECT_EQ(egress(dns), kPass) << "still allowed: the flow survives the change";
    auto f = flows();
    ASSERT_EQ(f.size(), 1u) << "the denied flow's entry is removed";
    EXPECT_EQ(f.front().first.proto, IPPROTO_UDP);

    // Rebinding the workload to another persona re-decides as well.
    ASSERT_TRUE(install_policy(skel_.get(), kPersona + 1, uniform_policy(PBPF_VERDICT_DENY, 1)));
    ASSERT_TRUE(bind_cgroup(skel_.get(), cgroup_, kPersona + 1));
    EXPECT_EQ(egress(dns), kDrop);
}

TEST_F(Conntrack, ExpiredAndClosedFlowsAreDecidedAnew) {
    const Packet back = Packet().ipv4(kPeer, kMe).tcp(80, 40000, kTcpAck);
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn)), kPass);
    ASSERT_EQ(ingress(back), kPass);

    // Age the flow past the half-open timeout: it is gone for the programs.
    auto f = flows();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f.front().second.state, PBPF_CT_ESTABLISHED);
    pbpf_ct_value aged = f.front().second;
    aged.state = PBPF_CT_NEW;
    aged.last_seen_ns -= (PBPF_CT_TCP_SYN_TIMEOUT + 1) * 1000000000ULL;
    ASSERT_EQ(bpf_map_update_elem(ct_fd(), &f.front().first, &aged, BPF_EXIST), 0);
    EXPECT_EQ(ingress(back), kDrop);

    // FIN from both sides closes the flow; a new SYN on the same ports starts a new one.
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn)), kPass);
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpFin | kTcpAck)), kPass);
    EXPECT_EQ(flows().front().second.state, PBPF_CT_CLOSING);
    ASSERT_EQ(ingress(Packet().ipv4(kPeer, kMe).tcp(80, 40000, kTcpFin | kTcpAck)), kPass);
    EXPECT_EQ(flows().front().second.state, PBPF_CT_CLOSED);
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn)), kPass);
    EXPECT_EQ(flows().front().second.state, PBPF_CT_NEW);

    // RST closes at once.
    ASSERT_EQ(ingress(Packet().ipv4(kPeer, kMe).tcp(80, 40000, kTcpRst)), kPass);
    EXPECT_EQ(flows().front().second.state, PBPF_CT_CLOSED);
}

TEST_F(Conntrack, AuditedFlowsAreTrackedAndCountedAsAudited) {
    install(kAuditPdl);
    const Packet out = Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn);
    EXPECT_EQ(egress(out), kPass);
    EXPECT_EQ(ingress(Packet().ipv4(kPeer, kMe).tcp(80, 40000, kTcpAck)), kPass);
    auto f = flows();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_TRUE(f.front().second.flags & PBPF_CT_F_AUDIT);
    auto c = counters_of(skel_.get(), kPersona);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->dir[PBPF_DIR_EGRESS].audited_packets, 1u);
    EXPECT_EQ(c->dir[PBPF_DIR_INGRESS].audited_packets, 1u);
    EXPECT_EQ(c->dir[PBPF_DIR_EGRESS].denied_packets, 0u);
}

TEST_F(Conntrack, LaterFragmentsFollowTheirFirstFragment) {
    auto first = [](uint16_t dport, uint16_t id) {
        return Packet()
            .ipv4(kMe, kPeer)
            .udp(5353, dport)
            .ipv4_fragment(0, true)
            .mutate("ip id", [id](Bytes& b) { b[18] = id >> 8, b[19] = id & 0xff; });
    };
    auto later = [](uint16_t id) {
        return Packet()
            .ipv4(kMe, kPeer)
            .l4_proto(17)
            .payload(64)
            .ipv4_fragment(8, false)
            .mutate("ip id", [id](Bytes& b) { b[18] = id >> 8, b[19] = id & 0xff; });
    };
    EXPECT_EQ(egress(later(0x1111)), kDrop) << "no first fragment yet";
    EXPECT_EQ(egress(first(53, 0x1111)), kPass);
    EXPECT_EQ(egress(later(0x1111)), kPass) << "follows its first fragment";
    EXPECT_EQ(egress(later(0x2222)), kDrop) << "another datagram";
    EXPECT_EQ(egress(first(54, 0x2222)), kDrop) << "udp 54 is denied";
    EXPECT_EQ(egress(later(0x2222)), kDrop) << "so are the rest of its fragments";

    // IPv6: the identification is in the fragment header.
    auto first6 = [](uint16_t dport) {
        return Packet().ipv6(kMe6, kPeer6).ipv6_fragment(0, true, 0xabcd).tcp(40000, dport);
    };
    auto later6 = [](uint32_t id) {
        return Packet().ipv6(kMe6, kPeer6).ipv6_fragment(100, false, id).l4_proto(6).payload(64);
    };
    EXPECT_EQ(egress(later6(0xabcd)), kDrop);
    EXPECT_EQ(egress(first6(80)), kPass);
    EXPECT_EQ(egress(later6(0xabcd)), kPass);
    EXPECT_EQ(egress(later6(0xabce)), kDrop);
}

TEST_F(Conntrack, NeighbourDiscoveryPassesAndPeersPingsAreNotReplies) {
    // A neighbour advertisement (136) from another address than the solicitation went to:
    // no flow covers it; with hop limit 255 it passes, forwarded (hop limit < 255) not.
    auto na = [](uint8_t hop_limit) {
        return Packet()
            .ipv6("fe80::1", kMe6, hop_limit)
            .icmpv6_echo()
            .mutate("type 136", [](Bytes& b) { b[14 + 40] = 136; });
    };
    EXPECT_EQ(ingress(na(255)), kPass);
    EXPECT_EQ(ingress(na(64)), kDrop);

    // Our ping with id 7 lets its replies in, not the peer's own echo requests with id 7.
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).icmp_echo(7)), kPass);
    EXPECT_EQ(ingress(Packet().ipv4(kPeer, kMe).icmp_echo(7)), kDrop);
    EXPECT_EQ(ingress(Packet()
                          .ipv4(kPeer, kMe)
                          .icmp_echo(7)
                          .mutate("echo reply", [](Bytes& b) { b[14 + 20] = 0; })),
              kPass);
}

// The tc programs: bound by (netns cookie, ifindex); under bpf_prog_test_run the skb's
// device is the loopback of the caller's netns.
TEST_F(Conntrack, InterfaceProgramsJudgeIpPassArpAndDropOtherFrames) {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    const int got = ::getsockopt(s, SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, &cookie, &len);
    ::close(s);
    ASSERT_EQ(got, 0);
    pbpf_if_key k{};
    k.netns_cookie = cookie;
    k.ifindex = 1;  // lo
    pbpf_binding b{};
    b.persona_id = kPersona;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.pbpf_if_bindings), &k, &b, BPF_ANY), 0);

    // tc ingress is the workload's egress.
    auto run_tc = [&](const Packet& p) {
        Bytes frame = p.bytes();
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                    .data_size_in = static_cast<__u32>(frame.size()), .repeat = 1);
        EXPECT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.pbpf_tc_ingress), &opts), 0);
        return opts.retval;
    };
    constexpr uint32_t kTcOk = 0, kTcShot = 2;
    EXPECT_EQ(run_tc(Packet().ipv4(kMe, kPeer).tcp(40000, 80)), kTcOk);
    EXPECT_EQ(run_tc(Packet().ipv4(kMe, kPeer).tcp(40000, 22)), kTcShot);
    EXPECT_EQ(run_tc(Packet().eth().ethertype(0x0806).payload(28)), kTcOk) << "ARP";
    EXPECT_EQ(run_tc(Packet().eth().ethertype(0x88cc).payload(46)), kTcShot) << "LLDP";
    EXPECT_EQ(run_tc(Packet().eth().ethertype(0x8100).payload(46)), kTcShot) << "VLAN tag";
    auto f = flows();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f.front().first.ifindex, 1u);
    EXPECT_EQ(f.front().first.workload, cookie);
}

// Events ------------------------------------------------------------------------------

class Events : public Conntrack {
  protected:
    void SetUp() override {
        Conntrack::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        set_rate(1000, 1000);
        ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.pbpf_events), &Events::on_event, this,
                                 nullptr);
        ASSERT_NE(ring_, nullptr);
    }
    void TearDown() override {
        if (ring_) ring_buffer__free(ring_);
    }

    void set_rate(uint32_t rate, uint32_t burst) {
        uint32_t zero = 0;
        pbpf_globals g{};
        ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.pbpf_globals), &zero, &g), 0);
        g.event_rate = rate;
        g.event_burst = burst;
        ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.pbpf_globals), &zero, &g, BPF_ANY),
                  0);
    }

    static int on_event(void* ctx, void* data, size_t size) {
        auto* self = static_cast<Events*>(ctx);
        if (size >= sizeof(pbpf_flow_event)) {
            pbpf_flow_event e;
            std::memcpy(&e, data, sizeof e);
            self->events_.push_back(e);
        }
        return 0;
    }
    std::vector<pbpf_flow_event> drain() {
        events_.clear();
        ring_buffer__consume(ring_);
        return events_;
    }
    pbpf_event_state state_sum() {
        int ncpu = libbpf_num_possible_cpus();
        std::vector<pbpf_event_state> per(static_cast<size_t>(ncpu));
        uint32_t zero = 0;
        pbpf_event_state sum{};
        EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.pbpf_event_state), &zero, per.data()),
                  0);
        for (const auto& s : per) {
            sum.emitted += s.emitted;
            sum.rate_limited += s.rate_limited;
            sum.ring_full += s.ring_full;
        }
        return sum;
    }

    ring_buffer* ring_ = nullptr;
    std::vector<pbpf_flow_event> events_;
};

TEST_F(Events, DropsAndNewFlowsAreReportedEstablishedPacketsAreNot) {
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpSyn)), kPass);
    ASSERT_EQ(ingress(Packet().ipv4(kPeer, kMe).tcp(80, 40000, kTcpAck)), kPass);
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40000, 80, kTcpAck)), kPass);
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(40001, 22, kTcpSyn)), kDrop);

    auto ev = drain();
    ASSERT_EQ(ev.size(), 2u);
    const auto& allowed = ev[0];
    EXPECT_EQ(allowed.verdict, PBPF_EV_ALLOWED);
    EXPECT_EQ(allowed.reason, PBPF_REASON_RULE);
    EXPECT_EQ(allowed.rule_id, 1u);
    EXPECT_EQ(allowed.dir, PBPF_DIR_EGRESS);
    EXPECT_EQ(allowed.persona_id, kPersona);
    EXPECT_EQ(allowed.workload, cgroup_);
    EXPECT_EQ(allowed.family, PBPF_FAMILY_IPV4);
    EXPECT_EQ(allowed.proto, IPPROTO_TCP);
    EXPECT_EQ(allowed.tcp_flags, kTcpSyn);
    EXPECT_EQ(ntohs(allowed.sport), 40000);
    EXPECT_EQ(ntohs(allowed.dport), 80);
    in_addr a{};
    ASSERT_EQ(inet_pton(AF_INET, kPeer, &a), 1);
    EXPECT_EQ(std::memcmp(allowed.daddr, &a, 4), 0);

    const auto& dropped = ev[1];
    EXPECT_EQ(dropped.verdict, PBPF_EV_DROPPED);
    EXPECT_EQ(dropped.reason, PBPF_REASON_DEFAULT);
    EXPECT_EQ(dropped.rule_id, 0u);
    EXPECT_EQ(ntohs(dropped.dport), 22);
}

TEST_F(Events, TheRateLimitSuppressesAndCounts) {
    set_rate(1, 4);  // a burst of 5, then one per second
    const auto before = state_sum();
    for (uint16_t i = 0; i < 50; ++i)
        ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(41000 + i, 22, kTcpSyn)), kDrop);
    const auto after = state_sum();
    auto ev = drain();
    // Each CPU has its own bucket and the test may migrate: at most one burst per CPU.
    const auto ncpu = static_cast<size_t>(libbpf_num_possible_cpus());
    EXPECT_GE(ev.size(), 5u);
    EXPECT_LE(ev.size(), 6u * ncpu);
    EXPECT_EQ(after.emitted - before.emitted, ev.size());
    EXPECT_EQ(after.rate_limited - before.rate_limited, 50 - ev.size());

    set_rate(0, 0);  // off
    ASSERT_EQ(egress(Packet().ipv4(kMe, kPeer).tcp(42000, 22, kTcpSyn)), kDrop);
    EXPECT_TRUE(drain().empty());
}

}  // namespace
}  // namespace pbpf::test
