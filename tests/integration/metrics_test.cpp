// Monitoring end to end: an agent with Prometheus listeners on a free TCP port of
// 127.0.0.1 and on a unix socket, real traffic through a bound cgroup, then /metrics
// scraped over both: counters, a drop by reason and per-binding rows move, and the text
// parses as the exposition format. Also GET /v1/stats's new fields and a port in use.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

class Metrics : public IntegrationTest {};

// A TCP port on 127.0.0.1 that nothing listens on right now.
int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        return 0;
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

// GET /metrics over TCP on 127.0.0.1; the body, or "" on failure.
std::string scrape_tcp(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "";
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string raw;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const std::string req =
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
            char buf[65536];
            ssize_t n;
            while ((n = ::read(fd, buf, sizeof buf)) > 0) raw.append(buf, static_cast<size_t>(n));
        }
    }
    ::close(fd);
    if (raw.rfind("HTTP/1.1 200", 0) != 0) return "";
    auto body = raw.find("\r\n\r\n");
    return body == std::string::npos ? "" : raw.substr(body + 4);
}

// Every sample line belongs to the family of the # TYPE before it (a summary's _sum and
// _count included), families are typed
// once, names match the exposition format's grammar, counters end in _total and every
// value parses. Returns the samples as "name{labels}" -> value.
::testing::AssertionResult parse_exposition(const std::string& text,
                                            std::map<std::string, double>* out) {
    static const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
    static const std::regex sample_re(
        R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (\S+))");
    std::set<std::string> typed;
    std::string family;
    std::istringstream in(text);
    std::string line;
    size_t samples = 0;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        if (line.rfind("# TYPE ", 0) == 0) {
            std::istringstream l(line.substr(7));
            std::string name, type;
            l >> name >> type;
            if (!std::regex_match(name, name_re))
                return ::testing::AssertionFailure() << "bad family name: " << line;
            if (type != "counter" && type != "gauge" && type != "summary")
                return ::testing::AssertionFailure() << "unexpected type: " << line;
            if (type == "counter" && !name.ends_with("_total"))
                return ::testing::AssertionFailure() << "counter without _total: " << line;
            if (!typed.insert(name).second)
                return ::testing::AssertionFailure() << "family typed twice: " << line;
            family = name;
            continue;
        }
        if (line[0] == '#') continue;
        std::smatch m;
        if (!std::regex_match(line, m, sample_re))
            return ::testing::AssertionFailure() << "unparsable sample line: " << line;
        if (m[1] != family && m[1] != family + "_sum" && m[1] != family + "_count")
            return ::testing::AssertionFailure() << "sample outside a # TYPE family: " << line;
        try {
            (*out)[m[1].str() + m[2].str()] = std::stod(m[5].str());
        } catch (...) {
            return ::testing::AssertionFailure() << "bad value: " << line;
        }
        ++samples;
    }
    if (samples == 0) return ::testing::AssertionFailure() << "no samples in:\n" << text;
    return ::testing::AssertionSuccess();
}

TEST_F(Metrics, PrometheusOverTcpAndUnixCountsTrafficAndDropsByReason) {
    const int port = free_port();
    ASSERT_NE(port, 0);
    const std::string unix_path = scratch_.path() + "/metrics.sock";
    agent_->stop(SIGTERM);
    agent_->extra_args = {"--config",
                          scratch_.write("metrics.toml", "[metrics]\nlisten = \"127.0.0.1:" +
                                                             std::to_string(port) + "\"\n")};
    ASSERT_TRUE(agent_->start());

    const auto& v = *veth_;
    apply(*agent_,
          persona_pdl("it-mon", {"mode enforce", "default ingress allow", "default egress deny",
                                 "allow egress tcp port 8080 to " + v.peer4,
                                 "deny egress tcp port 9090 to " + v.peer4}));
    bind("it-mon", "mon");
    const Where w = in("mon");
    Probe ok = tcp_probe(w, v.peer4, kPortA);
    EXPECT_TRUE(ok.ok()) << ok;
    Probe rule = tcp_probe(w, v.peer4, kPortB);  // the deny rule
    EXPECT_TRUE(rule.blocked()) << rule;
    Probe dflt = tcp_probe(w, v.alt4, kPortA);  // no rule: the default
    EXPECT_TRUE(dflt.blocked()) << dflt;

    // The monitor samples once a second: poll the scrape until the counters arrive.
    const std::string labels = "persona=\"it-mon\",direction=\"egress\"";
    std::map<std::string, double> m;
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool seen = false;
    while (!seen && std::chrono::steady_clock::now() < deadline) {
        text = scrape_tcp(port);
        m.clear();
        if (!text.empty() && parse_exposition(text, &m)) {
            seen = m["personabpf_persona_packets_total{" + labels + ",verdict=\"allowed\"}"] > 0 &&
                   m["personabpf_persona_drops_total{" + labels + ",reason=\"rule\"}"] > 0 &&
                   m["personabpf_persona_drops_total{" + labels + ",reason=\"default\"}"] > 0;
        }
        if (!seen) std::this_thread::sleep_for(100ms);  // polling interval, not a sync
    }
    ASSERT_TRUE(seen) << "last scrape:\n" << text;
    EXPECT_TRUE(parse_exposition(text, &m));
    EXPECT_GT(m["personabpf_persona_bytes_total{" + labels + ",verdict=\"allowed\"}"], 0);
    EXPECT_GE(m["personabpf_persona_packets_total{" + labels + ",verdict=\"denied\"}"],
              m["personabpf_persona_drops_total{" + labels + ",reason=\"rule\"}"] +
                  m["personabpf_persona_drops_total{" + labels + ",reason=\"default\"}"]);
    EXPECT_EQ(m["personabpf_persona_drops_total{" + labels + ",reason=\"no-policy\"}"], 0);
    const std::string binding = "binding=\"" + cg_->rel("mon") + "\",kind=\"cgroup\"," +
                                "persona=\"it-mon\",direction=\"egress\"";
    EXPECT_GT(m["personabpf_binding_packets_total{" + binding + ",verdict=\"passed\"}"], 0) << text;
    EXPECT_GT(m["personabpf_binding_packets_total{" + binding + ",verdict=\"dropped\"}"], 0)
        << text;
    // The binding's drops by reason: the rule and the default, which together are all of
    // its drops (nothing left unattributed as "other").
    const double b_rule = m["personabpf_binding_drops_total{" + binding + ",reason=\"rule\"}"];
    const double b_default =
        m["personabpf_binding_drops_total{" + binding + ",reason=\"default\"}"];
    EXPECT_GT(b_rule, 0) << text;
    EXPECT_GT(b_default, 0) << text;
    EXPECT_EQ(m.count("personabpf_binding_drops_total{" + binding + ",reason=\"other\"}"), 0u)
        << text;
    EXPECT_EQ(b_rule + b_default,
              m["personabpf_binding_packets_total{" + binding + ",verdict=\"dropped\"}"])
        << text;
    EXPECT_NE(text.find("personabpf_build_info{version=\""), std::string::npos);

    // GET /v1/stats carries the same, plus the binding row and rates.
    nlohmann::json st;
    ASSERT_TRUE(cli_json(*agent_, {"stats", "it-mon"}, &st));
    ASSERT_EQ(st.size(), 1u) << st.dump();
    EXPECT_GT(st[0]["egress"]["dropped_by_reason"].value("rule", 0), 0) << st.dump();
    EXPECT_GT(st[0]["egress"]["dropped_by_reason"].value("default", 0), 0) << st.dump();
    EXPECT_TRUE(st[0]["egress"]["rate"].contains("bits_per_second")) << st.dump();
    ASSERT_EQ(st[0]["bindings"].size(), 1u) << st.dump();
    EXPECT_EQ(st[0]["bindings"][0]["kind"], "cgroup");
    EXPECT_GT(st[0]["bindings"][0]["egress"].value("dropped_packets", 0), 0) << st.dump();
    const auto& b_reasons = st[0]["bindings"][0]["egress"]["dropped_by_reason"];
    EXPECT_GT(b_reasons.value("rule", 0), 0) << st.dump();
    EXPECT_GT(b_reasons.value("default", 0), 0) << st.dump();
    EXPECT_EQ(b_reasons.value("rule", 0) + b_reasons.value("default", 0),
              st[0]["bindings"][0]["egress"].value("dropped_packets", 0))
        << st.dump();
    CommandResult top = agent_->cli({"top", "--iterations", "2", "--interval", "0.2"});
    EXPECT_EQ(top.exit_code, 0) << top.describe();
    EXPECT_NE(top.out.find("it-mon"), std::string::npos) << top.out;

    // A unix-socket listener, and a second agent asking for the same TCP port fails.
    agent_->stop(SIGTERM);
    agent_->extra_args = {
        "--config",
        scratch_.write("metrics-unix.toml", "[metrics]\nlisten = \"unix:" + unix_path + "\"\n")};
    ASSERT_TRUE(agent_->start());
    std::string utext;
    std::map<std::string, double> um;
    for (auto end = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < end;) {
        HttpResponse r = http(unix_path, "GET", "/metrics");
        utext = r.body;
        um.clear();
        if (r.status == 200 && parse_exposition(utext, &um) &&
            um["personabpf_persona_drops_total{" + labels + ",reason=\"rule\"}"] > 0)
            break;
        std::this_thread::sleep_for(100ms);
    }
    // Counters live in the pinned maps: a restarted agent reports what the old one saw.
    EXPECT_GT(um["personabpf_persona_drops_total{" + labels + ",reason=\"rule\"}"], 0) << utext;
    EXPECT_GT(um["personabpf_binding_packets_total{" + binding + ",verdict=\"passed\"}"], 0)
        << utext;
    EXPECT_GE(um["personabpf_binding_drops_total{" + binding + ",reason=\"rule\"}"], b_rule)
        << utext;

    // Port in use: hold the port with a listener of our own.
    int hold = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(hold, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(hold, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(hold, 1), 0);
    ASSERT_EQ(::getsockname(hold, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const int busy = ntohs(a.sin_port);
    agent_->stop(SIGTERM);
    agent_->extra_args = {"--config",
                          scratch_.write("metrics-busy.toml", "[metrics]\nlisten = \"127.0.0.1:" +
                                                                  std::to_string(busy) + "\"\n")};
    agent_->spawn();
    auto exit = agent_->wait_exit(20s);
    ::close(hold);
    ASSERT_TRUE(exit.has_value()) << "agent kept running with its metrics port in use";
    EXPECT_NE(agent_->log().find("[metrics] listen = \"127.0.0.1:" + std::to_string(busy) +
                                 "\": cannot listen on"),
              std::string::npos)
        << agent_->log();
    ASSERT_TRUE(agent_->start()) << "restart without the busy port";  // for teardown
}

}  // namespace
}  // namespace pbpf::it
