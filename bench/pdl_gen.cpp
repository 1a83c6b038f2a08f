// pdl_gen: writes a large, realistic PDL file for the compile benchmark (pdl_bench.cpp):
// N personas with M rules in total, shared named sets, and only the syntax this release
// accepts (set, persona, description, security). Deterministic for a given seed.
//
// The file is meant to compile without errors and with few lint warnings, the way a real
// policy would: a direction that defaults to deny holds allows plus deny carve-outs inside
// them; a direction that defaults to allow holds denies only. Set items and literal
// addresses come from disjoint ranges, so lists never hold overlapping items. Blocks are
// not indented by default: 100,000 rules in the canonical layout exceed the compiler's
// 4 MiB source limit (docs/benchmarks.md, "Compiling a large file").
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

// splitmix64: a fixed generator, so the file is the same with every standard library.
class Rng {
  public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
    int between(int lo, int hi) { return lo + static_cast<int>(below(uint32_t(hi - lo + 1))); }
    bool percent(uint32_t p) { return below(100) < p; }
    template <typename T>
    const T& pick(const std::vector<T>& v) {
        return v[below(static_cast<uint32_t>(v.size()))];
    }

  private:
    uint64_t s_;
};

std::string num(long v) { return std::to_string(v); }
std::string hex(uint32_t v) {
    char b[12];
    std::snprintf(b, sizeof b, "%x", v);
    return b;
}

// An address value plus what a deny carve-out inside it looks like.
struct Net {
    std::string text;
    std::string inner;  // a narrower network or a host inside `text`
    bool v6 = false;
};

// Literal peers: 10.100.0.0-10.255.255.255 and 2001:db8::/32. Set items: 10.0.0.0/12 and
// fd00::/16 (make_sets). The two never overlap.
Net literal_v4(Rng& r) {
    const std::string a = "10." + num(r.between(100, 255)) + ".";
    const int b = r.between(0, 255);
    switch (r.below(4)) {
        case 0:
            return {a + "0.0/16", a + num(b) + ".0/24", false};
        case 1:
            return {a + num(b) + ".0/24", a + num(b) + "." + num(r.between(1, 254)), false};
        case 2: {
            const int c = r.between(0, 3) * 64;
            return {a + num(b) + "." + num(c) + "/26", a + num(b) + "." + num(c + 1), false};
        }
        default: {
            const std::string host = a + num(b) + "." + num(r.between(1, 254));
            return {host, host, false};
        }
    }
}

Net literal_v6(Rng& r) {
    const std::string a = "2001:db8:" + hex(r.below(0x10000)) + ":";
    const uint32_t b = r.below(0x10000);
    switch (r.below(3)) {
        case 0:
            return {a + ":/48", a + hex(b) + "::/64", true};
        case 1:
            return {a + hex(b) + "::/64", a + hex(b) + "::" + hex(r.between(1, 0xfff)), true};
        default: {
            const std::string host = a + hex(b) + "::" + hex(r.between(1, 0xfff));
            return {host, host, true};
        }
    }
}

Net literal(Rng& r, bool v6) { return v6 ? literal_v6(r) : literal_v4(r); }

struct AddrSet {
    std::string name;
    bool has_v4 = false, has_v6 = false;
    std::vector<Net> items;
};

struct PortSet {
    std::string name;
    std::string items;
    std::string first;  // a single port of the set, for carve-outs
};

const std::vector<int> kCommonPorts = {22,   25,   53,   80,   123,  389,   443,   636,
                                       1433, 2049, 3306, 5432, 5672, 6379,  8080,  8443,
                                       9000, 9090, 9092, 9200, 9300, 11211, 27017, 50051};
const std::vector<std::string> kSetKinds = {"dns", "db",  "cache", "mq",   "api",  "web",
                                            "mon", "log", "auth",  "ci",   "lb",   "ntp",
                                            "s3",  "k8s", "vpn",   "mail", "ldap", "ext"};
const std::vector<std::string> kRoles = {"web", "api", "db", "cache", "worker", "batch",
                                         "gw",  "mon", "ci", "etl",   "auth",   "search"};

struct Gen {
    Rng r;
    std::vector<AddrSet> addr_sets;
    std::vector<size_t> v4_sets, v6_sets;  // indexes of single-family sets
    std::vector<PortSet> port_sets;
    size_t next_set = 0;  // first pass over the sets is round robin, so every set is used
    size_t next_port_set = 0;

    int indent;                         // spaces per block level; 2 is `pdl fmt`'s layout
    std::map<std::string, long> tally;  // rules by action, direction, proto, ports, peers

    Gen(uint64_t seed, int indent_) : r(seed), indent(indent_) {}

    void make_sets(int n_addr, int n_port) {
        for (int i = 0; i < n_addr; ++i) {
            AddrSet s;
            s.name = kSetKinds[size_t(i) % kSetKinds.size()] + num(i / long(kSetKinds.size()));
            // Two thirds IPv4 only, a sixth IPv6 only, a sixth both (one-item sets: IPv4).
            const uint32_t shape = r.below(6);
            const bool v4 = shape != 5, v6 = shape >= 4;
            const int n = r.between(1, 6);
            // Set i owns the eight /24s from 10.0.0.0 + i * 8 (10.0.0.0/12 in all) and
            // fd00:i::/32, so no two sets overlap.
            const std::string base6 = "fd00:" + hex(uint32_t(i)) + ":";
            std::vector<int> used;
            for (int k = 0; k < n; ++k) {
                int c;
                do c = r.between(0, 7);
                while (std::find(used.begin(), used.end(), c) != used.end());
                used.push_back(c);
                const int slot = i * 8 + c;
                const std::string net4 = "10." + num(slot / 256) + "." + num(slot % 256) + ".";
                const bool item_v6 = v6 && (!v4 || k % 2 == 1);
                if (item_v6) {
                    const std::string p = base6 + hex(uint32_t(c) << 8);
                    s.items.push_back({p + "::/56", p + "::" + hex(r.between(1, 0xff)), true});
                    s.has_v6 = true;
                } else if (r.percent(20)) {
                    const std::string h = net4 + num(r.between(1, 254));
                    s.items.push_back({h, h, false});
                    s.has_v4 = true;
                } else {
                    s.items.push_back({net4 + "0/24", net4 + num(r.between(1, 254)), false});
                    s.has_v4 = true;
                }
            }
            if (s.has_v4 && !s.has_v6) v4_sets.push_back(addr_sets.size());
            if (s.has_v6 && !s.has_v4) v6_sets.push_back(addr_sets.size());
            addr_sets.push_back(std::move(s));
        }
        for (int i = 0; i < n_port; ++i) {
            PortSet s;
            s.name =
                "p_" + kSetKinds[size_t(i) % kSetKinds.size()] + num(i / long(kSetKinds.size()));
            const int base = 1024 + i * 600;
            s.first = num(base);
            s.items = num(base) + ", " + num(base + 10) + "-" + num(base + 19);
            if (i % 3 == 0) s.items += ", " + num(base + 100) + "-" + num(base + 199);
            port_sets.push_back(std::move(s));
        }
    }

    std::string set_block() const {
        std::string t;
        for (const auto& s : addr_sets) {
            t += "set " + s.name + " = { ";
            for (size_t k = 0; k < s.items.size(); ++k) t += (k ? ", " : "") + s.items[k].text;
            t += " }\n";
        }
        t += "\n";
        for (const auto& s : port_sets) t += "set " + s.name + " = { " + s.items + " }\n";
        return t;
    }

    // The ports part of a rule (with its leading " port "), or "" for every port; `one`
    // gets a single port inside it, for a deny carve-out.
    std::string ports(std::string& one, std::string& kind) {
        const uint32_t k = r.below(100);
        kind = k < 12 ? "none" : k < 68 ? "single" : k < 82 ? "range" : k < 90 ? "list" : "set";
        if (k < 12) {
            one.clear();
            return "";
        }
        if (k < 68) {
            one = num(r.percent(85) ? r.pick(kCommonPorts) : r.between(1024, 65535));
            return " port " + one;
        }
        if (k < 82) {
            const int lo = r.between(1024, 60000);
            const int width = r.percent(50) ? r.between(1, 99) : r.between(100, 2000);
            one = num(lo + width / 2);
            return " port " + num(lo) + "-" + num(lo + width);
        }
        if (k < 90) {
            // 2 or 3 distinct items in increasing, non-overlapping order.
            const int n = r.between(2, 3);
            int at = r.between(1, 20000);
            std::string t = " port { ";
            for (int i = 0; i < n; ++i) {
                if (i) t += ", ";
                if (r.percent(30)) {
                    const int w = r.between(1, 500);
                    t += num(at) + "-" + num(at + w);
                    at += w;
                } else {
                    t += num(at);
                }
                if (i == 0) one = num(at);
                at += r.between(1, 9000);
            }
            return t + " }";
        }
        const PortSet& s =
            next_port_set < port_sets.size() ? port_sets[next_port_set++] : r.pick(port_sets);
        one = s.first;
        return " port $" + s.name;
    }

    const AddrSet& any_set() {
        return next_set < addr_sets.size() ? addr_sets[next_set++] : r.pick(addr_sets);
    }

    // The peers of a rule, and a peer inside them for a carve-out (`whole`: it is all of
    // them, so a carve-out would shadow the rule). `fam`: 0 both families, 4 IPv4 only
    // (icmp), 6 IPv6 only (icmpv6).
    std::string peers(int fam, bool ingress, std::string& inner, bool& whole, std::string& kind) {
        auto family_v6 = [&] { return fam == 6 || (fam == 0 && r.percent(15)); };
        uint32_t k = r.below(100);
        // Tiny files may have no single-family set for icmp or icmpv6: use a literal.
        if (k < 73 && ((fam == 4 && v4_sets.empty()) || (fam == 6 && v6_sets.empty()))) k = 80;
        kind = k < 73 ? "set" : k < 96 ? "literal" : "any";
        if (k < 73) {
            const AddrSet& s = fam == 4   ? addr_sets[r.pick(v4_sets)]
                               : fam == 6 ? addr_sets[r.pick(v6_sets)]
                                          : any_set();
            const Net& n = r.pick(s.items);
            inner = n.inner;
            whole = s.items.size() == 1 && n.inner == n.text;
            return "$" + s.name;
        }
        if (k < 93) {
            const Net n = literal(r, family_v6());
            inner = n.inner;
            whole = n.inner == n.text;
            kind = n.v6 ? "IPv6 literal" : "IPv4 literal";
            return n.text;
        }
        if (k < 96) {
            // Two literals, mixed families where allowed, in different /16s (/48s) so that
            // they do not overlap.
            const int n = 2;
            std::string t = "{ ";
            std::vector<std::string> seen;
            for (int i = 0; i < n; ++i) {
                Net x = literal(r, family_v6());
                // "10.123" of 10.123.4.0/24, "2001:db8:7" of 2001:db8:7:9::/64.
                size_t cut = 0;
                for (int dots = x.v6 ? 3 : 2; dots > 0; --dots)
                    cut = x.text.find(x.v6 ? ':' : '.', cut + 1);
                const std::string key = x.text.substr(0, cut);
                if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
                seen.push_back(key);
                t += (seen.size() > 1 ? ", " : "") + x.text;
                if (seen.size() == 1) inner = x.inner;
            }
            whole = false;
            kind = "literal list";
            return t + " }";
        }
        // Outside the set and literal ranges, so a carve-out never covers another rule.
        whole = false;
        inner = fam == 6 ? "100::/64" : ingress ? "192.0.2.0/24" : "169.254.169.254";
        return "any";
    }

    std::string proto_of(uint32_t k) {
        return k < 60 ? "tcp" : k < 84 ? "udp" : k < 94 ? "icmp" : k < 97 ? "icmpv6" : "any";
    }

    struct Rule {
        std::string action, dir, proto, ports, peers;
        std::string one_port, inner_peer;
        std::string port_kind = "none", peer_kind;  // for the summary
        bool inner_is_all = false;
        bool carve_out = false;
        std::string text() const {
            return action + " " + dir + " " + proto + ports +
                   (dir == "egress" ? " to " : " from ") + peers;
        }
    };

    Rule random_rule(const std::string& action, const std::string& dir) {
        Rule x;
        x.action = action;
        x.dir = dir;
        x.proto = proto_of(r.below(100));
        if (x.proto == "tcp" || x.proto == "udp") x.ports = ports(x.one_port, x.port_kind);
        const int fam = x.proto == "icmp" ? 4 : x.proto == "icmpv6" ? 6 : 0;
        x.peers = peers(fam, dir == "ingress", x.inner_peer, x.inner_is_all, x.peer_kind);
        // `any` protocol to any address would decide the whole direction; keep it narrow.
        if (x.proto == "any" && x.peers == "any") {
            x.peers = x.inner_peer;
            x.inner_is_all = true;
            x.peer_kind = "IPv4 literal";
        }
        return x;
    }

    // A deny inside an earlier allow: same protocol, one of its ports, a narrower peer.
    // Only for allows it does not cover entirely (a shadowed allow is a lint warning).
    static bool carvable(const Rule& allow) { return !allow.inner_is_all; }
    Rule carve_out(const Rule& allow) {
        Rule x = allow;
        x.action = "deny";
        if (!x.ports.empty()) {
            x.ports = " port " + x.one_port;
            x.port_kind = "single";
        }
        x.peers = x.inner_peer;
        x.peer_kind = x.peers.find(':') != std::string::npos ? "IPv6 literal" : "IPv4 literal";
        x.carve_out = true;
        return x;
    }

    std::string persona(int i, int n_rules) {
        const std::string role = kRoles[size_t(i) % kRoles.size()];
        const std::string name = "svc-" + num(i / long(kRoles.size())) + "-" + role;
        const bool audit = r.percent(8);
        const bool in_deny = r.percent(85), eg_deny = r.percent(65);
        std::string t = "persona " + name + " {\n";
        const std::string i1(size_t(indent), ' '), i2(size_t(indent) * 2, ' ');
        t += i1 + "description \"" + role + " tier of service " + num(i / long(kRoles.size())) +
             (audit ? ", observed before enforcing" : "") + "\"\n\n";
        t += i1 + "security {\n";
        t += i2 + "mode " + (audit ? "audit" : "enforce") + "\n";
        t += i2 + "default ingress " + (in_deny ? "deny" : "allow") + "\n";
        t += i2 + "default egress " + (eg_deny ? "deny" : "allow") + "\n\n";

        std::unordered_set<std::string> seen;
        std::vector<Rule> allows[2];  // [ingress, egress], those a deny may carve into
        for (int k = 0; k < n_rules;) {
            const bool egress = r.percent(60);
            const std::string dir = egress ? "egress" : "ingress";
            const bool deny_default = egress ? eg_deny : in_deny;
            Rule x;
            if (!deny_default) {
                x = random_rule("deny", dir);
            } else if (!allows[egress].empty() && r.percent(15)) {
                x = carve_out(r.pick(allows[egress]));
            } else {
                x = random_rule("allow", dir);
            }
            const std::string text = x.text();
            if (!seen.insert(text).second) continue;
            if (x.action == "allow" && carvable(x)) allows[egress].push_back(x);
            for (const std::string& key :
                 {x.action + (x.carve_out ? " (carve-out)" : ""), x.dir, x.proto,
                  x.proto == "tcp" || x.proto == "udp" ? "port " + x.port_kind : "portless proto",
                  "peers " + x.peer_kind})
                ++tally[key];
            t += i2 + text + "\n";
            ++k;
        }
        t += i1 + "}\n}\n";
        return t;
    }
};

int usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s [--personas N] [--rules N] [--seed N] [--indent N] [-o FILE]\n"
                 "Writes a generated PDL file (default 1000 personas, 100000 rules) to FILE or "
                 "stdout.\n--indent: spaces per block level (default 0; 2 is the canonical layout, "
                 "which for the\ndefault sizes is above the compiler's 4 MiB limit).\n",
                 argv0);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    long personas = 1000, rules = 100000;
    uint64_t seed = 1;
    int indent = 0;
    std::string out_path;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return usage(argv[0]);
        const char* v = argv[++i];
        if (a == "--personas")
            personas = std::strtol(v, nullptr, 10);
        else if (a == "--rules")
            rules = std::strtol(v, nullptr, 10);
        else if (a == "--indent")
            indent = std::atoi(v);
        else if (a == "--seed")
            seed = std::strtoull(v, nullptr, 10);
        else if (a == "-o")
            out_path = v;
        else
            return usage(argv[0]);
    }
    if (personas < 1 || rules < personas) {
        std::fprintf(stderr, "pdl_gen: need at least one persona and one rule per persona\n");
        return 2;
    }

    Gen g(seed, indent);
    // About one address set per 3 personas and one port set per 25, so sets are shared.
    g.make_sets(static_cast<int>(std::max(1L, personas / 3)),
                static_cast<int>(std::max(1L, std::min(100L, personas / 25))));
    std::string text = "# Generated by bench/pdl_gen (seed " + num(long(seed)) +
                       "): " + num(personas) + " personas, " + num(rules) +
                       " rules. Benchmark input, not a policy.\n\n";
    text += g.set_block();
    // Rule counts vary around the mean in +d/-d pairs, so they add up exactly.
    std::vector<long> counts(size_t(personas), rules / personas);
    for (long i = 0; i < rules % personas; ++i) ++counts[size_t(i)];
    for (size_t i = 0; i + 1 < counts.size(); i += 2) {
        const long d = g.r.between(0, int(std::min(counts[i], counts[i + 1]) * 6 / 10));
        counts[i] += d;
        counts[i + 1] -= d;
    }
    for (size_t i = 0; i < counts.size(); ++i)
        text += "\n" + g.persona(static_cast<int>(i), static_cast<int>(counts[i]));

    if (out_path.empty()) {
        std::cout << text;
    } else {
        std::ofstream f(out_path, std::ios::binary);
        f << text;
        if (!f.flush()) {
            std::fprintf(stderr, "pdl_gen: cannot write %s\n", out_path.c_str());
            return 1;
        }
    }
    std::fprintf(stderr,
                 "pdl_gen: %ld personas, %ld rules, %zu address sets, %zu port sets, %zu bytes\n",
                 personas, rules, g.addr_sets.size(), g.port_sets.size(), text.size());
    std::string mix;
    for (const auto& [key, n] : g.tally) mix += (mix.empty() ? "" : ", ") + key + " " + num(n);
    std::fprintf(stderr, "pdl_gen: rules by kind: %s\n", mix.c_str());
    if (text.size() > (4u << 20))
        std::fprintf(stderr, "pdl_gen: warning: above the compiler's 4 MiB source limit\n");
    return 0;
}
