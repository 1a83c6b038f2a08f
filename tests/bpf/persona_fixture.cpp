// Shared pieces of the persona.bpf.o tests (see persona_fixture.h).
#include "tests/bpf/persona_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <stdexcept>

#include "maps/policy_map.h"

namespace pbpf::test {

namespace {

std::string g_libbpf_log;  // collected while loading, shown only if the load fails

int collect_libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    char buf[1024];
    const int n = std::vsnprintf(buf, sizeof buf, fmt, args);
    g_libbpf_log += buf;
    return n;
}

}  // namespace

Result<Skeleton> load_persona_skeleton() {
    g_libbpf_log.clear();
    auto old = libbpf_set_print(collect_libbpf_log);
    Skeleton skel(persona__open_and_load());
    const int err = errno;
    libbpf_set_print(old);
    if (!skel) return sys_error("load persona.bpf.o: " + g_libbpf_log, err);
    return skel;
}

const char* prog_name(Prog p) { return p == Prog::Ingress ? "ingress" : "egress"; }

Result<RunResult> run_prog(const persona* skel, Prog prog, const Bytes& frame, int repeat) {
    const bpf_program* p =
        prog == Prog::Ingress ? skel->progs.pbpf_cgroup_ingress : skel->progs.pbpf_cgroup_egress;
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = repeat);
    if (int err = bpf_prog_test_run_opts(bpf_program__fd(p), &opts); err != 0) {
        return sys_error(std::string("bpf_prog_test_run_opts on ") + prog_name(prog), err);
    }
    return RunResult{opts.retval, opts.duration};
}

Result<void> bind_cgroup(const persona* skel, uint64_t cgroup_id, uint32_t persona_id,
                         uint32_t counter_slot) {
    pbpf_binding b{};
    b.persona_id = persona_id;
    b.counter_slot = counter_slot;
    if (bpf_map__update_elem(skel->maps.pbpf_bindings, &cgroup_id, sizeof cgroup_id, &b, sizeof b,
                             BPF_ANY) != 0) {
        return sys_error("bind cgroup " + std::to_string(cgroup_id));
    }
    return {};
}

Result<void> unbind_cgroup(const persona* skel, uint64_t cgroup_id) {
    if (bpf_map__delete_elem(skel->maps.pbpf_bindings, &cgroup_id, sizeof cgroup_id, 0) != 0 &&
        errno != ENOENT) {
        return sys_error("unbind cgroup " + std::to_string(cgroup_id));
    }
    return {};
}

Result<uint64_t> bump_binding_epoch(const persona* skel) {
    uint32_t zero = 0;
    pbpf_globals g{};
    if (bpf_map__lookup_elem(skel->maps.pbpf_globals, &zero, sizeof zero, &g, sizeof g, 0) != 0) {
        return sys_error("read pbpf_globals");
    }
    ++g.binding_epoch;
    if (bpf_map__update_elem(skel->maps.pbpf_globals, &zero, sizeof zero, &g, sizeof g, BPF_ANY) !=
        0) {
        return sys_error("write pbpf_globals");
    }
    return g.binding_epoch;
}

Result<uint64_t> bump_policy_epoch(const persona* skel) {
    uint32_t zero = 0;
    pbpf_globals g{};
    if (bpf_map__lookup_elem(skel->maps.pbpf_globals, &zero, sizeof zero, &g, sizeof g, 0) != 0)
        return sys_error("read pbpf_globals");
    ++g.policy_epoch;
    if (bpf_map__update_elem(skel->maps.pbpf_globals, &zero, sizeof zero, &g, sizeof g, BPF_ANY) !=
        0)
        return sys_error("write pbpf_globals");
    return g.policy_epoch;
}

Result<void> install_policy(const persona* skel, uint32_t persona_id,
                            const std::vector<PolicyEntry>& entries, const std::string& name) {
    PersonaImage image;
    image.name = name;
    image.entries = entries;
    auto map = build_policy_map(image);
    if (!map) return map.error();
    const uint32_t fd = static_cast<uint32_t>(map->get());
    if (bpf_map__update_elem(skel->maps.pbpf_policies, &persona_id, sizeof persona_id, &fd,
                             sizeof fd, BPF_ANY) != 0) {
        return sys_error("install policy of persona id " + std::to_string(persona_id));
    }
    return {};  // the outer map holds its own reference; our fd closes here
}

Result<void> remove_policy(const persona* skel, uint32_t persona_id) {
    if (bpf_map__delete_elem(skel->maps.pbpf_policies, &persona_id, sizeof persona_id, 0) != 0 &&
        errno != ENOENT) {
        return sys_error("remove policy of persona id " + std::to_string(persona_id));
    }
    return {};
}

Result<pbpf_counters> counters_of(const persona* skel, uint32_t persona_id) {
    return read_counters(bpf_map__fd(skel->maps.pbpf_counters), persona_id);
}

std::array<uint8_t, 16> v4(const char* text) {
    std::array<uint8_t, 16> a{};
    if (inet_pton(AF_INET, text, a.data()) != 1) throw std::invalid_argument(text);
    return a;
}

std::array<uint8_t, 16> v6(const char* text) {
    std::array<uint8_t, 16> a{};
    if (inet_pton(AF_INET6, text, a.data()) != 1) throw std::invalid_argument(text);
    return a;
}

namespace {

struct PortRule {
    pbpf_proto proto;
    uint16_t port;
    unsigned plen;
    pbpf_verdict verdict;
    uint32_t rule;
};

void add_class(std::vector<PolicyEntry>& out, uint32_t class_id, bool audit,
               std::initializer_list<PortRule> rules) {
    for (const auto& r : rules) {
        out.push_back(make_port_entry(class_id, r.proto, r.port, r.plen, r.verdict, r.rule, audit));
    }
}

constexpr auto A = PBPF_VERDICT_ALLOW;
constexpr auto D = PBPF_VERDICT_DENY;
constexpr auto TCP = PBPF_PROTO_TCP;
constexpr auto UDP = PBPF_PROTO_UDP;
constexpr auto ICMP = PBPF_PROTO_ICMP;
constexpr auto ICMP6 = PBPF_PROTO_ICMPV6;
constexpr auto OTHER = PBPF_PROTO_OTHER;

}  // namespace

// What lowering would produce for (rule numbers as in the PortRule rows):
//   egress: default deny; 1 allow tcp 443; 2 allow tcp 8000-8015 to 10/8; 3 allow udp 53
//   to 10/8 and 2001:db8::/32; 4 allow icmp to 10/8, icmpv6 to 2001:db8::/32; 5 deny tcp
//   443 to 10.1/16; 7 allow tcp to 2001:db8::/32; 8 allow other to 2001:db8::/32.
//   ingress: default allow; 6 deny tcp 22 (IPv4 only).
std::vector<PolicyEntry> web_policy(bool audit) {
    std::vector<PolicyEntry> e;
    e.push_back(make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, v4("0.0.0.0").data(), 0, 1));
    e.push_back(make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, v4("10.0.0.0").data(), 8, 2));
    e.push_back(make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, v4("10.1.0.0").data(), 16, 3));
    e.push_back(make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV6, v6("::").data(), 0, 4));
    e.push_back(make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV6, v6("2001:db8::").data(), 32, 5));
    e.push_back(make_addr_entry(PBPF_DIR_INGRESS, PBPF_FAMILY_IPV4, v4("0.0.0.0").data(), 0, 6));
    e.push_back(make_addr_entry(PBPF_DIR_INGRESS, PBPF_FAMILY_IPV6, v6("::").data(), 0, 7));
    add_class(e, 1, audit,
              {{TCP, 443, 16, A, 1},
               {TCP, 0, 0, D, 0},
               {UDP, 0, 0, D, 0},
               {ICMP, 0, 0, D, 0},
               {OTHER, 0, 0, D, 0}});
    add_class(e, 2, audit,
              {{TCP, 443, 16, A, 1},
               {TCP, 8000, 12, A, 2},
               {TCP, 0, 0, D, 0},
               {UDP, 53, 16, A, 3},
               {UDP, 0, 0, D, 0},
               {ICMP, 0, 0, A, 4},
               {OTHER, 0, 0, D, 0}});
    add_class(e, 3, audit,
              {{TCP, 443, 16, D, 5},
               {TCP, 8000, 12, A, 2},
               {TCP, 0, 0, D, 0},
               {UDP, 53, 16, A, 3},
               {UDP, 0, 0, D, 0},
               {ICMP, 0, 0, A, 4},
               {OTHER, 0, 0, D, 0}});
    add_class(e, 4, audit,
              {{TCP, 443, 16, A, 1},
               {TCP, 0, 0, D, 0},
               {UDP, 0, 0, D, 0},
               {ICMP6, 0, 0, D, 0},
               {OTHER, 0, 0, D, 0}});
    add_class(e, 5, audit,
              {{TCP, 0, 0, A, 7},
               {UDP, 53, 16, A, 3},
               {UDP, 0, 0, D, 0},
               {ICMP6, 0, 0, A, 4},
               {OTHER, 0, 0, A, 8}});
    add_class(e, 6, audit,
              {{TCP, 22, 16, D, 6},
               {TCP, 0, 0, A, 0},
               {UDP, 0, 0, A, 0},
               {ICMP, 0, 0, A, 0},
               {OTHER, 0, 0, A, 0}});
    add_class(e, 7, audit,
              {{TCP, 0, 0, A, 0}, {UDP, 0, 0, A, 0}, {ICMP6, 0, 0, A, 0}, {OTHER, 0, 0, A, 0}});
    std::sort(e.begin(), e.end());
    return e;
}

// Every (direction, family) is one class whose every bucket takes `verdict`.
std::vector<PolicyEntry> uniform_policy(pbpf_verdict verdict, uint32_t rule_id) {
    std::vector<PolicyEntry> e;
    uint32_t cls = 1;
    for (auto dir : {PBPF_DIR_INGRESS, PBPF_DIR_EGRESS}) {
        for (auto fam : {PBPF_FAMILY_IPV4, PBPF_FAMILY_IPV6}) {
            e.push_back(make_addr_entry(dir, fam, v6("::").data(), 0, cls));
            for (auto proto : {TCP, UDP, OTHER, fam == PBPF_FAMILY_IPV4 ? ICMP : ICMP6}) {
                e.push_back(make_port_entry(cls, proto, 0, 0, verdict, rule_id, false));
            }
            ++cls;
        }
    }
    std::sort(e.begin(), e.end());
    return e;
}

std::string describe(const pbpf_counters& c) {
    std::string s;
    for (int d = 0; d < PBPF_DIR_COUNT; ++d) {
        const auto& x = c.dir[d];
        char buf[200];
        std::snprintf(buf, sizeof buf, "%s%s allowed %llu/%llu denied %llu/%llu audited %llu/%llu",
                      d ? " | " : "", d == PBPF_DIR_INGRESS ? "ingress" : "egress",
                      (unsigned long long)x.allowed_packets, (unsigned long long)x.allowed_bytes,
                      (unsigned long long)x.denied_packets, (unsigned long long)x.denied_bytes,
                      (unsigned long long)x.audited_packets, (unsigned long long)x.audited_bytes);
        s += buf;
    }
    return s;
}

}  // namespace pbpf::test
