// Bad input from users and from the socket: a broken PDL file applies nothing, binding
// errors are clear, bound personas need --force to go, and malformed API requests leave
// the agent answering.
#include "tests/integration/fixture.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <random>
#include <regex>

namespace pbpf::it {
namespace {

class BadInput : public IntegrationTest {
  protected:
    std::string web_v1() {
        return persona_pdl("it-web",
                           {"mode enforce", "default ingress allow", "default egress allow",
                            "deny egress tcp port 9090 to " + veth_->peer4},
                           "web v1");
    }
};

TEST_F(BadInput, PdlErrorAppliesNothing) {
    const auto& v = *veth_;
    apply(*agent_, web_v1());
    bind("it-web", "web");
    const Where w = in("web");

    // v2 would open 9090 and close 8080, but line 5 has an invalid default; a second,
    // valid persona in the same file must not be applied either.
    const std::string bad =
        "persona it-web {\n"          // 1
        "  description \"web v2\"\n"  // 2
        "  security {\n"              // 3
        "    mode enforce\n"          // 4
        "    default egress maybe\n"  // 5
        "    deny egress tcp port 8080 to " +
        v.peer4 +
        "\n"     // 6
        "  }\n"  // 7
        "}\n"    // 8
        "persona it-other {\n"
        "  security {\n"
        "    default egress allow\n"
        "  }\n"
        "}\n";
    std::string bad_path = scratch_.write("bad.pdl", bad);

    CommandResult check = agent_->cli({"pdl", "check", bad_path});
    EXPECT_EQ(check.exit_code, 1) << check.describe();
    EXPECT_TRUE(std::regex_search(check.err, std::regex(R"(bad\.pdl:5:\d+: error: )")))
        << "pdl check must name file:line:col:\n"
        << check.err;

    CommandResult r = try_apply(*agent_, bad, "bad.pdl");
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(bad\.pdl:5:\d+: error: )")))
        << "persona apply must name file:line:col:\n"
        << r.err;
    // ... and show the offending line with a caret under it.
    EXPECT_NE(r.err.find("default egress maybe"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find('^'), std::string::npos) << r.err;

    // A semantic error (a set that does not exist) is as fatal as a syntax error.
    r = try_apply(*agent_,
                  persona_pdl("it-web",
                              {"mode enforce", "default egress allow",
                               "deny egress tcp port 8080 to $nowhere"},
                              "web v3"),
                  "sema.pdl");
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(sema\.pdl:\d+:\d+: error: )"))) << r.err;

    Probe p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "v1 still drops 9090: " << p;
    p = tcp_probe(w, v.peer4, kPortA);
    EXPECT_TRUE(p.ok()) << "v1 still passes 8080: " << p;

    nlohmann::json show;
    ASSERT_TRUE(cli_json(*agent_, {"persona", "show", "it-web"}, &show));
    EXPECT_EQ(show.value("description", ""), "web v1") << show.dump(2);
    CommandResult other = agent_->cli({"persona", "show", "it-other"});
    EXPECT_EQ(other.exit_code, 1) << "it-other from the broken file was applied: "
                                  << other.describe();

    // A valid file still passes the same check.
    CommandResult good = agent_->cli({"pdl", "check", scratch_.write("good.pdl", web_v1())});
    EXPECT_EQ(good.exit_code, 0) << good.describe();
}

TEST_F(BadInput, BindErrorsAreClear) {
    apply(*agent_, web_v1());
    cg_->create("web");
    auto expect_error = [](const CommandResult& r, const std::string& what,
                           const std::string& mention) {
        EXPECT_EQ(r.exit_code, 1) << what << ": " << r.describe();
        EXPECT_EQ(r.err.rfind("personabpf: error: ", 0), 0u) << what << ": " << r.err;
        if (!mention.empty()) {
            EXPECT_NE(r.err.find(mention), std::string::npos)
                << what << ": the message should mention " << mention << ": " << r.err;
        }
    };

    expect_error(agent_->cli({"bind", "--persona", "it-nope", "--cgroup", cg_->rel("web")}),
                 "unknown persona", "it-nope");
    expect_error(agent_->cli({"bind", "--persona", "it-web", "--cgroup", cg_->rel("missing")}),
                 "missing cgroup", "missing");
    const pid_t gone = dead_pid();
    expect_error(agent_->cli({"bind", "--persona", "it-web", "--pid", std::to_string(gone)}),
                 "dead pid", std::to_string(gone));
    // A cgroup of our own that lies outside the agent's managed subtree.
    CgroupTree& outside = add_cgroup_tree();
    ASSERT_TRUE(outside.ok()) << outside.error();
    outside.create("x");
    expect_error(agent_->cli({"bind", "--persona", "it-web", "--cgroup", outside.rel("x")}),
                 "cgroup outside the managed subtree", "");
    expect_error(agent_->cli({"unbind", "--cgroup", cg_->rel("web")}), "unbind of unbound", "");

    nlohmann::json j;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &j));
    EXPECT_TRUE(j.is_array() && j.empty()) << "failed binds left bindings:\n" << j.dump(2);

    // The raw API answers with the documented statuses.
    HttpResponse h = http(agent_->paths().socket, "POST", "/v1/bindings",
                          R"({"persona": "it-nope", "cgroup": ")" + cg_->rel("web") + "\"}");
    EXPECT_EQ(h.status, 404) << h.raw;
    h = http(agent_->paths().socket, "POST", "/v1/bindings",
             R"({"persona": "it-web", "cgroup": ")" + cg_->rel("missing") + "\"}");
    EXPECT_EQ(h.status, 400) << h.raw;
}

TEST_F(BadInput, RemovingBoundPersonaNeedsForce) {
    const auto& v = *veth_;
    apply(*agent_, web_v1());
    bind("it-web", "web");
    const Where w = in("web");

    CommandResult r = agent_->cli({"persona", "rm", "it-web"});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(r.err.rfind("personabpf: error: ", 0), 0u) << r.err;
    Probe p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "refused rm must leave the persona enforced: " << p;
    nlohmann::json personas;
    ASSERT_TRUE(cli_json(*agent_, {"persona", "ls"}, &personas));
    EXPECT_EQ(personas.size(), 1u) << personas.dump(2);

    r = agent_->cli({"persona", "rm", "it-web", "--force"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_TRUE(cli_json(*agent_, {"persona", "ls"}, &personas));
    EXPECT_TRUE(personas.is_array() && personas.empty()) << personas.dump(2);
    nlohmann::json bindings;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bindings));
    EXPECT_TRUE(bindings.is_array() && bindings.empty()) << bindings.dump(2);
    p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "after forced rm: " << p;

    r = agent_->cli({"persona", "rm", "it-web"});
    EXPECT_EQ(r.exit_code, 1) << "rm of a missing persona: " << r.describe();
}

TEST_F(BadInput, MalformedApiRequestsLeaveAgentAlive) {
    const auto& v = *veth_;
    apply(*agent_, web_v1());
    bind("it-web", "web");
    const std::string& sock = agent_->paths().socket;

    struct Case {
        std::string what;
        std::string request;
        bool expect_4xx;  // false: a 4xx/5xx answer or a closed connection are both fine
        bool half_close = false;
    };
    auto req = [](const std::string& method, const std::string& path, const std::string& body) {
        return method + " " + path +
               " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
               "application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    };
    std::string garbage(4096, '\0');
    std::mt19937 rng(42);
    for (auto& c : garbage) c = static_cast<char>(rng());
    const std::string huge(32u << 20, 'x');
    // Bodies over the limit without a Content-Length: chunked, or running to the end of
    // the connection (httplib checks the limit only against a Content-Length).
    std::string chunked =
        "POST /v1/personas HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: "
        "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 6; ++i) chunked += "100000\r\n" + std::string(1u << 20, 'x') + "\r\n";
    chunked += "0\r\n\r\n";
    const std::string unsized =
        "POST /v1/personas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n" +
        std::string(6u << 20, 'x');
    const std::vector<Case> cases = {
        {"bad JSON", req("POST", "/v1/personas", "{\"source\": \"persona"), true},
        {"JSON of the wrong shape", req("POST", "/v1/personas", "[1, 2, 3]"), true},
        {"source of the wrong type", req("POST", "/v1/personas", R"({"source": 42})"), true},
        {"binding without a target", req("POST", "/v1/bindings", R"({"persona": "it-web"})"), true},
        {"binding with a non-numeric pid",
         req("POST", "/v1/bindings", R"({"persona": "it-web", "pid": "abc"})"), true},
        {"unbind naming two targets", req("DELETE", "/v1/bindings?cgroup=/x&user=root", ""), true},
        {"wrong method", req("PUT", "/v1/status", "{}"), true},
        {"wrong method on personas", req("PATCH", "/v1/personas", "{}"), true},
        {"unknown path", req("GET", "/v1/nothing-here", ""), true},
        {"huge body", req("POST", "/v1/personas", huge), false},
        {"huge chunked body", chunked, false},
        {"huge body without a length", unsized, false, true},
        {"lying Content-Length",
         "POST /v1/personas HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
         false, true},
        {"garbage bytes", garbage, false, true},
        {"half a request line", "GET /v1/sta", false, true},
        {"headers that never end", "GET /v1/status HTTP/1.1\r\nHost: x\r\n", false, true},
    };
    for (const auto& c : cases) {
        HttpResponse h = raw_http(sock, c.request, 10s, c.half_close);
        if (c.expect_4xx) {
            EXPECT_GE(h.status, 400) << c.what << ":\n" << h.raw.substr(0, 512);
            EXPECT_LT(h.status, 500) << c.what << ":\n" << h.raw.substr(0, 512);
        } else if (h.status != 0) {
            EXPECT_GE(h.status, 400) << c.what << ":\n" << h.raw.substr(0, 512);
        }
        ASSERT_TRUE(agent_->running()) << "agent died after: " << c.what;
        EXPECT_EQ(http(sock, "GET", "/v1/status").status, 200) << "status after: " << c.what;
    }
    // Errors come as {"error": "..."}.
    HttpResponse h = http(sock, "POST", "/v1/personas", "{not json");
    nlohmann::json body = nlohmann::json::parse(h.body, nullptr, false);
    EXPECT_TRUE(body.is_object() && body.contains("error")) << h.raw;

    // A half-open connection must not block other clients.
    int idle = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(idle, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock.c_str());
    ASSERT_EQ(::connect(idle, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    const std::string partial = "POST /v1/personas HTTP/1.1\r\nContent-Length: 100\r\n\r\n{";
    ASSERT_GT(::send(idle, partial.data(), partial.size(), MSG_NOSIGNAL), 0);
    EXPECT_EQ(http(sock, "GET", "/v1/status").status, 200) << "with a stalled client";
    CommandResult status = agent_->cli({"status"});
    EXPECT_EQ(status.exit_code, 0) << status.describe();
    ::close(idle);

    // And enforcement never wavered.
    Probe p = tcp_probe(in("web"), v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << p;
}

}  // namespace
}  // namespace pbpf::it
