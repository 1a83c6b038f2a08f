// persona_bench: per-packet cost of persona.bpf.o's egress program, measured by the kernel
// under bpf_prog_test_run_opts (repeat = kRepeat, duration = average ns per run), next to
// a no-op cgroup_skb program, with 10 or 10,000 bound cgroups (Bindings/*); and the cost of
// compiling, lowering and writing personas of 10 to 100,000 rules. Nothing is attached
// anywhere; the only system change is a private cgroup tree the process sits in during the
// run (see bench_cgroup.h). docs/benchmarks.md has the commands and results.
#include <benchmark/benchmark.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <string>

#include "agent/config.h"
#include "agent/geo.h"
#include "agent/geo_db.h"
#include "bench/bench_cgroup.h"
#include "maps/abi/binding.h"
#include "maps/abi/conntrack.h"
#include "maps/policy_map.h"
#include "noop.skel.h"
#include "parse_only.skel.h"
#include "pdl-compiler/compiler.h"
#include "persona.skel.h"
#include "tests/bpf/packet_builder.h"

namespace pbpf::bench {
namespace {

using test::Bytes;
using test::Packet;

// Packets per bpf_prog_test_run_opts call, and calls per benchmark repetition. The
// iteration count is fixed so that one repetition is one whole trial (setup included).
constexpr int kRepeat = 20000;
constexpr int kCalls = 250;
// Single-packet calls (repeat = 1) of the "new flow, allowed" benchmarks: the conntrack
// entry the packet creates is deleted between calls, outside the kernel's timed region.
constexpr int kSingleCalls = 20000;

constexpr uint32_t kPass = 1;
constexpr uint32_t kDrop = 0;
constexpr uint32_t kWebPersona = 1;  // the small persona of the path benchmarks
constexpr uint32_t kNoTrie = 2;      // bound, but pbpf_policies[2] stays empty

// --- loading -------------------------------------------------------------------------

std::string g_libbpf_log;  // collected while loading, shown only if a load fails

int collect_libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    char buf[1024];
    const int n = std::vsnprintf(buf, sizeof buf, fmt, args);
    g_libbpf_log += buf;
    return n;
}

template <typename Skel>
Skel* load(Skel* (*open_and_load)(), const char* what) {
    g_libbpf_log.clear();
    auto old = libbpf_set_print(collect_libbpf_log);
    Skel* s = open_and_load();
    libbpf_set_print(old);
    if (!s) std::fprintf(stderr, "persona_bench: load %s failed:\n%s", what, g_libbpf_log.c_str());
    return s;
}

struct Env {
    persona* skel = nullptr;
    noop* baseline = nullptr;
    parse_only* parse_baseline = nullptr;
    std::unique_ptr<CgroupTree> tree;

    ~Env() {
        if (skel) persona__destroy(skel);
        if (baseline) noop__destroy(baseline);
        if (parse_baseline) parse_only__destroy(parse_baseline);
    }
};
Env* g_env = nullptr;

// --- kernel helpers ------------------------------------------------------------------

struct Run {
    uint32_t retval = 0;
    uint32_t duration_ns = 0;  // kernel's average per repetition
};

Result<Run> test_run(int prog_fd, const Bytes& frame, int repeat) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = repeat);
    if (int err = bpf_prog_test_run_opts(prog_fd, &opts); err != 0) {
        return sys_error("bpf_prog_test_run_opts", err);
    }
    return Run{opts.retval, opts.duration};
}

int egress_fd() { return bpf_program__fd(g_env->skel->progs.pbpf_cgroup_egress); }
int noop_fd() { return bpf_program__fd(g_env->baseline->progs.pbpf_bench_noop); }
int parse_only_fd() { return bpf_program__fd(g_env->parse_baseline->progs.pbpf_bench_parse_only); }
int parse_flow_lookup_fd() {
    return bpf_program__fd(g_env->parse_baseline->progs.pbpf_bench_parse_flow_lookup);
}

// Number of entries of a hash map with keys of type Key (walks the keys).
template <typename Key>
int map_entries(int fd) {
    Key key{}, next{};
    int n = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        ++n;
        key = next;
        prev = &key;
    }
    return n;
}

int conntrack_entries() {
    return map_entries<pbpf_ct_key>(bpf_map__fd(g_env->skel->maps.pbpf_conntrack));
}

// Deletes every entry of pbpf_conntrack; returns how many it deleted, -1 on error.
int flush_conntrack() {
    const int fd = bpf_map__fd(g_env->skel->maps.pbpf_conntrack);
    pbpf_ct_key key{};
    int n = 0;
    while (bpf_map_get_next_key(fd, nullptr, &key) == 0) {
        if (bpf_map_delete_elem(fd, &key) != 0) return -1;
        ++n;
    }
    return n;
}

Result<void> set_binding(uint64_t cgroup_id, uint32_t persona_id) {
    bpf_map* m = g_env->skel->maps.pbpf_bindings;
    if (persona_id == 0) {
        if (bpf_map__delete_elem(m, &cgroup_id, sizeof cgroup_id, 0) != 0 && errno != ENOENT) {
            return sys_error("unbind cgroup " + std::to_string(cgroup_id));
        }
        return {};
    }
    pbpf_binding b{};
    b.persona_id = persona_id;
    b.counter_slot = 1;  // counted per binding, as the agent's bindings are
    if (bpf_map__update_elem(m, &cgroup_id, sizeof cgroup_id, &b, sizeof b, BPF_ANY) != 0) {
        return sys_error("bind cgroup " + std::to_string(cgroup_id));
    }
    return {};
}

// Sets the bindings of the tree's a and b and bumps the binding epoch, as the binder does.
Result<void> bind_tree(uint32_t a_persona, uint32_t b_persona) {
    if (auto r = set_binding(g_env->tree->a_id(), a_persona); !r) return r;
    if (auto r = set_binding(g_env->tree->b_id(), b_persona); !r) return r;
    bpf_map* m = g_env->skel->maps.pbpf_globals;
    uint32_t zero = 0;
    pbpf_globals g{};
    if (bpf_map__lookup_elem(m, &zero, sizeof zero, &g, sizeof g, 0) != 0) {
        return sys_error("read pbpf_globals");
    }
    ++g.binding_epoch;
    if (bpf_map__update_elem(m, &zero, sizeof zero, &g, sizeof g, BPF_ANY) != 0) {
        return sys_error("write pbpf_globals");
    }
    return {};
}

Result<PersonaImage> compile_one(const std::string& filename, const std::string& text) {
    auto out = pdl::compile({filename, text});
    if (!out.ok() || out.personas.size() != 1) {
        return Error{EINVAL, "compile " + filename + ":\n" + out.diagnostics};
    }
    return pdl::lower(out.personas[0]);
}

// A fresh policy map with the image, then one write into pbpf_policies (the agent's apply).
Result<void> install(uint32_t persona_id, const PersonaImage& image) {
    auto map = build_policy_map(image);
    if (!map) return map.error();
    const uint32_t fd = static_cast<uint32_t>(map->get());
    if (bpf_map__update_elem(g_env->skel->maps.pbpf_policies, &persona_id, sizeof persona_id, &fd,
                             sizeof fd, BPF_ANY) != 0) {
        return sys_error("install policy of persona id " + std::to_string(persona_id));
    }
    return {};  // the outer map holds its own reference
}

void uninstall(uint32_t persona_id) {
    (void)bpf_map__delete_elem(g_env->skel->maps.pbpf_policies, &persona_id, sizeof persona_id, 0);
}

// --- the measurement -----------------------------------------------------------------

// Runs `frame` kCalls x kRepeat times. The benchmark's (manual) time is the kernel's time
// for one call of kRepeat packets; the ns_per_pkt counter is the kernel's average per
// packet, the number to read.
void measure(benchmark::State& state, int prog_fd, const Bytes& frame, uint32_t want) {
    auto first = test_run(prog_fd, frame, 1);  // also fills the resolve cache
    if (!first) return state.SkipWithError(first.error().what().c_str());
    if (first->retval != want) {
        return state.SkipWithError(
            ("verdict " + std::to_string(first->retval) + ", expected " + std::to_string(want))
                .c_str());
    }
    double sum_ns = 0;
    for (auto _ : state) {
        auto r = test_run(prog_fd, frame, kRepeat);
        if (!r || r->retval != want) {
            state.SkipWithError(r ? "verdict changed during the run" : r.error().what().c_str());
            break;
        }
        sum_ns += r->duration_ns;
        state.SetIterationTime(double(r->duration_ns) * kRepeat * 1e-9);
    }
    state.counters["ns_per_pkt"] = benchmark::Counter(sum_ns, benchmark::Counter::kAvgIterations);
    state.counters["frame_B"] = double(frame.size());
    state.SetItemsProcessed(state.iterations() * kRepeat);
}

// 64-byte IPv4/TCP frames (14 + 20 + 20 + 10 payload).
Packet tcp4(const std::string& dst, uint16_t dport) {
    return Packet().eth().ipv4("192.0.2.10", dst).tcp(40000, dport).payload(10);
}

// The persona of the path benchmarks: default egress deny, an allow, a nested deny.
constexpr const char* kWebPdl = R"(
persona bench-web {
  security {
    mode enforce
    default ingress allow
    default egress deny
    allow egress tcp port 443 to { 198.18.0.0/15, 2001:db8::/32 }
    allow egress tcp port 8000-8015 to 198.18.0.0/15
    allow egress udp port 53 to 198.18.0.53
    deny egress tcp port 443 to 198.18.10.0/24
  }
}
)";

void BM_Baseline_NoopProgram(benchmark::State& state) {
    measure(state, noop_fd(), tcp4("198.18.2.3", 443).bytes(), kPass);
}

// The same headers read as persona.bpf.c's parse(), nothing else (bench/parse_only.bpf.c).
void BM_Baseline_ParseOnlyProgram(benchmark::State& state) {
    measure(state, parse_only_fd(), tcp4("198.18.2.3", 443).bytes(), kPass);
}

// The same parse plus one hit in a flow table (bench/parse_only.bpf.c): the least any
// design that looks a flow up per packet can cost.
void BM_Baseline_ParseFlowLookupProgram(benchmark::State& state) {
    measure(state, parse_flow_lookup_fd(), tcp4("198.18.2.3", 443).bytes(), kPass);
}

// Runs `frame` once per iteration (repeat = 1), calling `between` after each call, outside
// the kernel's timed region. ns_per_pkt is the kernel's duration of single runs: one run
// plus the timer's own overhead (one ktime read and the loop around the program), which
// Single/noop_program measures alone.
template <typename Between>
void measure_single(benchmark::State& state, int prog_fd, const Bytes& frame, uint32_t want,
                    Between between) {
    double sum_ns = 0;
    for (auto _ : state) {
        auto r = test_run(prog_fd, frame, 1);
        if (!r || r->retval != want) {
            state.SkipWithError(r ? "unexpected verdict" : r.error().what().c_str());
            break;
        }
        sum_ns += r->duration_ns;
        state.SetIterationTime(double(r->duration_ns) * 1e-9);
        if (!between()) {
            state.SkipWithError("between calls: conntrack delete failed");
            break;
        }
    }
    state.counters["ns_per_pkt"] = benchmark::Counter(sum_ns, benchmark::Counter::kAvgIterations);
    state.counters["frame_B"] = double(frame.size());
    state.SetItemsProcessed(state.iterations());
}

void BM_Single_NoopProgram(benchmark::State& state) {
    measure_single(state, noop_fd(), tcp4("198.18.2.3", 443).bytes(), kPass, [] { return true; });
}
void BM_Single_ParseOnlyProgram(benchmark::State& state) {
    measure_single(state, parse_only_fd(), tcp4("198.18.2.3", 443).bytes(), kPass,
                   [] { return true; });
}

void path_case(benchmark::State& state, uint32_t a_persona, uint32_t b_persona,
               const Packet& packet, uint32_t want) {
    if (auto r = bind_tree(a_persona, b_persona); !r) {
        return state.SkipWithError(r.error().what().c_str());
    }
    measure(state, egress_fd(), packet.bytes(), want);
    (void)bind_tree(0, 0);
}

void BM_Persona_Unbound(benchmark::State& state) {
    path_case(state, 0, 0, tcp4("198.18.2.3", 443), kPass);
}
void BM_Persona_BoundAllow(benchmark::State& state) {
    path_case(state, 0, kWebPersona, tcp4("198.18.2.3", 443), kPass);
}
void BM_Persona_BoundDeny(benchmark::State& state) {
    path_case(state, 0, kWebPersona, tcp4("198.18.10.7", 443), kDrop);
}
// Everything but the policy lookups: binding, parse, pbpf_policies miss, fail closed.
// bound_deny minus this is roughly the cost of the ADDR and PORT lookups.
void BM_Persona_BoundMissingPolicy(benchmark::State& state) {
    path_case(state, 0, kNoTrie, tcp4("198.18.2.3", 443), kDrop);
}
// b unbound, its parent a bound: the resolve cache answers (first packet walked).
void BM_Persona_InheritedAllow(benchmark::State& state) {
    path_case(state, kWebPersona, 0, tcp4("198.18.2.3", 443), kPass);
}
void BM_Persona_BoundAllowIpv6TwoExtHeaders(benchmark::State& state) {
    path_case(state, 0, kWebPersona,
              Packet()
                  .ipv6("2001:db8:ffff::10", "2001:db8::1")
                  .ipv6_ext(test::kIpv6HopByHop, 8)
                  .ipv6_ext(test::kIpv6DestOpts, 24)
                  .tcp(40000, 443)
                  .payload(10),
              kPass);
}

// --- personas by size ------------------------------------------------------------------

// N rules over C = ceil(sqrt(N)) distinct /24s (198.18.0.0/15 holds 512) and P = ceil(N/C)
// distinct ports per /24 (from 1024): rule k is tcp port 1024 + k % P to the (k / P)-th
// /24, a deny when k % 4 == 3, else an allow. Every (CIDR, port) pair is distinct. The
// CIDRs go through one-element sets to keep 100,000 rules under the 4 MiB source limit.
struct Generated {
    std::string text;
    Packet allow;  // the last allow rule (deep in the set)
    Packet deny;   // the last deny rule
    Packet miss;   // same /24, a port no rule names: the default (deny)
    int cidrs = 0, ports = 0;
};

std::string slash24(int c) {
    return "198." + std::to_string(18 + c / 256) + "." + std::to_string(c % 256) + ".0";
}
std::string host_in(int c) {
    return "198." + std::to_string(18 + c / 256) + "." + std::to_string(c % 256) + ".77";
}

const Generated& generated(int n) {
    static std::map<int, Generated> cache;
    if (auto it = cache.find(n); it != cache.end()) return it->second;
    Generated g;
    g.cidrs = static_cast<int>(std::ceil(std::sqrt(double(n))));
    g.ports = (n + g.cidrs - 1) / g.cidrs;
    std::string& t = g.text;
    t.reserve(size_t(n) * 40 + size_t(g.cidrs) * 40 + 256);
    t += "# generated by persona_bench: " + std::to_string(n) + " rules\n";
    for (int c = 0; c < g.cidrs; ++c)
        t += "set n" + std::to_string(c) + " = { " + slash24(c) + "/24 }\n";
    t += "persona bench-" + std::to_string(n) + " {\nsecurity {\nmode enforce\n";
    t += "default ingress allow\ndefault egress deny\n";
    int allow_k = -1, deny_k = -1;
    for (int k = 0; k < n; ++k) {
        const bool deny = k % 4 == 3;
        (deny ? deny_k : allow_k) = k;
        t += deny ? "deny" : "allow";
        t += " egress tcp port " + std::to_string(1024 + k % g.ports) + " to $n" +
             std::to_string(k / g.ports) + "\n";
    }
    t += "}\n}\n";
    g.allow = tcp4(host_in(allow_k / g.ports), uint16_t(1024 + allow_k % g.ports));
    g.deny = tcp4(host_in(deny_k / g.ports), uint16_t(1024 + deny_k % g.ports));
    g.miss = tcp4(host_in(allow_k / g.ports), uint16_t(1024 + g.ports));
    return cache.emplace(n, std::move(g)).first->second;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// How a Rules benchmark sends its packet (see docs/benchmarks.md, "Firewall: per-packet
// cost with connection tracking").
enum class Flow {
    // The deep allow, sent once first (that creates its conntrack entry), then repeated:
    // every measured packet is a conntrack hit. Checked: one entry after the run.
    kEstablished,
    // The last deny rule: a denied flow gets no conntrack entry, so every repetition misses
    // conntrack and walks the whole new-flow path (parse, conntrack miss, ADDR and PORT
    // lookups, counter, event attempt). Checked: no entry after the run.
    kNewDenied,
    // A port no rule names: the same path, decided by the default (deny).
    kNewDefaultDeny,
    // The deep allow, one packet per call (repeat = 1), its conntrack entry deleted after
    // every call outside the timed region: every measured packet is a new allowed flow
    // (miss, both lookups, LRU insert). Includes the single-call timer overhead.
    kNewAllowedSingle,
    // The last deny rule, one packet per call: the new-flow path without the insert,
    // under the same single-call timer.
    kNewDeniedSingle,
    // The deep allow, one packet per call, entry kept: the established path under the
    // same single-call timer, to subtract from kNewAllowedSingle.
    kEstablishedSingle,
};

// One repetition: compile, lower, write a fresh policy map (each timed once), bind b, check the
// verdicts of the probes, measure.
void BM_Rules(benchmark::State& state, Flow flow) {
    const int n = static_cast<int>(state.range(0));
    const uint32_t persona_id = 100 + static_cast<uint32_t>(std::log10(double(n)));
    const Generated& g = generated(n);

    auto t0 = std::chrono::steady_clock::now();
    auto out = pdl::compile({"bench.pdl", g.text});
    const double compile_ms = ms_since(t0);
    if (!out.ok() || out.personas.size() != 1) {
        return state.SkipWithError(("compile: " + out.diagnostics.substr(0, 2000)).c_str());
    }
    t0 = std::chrono::steady_clock::now();
    const PersonaImage image = pdl::lower(out.personas[0]);
    const double lower_ms = ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    if (auto r = install(persona_id, image); !r)
        return state.SkipWithError(r.error().what().c_str());
    const double write_ms = ms_since(t0);

    if (auto r = bind_tree(0, persona_id); !r) return state.SkipWithError(r.error().what().c_str());
    auto fail = [&](const std::string& what) {
        (void)bind_tree(0, 0);
        uninstall(persona_id);
        (void)flush_conntrack();
        state.SkipWithError(what.c_str());
    };
    if (flush_conntrack() < 0) return fail("flush conntrack");
    for (auto [packet, want, what] :
         {std::tuple{&g.deny, kDrop, "deny rule"}, std::tuple{&g.miss, kDrop, "default deny"}}) {
        auto r = test_run(egress_fd(), packet->bytes(), 1);
        if (!r || r->retval != want) {
            return fail(std::string("probe ") + what + " " + packet->summary() +
                        ": wrong verdict or run failed");
        }
    }
    if (conntrack_entries() != 0) return fail("a denied probe left a conntrack entry");

    int want_entries = 0;
    switch (flow) {
        case Flow::kEstablished:
            measure(state, egress_fd(), g.allow.bytes(), kPass);
            want_entries = 1;
            break;
        case Flow::kNewDenied:
            measure(state, egress_fd(), g.deny.bytes(), kDrop);
            break;
        case Flow::kNewDefaultDeny:
            measure(state, egress_fd(), g.miss.bytes(), kDrop);
            break;
        case Flow::kNewAllowedSingle: {
            // The entry's key, from one untimed packet; deleting it by key after every
            // call is one syscall (walking the LRU map to find it would cost far more).
            auto first = test_run(egress_fd(), g.allow.bytes(), 1);
            if (!first || first->retval != kPass) return fail("first allowed packet");
            const int fd = bpf_map__fd(g_env->skel->maps.pbpf_conntrack);
            pbpf_ct_key key{};
            if (bpf_map_get_next_key(fd, nullptr, &key) != 0 || bpf_map_delete_elem(fd, &key) != 0)
                return fail("conntrack entry of the allowed packet not found");
            measure_single(state, egress_fd(), g.allow.bytes(), kPass,
                           [fd, &key] { return bpf_map_delete_elem(fd, &key) == 0; });
            break;
        }
        case Flow::kNewDeniedSingle:
            measure_single(state, egress_fd(), g.deny.bytes(), kDrop, [] { return true; });
            break;
        case Flow::kEstablishedSingle: {
            auto first = test_run(egress_fd(), g.allow.bytes(), 1);  // creates the entry
            if (!first || first->retval != kPass) return fail("first allowed packet");
            measure_single(state, egress_fd(), g.allow.bytes(), kPass, [] { return true; });
            want_entries = 1;
            break;
        }
    }
    if (!state.error_occurred() && conntrack_entries() != want_entries) {
        return fail("conntrack holds " + std::to_string(conntrack_entries()) +
                    " entries after the run, expected " + std::to_string(want_entries));
    }

    state.counters["rules"] = double(image.rule_count);
    state.counters["entries"] = double(image.entries.size());
    state.counters["classes"] = double(image.class_count);
    state.counters["compile_ms"] = compile_ms;
    state.counters["lower_ms"] = lower_ms;
    state.counters["write_ms"] = write_ms;
    (void)bind_tree(0, 0);
    uninstall(persona_id);
    (void)flush_conntrack();
}

// --- many bound cgroups ----------------------------------------------------------------

// The Bindings rows fill pbpf_bindings with N entries: the benchmark cgroup b (bound to the
// 10-rule generated persona) and N - 1 dummy cgroup ids, far above any id kernfs hands out.
constexpr uint64_t kDummyCgroupBase = 1ULL << 48;
constexpr uint32_t kBindingsPersona = 150;

int binding_entries() {
    return map_entries<uint64_t>(bpf_map__fd(g_env->skel->maps.pbpf_bindings));
}

// "memlock:" of a map fd from /proc/self/fdinfo: the kernel's own figure of its memory.
double fd_memlock(int fd) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE* f = std::fopen(path, "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    while (std::fgets(line, sizeof line, f)) {
        unsigned long long x = 0;
        if (std::sscanf(line, "memlock: %llu", &x) == 1) v = double(x);
    }
    std::fclose(f);
    return v;
}

// memlock of a fresh hash map shaped like pbpf_bindings (u64 -> pbpf_binding) with
// max_entries and flags, holding `fill` entries; -1 on error.
double hash_memlock(uint32_t max_entries, uint32_t flags, int fill) {
    LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);
    const int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "pbpf_bench_mem", sizeof(uint64_t),
                                  sizeof(pbpf_binding), max_entries, &o);
    if (fd < 0) return -1;
    pbpf_binding b{};
    b.persona_id = 1;
    for (int k = 0; k < fill; ++k) {
        const uint64_t id = kDummyCgroupBase + uint64_t(k);
        if (bpf_map_update_elem(fd, &id, &b, BPF_ANY) != 0) {
            ::close(fd);
            return -1;
        }
    }
    const double v = fd_memlock(fd);
    ::close(fd);
    return v;
}

Result<void> set_dummy_bindings(int count, bool add) {
    const int fd = bpf_map__fd(g_env->skel->maps.pbpf_bindings);
    pbpf_binding b{};
    b.persona_id = kBindingsPersona;
    for (int k = 0; k < count; ++k) {
        const uint64_t id = kDummyCgroupBase + uint64_t(k);
        const int err =
            add ? bpf_map_update_elem(fd, &id, &b, BPF_ANY) : bpf_map_delete_elem(fd, &id);
        if (err != 0) return sys_error(add ? "add dummy binding" : "delete dummy binding");
    }
    return {};
}

// Bindings/*/N: the 10-rule generated persona of Rules/*/10, with pbpf_bindings holding N
// entries, so that the rows differ from Rules/*/10 only in the bindings map's fill.
// Established: the deep allow, a conntrack hit after the first packet. New flow: the last
// deny rule (no conntrack entry, every packet takes the new-flow path). Counters: the
// memory of the loaded map (sized by PBPF_MAX_BINDINGS, preallocated), of one preallocated
// for exactly N entries, and of a BPF_F_NO_PREALLOC one holding N entries.
void BM_Bindings(benchmark::State& state, Flow flow) {
    const int n = static_cast<int>(state.range(0));
    const Generated& g = generated(10);
    auto image = compile_one("bench-10.pdl", g.text);
    if (!image) return state.SkipWithError(image.error().what().c_str());
    if (auto r = install(kBindingsPersona, *image); !r)
        return state.SkipWithError(r.error().what().c_str());
    auto done = [&] {
        (void)set_dummy_bindings(n - 1, false);
        (void)bind_tree(0, 0);
        uninstall(kBindingsPersona);
        (void)flush_conntrack();
    };
    auto fail = [&](const std::string& what) {
        done();
        state.SkipWithError(what.c_str());
    };
    if (auto r = set_dummy_bindings(n - 1, true); !r) return fail(r.error().what());
    if (auto r = bind_tree(0, kBindingsPersona); !r) return fail(r.error().what());
    if (binding_entries() != n)
        return fail("pbpf_bindings holds " + std::to_string(binding_entries()) +
                    " entries, expected " + std::to_string(n));
    if (flush_conntrack() < 0) return fail("flush conntrack");

    int want_entries = 0;
    if (flow == Flow::kEstablished) {
        measure(state, egress_fd(), g.allow.bytes(), kPass);
        want_entries = 1;
    } else {
        measure(state, egress_fd(), g.deny.bytes(), kDrop);
    }
    if (!state.error_occurred() && conntrack_entries() != want_entries)
        return fail("conntrack holds " + std::to_string(conntrack_entries()) + " entries");

    const int map_fd = bpf_map__fd(g_env->skel->maps.pbpf_bindings);
    state.counters["bindings"] = double(binding_entries());
    state.counters["max_entries"] = double(bpf_map__max_entries(g_env->skel->maps.pbpf_bindings));
    state.counters["memlock_B"] = fd_memlock(map_fd);
    state.counters["prealloc_N_B"] = hash_memlock(uint32_t(n), 0, n);
    state.counters["noprealloc_N_B"] =
        hash_memlock(bpf_map__max_entries(g_env->skel->maps.pbpf_bindings), BPF_F_NO_PREALLOC, n);
    done();
}

// --- sovereignty with the default geo dataset -----------------------------------------

// The default dataset, read once, and the maps made from it (docs/benchmarks.md, "Data
// sovereignty"). Loading is timed like the agent does it: read and merge, then fill.
struct GeoData {
    agent::geo::GeoDataset ds;
    agent::GeoMaps maps;
    double read_ms = 0, fill_ms = 0, memlock_B = 0;
    std::string de4;  // an address the dataset places in DE
};
GeoData* g_geo = nullptr;

constexpr uint32_t kSovPersona = 160;    // allow countries { DE }, every rule allows
constexpr uint32_t kPlainPersona = 161;  // the same rules, no sovereignty

constexpr const char* kSovPdl = R"(
persona bench-sov {
  security {
    mode enforce
    default ingress allow
    default egress allow
  }
  sovereignty {
    allow countries { DE }
    unknown deny
  }
}
)";
constexpr const char* kPlainPdl = R"(
persona bench-plain {
  security {
    mode enforce
    default ingress allow
    default egress deny
  }
}
)";

Result<void> set_geo_maps(const agent::GeoMaps& maps) {
    return agent::install_geo_maps(bpf_map__fd(g_env->skel->maps.pbpf_geo4),
                                   bpf_map__fd(g_env->skel->maps.pbpf_geo), maps);
}

enum class GeoCase {
    kEstablishedDe,       // a tracked flow to DE: no geo lookup
    kNewDeniedUs,         // 8.8.8.8: new flow every packet (no entry), trie lookup, drop
    kNewDeniedUsIpv6,     // 2001:4860:4860::8888, the same over IPv6
    kNewDeniedNoSov,      // the baseline: the same new-flow path denied by the default, no geo
    kNewAllowedDeSingle,  // one packet per call to DE, entry deleted between: lookup + insert
};

void BM_Geo(benchmark::State& state, GeoCase c) {
    const bool sov = c != GeoCase::kNewDeniedNoSov;
    const uint32_t id = sov ? kSovPersona : kPlainPersona;
    if (auto r = bind_tree(0, id); !r) return state.SkipWithError(r.error().what().c_str());
    (void)flush_conntrack();
    const Packet de = tcp4(g_geo->de4, 443);
    const Packet us = tcp4("8.8.8.8", 443);
    const Packet us6 =
        Packet().eth().ipv6("2001:db8::10", "2001:4860:4860::8888").tcp(40000, 443).payload(10);
    switch (c) {
        case GeoCase::kEstablishedDe:
            measure(state, egress_fd(), de.bytes(), kPass);
            break;
        case GeoCase::kNewDeniedUs:
        case GeoCase::kNewDeniedNoSov:
            measure(state, egress_fd(), us.bytes(), kDrop);
            break;
        case GeoCase::kNewDeniedUsIpv6:
            measure(state, egress_fd(), us6.bytes(), kDrop);
            break;
        case GeoCase::kNewAllowedDeSingle: {
            auto first = test_run(egress_fd(), de.bytes(), 1);
            if (!first || first->retval != kPass) return state.SkipWithError("first DE packet");
            const int fd = bpf_map__fd(g_env->skel->maps.pbpf_conntrack);
            pbpf_ct_key key{};
            if (bpf_map_get_next_key(fd, nullptr, &key) != 0 || bpf_map_delete_elem(fd, &key) != 0)
                return state.SkipWithError("conntrack entry of the DE packet not found");
            measure_single(state, egress_fd(), de.bytes(), kPass,
                           [fd, &key] { return bpf_map_delete_elem(fd, &key) == 0; });
            break;
        }
    }
    state.counters["prefixes"] = double(g_geo->ds.v4.size() + g_geo->ds.v6.size());
    state.counters["read_ms"] = g_geo->read_ms;
    state.counters["fill_ms"] = g_geo->fill_ms;
    state.counters["geo_memlock_B"] = g_geo->memlock_B;
    (void)bind_tree(0, 0);
    (void)flush_conntrack();
}

// Reads the default dataset and installs it with the two personas; false (and a message)
// when the dataset is missing, which leaves the Geo rows out.
bool setup_geo(GeoData& g) {
    const std::string path = agent::kDefaultGeoDatabase;
    auto t0 = std::chrono::steady_clock::now();
    auto ds = agent::geo::load_geo_dataset(path);
    if (!ds) {
        std::fprintf(stderr, "persona_bench: no Geo rows: %s\n", ds.error().what().c_str());
        return false;
    }
    g.read_ms = ms_since(t0);
    g.ds = std::move(*ds);
    t0 = std::chrono::steady_clock::now();
    auto maps = agent::build_geo_maps(g.ds);
    if (!maps) {
        std::fprintf(stderr, "persona_bench: geo maps: %s\n", maps.error().what().c_str());
        return false;
    }
    g.fill_ms = ms_since(t0);
    g.maps = std::move(*maps);
    g.memlock_B = fd_memlock(g.maps.table4.get()) + fd_memlock(g.maps.trie6.get());
    for (const auto& p : g.ds.v4) {
        if (p.country != *agent::geo::country_index("DE") || p.len > 24) continue;
        g.de4 = std::to_string(p.addr[0]) + "." + std::to_string(p.addr[1]) + "." +
                std::to_string(p.addr[2]) + ".10";
        break;
    }
    if (g.de4.empty()) return false;
    for (auto [id, text] : {std::pair{kSovPersona, kSovPdl}, std::pair{kPlainPersona, kPlainPdl}}) {
        auto image = compile_one("bench-geo.pdl", text);
        if (!image || !install(id, *image)) return false;
    }
    if (!set_geo_maps(g.maps)) return false;
    std::fprintf(stderr,
                 "persona_bench: geo dataset %s: %zu IPv4 + %zu IPv6 prefixes, read %.0f ms, "
                 "maps filled in %.0f ms, memlock %.0f B; DE address %s\n",
                 path.c_str(), g.ds.v4.size(), g.ds.v6.size(), g.read_ms, g.fill_ms, g.memlock_B,
                 g.de4.c_str());
    return true;
}

template <typename Fn>
void add(const char* name, Fn fn) {
    benchmark::RegisterBenchmark(name, fn)->Iterations(kCalls)->UseManualTime()->Unit(
        benchmark::kMicrosecond);
}

int run_main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (::geteuid() != 0) {
        std::fprintf(stderr, "persona_bench: needs root (BPF programs and a cgroup tree)\n");
        return 1;
    }

    Env env;
    g_env = &env;
    env.skel = load(persona__open_and_load, "persona.bpf.o");
    env.baseline = load(noop__open_and_load, "noop.bpf.o");
    env.parse_baseline = load(parse_only__open_and_load, "parse_only.bpf.o");
    if (!env.skel || !env.baseline || !env.parse_baseline) return 1;
    auto tree = CgroupTree::create_and_enter();
    if (!tree) {
        std::fprintf(stderr, "persona_bench: cgroup tree: %s\n", tree.error().what().c_str());
        return 1;
    }
    env.tree = std::move(tree.value());
    std::fprintf(stderr, "persona_bench: running in cgroup %s/a/b (id %llu), %d packets per call\n",
                 env.tree->top_path().c_str(), (unsigned long long)env.tree->b_id(), kRepeat);

    auto web = compile_one("bench-web.pdl", kWebPdl);
    if (!web) {
        std::fprintf(stderr, "persona_bench: %s\n", web.error().what().c_str());
        return 1;
    }
    if (auto r = install(kWebPersona, *web); !r) {
        std::fprintf(stderr, "persona_bench: %s\n", r.error().what().c_str());
        return 1;
    }

    add("Baseline/noop_program", BM_Baseline_NoopProgram);
    add("Persona/unbound", BM_Persona_Unbound);
    add("Persona/bound_allow", BM_Persona_BoundAllow);
    add("Persona/bound_deny", BM_Persona_BoundDeny);
    add("Persona/bound_missing_policy_no_trie_lookups", BM_Persona_BoundMissingPolicy);
    add("Persona/inherited_allow_cache_hit", BM_Persona_InheritedAllow);
    add("Persona/bound_allow_ipv6_2_ext_headers", BM_Persona_BoundAllowIpv6TwoExtHeaders);
    add("Baseline/parse_only_program", BM_Baseline_ParseOnlyProgram);
    add("Baseline/parse_flow_lookup_program", BM_Baseline_ParseFlowLookupProgram);
    for (auto [name, flow] : {std::pair{"Rules/established", Flow::kEstablished},
                              std::pair{"Rules/new_flow_denied", Flow::kNewDenied},
                              std::pair{"Rules/new_flow_default_deny", Flow::kNewDefaultDeny}}) {
        benchmark::RegisterBenchmark(name, BM_Rules, flow)
            ->Arg(10)
            ->Arg(1000)
            ->Arg(10000)
            ->Arg(100000)
            ->Iterations(kCalls)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
    }
    for (auto [name, flow] : {std::pair{"Bindings/established", Flow::kEstablished},
                              std::pair{"Bindings/new_flow_denied", Flow::kNewDenied}}) {
        benchmark::RegisterBenchmark(name, BM_Bindings, flow)
            ->Arg(10)
            ->Arg(10000)
            ->Iterations(kCalls)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
    }
    using BenchFn = void (*)(benchmark::State&);
    for (auto [name, fn] :
         {std::pair<const char*, BenchFn>{"Single/noop_program", BM_Single_NoopProgram},
          std::pair<const char*, BenchFn>{"Single/parse_only_program",
                                          BM_Single_ParseOnlyProgram}}) {
        benchmark::RegisterBenchmark(name, fn)
            ->Iterations(kSingleCalls)
            ->UseManualTime()
            ->Unit(benchmark::kNanosecond);
    }
    for (auto [name, flow] :
         {std::pair{"Single/established", Flow::kEstablishedSingle},
          std::pair{"Single/new_flow_denied", Flow::kNewDeniedSingle},
          std::pair{"Single/new_flow_allowed_insert", Flow::kNewAllowedSingle}}) {
        benchmark::RegisterBenchmark(name, BM_Rules, flow)
            ->Arg(10)
            ->Arg(1000)
            ->Arg(10000)
            ->Arg(100000)
            ->Iterations(kSingleCalls)
            ->UseManualTime()
            ->Unit(benchmark::kNanosecond);
    }

    GeoData geo;
    g_geo = &geo;
    if (setup_geo(geo)) {
        for (auto [name, c] :
             {std::pair{"Geo/established_de", GeoCase::kEstablishedDe},
              std::pair{"Geo/new_flow_denied_us", GeoCase::kNewDeniedUs},
              std::pair{"Geo/new_flow_denied_us_ipv6", GeoCase::kNewDeniedUsIpv6},
              std::pair{"Geo/new_flow_default_deny_no_sovereignty", GeoCase::kNewDeniedNoSov}}) {
            benchmark::RegisterBenchmark(name, BM_Geo, c)
                ->Iterations(kCalls)
                ->UseManualTime()
                ->Unit(benchmark::kMicrosecond);
        }
        benchmark::RegisterBenchmark("Geo/single_new_flow_allowed_de_insert", BM_Geo,
                                     GeoCase::kNewAllowedDeSingle)
            ->Iterations(kSingleCalls)
            ->UseManualTime()
            ->Unit(benchmark::kNanosecond);
    }

    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;  // env's destructor: process back to its cgroup, tree removed, programs freed
}

}  // namespace
}  // namespace pbpf::bench

int main(int argc, char** argv) {
    try {
        return pbpf::bench::run_main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "persona_bench: %s\n", e.what());
        return 1;
    }
}
