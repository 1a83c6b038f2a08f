// personabpfd configuration: the [agent], [limits], [events] and [xdp] TOML tables
// (parse_config/load_config), CIDR parsing, and the precedence defaults < file < flags.
// No root, no kernel object.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "agent/xdp_prefilter.h"
#include "tests/unit/temp_dir.h"

namespace pbpf::agent {
namespace {

namespace fs = std::filesystem;

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// ---- parse_config --------------------------------------------------------------------

TEST(AgentConfigParse, EmptyTextGivesDefaults) {
    auto cfg = parse_config("", "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/run/personabpf/agent.sock");
    EXPECT_EQ(cfg->state_dir, "/var/lib/personabpf");
    EXPECT_EQ(cfg->bpffs_root, "/sys/fs/bpf/personabpf");
    EXPECT_EQ(cfg->cgroup_root, "");
    EXPECT_EQ(cfg->log_level, "info");
}

TEST(AgentConfigParse, AllAgentKeys) {
    auto cfg = parse_config(R"toml(
# a comment
[agent]
socket = "/tmp/x/agent.sock"
state_dir = "/tmp/x/state"
bpffs_root = "/sys/fs/bpf/pbpf-test"
cgroup_root = "/personabpf-test"
log_level = "debug"
)toml",
                            "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/tmp/x/agent.sock");
    EXPECT_EQ(cfg->state_dir, "/tmp/x/state");
    EXPECT_EQ(cfg->bpffs_root, "/sys/fs/bpf/pbpf-test");
    EXPECT_EQ(cfg->cgroup_root, "/personabpf-test");
    EXPECT_EQ(cfg->log_level, "debug");
}

TEST(AgentConfigParse, LiteralAndEscapedStrings) {
    auto cfg = parse_config(
        "[agent]\nsocket = '/run/a b/c\\d.sock'\nstate_dir = \"/var/\\u00e9t\\u00e9\"\n", "t.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/run/a b/c\\d.sock");  // literal string: no escapes
    EXPECT_EQ(cfg->state_dir, "/var/\xC3\xA9t\xC3\xA9");
}

TEST(AgentConfigParse, DottedKeysFormOfAgentTable) {
    auto cfg = parse_config("agent.socket = \"/s\"\nagent.log_level = \"warn\"\n", "t.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/s");
    EXPECT_EQ(cfg->log_level, "warn");
}

TEST(AgentConfigParse, KeysNotSetKeepBaseValues) {
    Config base;
    base.socket = "/base.sock";
    base.state_dir = "/base/state";
    base.cgroup_root = "/base-root";
    auto cfg = parse_config("[agent]\nstate_dir = \"/file/state\"\n", "t.toml", base);
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->state_dir, "/file/state");  // the file wins over the base
    EXPECT_EQ(cfg->socket, "/base.sock");      // the rest is the base's
    EXPECT_EQ(cfg->cgroup_root, "/base-root");
    EXPECT_EQ(cfg->bpffs_root, "/sys/fs/bpf/personabpf");
}

TEST(AgentConfigParse, NoAgentTableKeepsBase) {
    Config base;
    base.log_level = "trace";
    auto cfg = parse_config("[other]\nsocket = \"/nope\"\n", "t.toml", base);
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->log_level, "trace");
    EXPECT_EQ(cfg->socket, "/run/personabpf/agent.sock");  // [other].socket is not ours
}

TEST(AgentConfigParse, UnknownKeysAndTablesAreIgnored) {
    auto cfg = parse_config(R"toml(
top_level = 1
[agent]
host_country = "CH"
future = { nested = [1, 2, 3] }
socket = "/s.sock"
[agent.sub]
x = true
[policy]
anything = "goes"
)toml",
                            "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/s.sock");
    EXPECT_EQ(cfg->log_level, "info");
}

TEST(AgentConfigParse, AdminGroup) {
    auto cfg = parse_config("[agent]\nadmin_group = \"pbpf-admins\"\n", "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->admin_group, "pbpf-admins");
    EXPECT_EQ(parse_config("", "agent.toml")->admin_group, "");
    auto bad = parse_config("[agent]\nadmin_group = 42\n", "agent.toml");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("admin_group must be a string"), std::string::npos)
        << bad.error().what();
}

TEST(AgentConfigParse, SyntaxErrorNamesFileAndLine) {
    auto cfg = parse_config("[agent]\nsocket = \"/s\"\nstate_dir = \n", "agent.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.error().err, EINVAL);
    EXPECT_TRUE(starts_with(cfg.error().message, "agent.toml:3:")) << cfg.error().message;
}

TEST(AgentConfigParse, UnterminatedStringNamesLine) {
    auto cfg = parse_config("\n\n[agent]\n\n\nsocket = \"/unterminated\n", "/etc/x/agent.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_TRUE(starts_with(cfg.error().message, "/etc/x/agent.toml:6:")) << cfg.error().message;
}

TEST(AgentConfigParse, DuplicateKeyIsAnError) {
    auto cfg = parse_config("[agent]\nsocket = \"/a\"\nsocket = \"/b\"\n", "agent.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_TRUE(starts_with(cfg.error().message, "agent.toml:3:")) << cfg.error().message;
}

TEST(AgentConfigParse, NonStringValueNamesKeyAndLine) {
    auto cfg = parse_config("[agent]\nsocket = \"/a\"\n\nstate_dir = 17\n", "agent.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.error().err, EINVAL);
    EXPECT_TRUE(starts_with(cfg.error().message, "agent.toml:4:")) << cfg.error().message;
    EXPECT_TRUE(contains(cfg.error().message, "state_dir must be a string")) << cfg.error().message;
}

TEST(AgentConfigParse, ArrayValueIsRefused) {
    auto cfg = parse_config("[agent]\nlog_level = [\"info\"]\n", "agent.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_TRUE(contains(cfg.error().message, "log_level must be a string")) << cfg.error().message;
}

TEST(AgentConfigParse, AgentNotATableIsRefused) {
    auto cfg = parse_config("# header\nagent = \"yes\"\n", "agent.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.error().err, EINVAL);
    EXPECT_TRUE(starts_with(cfg.error().message, "agent.toml:2:")) << cfg.error().message;
    EXPECT_TRUE(contains(cfg.error().message, "[agent] must be a table")) << cfg.error().message;
}

// ---- [limits], [events], [xdp] -------------------------------------------------------

TEST(AgentConfigParse, DefaultsOfNewTables) {
    auto cfg = parse_config("", "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->limits.bindings, 65536u);
    EXPECT_EQ(cfg->limits.interface_bindings, 4096u);
    EXPECT_EQ(cfg->limits.policy_entries, 262144u);
    EXPECT_EQ(cfg->limits.conntrack_entries, 262144u);
    EXPECT_EQ(cfg->events.rate, 1000u);
    EXPECT_EQ(cfg->events.burst, 5000u);
    EXPECT_EQ(cfg->events.ring_kib, 1024u);
    EXPECT_EQ(cfg->events.history, 10000u);
    EXPECT_TRUE(cfg->xdp.interfaces.empty());
    EXPECT_TRUE(cfg->xdp.deny.empty());
    EXPECT_EQ(cfg->xdp.mode, "auto");
    EXPECT_EQ(cfg->xdp.max_entries, 65536u);
}

TEST(AgentConfigParse, EveryNewKey) {
    auto cfg = parse_config(R"toml(
[limits]
bindings = 1000
interface_bindings = 200
policy_entries = 5000
conntrack_entries = 70000
[events]
rate = 10
burst = 20
ring_kib = 4096
history = 500
[xdp]
interfaces = ["uplink0", "uplink1"]
deny = ["192.0.2.0/24", "2001:db8::/32"]
mode = "generic"
max_entries = 100
)toml",
                            "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->limits.bindings, 1000u);
    EXPECT_EQ(cfg->limits.interface_bindings, 200u);
    EXPECT_EQ(cfg->limits.policy_entries, 5000u);
    EXPECT_EQ(cfg->limits.conntrack_entries, 70000u);
    EXPECT_EQ(cfg->events.rate, 10u);
    EXPECT_EQ(cfg->events.burst, 20u);
    EXPECT_EQ(cfg->events.ring_kib, 4096u);
    EXPECT_EQ(cfg->events.history, 500u);
    EXPECT_EQ(cfg->xdp.interfaces, (std::vector<std::string>{"uplink0", "uplink1"}));
    EXPECT_EQ(cfg->xdp.deny, (std::vector<std::string>{"192.0.2.0/24", "2001:db8::/32"}));
    EXPECT_EQ(cfg->xdp.mode, "generic");
    EXPECT_EQ(cfg->xdp.max_entries, 100u);
    EXPECT_EQ(cfg->socket, "/run/personabpf/agent.sock");  // no [agent]: defaults
}

// The early return on a missing [agent] table once skipped every other table.
TEST(AgentConfigParse, NewTablesParsedWithoutAgentTable) {
    auto cfg = parse_config("[limits]\nbindings = 7\n", "t.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->limits.bindings, 7u);
}

TEST(AgentConfigParse, NewTablesKeepBaseValuesOfUnsetKeys) {
    Config base;
    base.limits.bindings = 11;
    base.events.history = 222;
    base.xdp.interfaces = {"base0"};
    auto cfg = parse_config("[limits]\nconntrack_entries = 2048\n[xdp]\nmode = \"native\"\n",
                            "t.toml", base);
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->limits.bindings, 11u);
    EXPECT_EQ(cfg->limits.conntrack_entries, 2048u);
    EXPECT_EQ(cfg->events.history, 222u);
    EXPECT_EQ(cfg->xdp.interfaces, std::vector<std::string>{"base0"});
    EXPECT_EQ(cfg->xdp.mode, "native");
}

TEST(AgentConfigParse, DottedKeysOfNewTables) {
    auto cfg = parse_config("events.rate = 5\nxdp.deny = [\"10.0.0.0/8\"]\n", "t.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->events.rate, 5u);
    EXPECT_EQ(cfg->xdp.deny, std::vector<std::string>{"10.0.0.0/8"});
}

// Reads back table.key from a parsed config.
uint32_t value_of(const Config& c, const std::string& table, const std::string& key) {
    if (table == "limits") {
        if (key == "bindings") return c.limits.bindings;
        if (key == "interface_bindings") return c.limits.interface_bindings;
        if (key == "policy_entries") return c.limits.policy_entries;
        if (key == "conntrack_entries") return c.limits.conntrack_entries;
    }
    if (table == "events") {
        if (key == "rate") return c.events.rate;
        if (key == "burst") return c.events.burst;
        if (key == "ring_kib") return c.events.ring_kib;
        if (key == "history") return c.events.history;
    }
    if (table == "xdp" && key == "max_entries") return c.xdp.max_entries;
    ADD_FAILURE() << "no such key " << table << "." << key;
    return 0;
}

struct Bound {
    std::string table, key;
    int64_t lo, hi;
    bool pow2 = false;
};

const std::vector<Bound>& bounds() {
    static const std::vector<Bound> b = {
        {"limits", "bindings", 1, 1048576},
        {"limits", "interface_bindings", 1, 65536},
        {"limits", "policy_entries", 16, 4194304},
        {"limits", "conntrack_entries", 1024, 16777216},
        {"events", "rate", 1, 1000000},
        {"events", "burst", 1, 1000000},
        {"events", "ring_kib", 64, 262144, true},
        {"events", "history", 100, 1000000},
        {"xdp", "max_entries", 1, 1048576},
    };
    return b;
}

std::string one_key(const Bound& b, const std::string& value) {
    return "# line 1\n[" + b.table + "]\n" + b.key + " = " + value + "\n";
}

TEST(AgentConfigParse, EveryRangeBoundJustInside) {
    for (const Bound& b : bounds()) {
        for (int64_t v : {b.lo, b.hi}) {
            auto cfg = parse_config(one_key(b, std::to_string(v)), "agent.toml");
            ASSERT_TRUE(cfg.ok()) << b.table << "." << b.key << " = " << v << ": "
                                  << cfg.error().what();
            EXPECT_EQ(value_of(*cfg, b.table, b.key), static_cast<uint32_t>(v))
                << b.table << "." << b.key;
        }
    }
}

TEST(AgentConfigParse, EveryRangeBoundJustOutside) {
    for (const Bound& b : bounds()) {
        // A power-of-two key's nearest invalid neighbours are the halves and doubles.
        std::vector<int64_t> outside = b.pow2 ? std::vector<int64_t>{b.lo / 2, b.hi * 2}
                                              : std::vector<int64_t>{b.lo - 1, b.hi + 1};
        outside.push_back(-1);
        outside.push_back(int64_t{1} << 40);  // wider than uint32_t
        for (int64_t v : outside) {
            auto cfg = parse_config(one_key(b, std::to_string(v)), "agent.toml");
            ASSERT_FALSE(cfg.ok()) << b.table << "." << b.key << " = " << v << " was accepted";
            const std::string& m = cfg.error().message;
            EXPECT_EQ(cfg.error().err, EINVAL);
            EXPECT_TRUE(starts_with(m, "agent.toml:3:")) << m;
            std::string range = std::to_string(b.lo) + ".." + std::to_string(b.hi);
            EXPECT_TRUE(contains(
                m, "[" + b.table + "] " + b.key + " = " + std::to_string(v) + " is out of range"))
                << m;
            EXPECT_TRUE(contains(m, range)) << m;
        }
    }
}

TEST(AgentConfigParse, WrongTypesOfIntegerKeys) {
    for (const Bound& b : bounds()) {
        for (const char* v : {"\"100\"", "100.0", "true", "[100]", "{ x = 1 }"}) {
            auto cfg = parse_config(one_key(b, v), "agent.toml");
            ASSERT_FALSE(cfg.ok()) << b.table << "." << b.key << " = " << v << " was accepted";
            const std::string& m = cfg.error().message;
            EXPECT_TRUE(starts_with(m, "agent.toml:3:")) << m;
            EXPECT_TRUE(contains(m, "[" + b.table + "] " + b.key + " must be ")) << m;
            EXPECT_TRUE(contains(m, std::to_string(b.lo) + ".." + std::to_string(b.hi))) << m;
        }
    }
}

TEST(AgentConfigParse, RingKibMustBeAPowerOfTwo) {
    auto ok = parse_config("[events]\nring_kib = 128\n", "a.toml");
    ASSERT_TRUE(ok.ok()) << ok.error().what();
    EXPECT_EQ(ok->events.ring_kib, 128u);
    for (const char* v : {"96", "65", "262143", "1000"}) {
        auto cfg = parse_config(std::string("[events]\nring_kib = ") + v + "\n", "a.toml");
        ASSERT_FALSE(cfg.ok()) << v;
        EXPECT_TRUE(contains(cfg.error().message, "a power of two in 64..262144"))
            << cfg.error().message;
    }
}

TEST(AgentConfigParse, UnknownKeyInStrictTablesNamesKeyAndValidOnes) {
    struct Case {
        const char* text;
        const char* key;
        const char* valid;
    } cases[] = {
        {"[limits]\nbindings = 5\nconntrak_entries = 5\n", "conntrak_entries",
         "valid keys: bindings, interface_bindings, policy_entries, conntrack_entries"},
        {"[events]\nburst = 5\nrate_per_sec = 5\n", "rate_per_sec",
         "valid keys: rate, burst, ring_kib, history"},
        {"[xdp]\nmode = \"auto\"\ninterface = [\"x\"]\n", "interface",
         "valid keys: interfaces, deny, mode, max_entries"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_config(c.text, "agent.toml");
        ASSERT_FALSE(cfg.ok()) << c.text;
        const std::string& m = cfg.error().message;
        EXPECT_TRUE(starts_with(m, "agent.toml:3:")) << m;
        EXPECT_TRUE(contains(m, std::string("unknown key '") + c.key + "'")) << m;
        EXPECT_TRUE(contains(m, c.valid)) << m;
    }
}

TEST(AgentConfigParse, StrictTableThatIsNoTable) {
    for (const char* t : {"limits", "events", "xdp"}) {
        auto cfg = parse_config(std::string("\n") + t + " = 3\n", "agent.toml");
        ASSERT_FALSE(cfg.ok()) << t;
        EXPECT_TRUE(starts_with(cfg.error().message, "agent.toml:2:")) << cfg.error().message;
        EXPECT_TRUE(contains(cfg.error().message, std::string("[") + t + "] must be a table"))
            << cfg.error().message;
    }
}

TEST(AgentConfigParse, XdpModeValues) {
    for (const char* m : {"auto", "native", "generic"}) {
        auto cfg = parse_config(std::string("[xdp]\nmode = \"") + m + "\"\n", "a.toml");
        ASSERT_TRUE(cfg.ok()) << cfg.error().what();
        EXPECT_EQ(cfg->xdp.mode, m);
    }
    auto bad = parse_config("[xdp]\n\nmode = \"offload\"\n", "a.toml");
    ASSERT_FALSE(bad.ok());
    EXPECT_TRUE(starts_with(bad.error().message, "a.toml:3:")) << bad.error().message;
    EXPECT_TRUE(
        contains(bad.error().message,
                 "[xdp] mode = \"offload\" is not one of \"auto\", \"native\", \"generic\""))
        << bad.error().message;
    auto type = parse_config("[xdp]\nmode = 1\n", "a.toml");
    ASSERT_FALSE(type.ok());
    EXPECT_TRUE(contains(type.error().message, "[xdp] mode must be a string"))
        << type.error().message;
}

TEST(AgentConfigParse, XdpInterfacesMustBeStringsAndValidNames) {
    struct Case {
        const char* value;
        const char* message;
    } cases[] = {
        {"\"eth0\"", "[xdp] interfaces must be an array of strings"},
        {"[\"eth0\", 3]", "[xdp] interfaces must be an array of strings"},
        {"[\"\"]", "interface name must not be empty"},
        {"[\"abcdefghijklmnop\"]", "longer than 15 bytes"},
        {"[\"a/b\"]", "contains '/', ':' or whitespace"},
        {"[\"a b\"]", "contains '/', ':' or whitespace"},
        {"[\"..\"]", "'..' is not an interface name"},
        {"[\"eth0\", \"eth0\"]", "interface 'eth0' is listed twice"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_config(std::string("[xdp]\ninterfaces = ") + c.value + "\n", "a.toml");
        ASSERT_FALSE(cfg.ok()) << c.value;
        EXPECT_TRUE(starts_with(cfg.error().message, "a.toml:2:")) << cfg.error().message;
        EXPECT_TRUE(contains(cfg.error().message, c.message)) << cfg.error().message;
    }
    auto longest = parse_config("[xdp]\ninterfaces = [\"abcdefghijklmno\"]\n", "a.toml");
    EXPECT_TRUE(longest.ok()) << longest.error().what();
}

TEST(AgentConfigParse, XdpTooManyInterfaces) {
    std::string list;
    for (int i = 0; i < 64; ++i) list += (i ? ", \"if" : "\"if") + std::to_string(i) + "\"";
    auto cfg = parse_config("[xdp]\ninterfaces = [" + list + "]\n", "a.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_TRUE(contains(cfg.error().message, "64 interfaces; at most 63")) << cfg.error().message;
}

TEST(AgentConfigParse, XdpDenyIsValidatedAndNormalised) {
    auto cfg = parse_config(R"toml([xdp]
deny = ["2001:DB8:0:0::/32", "198.51.100.0/24", "203.0.113.7", "::1", "198.51.100.0/24", "0.0.0.0/0"]
)toml",
                            "a.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    // Canonical text, sorted, duplicates merged; a bare address is a host prefix.
    EXPECT_EQ(cfg->xdp.deny,
              (std::vector<std::string>{"0.0.0.0/0", "198.51.100.0/24", "2001:db8::/32",
                                        "203.0.113.7/32", "::1/128"}));
}

TEST(AgentConfigParse, XdpDenyErrorsNameEntryAndLocation) {
    struct Case {
        const char* value;
        const char* message;
    } cases[] = {
        {"\"192.0.2.0/24\"", "[xdp] deny must be an array of strings"},
        {"[24]", "[xdp] deny must be an array of strings"},
        {"[\"192.0.2.1/24\"]",
         "'192.0.2.1/24': host bits set beyond /24 (the network is 192.0.2.0/24)"},
        {"[\"192.0.2.0/33\"]", "'192.0.2.0/33': prefix length must be 0..32"},
        {"[\"2001:db8::/129\"]", "'2001:db8::/129': prefix length must be 0..128"},
        {"[\"2001:db8::1/32\"]", "host bits set beyond /32 (the network is 2001:db8::/32)"},
        {"[\"192.0.2.0/\"]", "prefix length must be 0..32"},
        {"[\"192.0.2.0/-1\"]", "prefix length must be 0..32"},
        {"[\"192.0.2.0/08\"]", "prefix length must be 0..32"},
        {"[\"192.0.2/24\"]", "not an IPv4 address"},
        {"[\"300.0.2.0/24\"]", "not an IPv4 address"},
        {"[\"example.com\"]", "not an IPv4 address"},
        {"[\"2001:db8:::/32\"]", "not an IPv6 address"},
        {"[\"\"]", "empty CIDR"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_config(std::string("[xdp]\ndeny = ") + c.value + "\n", "a.toml");
        ASSERT_FALSE(cfg.ok()) << c.value;
        EXPECT_TRUE(starts_with(cfg.error().message, "a.toml:2:")) << cfg.error().message;
        EXPECT_TRUE(contains(cfg.error().message, c.message)) << cfg.error().message;
    }
}

TEST(AgentConfigParse, XdpDenyMustFitMaxEntries) {
    auto ok = parse_config(
        "[xdp]\nmax_entries = 2\ndeny = [\"10.0.0.0/8\", \"10.0.0.0/8\", "
        "\"192.0.2.0/24\"]\n",
        "a.toml");
    ASSERT_TRUE(ok.ok()) << ok.error().what();  // 2 distinct entries
    auto cfg = parse_config(
        "[xdp]\nmax_entries = 2\ndeny = [\"10.0.0.0/8\", \"192.0.2.0/24\", "
        "\"::/0\"]\n",
        "a.toml");
    ASSERT_FALSE(cfg.ok());
    EXPECT_TRUE(starts_with(cfg.error().message, "a.toml:3:")) << cfg.error().message;
    EXPECT_TRUE(
        contains(cfg.error().message, "[xdp] deny has 3 entries, more than max_entries = 2"))
        << cfg.error().message;
}

TEST(AgentConfigParse, AgentKeysStillLenientNextToStrictTables) {
    auto cfg = parse_config("[agent]\nfuture_key = 1\n[limits]\nbindings = 3\n", "a.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->limits.bindings, 3u);
}

// ---- parse_cidr ------------------------------------------------------------------------

TEST(CidrParse, CanonicalTextRoundTrips) {
    for (const char* t : {"0.0.0.0/0", "10.0.0.0/8", "198.51.100.128/25", "203.0.113.7/32", "::/0",
                          "2001:db8::/32", "fe80::1/128", "::ffff:192.0.2.0/120"}) {
        auto c = parse_cidr(t);
        ASSERT_TRUE(c.ok()) << t << ": " << c.error().what();
        EXPECT_EQ(c->text(), t);
    }
}

TEST(CidrParse, FamiliesAndBytes) {
    auto v4 = parse_cidr("192.0.2.0/24");
    ASSERT_TRUE(v4.ok());
    EXPECT_EQ(v4->family, AF_INET);
    EXPECT_EQ(v4->prefix_len, 24);
    EXPECT_EQ(v4->addr[0], 192);
    EXPECT_EQ(v4->addr[2], 2);
    EXPECT_EQ(v4->addr[4], 0);  // the rest stays zero
    auto v6 = parse_cidr("2001:db8::");
    ASSERT_TRUE(v6.ok());
    EXPECT_EQ(v6->family, AF_INET6);
    EXPECT_EQ(v6->prefix_len, 128);
}

// ---- load_config ---------------------------------------------------------------------

using AgentConfigFile = pbpf::test::TempDirTest;

TEST_F(AgentConfigFile, ReadsFile) {
    auto path = write("agent.toml", "[agent]\nsocket = \"/f.sock\"\nlog_level = \"error\"\n");
    auto cfg = load_config(path, true);
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/f.sock");
    EXPECT_EQ(cfg->log_level, "error");
    EXPECT_EQ(cfg->state_dir, "/var/lib/personabpf");
}

TEST_F(AgentConfigFile, MalformedFileErrorStartsWithPathAndLine) {
    auto path = write("bad.toml", "[agent]\nsocket = /not-quoted\n");
    auto cfg = load_config(path, true);
    ASSERT_FALSE(cfg.ok());
    EXPECT_TRUE(starts_with(cfg.error().message, path + ":2:")) << cfg.error().message;
}

TEST_F(AgentConfigFile, MissingExplicitFileIsAnError) {
    std::string path = dir_ + "/absent.toml";
    auto cfg = load_config(path, true);
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.error().err, ENOENT);
    EXPECT_TRUE(contains(cfg.error().what(), path)) << cfg.error().what();
}

TEST_F(AgentConfigFile, MissingDefaultFileMeansDefaults) {
    auto cfg = load_config(dir_ + "/absent.toml", false);
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/run/personabpf/agent.sock");
    EXPECT_EQ(cfg->cgroup_root, "");
}

TEST_F(AgentConfigFile, UnreachableDefaultFileIsStillAnError) {
    // Only ENOENT means "no config": a path through a regular file is a real error.
    auto file = write("plain", "x");
    auto cfg = load_config(file + "/agent.toml", false);
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.error().err, ENOTDIR);
}

// `--config /dev/null` is how scripts say "the embedded defaults, whatever /etc has"
// (scripts/demo.sh does).
TEST_F(AgentConfigFile, DevNullMeansDefaults) {
    auto cfg = load_config("/dev/null", true);
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->socket, "/run/personabpf/agent.sock");
    EXPECT_EQ(cfg->limits.bindings, 65536u);
}

TEST_F(AgentConfigFile, EmptyFileMeansDefaults) {
    auto cfg = load_config(write("empty.toml", ""), true);
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->bpffs_root, "/sys/fs/bpf/personabpf");
}

// BUG (agent/config.cpp load_config): a directory passes stat(), std::ifstream opens it,
// the read fails silently and the empty text parses as "all defaults". So
// `personabpfd --config /etc/personabpf` starts an agent on the default socket, state dir,
// pin dir and the WHOLE cgroup2 tree instead of refusing. Enable once fixed.
TEST_F(AgentConfigFile, DirectoryIsAnError) {
    auto cfg = load_config(dir_, true);
    EXPECT_FALSE(cfg.ok()) << "a directory was read as an empty config";
}

// ---- precedence through the real personabpfd ------------------------------------------
// defaults < file < flags is applied in main(); it is observable without root through the
// log-level check, which fails before anything is opened. As a guard against ever getting
// further, every run also names a temp socket/state/pin dir and a cgroup root that does not
// exist (start-up stops at the cgroup step, before bpffs), with PERSONABPF_TEST_SAFETY=1.

#ifdef PERSONABPFD_BIN
struct RunResult {
    int status = -1;
    std::string err;
};

RunResult run_agent(const std::string& dir, std::vector<std::string> args) {
    std::vector<std::string> argv = {PERSONABPFD_BIN,
                                     "--socket",
                                     dir + "/agent.sock",
                                     "--state-dir",
                                     dir + "/state",
                                     "--bpffs-root",
                                     dir + "/bpffs-not-a-bpffs",
                                     "--cgroup-root",
                                     "/personabpf-unit-test-does-not-exist-b7e1"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string errfile = dir + "/stderr";
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(errfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            ::dup2(fd, 2);
            ::dup2(fd, 1);
        }
        ::setenv("PERSONABPF_TEST_SAFETY", "1", 1);
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        ::execv(cargv[0], cargv.data());
        ::_exit(127);
    }
    RunResult r;
    if (pid < 0) return r;
    int st = 0;
    ::waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    std::ifstream in(errfile);
    r.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return r;
}

TEST_F(AgentConfigFile, FileValueUsedWithoutFlag) {
    auto path = write("agent.toml", "[agent]\nlog_level = \"from-file\"\n");
    auto r = run_agent(dir_, {"--config", path});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains(r.err, "personabpfd: error: unknown log level 'from-file'")) << r.err;
}

TEST_F(AgentConfigFile, FlagOverridesFile) {
    auto path = write("agent.toml", "[agent]\nlog_level = \"from-file\"\n");
    auto r = run_agent(dir_, {"--config", path, "--log-level", "from-flag"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains(r.err, "unknown log level 'from-flag'")) << r.err;
    EXPECT_FALSE(contains(r.err, "from-file")) << r.err;
}

TEST_F(AgentConfigFile, AgentRefusesMissingExplicitConfig) {
    auto r = run_agent(dir_, {"--config", dir_ + "/absent.toml"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains(r.err, "personabpfd: error: config " + dir_ + "/absent.toml")) << r.err;
}

TEST_F(AgentConfigFile, AgentRefusesMalformedConfigWithLine) {
    auto path = write("agent.toml", "[agent]\n\nsocket = \n");
    auto r = run_agent(dir_, {"--config", path});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains(r.err, "personabpfd: error: " + path + ":3:")) << r.err;
}
#endif

// ---- [binding] ------------------------------------------------------------------------

TEST(AgentConfigBinding, FailClosedPathsAndWatchInterfaces) {
    auto cfg = parse_config(
        "[binding]\nfail_closed = [\"/machine.slice/\", \"/user.slice\"]\nwatch_interfaces = "
        "false\n",
        "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    // A trailing slash is dropped: one spelling per subtree.
    EXPECT_EQ(cfg->binding.fail_closed,
              (std::vector<std::string>{"/machine.slice", "/user.slice"}));
    EXPECT_FALSE(cfg->binding.watch_interfaces);
    auto defaults = parse_config("", "agent.toml");
    ASSERT_TRUE(defaults.ok());
    EXPECT_TRUE(defaults->binding.fail_closed.empty());
    EXPECT_TRUE(defaults->binding.watch_interfaces);
}

TEST(AgentConfigBinding, BadValuesNameTheKeyAndWhy) {
    struct Case {
        const char* toml;
        const char* expect;
    };
    const Case cases[] = {
        {"[binding]\nfail_closed = [\"machine.slice\"]\n", "must be absolute"},
        {"[binding]\nfail_closed = [\"/a/../b\"]\n", "'..'"},
        {"[binding]\nfail_closed = [\"/a//b\"]\n", "empty"},
        {"[binding]\nfail_closed = [\"/a\", \"/a/\"]\n", "listed twice"},
        {"[binding]\nfail_closed = \"/a\"\n", "array of strings"},
        {"[binding]\nwatch_interfaces = 1\n", "true or false"},
        {"[binding]\nfail_open = []\n", "fail_open"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_config(c.toml, "agent.toml");
        ASSERT_FALSE(cfg.ok()) << c.toml;
        EXPECT_NE(cfg.error().message.find(c.expect), std::string::npos)
            << c.toml << " -> " << cfg.error().message;
        EXPECT_NE(cfg.error().message.find("agent.toml:"), std::string::npos)
            << cfg.error().message;
    }
}

}  // namespace
}  // namespace pbpf::agent

// ---- [migration] ----------------------------------------------------------------------

namespace pbpf::agent {
namespace {

TEST(AgentConfigMigration, DefaultsAreNoListenerAndNoIdentity) {
    auto cfg = parse_config("", "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->migration.listen, "");
    EXPECT_FALSE(cfg->migration.has_identity());
    EXPECT_TRUE(cfg->migration.peers.empty());
}

TEST(AgentConfigMigration, EveryKey) {
    auto cfg = parse_config(
        "[migration]\nlisten = \"[::]:7946\"\ncert = \"/etc/t/a.crt\"\nkey = \"/etc/t/a.key\"\n"
        "ca = \"/etc/t/ca.crt\"\npeers = [\"host-b.example\", \"host-c.example\"]\n",
        "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->migration.listen, "[::]:7946");
    EXPECT_EQ(cfg->migration.cert, "/etc/t/a.crt");
    EXPECT_EQ(cfg->migration.key, "/etc/t/a.key");
    EXPECT_EQ(cfg->migration.ca, "/etc/t/ca.crt");
    EXPECT_EQ(cfg->migration.peers, (std::vector<std::string>{"host-b.example", "host-c.example"}));
    EXPECT_TRUE(cfg->migration.has_identity());
}

TEST(AgentConfigMigration, SendOnlyAndPortZero) {
    // An identity without a listener: this agent sends and never receives.
    auto cfg = parse_config("[migration]\ncert = \"/a.crt\"\nkey = \"/a.key\"\nca = \"/ca.crt\"\n",
                            "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->migration.listen, "");
    EXPECT_TRUE(cfg->migration.has_identity());
    // Port 0: any free port (GET /v1/status reports it).
    cfg = parse_config(
        "[migration]\nlisten = \"127.0.0.1:0\"\ncert = \"/a.crt\"\nkey = \"/a.key\"\n"
        "ca = \"/ca.crt\"\npeers = []\n",
        "agent.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->migration.listen, "127.0.0.1:0");
    EXPECT_TRUE(cfg->migration.peers.empty());
}

TEST(AgentConfigMigration, BadValuesNameTheKeyAndWhy) {
    const std::string id = "cert = \"/a.crt\"\nkey = \"/a.key\"\nca = \"/ca.crt\"\n";
    struct Case {
        std::string toml;
        const char* expect;
    };
    const Case cases[] = {
        {"[migration]\nlisten = \"0.0.0.0:7946\"\n", "[migration] listen needs cert, key and ca"},
        {"[migration]\nlisten = \"0.0.0.0:7946\"\ncert = \"/a.crt\"\nkey = \"/a.key\"\n",
         "[migration] cert, key and ca go together: ca is missing"},
        {"[migration]\nca = \"/ca.crt\"\n",
         "[migration] cert, key and ca go together: cert, key are missing"},
        {"[migration]\npeers = [\"b\"]\n", "[migration] peers needs cert, key and ca"},
        {"[migration]\nlisten = \"7946\"\n" + id, "[migration] listen: "},
        {"[migration]\nlisten = \"host:99999\"\n" + id, "[migration] listen: "},
        {"[migration]\nlisten = 7946\n" + id, "[migration] listen must be a string"},
        {"[migration]\ncert = \"a.crt\"\nkey = \"/a.key\"\nca = \"/ca.crt\"\n",
         "[migration] cert must be an absolute path: 'a.crt'"},
        {"[migration]\ncert = \"/a.crt\"\nkey = \"\"\nca = \"/ca.crt\"\n",
         "[migration] key must be an absolute path: ''"},
        {"[migration]\npeers = \"b\"\n" + id, "[migration] peers must be an array of strings"},
        {"[migration]\npeers = [\"b\", \"B\"]\n" + id, "peer 'B' is listed twice"},
        {"[migration]\npeers = [\"\"]\n" + id, "must not be empty"},
        {"[migration]\npeers = [\"host b\"]\n" + id, "whitespace or a control character"},
        {"[migration]\nlisten_on = \"0.0.0.0:1\"\n",
         "unknown key 'listen_on' in [migration] (valid keys: listen, cert, key, ca, peers)"},
        {"migration = 1\n", "[migration] must be a table"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_config(c.toml, "agent.toml");
        ASSERT_FALSE(cfg.ok()) << c.toml;
        EXPECT_NE(cfg.error().message.find(c.expect), std::string::npos)
            << c.toml << " -> " << cfg.error().message;
        EXPECT_TRUE(starts_with(cfg.error().message, "agent.toml:")) << cfg.error().message;
    }
}

}  // namespace
}  // namespace pbpf::agent
