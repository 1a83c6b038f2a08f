// The monitor's pure parts: rates, Prometheus text (escaping, HELP/TYPE, names), the
// [metrics] listen address and its config errors.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>

#include "agent/config.h"
#include "agent/metrics.h"
#include "agent/monitor.h"
#include "maps/abi/events.h"

namespace pbpf::agent {
namespace {

TEST(MonitorRate, OverTheInterval) {
    Rate r = rate_between(100, 10000, 300, 60000, 2.0);
    EXPECT_DOUBLE_EQ(r.packets_per_second, 100);
    EXPECT_DOUBLE_EQ(r.bits_per_second, 50000.0 * 8 / 2);
}

TEST(MonitorRate, ResetOrNoIntervalIsZero) {
    EXPECT_DOUBLE_EQ(rate_between(500, 500, 10, 1000, 1).packets_per_second, 0);
    EXPECT_DOUBLE_EQ(rate_between(5, 5000, 10, 100, 1).bits_per_second, 0);
    EXPECT_DOUBLE_EQ(rate_between(1, 1, 10, 10, 0).packets_per_second, 0);
}

TEST(MonitorRate, ReasonNames) {
    EXPECT_EQ(drop_reason_name(PBPF_REASON_RULE), "rule");
    EXPECT_EQ(drop_reason_name(PBPF_REASON_DEFAULT), "default");
    EXPECT_EQ(drop_reason_name(PBPF_REASON_FAIL_CLOSED), "fail-closed");
    EXPECT_EQ(drop_reason_name(0), "other");
    EXPECT_EQ(drop_reason_name(200), "other");
}

TEST(Prometheus, LabelEscaping) {
    EXPECT_EQ(escape_label_value("plain"), "plain");
    EXPECT_EQ(escape_label_value("a\\b"), "a\\\\b");
    EXPECT_EQ(escape_label_value("say \"hi\""), "say \\\"hi\\\"");
    EXPECT_EQ(escape_label_value("two\nlines"), "two\\nlines");
    EXPECT_EQ(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
}

TEST(Prometheus, WriterFormat) {
    MetricsWriter w;
    w.family("t_packets_total", MetricsWriter::Type::Counter, "Packets");
    w.family("t_rate", MetricsWriter::Type::Gauge, "Rate\nper second");
    w.sample("t_rate", {}, 1.5);
    w.sample("t_packets_total", {{"persona", "we\"b"}, {"direction", "egress"}}, 42);
    w.sample("t_packets_total", {{"persona", "db"}, {"direction", "in\\gress"}}, 1e18);
    w.sample("t_typo", {}, 1);
    EXPECT_EQ(w.dropped(), 1u);
    EXPECT_EQ(w.render(),
              "# HELP t_packets_total Packets\n"
              "# TYPE t_packets_total counter\n"
              "t_packets_total{persona=\"we\\\"b\",direction=\"egress\"} 42\n"
              "t_packets_total{persona=\"db\",direction=\"in\\\\gress\"} 1e+18\n"
              "# HELP t_rate Rate\\nper second\n"
              "# TYPE t_rate gauge\n"
              "t_rate 1.5\n");
}

TEST(Prometheus, SummaryKeepsSumAndCountInItsBlock) {
    MetricsWriter w;
    w.family("t_rtt_seconds", MetricsWriter::Type::Summary, "RTT");
    w.sample("t_rtt_seconds", {{"persona", "a"}, {"quantile", "0.5"}}, 0.25);
    w.sample_suffixed("t_rtt_seconds", "_sum", {{"persona", "a"}}, 3);
    w.sample_suffixed("t_rtt_seconds", "_count", {{"persona", "a"}}, 12);
    w.sample_suffixed("t_nope", "_count", {}, 1);
    EXPECT_EQ(w.dropped(), 1u);
    EXPECT_EQ(w.render(),
              "# HELP t_rtt_seconds RTT\n"
              "# TYPE t_rtt_seconds summary\n"
              "t_rtt_seconds{persona=\"a\",quantile=\"0.5\"} 0.25\n"
              "t_rtt_seconds_sum{persona=\"a\"} 3\n"
              "t_rtt_seconds_count{persona=\"a\"} 12\n");
}

TEST(Prometheus, Values) {
    EXPECT_EQ(format_value(0), "0");
    EXPECT_EQ(format_value(12345678901234), "12345678901234");
    EXPECT_EQ(format_value(0.25), "0.25");
    EXPECT_EQ(format_value(std::nan("")), "NaN");
    EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
}

// Every sample line belongs to the # TYPE family declared before it; names are valid.
void expect_valid_exposition(const std::string& text) {
    static const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
    std::set<std::string> typed;
    std::string current;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("# TYPE ", 0) == 0) {
            std::istringstream l(line.substr(7));
            std::string name, type;
            l >> name >> type;
            EXPECT_TRUE(std::regex_match(name, name_re)) << line;
            EXPECT_TRUE(type == "counter" || type == "gauge" || type == "summary") << line;
            EXPECT_TRUE(typed.insert(name).second) << "family typed twice: " << line;
            if (type == "counter") {
                EXPECT_TRUE(name.ends_with("_total")) << line;
            }
            current = name;
            continue;
        }
        if (line.rfind("#", 0) == 0) continue;
        const std::string name = line.substr(0, line.find_first_of("{ "));
        const bool summary_part =
            name == current + "_sum" || name == current + "_count";  // of a summary
        EXPECT_TRUE(name == current || summary_part) << "sample outside its family: " << line;
    }
}

TEST(Prometheus, MonitorSnapshotRendersValidText) {
    MonitorSnapshot s;
    PersonaStats p;
    p.name = "web \"x\"";
    p.id = 3;
    p.counters.dir[PBPF_DIR_EGRESS].allowed_packets = 7;
    p.counters.dir[PBPF_DIR_EGRESS].denied_packets = 2;
    p.counters.dir[PBPF_DIR_EGRESS].dropped_by_reason[PBPF_REASON_RULE] = 2;
    p.rate[PBPF_DIR_EGRESS].bits_per_second = 800;
    s.personas.push_back(p);
    BindingStats b;
    b.kind = "cgroup";
    b.target = "/a/b";
    b.persona = p.name;
    b.slot = 4;
    b.counters.dir[PBPF_DIR_INGRESS].passed_packets = 9;
    b.counters.dir[PBPF_DIR_INGRESS].dropped_packets = 5;
    b.dropped_by_reason[PBPF_DIR_INGRESS][PBPF_REASON_SOVEREIGNTY] = 5;
    s.bindings.push_back(b);
    const std::string text = render_metrics(s, {});
    expect_valid_exposition(text);
    EXPECT_NE(text.find("personabpf_persona_packets_total{persona=\"web \\\"x\\\"\",direction="
                        "\"egress\",verdict=\"allowed\"} 7\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("personabpf_persona_drops_total{persona=\"web \\\"x\\\"\",direction="
                        "\"egress\",reason=\"rule\"} 2\n"),
              std::string::npos);
    EXPECT_NE(text.find("personabpf_persona_rate_bytes_per_second{persona=\"web \\\"x\\\"\","
                        "direction=\"egress\"} 100\n"),
              std::string::npos);
    EXPECT_NE(text.find("personabpf_binding_packets_total{binding=\"/a/b\",kind=\"cgroup\","
                        "persona=\"web \\\"x\\\"\",direction=\"ingress\",verdict=\"passed\"} 9\n"),
              std::string::npos);
    EXPECT_NE(
        text.find("personabpf_binding_drops_total{binding=\"/a/b\",kind=\"cgroup\","
                  "persona=\"web \\\"x\\\"\",direction=\"ingress\",reason=\"sovereignty\"} 5\n"),
        std::string::npos)
        << text;
    // Only the reasons that occurred: a binding's series stay few.
    EXPECT_EQ(text.find("personabpf_binding_drops_total{binding=\"/a/b\",kind=\"cgroup\","
                        "persona=\"web \\\"x\\\"\",direction=\"egress\""),
              std::string::npos);
    EXPECT_NE(text.find("# TYPE personabpf_build_info gauge\npersonabpf_build_info{version=\""),
              std::string::npos);
}

TEST(BindingDrops, ShortfallIsAttributedToOther) {
    BindingStats b;
    b.slot = 4;
    b.counters.dir[PBPF_DIR_EGRESS].dropped_packets = 10;
    b.counters.dir[PBPF_DIR_INGRESS].dropped_packets = 2;
    BindingDropReasons r{};
    r[PBPF_DIR_EGRESS][PBPF_REASON_RULE] = 6;
    r[PBPF_DIR_EGRESS][PBPF_REASON_DEFAULT] = 3;
    // Read after the counters: a drop counted in between shows in its reason only.
    r[PBPF_DIR_INGRESS][PBPF_REASON_RATE_LIMIT] = 3;
    std::map<uint32_t, BindingDropReasons> drops = {{4, r}, {5, {}}};
    attribute_binding_drops(b, drops);
    EXPECT_EQ(b.dropped_by_reason[PBPF_DIR_EGRESS][PBPF_REASON_RULE], 6u);
    EXPECT_EQ(b.dropped_by_reason[PBPF_DIR_EGRESS][PBPF_REASON_DEFAULT], 3u);
    EXPECT_EQ(b.dropped_by_reason[PBPF_DIR_EGRESS][0], 1u);  // the map was full once
    EXPECT_EQ(b.dropped_by_reason[PBPF_DIR_INGRESS][PBPF_REASON_RATE_LIMIT], 3u);
    EXPECT_EQ(b.dropped_by_reason[PBPF_DIR_INGRESS][0], 0u);

    // A slot without keys: every drop is "other"; stale values are reset.
    b.slot = 6;
    attribute_binding_drops(b, drops);
    EXPECT_EQ(b.dropped_by_reason[PBPF_DIR_EGRESS][PBPF_REASON_RULE], 0u);
    EXPECT_EQ(b.dropped_by_reason[PBPF_DIR_EGRESS][0], 10u);
    EXPECT_EQ(drop_reason_name(0), "other");
}

TEST(MetricsListen, Parses) {
    auto a = parse_listen_address("127.0.0.1:9464");
    ASSERT_TRUE(a);
    EXPECT_FALSE(a->is_unix);
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 9464);
    auto v6 = parse_listen_address("[::1]:80");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->text(), "[::1]:80");
    auto u = parse_listen_address("unix:/run/x/metrics.sock");
    ASSERT_TRUE(u);
    EXPECT_TRUE(u->is_unix);
    EXPECT_EQ(u->path, "/run/x/metrics.sock");
}

TEST(MetricsListen, Rejects) {
    for (const char* bad :
         {"", "9464", ":9464", "host:", "host:0", "host:65536", "host:99999999", "host:12ab",
          "::1:80", "[::1]80", "[zz]:80", "unix:", "unix:rel/path", "ho st:80"})
        EXPECT_FALSE(parse_listen_address(bad)) << bad;
}

TEST(MetricsConfig, ListenKey) {
    auto ok = parse_config("[metrics]\nlisten = \"127.0.0.1:9464\"\n", "agent.toml");
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->metrics.listen, "127.0.0.1:9464");
    auto off = parse_config("", "agent.toml");
    ASSERT_TRUE(off);
    EXPECT_EQ(off->metrics.listen, "");

    auto port = parse_config("[metrics]\nlisten = \"127.0.0.1:70000\"\n", "agent.toml");
    ASSERT_FALSE(port);
    EXPECT_EQ(port.error().message,
              "agent.toml:2:10: [metrics] listen: '127.0.0.1:70000': port 70000 is out of range "
              "(1..65535)");
    auto junk = parse_config("[metrics]\nlisten = \"nonsense\"\n", "agent.toml");
    ASSERT_FALSE(junk);
    EXPECT_NE(junk.error().message.find("[metrics] listen: 'nonsense' is not HOST:PORT"),
              std::string::npos)
        << junk.error().message;
    auto type = parse_config("[metrics]\nlisten = 9464\n", "agent.toml");
    ASSERT_FALSE(type);
    EXPECT_NE(type.error().message.find("[metrics] listen must be a string"), std::string::npos);
    auto key = parse_config("[metrics]\nlisen = \"x\"\n", "agent.toml");
    ASSERT_FALSE(key);
    EXPECT_NE(key.error().message.find("unknown key 'lisen' in [metrics]"), std::string::npos);
}

}  // namespace
}  // namespace pbpf::agent
