// Agent configuration from TOML (toml++).
#include "agent/config.h"

#include <net/if.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <sstream>

#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include "agent/metrics.h"
#include "agent/peer_tls.h"
#include "agent/xdp_prefilter.h"
#include "maps/abi/limits.h"
#include "maps/abi/xdp.h"
#include "pdl-compiler/countries.h"
#include "pdl-compiler/values.h"

namespace pbpf::agent {
namespace {

std::string where(const std::string& origin, const toml::source_region& src) {
    return origin + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

// Parses one table that is strict about its keys ([limits], [events], [xdp]): every key
// must be known, so a typo ("conntrak_entries") is an error rather than a silent default.
class StrictTable {
  public:
    StrictTable(const std::string& origin, std::string name, std::vector<std::string> keys)
        : origin_(origin), name_(std::move(name)), keys_(std::move(keys)) {}

    // The table under `root`, nullptr when absent; an error when `name` is no table.
    Result<const toml::table*> find(const toml::table& root) const {
        const toml::node* node = root.get(name_);
        if (node == nullptr) return static_cast<const toml::table*>(nullptr);
        const toml::table* t = node->as_table();
        if (t == nullptr) return fail(*node, "[" + name_ + "] must be a table");
        for (auto&& [k, v] : *t) {
            if (std::find(keys_.begin(), keys_.end(), k.str()) == keys_.end())
                return Error{EINVAL, where(origin_, k.source()) + ": unknown key '" +
                                         std::string(k.str()) + "' in [" + name_ +
                                         "] (valid keys: " + key_list() + ")"};
        }
        return t;
    }

    // An integer key in [lo, hi]; `pow2` also requires a power of two.
    Result<void> uint(const toml::table& t, const char* key, uint32_t lo, uint32_t hi,
                      uint32_t* dest, bool pow2 = false) const {
        const toml::node* node = t.get(key);
        if (node == nullptr) return {};
        const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
        const std::string what = pow2 ? "a power of two in " + range : "an integer in " + range;
        const auto* i = node->as_integer();
        if (i == nullptr) return fail(*node, label(key) + " must be " + what);
        int64_t v = i->get();
        bool ok = v >= lo && v <= hi && (!pow2 || (v & (v - 1)) == 0);
        if (!ok)
            return fail(*node,
                        label(key) + " = " + std::to_string(v) + " is out of range (" + what + ")");
        *dest = static_cast<uint32_t>(v);
        return {};
    }

    // A string key; `allowed`, when given, lists its valid values.
    Result<void> string(const toml::table& t, const char* key, std::string* dest,
                        const std::vector<std::string>& allowed = {}) const {
        const toml::node* node = t.get(key);
        if (node == nullptr) return {};
        const std::string choices = quoted_list(allowed);
        const auto* s = node->as_string();
        if (s == nullptr)
            return fail(*node, label(key) + " must be a string" +
                                   (allowed.empty() ? "" : " (one of " + choices + ")"));
        if (!allowed.empty() &&
            std::find(allowed.begin(), allowed.end(), s->get()) == allowed.end())
            return fail(*node, label(key) + " = \"" + s->get() + "\" is not one of " + choices);
        *dest = s->get();
        return {};
    }

    // A boolean key.
    Result<void> boolean(const toml::table& t, const char* key, bool* dest) const {
        const toml::node* node = t.get(key);
        if (node == nullptr) return {};
        const auto* b = node->as_boolean();
        if (b == nullptr) return fail(*node, label(key) + " must be true or false");
        *dest = b->get();
        return {};
    }

    // An array of strings, each passed to `check` (which may rewrite it); nullptr when
    // the key is absent.
    template <typename Check>
    Result<const toml::array*> strings(const toml::table& t, const char* key,
                                       std::vector<std::string>* dest, Check check) const {
        const toml::node* node = t.get(key);
        if (node == nullptr) return static_cast<const toml::array*>(nullptr);
        const auto* arr = node->as_array();
        if (arr == nullptr) return fail(*node, label(key) + " must be an array of strings");
        std::vector<std::string> out;
        for (const toml::node& e : *arr) {
            const auto* s = e.as_string();
            if (s == nullptr) return fail(e, label(key) + " must be an array of strings");
            std::string value = s->get();
            if (std::string why = check(value); !why.empty())
                return fail(e, label(key) + ": " + why);
            out.push_back(std::move(value));
        }
        *dest = std::move(out);
        return arr;
    }

    Error fail(const toml::node& node, const std::string& msg) const {
        return Error{EINVAL, where(origin_, node.source()) + ": " + msg};
    }
    std::string label(const char* key) const { return "[" + name_ + "] " + key; }

  private:
    std::string key_list() const {
        std::string out;
        for (const auto& k : keys_) out += (out.empty() ? "" : ", ") + k;
        return out;
    }
    static std::string quoted_list(const std::vector<std::string>& v) {
        std::string out;
        for (const auto& s : v) out += (out.empty() ? "\"" : ", \"") + s + "\"";
        return out;
    }

    const std::string& origin_;
    std::string name_;
    std::vector<std::string> keys_;
};

Result<void> parse_agent(const toml::table& root, const std::string& origin, Config& cfg) {
    const toml::node* agent_node = root.get("agent");
    if (agent_node == nullptr) return {};
    const toml::table* agent = agent_node->as_table();
    if (agent == nullptr)
        return Error{EINVAL, where(origin, agent_node->source()) + ": [agent] must be a table"};

    struct Key {
        const char* name;
        std::string* dest;
    };
    const Key keys[] = {{"socket", &cfg.socket},         {"state_dir", &cfg.state_dir},
                        {"bpffs_root", &cfg.bpffs_root}, {"cgroup_root", &cfg.cgroup_root},
                        {"log_level", &cfg.log_level},   {"admin_group", &cfg.admin_group}};
    for (auto&& [k, node] : *agent) {
        const Key* key = nullptr;
        for (const Key& candidate : keys)
            if (k.str() == candidate.name) key = &candidate;
        if (key == nullptr) {
            // Keys of capabilities that land later (host_country, ...) are
            // accepted so one config file serves several agent versions.
            spdlog::debug("{}: [agent] key '{}' not used by this agent",
                          where(origin, node.source()), k.str());
            continue;
        }
        const auto* s = node.as_string();
        if (s == nullptr)
            return Error{EINVAL, where(origin, node.source()) + ": [agent] " + key->name +
                                     " must be a string"};
        *key->dest = s->get();
    }
    return {};
}

Result<void> parse_limits(const toml::table& root, const std::string& origin, Limits& l) {
    StrictTable spec(origin, "limits",
                     {"bindings", "interface_bindings", "policy_entries", "conntrack_entries"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    if (auto r = spec.uint(**t, "bindings", 1, 1048576, &l.bindings); !r) return r;
    if (auto r = spec.uint(**t, "interface_bindings", 1, 65536, &l.interface_bindings); !r)
        return r;
    if (auto r = spec.uint(**t, "policy_entries", 16, 4194304, &l.policy_entries); !r) return r;
    return spec.uint(**t, "conntrack_entries", 1024, 16777216, &l.conntrack_entries);
}

Result<void> parse_events(const toml::table& root, const std::string& origin, EventsConfig& e) {
    StrictTable spec(origin, "events", {"rate", "burst", "ring_kib", "history"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    if (auto r = spec.uint(**t, "rate", 1, 1000000, &e.rate); !r) return r;
    if (auto r = spec.uint(**t, "burst", 1, 1000000, &e.burst); !r) return r;
    if (auto r = spec.uint(**t, "ring_kib", 64, 262144, &e.ring_kib, /*pow2=*/true); !r) return r;
    return spec.uint(**t, "history", 100, 1000000, &e.history);
}

// Linux's dev_valid_name(): 1..15 bytes, not "." or "..", no '/', ':' or whitespace.
std::string check_ifname(const std::string& name) {
    if (name.empty()) return "interface name must not be empty";
    if (name.size() >= IFNAMSIZ)
        return "interface name '" + name + "' is longer than " + std::to_string(IFNAMSIZ - 1) +
               " bytes";
    if (name == "." || name == "..") return "'" + name + "' is not an interface name";
    for (unsigned char c : name)
        if (c == '/' || c == ':' || std::isspace(c))
            return "interface name '" + name + "' contains '/', ':' or whitespace";
    return "";
}

// The validator of a list of interface names: each a valid name, none listed twice.
auto interface_names(std::vector<std::string>& seen) {
    return [&seen](std::string& name) {
        if (std::string why = check_ifname(name); !why.empty()) return why;
        if (std::find(seen.begin(), seen.end(), name) != seen.end())
            return "interface '" + name + "' is listed twice";
        seen.push_back(name);
        return std::string();
    };
}

Result<void> parse_xdp(const toml::table& root, const std::string& origin, XdpConfig& x) {
    StrictTable spec(origin, "xdp", {"interfaces", "deny", "mode", "max_entries"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    const toml::table& tab = **t;

    std::vector<std::string> seen;
    auto ifs = spec.strings(tab, "interfaces", &x.interfaces, interface_names(seen));
    if (!ifs) return ifs.error();
    if (*ifs && x.interfaces.size() > PBPF_XDP_MAX_IFACES - 1)
        return spec.fail(**ifs, "[xdp] interfaces lists " + std::to_string(x.interfaces.size()) +
                                    " interfaces; at most " +
                                    std::to_string(PBPF_XDP_MAX_IFACES - 1) + " are supported");

    // Entries are stored in canonical form; a prefix listed twice is one entry.
    auto deny = spec.strings(tab, "deny", &x.deny, [](std::string& text) {
        auto cidr = parse_cidr(text);
        if (!cidr) return cidr.error().message;
        text = cidr->text();
        return std::string();
    });
    if (!deny) return deny.error();
    std::sort(x.deny.begin(), x.deny.end());
    x.deny.erase(std::unique(x.deny.begin(), x.deny.end()), x.deny.end());

    if (auto r = spec.string(tab, "mode", &x.mode, {"auto", "native", "generic"}); !r) return r;
    if (auto r = spec.uint(tab, "max_entries", 1, PBPF_XDP_MAX_DENY_ENTRIES, &x.max_entries); !r)
        return r;
    if (x.deny.size() > x.max_entries) {
        const toml::node& at = *deny ? static_cast<const toml::node&>(**deny) : tab;
        return spec.fail(at,
                         "[xdp] deny has " + std::to_string(x.deny.size()) +
                             " entries, more than max_entries = " + std::to_string(x.max_entries));
    }
    return {};
}

Result<void> parse_qos(const toml::table& root, const std::string& origin, QosConfig& q) {
    StrictTable spec(origin, "qos", {"egress_interfaces", "link_rate"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    const toml::table& tab = **t;
    std::vector<std::string> seen;
    auto ifs = spec.strings(tab, "egress_interfaces", &q.egress_interfaces, interface_names(seen));
    if (!ifs) return ifs.error();
    if (*ifs && q.egress_interfaces.size() > kQosMaxInterfaces)
        return spec.fail(**ifs, "[qos] egress_interfaces lists " +
                                    std::to_string(q.egress_interfaces.size()) +
                                    " interfaces; at most " + std::to_string(kQosMaxInterfaces) +
                                    " are supported");
    std::string rate;
    if (auto r = spec.string(tab, "link_rate", &rate); !r) return r;
    if (!rate.empty()) {
        auto parsed = pdl::parse_rate(rate);
        if (!parsed.ok())
            return spec.fail(*tab.get("link_rate"), "[qos] link_rate: " + parsed.error);
        q.link_rate_bps = parsed.value;
    }
    return {};
}

Result<void> parse_geo(const toml::table& root, const std::string& origin, GeoConfig& g) {
    StrictTable spec(origin, "geo", {"database", "host_country"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    const toml::table& tab = **t;
    std::string db;
    if (auto r = spec.string(tab, "database", &db); !r) return r;
    if (tab.contains("database")) {
        if (db.empty() || db[0] != '/')
            return spec.fail(*tab.get("database"),
                             "[geo] database must be an absolute path: '" + db + "'");
        g.database = db;
    }
    std::string cc;
    if (auto r = spec.string(tab, "host_country", &cc); !r) return r;
    if (!cc.empty()) {
        std::string upper = cc;
        for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (!pdl::is_country_code(upper)) {
            auto hint = pdl::country_hint(upper);
            return spec.fail(*tab.get("host_country"), "[geo] host_country: '" + cc +
                                                           "' is not an ISO 3166-1 alpha-2 code" +
                                                           (hint ? " (" + *hint + ")" : ""));
        }
        g.host_country = upper;
    }
    return {};
}

Result<void> parse_topology(const toml::table& root, const std::string& origin, TopologyConfig& c) {
    StrictTable spec(origin, "topology", {"egress_interfaces", "rule_priority", "table_base"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    const toml::table& tab = **t;
    std::vector<std::string> seen;
    auto ifs = spec.strings(tab, "egress_interfaces", &c.egress_interfaces, interface_names(seen));
    if (!ifs) return ifs.error();
    if (*ifs && c.egress_interfaces.size() > kTopologyMaxInterfaces)
        return spec.fail(**ifs, "[topology] egress_interfaces lists " +
                                    std::to_string(c.egress_interfaces.size()) +
                                    " interfaces; at most " +
                                    std::to_string(kTopologyMaxInterfaces) + " are supported");
    // The rules take priority and priority + 1, below 32766 (main).
    if (auto r = spec.uint(tab, "rule_priority", 1, 32764, &c.rule_priority); !r) return r;
    // Tables base + 1 .. base + PBPF_MAX_PERSONAS: clear of 253..255 and of 2^32.
    if (auto r = spec.uint(tab, "table_base", 256, 0xffffffffu - PBPF_MAX_PERSONAS, &c.table_base);
        !r)
        return r;
    return {};
}

Result<void> parse_metrics(const toml::table& root, const std::string& origin, MetricsConfig& m) {
    StrictTable spec(origin, "metrics", {"listen"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    if (auto r = spec.string(**t, "listen", &m.listen); !r) return r;
    if (m.listen.empty()) return {};
    if (auto a = parse_listen_address(m.listen); !a)
        return spec.fail(*(*t)->get("listen"), "[metrics] listen: " + a.error().message);
    return {};
}

Result<void> parse_migration(const toml::table& root, const std::string& origin,
                             MigrationConfig& m) {
    StrictTable spec(origin, "migration", {"listen", "cert", "key", "ca", "peers"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    const toml::table& tab = **t;
    if (auto r = spec.string(tab, "listen", &m.listen); !r) return r;
    if (!m.listen.empty()) {
        if (auto a = parse_host_port(m.listen); !a)
            return spec.fail(*tab.get("listen"), "[migration] listen: " + a.error().message);
    }
    for (auto [key, dest] :
         {std::pair<const char*, std::string*>{"cert", &m.cert}, {"key", &m.key}, {"ca", &m.ca}}) {
        if (auto r = spec.string(tab, key, dest); !r) return r;
        if (tab.contains(key) && (dest->empty() || (*dest)[0] != '/'))
            return spec.fail(*tab.get(key),
                             spec.label(key) + " must be an absolute path: '" + *dest + "'");
    }
    // Names as certificates carry them: no empty ones, no whitespace or control
    // characters (such a name could never match), each once (case-insensitively).
    std::vector<std::string> seen;
    auto peers = spec.strings(tab, "peers", &m.peers, [&seen](std::string& name) {
        if (name.empty()) return std::string("a peer name must not be empty");
        for (unsigned char c : name)
            if (c <= 0x20 || c == 0x7f)
                return "peer name '" + name + "' contains whitespace or a control character";
        std::string lower = name;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (std::find(seen.begin(), seen.end(), lower) != seen.end())
            return "peer '" + name + "' is listed twice";
        seen.push_back(lower);
        return std::string();
    });
    if (!peers) return peers.error();

    // The identity is one thing: all three files or none. A listener or a peer list
    // without one could never authenticate anybody.
    std::string missing;
    for (auto [key, value] : {std::pair<const char*, const std::string*>{"cert", &m.cert},
                              {"key", &m.key},
                              {"ca", &m.ca}})
        if (value->empty()) missing += (missing.empty() ? "" : ", ") + std::string(key);
    const bool any = m.has_identity() || !m.key.empty() || !m.ca.empty();
    if (!missing.empty() && any)
        return spec.fail(tab, "[migration] cert, key and ca go together: " + missing +
                                  (missing.find(',') == std::string::npos ? " is" : " are") +
                                  " missing");
    if (!missing.empty() && !m.listen.empty())
        return spec.fail(*tab.get("listen"),
                         "[migration] listen needs cert, key and ca (this host's certificate, "
                         "its key and the CA peers chain to)");
    if (!missing.empty() && *peers)
        return spec.fail(**peers, "[migration] peers needs cert, key and ca");
    return {};
}

Result<void> parse_binding(const toml::table& root, const std::string& origin, BindingConfig& b) {
    StrictTable spec(origin, "binding", {"fail_closed", "watch_interfaces"});
    auto t = spec.find(root);
    if (!t) return t.error();
    if (*t == nullptr) return {};
    const toml::table& tab = **t;
    std::vector<std::string> seen;
    auto fc = spec.strings(tab, "fail_closed", &b.fail_closed, [&](std::string& path) {
        if (path.empty() || path[0] != '/')
            return "fail_closed path '" + path +
                   "' must be absolute (relative to the cgroup2 mount)";
        for (size_t i = 0; i < path.size();) {
            size_t j = path.find('/', i + 1);
            std::string seg = path.substr(i + 1, j == std::string::npos ? j : j - i - 1);
            if (seg == "." || seg == ".." || (seg.empty() && j != std::string::npos))
                return "fail_closed path '" + path + "' has an empty, '.' or '..' component";
            if (j == std::string::npos) break;
            i = j;
        }
        while (path.size() > 1 && path.back() == '/') path.pop_back();
        if (std::find(seen.begin(), seen.end(), path) != seen.end())
            return "fail_closed path '" + path + "' is listed twice";
        seen.push_back(path);
        return std::string();
    });
    if (!fc) return fc.error();
    if (auto r = spec.boolean(tab, "watch_interfaces", &b.watch_interfaces); !r) return r;
    return {};
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& origin, Config base) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        return Error{EINVAL, where(origin, e.source()) + ": " + std::string(e.description())};
    }
    Config cfg = std::move(base);
    if (auto r = parse_agent(root, origin, cfg); !r) return r.error();
    if (auto r = parse_limits(root, origin, cfg.limits); !r) return r.error();
    if (auto r = parse_events(root, origin, cfg.events); !r) return r.error();
    if (auto r = parse_xdp(root, origin, cfg.xdp); !r) return r.error();
    if (auto r = parse_binding(root, origin, cfg.binding); !r) return r.error();
    if (auto r = parse_qos(root, origin, cfg.qos); !r) return r.error();
    if (auto r = parse_geo(root, origin, cfg.geo); !r) return r.error();
    if (auto r = parse_topology(root, origin, cfg.topology); !r) return r.error();
    if (auto r = parse_metrics(root, origin, cfg.metrics); !r) return r.error();
    if (auto r = parse_migration(root, origin, cfg.migration); !r) return r.error();
    return cfg;
}

Result<Config> load_config(const std::string& path, bool required) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (!required && errno == ENOENT) return Config{};
        return sys_error("config " + path);
    }
    // A directory opens as an empty stream and would parse as "all defaults": an agent
    // started on the whole cgroup2 tree because of a mistyped --config.
    if (S_ISDIR(st.st_mode)) return Error{EISDIR, "config " + path + " is a directory"};
    // /dev/null (no config: the embedded defaults, whatever /etc says) and pipes are
    // read like files; anything else that is not a regular file is a mistake.
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode))
        return Error{EINVAL, "config " + path + " is not a regular file"};
    std::ifstream in(path);
    if (!in) return sys_error("config " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return sys_error("read config " + path);
    return parse_config(ss.str(), path);
}

}  // namespace pbpf::agent
