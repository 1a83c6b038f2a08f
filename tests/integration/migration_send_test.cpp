// `migrate send` between two agents on one kernel, as two hosts (separate pin roots, cgroup
// subtrees and state dirs), over TLS on 127.0.0.1 with certificates from a CA made at test
// time (tests/unit/test_pki.h). A sender whose certificate B does not accept (a name not in
// B's peers, another CA) and a refusal by B's sovereignty gate (403, with the reason) leave
// both hosts as they were; then the send moves the binding, the flow and the persona
// version, and --release unbinds the source; the same for an interface-bound workload.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent/peer_tls.h"
#include "tests/integration/fixture.h"
#include "tests/unit/test_pki.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

constexpr uint16_t kSinkPort = 7071;

class MigrationSend : public IntegrationTest {
  protected:
    void SetUp() override {
        IntegrationTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        pki_dir_ = scratch_.path() + "/pki";
        ASSERT_EQ(::mkdir(pki_dir_.c_str(), 0700), 0);
        pki_ = std::make_unique<test::TestPki>(pki_dir_);
        ca_ = pki_->make_ca("it-ca");
        pki_->make_ca("other-ca");
        host_a_ = pki_->issue("it-ca", "host-a", "host-a");
        host_b_ = pki_->issue("it-ca", "host-b", "host-b");
        host_c_ = pki_->issue("it-ca", "host-c", "host-c");
        rogue_a_ = pki_->issue("other-ca", "rogue-a", "host-a");
    }

    std::string pdl(const std::string& description) const {
        return "persona it-send {\n  description \"" + description +
               "\"\n  security {\n    default ingress deny\n    default egress "
               "deny\n    allow egress tcp port " +
               std::to_string(kSinkPort) + " to " + veth_->peer4 +
               "\n  }\n  sovereignty {\n    allow countries { CH }\n    unknown allow\n  }\n}\n";
    }

    // A's identity is whatever sits in its cert and key files: the sender reads them on
    // every connect, so the test swaps them rather than restarting A.
    void use_identity_a(const test::TestPki::Leaf& leaf) {
        ASSERT_TRUE(write_file(a_cert_, read_file(leaf.cert)));
        ASSERT_TRUE(write_file(a_key_, read_file(leaf.key)));
    }

    void start_a() {
        a_cert_ = scratch_.path() + "/a-current.crt";
        a_key_ = scratch_.path() + "/a-current.key";
        use_identity_a(host_a_);
        const std::string cfg =
            scratch_.write("a.toml", "[migration]\ncert = \"" + a_cert_ + "\"\nkey = \"" + a_key_ +
                                         "\"\nca = \"" + ca_ + "\"\npeers = [\"host-b\"]\n");
        agent_->stop();
        agent_->extra_args = {"--config", cfg};
        ASSERT_TRUE(agent_->start());
    }

    // (Re)starts B in `country`, listening on a free port of 127.0.0.1, accepting host-a;
    // with `failpoint` armed if given.
    void start_b(const std::string& country, const std::string& failpoint = "") {
        if (b_->running()) {
            // The listener stops with the agent: SIGTERM ends it cleanly, at once.
            ::kill(b_->pid(), SIGTERM);
            const std::optional<int> st = b_->wait_exit(5s);
            ASSERT_TRUE(st.has_value()) << "B did not stop within 5 s:\n" << b_->log();
            ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "wait status " << *st;
        }
        const std::string cfg = scratch_.write(
            "b-" + country + ".toml", "[geo]\nhost_country = \"" + country +
                                          "\"\n[migration]\nlisten = \"127.0.0.1:0\"\ncert = \"" +
                                          host_b_.cert + "\"\nkey = \"" + host_b_.key +
                                          "\"\nca = \"" + ca_ + "\"\npeers = [\"host-a\"]\n");
        b_->extra_args = {"--config", cfg};
        b_->extra_env.clear();
        if (!failpoint.empty()) b_->extra_env.push_back("PERSONABPF_FAILPOINT=" + failpoint);
        ASSERT_TRUE(b_->start());
        const json st = status(*b_);
        ASSERT_TRUE(st["migration"]["address"].is_string()) << st.dump(2);
        b_address_ = st["migration"]["address"].get<std::string>();
        ASSERT_EQ(b_address_.rfind("127.0.0.1:", 0), 0u) << b_address_;
    }

    json status(Agent& agent) {
        HttpResponse r = http(agent.paths().socket, "GET", "/v1/status");
        EXPECT_EQ(r.status, 200) << r.raw;
        return json::parse(r.body, nullptr, false);
    }

    // POST /v1/migration/send on A, as the CLI sends it; the HTTP status and the body.
    std::pair<int, json> send_api(const json& body) {
        HttpResponse r =
            http(agent_->paths().socket, "POST", "/v1/migration/send", body.dump(), 30s);
        return {r.status, json::parse(r.body, nullptr, false)};
    }

    // One request message to B as host-a, with the transport itself: B's reply.
    json raw_request(const std::string& message) {
        agent::TlsIdentity id{host_a_.cert, host_a_.key, ca_, {"host-b"}};
        auto conn = agent::connect_peer(b_address_, id);
        if (!conn) return {{"connect", conn.error().what()}};
        if (auto r = conn->send(message); !r) return {{"send", r.error().what()}};
        auto answer = conn->receive();
        if (!answer) return {{"receive", answer.error().what()}};
        return json::parse(*answer, nullptr, false);
    }

    // What a send may change on a host, as the CLI shows it.
    json snapshot(Agent& agent) {
        json personas, bindings, flows;
        EXPECT_TRUE(cli_json(agent, {"persona", "ls"}, &personas));
        EXPECT_TRUE(cli_json(agent, {"bindings", "ls"}, &bindings));
        EXPECT_TRUE(cli_json(agent, {"conntrack", "ls"}, &flows));
        // Flow counters and ages move with A's traffic; what identifies a flow does not.
        json ids = json::array();
        for (const auto& f : flows["flows"])
            ids.push_back({f["persona"], f["workload"], f["remote"], f["remote_port"]});
        return {{"personas", personas}, {"bindings", bindings}, {"flows", ids}};
    }

    std::string pki_dir_, ca_, a_cert_, a_key_, b_address_;
    std::unique_ptr<test::TestPki> pki_;
    test::TestPki::Leaf host_a_, host_b_, host_c_, rogue_a_;
    Agent* b_ = nullptr;
};

TEST_F(MigrationSend, MovesTheWorkloadAndRefusesStrangersAndTheGate) {
    const auto& v = *veth_;
    start_a();
    // A: version 2 of the persona (B, which has none, must take the number 2 as well).
    apply(*agent_, pdl("first"));
    apply(*agent_, pdl("second"));
    json ls;
    bind("it-send", "w");
    TcpSink sink(from_netns(), kSinkPort);
    ASSERT_TRUE(sink.ok()) << sink.error();
    TcpBulk bulk(in("w"), v.peer4, kSinkPort, 64 * 1024);
    ASSERT_TRUE(bulk.ok()) << bulk.error();
    ASSERT_TRUE(wait_until(
        [&] {
            if (!cli_json(*agent_, {"conntrack", "ls", "--persona", "it-send"}, &ls)) return false;
            for (const auto& f : ls["flows"])
                if (f["remote_port"] == kSinkPort && f["state"] == "established") return true;
            return false;
        },
        5s))
        << ls.dump(2);

    CgroupTree& tree_b = add_cgroup_tree();
    ASSERT_TRUE(tree_b.ok()) << tree_b.error();
    tree_b.create("w2");
    b_ = &add_agent(tree_b.path());
    const std::string target = tree_b.rel("w2");
    start_b("DE");
    const json a_before = snapshot(*agent_);
    const json b_before = snapshot(*b_);
    std::vector<std::string> send = {"migrate", "send",     "--cgroup",        cg_->rel("w"),
                                     "--to",    b_address_, "--target-cgroup", target};
    auto unchanged = [&](const char* when) {
        SCOPED_TRACE(when);
        EXPECT_EQ(snapshot(*b_), b_before);
        EXPECT_EQ(snapshot(*agent_), a_before);
    };

    {
        SCOPED_TRACE("a sender whose name is not in B's peers is refused");
        use_identity_a(host_c_);
        CommandResult r = agent_->cli(send);
        EXPECT_EQ(r.exit_code, 1) << r.describe();
        EXPECT_NE(r.err.find("failed at connect"), std::string::npos) << r.describe();
        EXPECT_NE(r.err.find("refused us: certificate names (CN=host-c)"), std::string::npos)
            << r.describe();
        unchanged("after the refused name");
    }
    {
        SCOPED_TRACE("a sender from another CA is refused");
        use_identity_a(rogue_a_);
        CommandResult r = agent_->cli(send);
        EXPECT_EQ(r.exit_code, 1) << r.describe();
        EXPECT_NE(r.err.find("failed at connect"), std::string::npos) << r.describe();
        EXPECT_NE(r.err.find(b_address_), std::string::npos) << r.describe();
        unchanged("after the other CA");
        const json st = status(*b_);
        EXPECT_EQ(st["migration"]["refused_peers"], 2) << st.dump(2);
        EXPECT_EQ(st["migration"]["imports"]["ok"], 0) << st.dump(2);
        EXPECT_NE(b_->log().find("refused peer 127.0.0.1:"), std::string::npos);
    }
    use_identity_a(host_a_);
    {
        SCOPED_TRACE("a target that is not the peer named is refused by the sender");
        CommandResult r =
            agent_->cli({"migrate", "send", "--cgroup", cg_->rel("w"), "--to", b_address_,
                         "--target-cgroup", target, "--peer-name", "host-x"});
        EXPECT_EQ(r.exit_code, 1) << r.describe();
        EXPECT_NE(r.err.find("failed at connect"), std::string::npos) << r.describe();
        unchanged("after the wrong peer name");
    }
    {
        SCOPED_TRACE("requests B does not understand are answered 400 and change nothing");
        const json bundle =
            json::parse(agent_->cli({"-j", "migrate", "export", "--cgroup", cg_->rel("w")}).out,
                        nullptr, false);
        ASSERT_TRUE(bundle.is_object());
        const json good = {{"protocol", "personabpf-migration/1"},
                           {"op", "import"},
                           {"cgroup", target},
                           {"bundle", bundle}};
        json later = good;
        later["protocol"] = "personabpf-migration/2";
        json other_op = good;
        other_op["op"] = "export";
        for (const auto& [message, expect] : std::vector<std::pair<std::string, std::string>>{
                 {"not json", "malformed JSON"},
                 {json{{"op", "import"}}.dump(), "not a migration request"},
                 {later.dump(),
                  "unsupported protocol 'personabpf-migration/2' (this agent speaks "
                  "personabpf-migration/1)"},
                 {other_op.dump(), "unknown op 'export' (ops: import)"}}) {
            const json reply = raw_request(message);
            EXPECT_EQ(reply["protocol"], "personabpf-migration/1") << reply.dump();
            EXPECT_EQ(reply["status"], 400) << reply.dump();
            EXPECT_NE(reply.value("error", "").find(expect), std::string::npos) << reply.dump();
        }
        unchanged("after requests B does not understand");
        // B's gate answers a well-formed request with its status and reasons.
        const json reply = raw_request(good.dump());
        EXPECT_EQ(reply["status"], 403) << reply.dump();
        EXPECT_EQ(reply["details"]["country"], "DE") << reply.dump();
        EXPECT_EQ(reply["details"]["countries"], json::array({"CH"})) << reply.dump();
        unchanged("after the gate's refusal of a request");
    }
    {
        SCOPED_TRACE("B's sovereignty gate refuses a host in DE: 403 comes back to A");
        auto [code, body] =
            send_api({{"cgroup", cg_->rel("w")}, {"to", b_address_}, {"target_cgroup", target}});
        EXPECT_EQ(code, 403) << body.dump(2);
        const std::string error = body.value("error", "");
        EXPECT_NE(error.find("failed at import: peer host-b refused the import: migration "
                             "refused by the sovereignty gate"),
                  std::string::npos)
            << error;
        EXPECT_NE(error.find("country DE"), std::string::npos) << error;
        EXPECT_NE(error.find("allowed countries: CH"), std::string::npos) << error;
        EXPECT_EQ(body["step"], "import") << body.dump(2);
        EXPECT_EQ(body["peer"], "host-b") << body.dump(2);
        EXPECT_EQ(body["country"], "DE") << body.dump(2);
        CommandResult r = agent_->cli(send);
        EXPECT_EQ(r.exit_code, 1) << r.describe();
        EXPECT_NE(r.err.find("sovereignty gate"), std::string::npos) << r.describe();
        unchanged("after the gate's refusal");
        EXPECT_EQ(status(*b_)["migration"]["imports"]["failed"], 7);
    }

    {
        SCOPED_TRACE(
            "B is killed in the middle of a --release send's import: A keeps "
            "enforcing, and B's next start undoes what B had done");
        start_b("CH", "migrate-import-crash-flows");
        std::vector<std::string> release = send;
        release[5] = b_address_;
        release.push_back("--release");
        CommandResult r = agent_->cli(release);
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("failed at reply"), std::string::npos) << r.describe();
        EXPECT_NE(r.err.find("its next start undoes it"), std::string::npos) << r.describe();
        const std::optional<int> st = b_->wait_exit(10s);
        ASSERT_TRUE(st.has_value()) << "B still runs";
        EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << *st;
        EXPECT_EQ(snapshot(*agent_), a_before) << "A released its workload unconfirmed";
        start_b("CH");
        unchanged("after B's restart");
    }

    start_b("CH");  // on another port
    send[5] = b_address_;
    json res;
    ASSERT_TRUE(cli_json(*agent_, send, &res));
    EXPECT_EQ(res["peer"], "host-b") << res.dump(2);
    EXPECT_EQ(res["version"], 2) << res.dump(2);
    EXPECT_EQ(res["released"], false) << res.dump(2);
    EXPECT_EQ(res["target"]["cgroup"], target) << res.dump(2);
    EXPECT_EQ(res["target"]["persona_created"], true) << res.dump(2);

    json personas, bindings, flows;
    ASSERT_TRUE(cli_json(*b_, {"persona", "ls"}, &personas));
    ASSERT_EQ(personas.size(), 1u) << personas.dump(2);
    EXPECT_EQ(personas[0]["name"], "it-send");
    EXPECT_EQ(personas[0]["version"], 2) << "the source's version number";
    ASSERT_TRUE(cli_json(*b_, {"bindings", "ls"}, &bindings));
    ASSERT_EQ(bindings.size(), 1u) << bindings.dump(2);
    EXPECT_EQ(bindings[0]["cgroup"], target);
    EXPECT_EQ(bindings[0]["persona"], "it-send");
    ASSERT_TRUE(cli_json(*b_, {"conntrack", "ls"}, &flows));
    bool moved = false;
    for (const auto& f : flows["flows"]) {
        EXPECT_EQ(f["workload"], target) << f.dump();
        moved = moved || (f["remote_port"] == kSinkPort && f["remote"] == v.peer4 &&
                          f["state"] == "established" && f["origin"] == "egress");
    }
    EXPECT_TRUE(moved) << flows.dump(2);
    json audit;
    ASSERT_TRUE(cli_json(*b_, {"audit"}, &audit));
    EXPECT_NE(audit.dump().find("from peer host-a (127.0.0.1:"), std::string::npos)
        << audit.dump(2);
    // Without --release the source keeps enforcing: its workload is still there.
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bindings));
    ASSERT_EQ(bindings.size(), 1u) << bindings.dump(2);
    EXPECT_EQ(bindings[0]["cgroup"], cg_->rel("w"));

    // Again with --release: the import is idempotent, then A unbinds its workload.
    std::vector<std::string> release = send;
    release.push_back("--release");
    ASSERT_TRUE(cli_json(*agent_, release, &res));
    EXPECT_EQ(res["released"], true) << res.dump(2);
    EXPECT_EQ(res["target"]["persona_created"], false) << res.dump(2);
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bindings));
    EXPECT_TRUE(bindings.empty()) << bindings.dump(2);
    ASSERT_TRUE(cli_json(*b_, {"bindings", "ls"}, &bindings));
    EXPECT_EQ(bindings.size(), 1u) << bindings.dump(2);
    const json st = status(*b_);
    EXPECT_EQ(st["migration"]["imports"]["ok"], 2) << st.dump(2);
}

TEST_F(MigrationSend, MovesAnInterfaceWorkloadWithItsFlows) {
    const auto& v = *veth_;
    start_a();
    // The VM's TCP connection into the sink on the host side: its egress, tracked on A's
    // interface (the host side of its veth).
    apply(*agent_,
          "persona it-send {\n  security {\n    default ingress deny\n    default egress "
          "deny\n    allow egress tcp port " +
              std::to_string(kSinkPort) + " to " + v.host4 +
              "\n  }\n  sovereignty {\n    allow countries { CH }\n    unknown "
              "allow\n  }\n}\n");
    CommandResult r = agent_->cli({"bind", "--persona", "it-send", "--ifname", v.host_if()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    TcpSink sink(Where{}, kSinkPort);
    ASSERT_TRUE(sink.ok()) << sink.error();
    TcpBulk bulk(from_netns(), v.host4, kSinkPort, 64 * 1024);
    ASSERT_TRUE(bulk.ok()) << bulk.error();
    json ls;
    ASSERT_TRUE(wait_until(
        [&] {
            if (!cli_json(*agent_, {"conntrack", "ls", "--persona", "it-send"}, &ls)) return false;
            for (const auto& f : ls["flows"])
                if (f["remote_port"] == kSinkPort && f["state"] == "established") return true;
            return false;
        },
        5s))
        << ls.dump(2);

    // B's interface: another veth pair into the VM's netns (the flow's re-keying is what
    // this checks; MigrationIface.* checks its traffic).
    Veth b_veth(*net_);
    ASSERT_TRUE(b_veth.ok()) << b_veth.error();
    CgroupTree& tree_b = add_cgroup_tree();
    ASSERT_TRUE(tree_b.ok()) << tree_b.error();
    b_ = &add_agent(tree_b.path());
    start_b("CH");

    json res;
    ASSERT_TRUE(cli_json(*agent_,
                         {"migrate", "send", "--ifname", v.host_if(), "--to", b_address_,
                          "--target-ifname", b_veth.host_if(), "--release"},
                         &res));
    EXPECT_EQ(res["ifname"], v.host_if()) << res.dump(2);
    EXPECT_EQ(res["workload"], "interface " + v.host_if()) << res.dump(2);
    EXPECT_EQ(res["target"]["ifname"], b_veth.host_if()) << res.dump(2);
    EXPECT_EQ(res["target"]["netns"], "") << res.dump(2);
    EXPECT_EQ(res["released"], true) << res.dump(2);

    json bindings, flows;
    ASSERT_TRUE(cli_json(*b_, {"bindings", "ls"}, &bindings));
    ASSERT_EQ(bindings.size(), 1u) << bindings.dump(2);
    EXPECT_EQ(bindings[0]["ifname"], b_veth.host_if());
    EXPECT_EQ(bindings[0]["persona"], "it-send");
    ASSERT_TRUE(cli_json(*b_, {"conntrack", "ls"}, &flows));
    bool moved = false;
    for (const auto& f : flows["flows"])
        moved =
            moved ||
            (f["remote_port"] == kSinkPort && f["remote"] == v.host4 && f["origin"] == "egress" &&
             f["workload"].get<std::string>().find(b_veth.host_if()) != std::string::npos &&
             f["ifindex"] == res["target"]["ifindex"]);
    EXPECT_TRUE(moved) << flows.dump(2);
    // --release: A unbound the interface once B confirmed.
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bindings));
    EXPECT_TRUE(bindings.empty()) << bindings.dump(2);

    // A cgroup target for an interface workload is refused by B, changing nothing.
    r = agent_->cli({"bind", "--persona", "it-send", "--ifname", v.host_if()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    tree_b.create("w");
    r = agent_->cli({"migrate", "send", "--ifname", v.host_if(), "--to", b_address_,
                     "--target-cgroup", tree_b.rel("w")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("import it onto an interface"), std::string::npos) << r.describe();
    ASSERT_TRUE(cli_json(*b_, {"bindings", "ls"}, &bindings));
    EXPECT_EQ(bindings.size(), 1u) << bindings.dump(2);

    // b_veth goes with this test's body, before the agents' teardown.
    r = b_->cli({"unbind", "--ifname", b_veth.host_if()});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(MigrationSend, NoIdentityUnreachableTargetAndBadRequests) {
    apply(*agent_, persona_pdl("it-send-x", {"default ingress allow", "default egress allow"}));
    bind("it-send-x", "w");
    const json base = {{"cgroup", cg_->rel("w")}, {"to", "127.0.0.1:1"}};
    {
        SCOPED_TRACE("an agent without [migration] cert, key and ca cannot send");
        auto [code, body] = send_api(base);
        EXPECT_EQ(code, 400) << body.dump(2);
        EXPECT_NE(body.value("error", "").find("[migration] cert, key and ca"), std::string::npos)
            << body.dump(2);
        EXPECT_TRUE(status(*agent_)["migration"]["address"].is_null());
    }
    {
        SCOPED_TRACE("a listener whose certificate file is missing stops the start");
        agent_->stop();
        const std::string missing = scratch_.path() + "/missing.crt";
        agent_->extra_args = {
            "--config",
            scratch_.write("bad.toml", "[migration]\nlisten = \"127.0.0.1:0\"\ncert = \"" +
                                           missing + "\"\nkey = \"" + host_a_.key + "\"\nca = \"" +
                                           ca_ + "\"\n")};
        agent_->spawn();
        const std::optional<int> st = agent_->wait_exit(20s);
        ASSERT_TRUE(st.has_value()) << agent_->log();
        EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << "wait status " << *st;
        EXPECT_NE(agent_->log().find("personabpfd: error: [migration] listen = \"127.0.0.1:0\": "),
                  std::string::npos)
            << agent_->log();
        EXPECT_NE(agent_->log().find(missing), std::string::npos) << agent_->log();
    }
    start_a();
    const json before = snapshot(*agent_);
    {
        SCOPED_TRACE("nobody listens on the target's port");
        auto [code, body] = send_api(base);
        EXPECT_EQ(code, 502) << body.dump(2);
        EXPECT_EQ(body["step"], "connect") << body.dump(2);
        EXPECT_NE(body.value("error", "").find("migrate send to 127.0.0.1:1 failed at connect: "),
                  std::string::npos)
            << body.dump(2);
        EXPECT_NE(body.value("error", "").find("nothing was changed"), std::string::npos)
            << body.dump(2);
    }
    {
        SCOPED_TRACE("an unbound workload fails at the export, before any connection");
        in("unbound");
        auto [code, body] = send_api({{"cgroup", cg_->rel("unbound")}, {"to", "127.0.0.1:1"}});
        EXPECT_EQ(code, 404) << body.dump(2);
        EXPECT_EQ(body["step"], "export") << body.dump(2);
    }
    for (const json& bad :
         {json{{"cgroup", cg_->rel("w")}}, json{{"cgroup", cg_->rel("w")}, {"to", "127.0.0.1"}},
          json{{"cgroup", cg_->rel("w")}, {"to", "127.0.0.1:0"}},
          json{{"cgroup", cg_->rel("w")}, {"to", "127.0.0.1:1"}, {"release", 1}}}) {
        auto [code, body] = send_api(bad);
        EXPECT_EQ(code, 400) << bad.dump() << " -> " << body.dump(2);
    }
    EXPECT_EQ(snapshot(*agent_), before);
    EXPECT_EQ(status(*agent_)["migration"]["sends"]["failed"], 2);
}

}  // namespace
}  // namespace pbpf::it
