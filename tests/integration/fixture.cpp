// The common integration-test fixture and its CLI helpers.
#include "tests/integration/fixture.h"

#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <sstream>

namespace pbpf::it {

std::ostream& operator<<(std::ostream& o, const DirCounters& c) {
    return o << "{allowed " << c.allowed_packets << "p/" << c.allowed_bytes << "B, denied "
             << c.denied_packets << "p/" << c.denied_bytes << "B, audited " << c.audited_packets
             << "p/" << c.audited_bytes << "B}";
}

std::string persona_pdl(const std::string& name, const std::vector<std::string>& security,
                        const std::string& description) {
    std::ostringstream o;
    o << "persona " << name << " {\n  description \"" << description << "\"\n  security {\n";
    for (const auto& line : security) o << "    " << line << "\n";
    o << "  }\n}\n";
    return o.str();
}

void IntegrationTest::SetUp() {
    PBPF_REQUIRE_ROOT();
    if (cgroup2_mount().empty()) PBPF_KERNEL_UNAVAILABLE("no cgroup2 mount");
    if (bpffs_mount().empty()) PBPF_KERNEL_UNAVAILABLE("no bpffs mount");
    if (!path_exists("/sys/kernel/btf/vmlinux")) PBPF_KERNEL_UNAVAILABLE("no kernel BTF");
    if (run_command({"ip", "-V"}, 5s).exit_code != 0) PBPF_KERNEL_UNAVAILABLE("no ip(8)");
    // Missing binaries are a build problem, never a reason to skip.
    ASSERT_EQ(::access(agent_binary().c_str(), X_OK), 0) << "missing " << agent_binary();
    ASSERT_EQ(::access(cli_binary().c_str(), X_OK), 0) << "missing " << cli_binary();

    net_ = std::make_unique<Netns>();
    ASSERT_TRUE(net_->ok()) << net_->error();
    veth_ = std::make_unique<Veth>(*net_);
    ASSERT_TRUE(veth_->ok()) << veth_->error();
    server_ = std::make_unique<EchoServer>(Where{"", net_->path()},
                                           EchoServer::any_addr({kPortA, kPortB}));
    ASSERT_TRUE(server_->ok()) << server_->error();
    cg_ = std::make_unique<CgroupTree>();
    ASSERT_TRUE(cg_->ok()) << cg_->error();
    agent_ = std::make_unique<Agent>(cg_->path());
    ASSERT_TRUE(agent_->start());
}

void IntegrationTest::TearDown() {
    if (HasFailure()) {
        auto dump = [](const char* what, const Agent& a) {
            std::cerr << "----- " << what << " log (" << a.paths().log_file << ") -----\n"
                      << a.log() << "----- end of log -----\n";
        };
        if (agent_) dump("agent", *agent_);
        for (const auto& a : extra_agents_) dump("extra agent", *a);
    }
    // Uninstalling is part of every test: it must work and leave nothing pinned.
    if (!HasFatalFailure() && !IsSkipped()) {
        for (const auto& a : extra_agents_) {
            std::string e = a->teardown();
            EXPECT_TRUE(e.empty()) << e << "\nlog:\n" << a->log();
        }
        if (agent_) {
            std::string e = agent_->teardown();
            EXPECT_TRUE(e.empty()) << e << "\nlog:\n" << agent_->log();
        }
    }
    // Agents first (they detach from the cgroups), then cgroups, servers, links, netns.
    extra_agents_.clear();
    agent_.reset();
    extra_trees_.clear();
    cg_.reset();
    server_.reset();
    veth_.reset();
    net_.reset();
}

CommandResult IntegrationTest::try_apply(Agent& agent, const std::string& pdl,
                                         const std::string& file) {
    return agent.cli({"persona", "apply", scratch_.write(file, pdl)});
}

void IntegrationTest::apply(Agent& agent, const std::string& pdl, const std::string& file) {
    CommandResult r = try_apply(agent, pdl, file);
    ASSERT_EQ(r.exit_code, 0) << "persona apply failed:\n" << pdl << "\n" << r.describe();
}

void IntegrationTest::bind(Agent& agent, const std::string& persona, CgroupTree& tree,
                           const std::string& sub) {
    tree.create(sub);
    CommandResult r = agent.cli({"bind", "--persona", persona, "--cgroup", tree.rel(sub)});
    ASSERT_EQ(r.exit_code, 0) << "bind " << persona << " " << tree.rel(sub) << ": " << r.describe();
}

::testing::AssertionResult IntegrationTest::cli_json(Agent& agent,
                                                     const std::vector<std::string>& args,
                                                     nlohmann::json* out) {
    CommandResult r = agent.cli_json(args);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    if (r.exit_code != 0) return ::testing::AssertionFailure() << "-j " << cmd << r.describe();
    *out = nlohmann::json::parse(r.out, nullptr, false);
    if (out->is_discarded())
        return ::testing::AssertionFailure() << "-j " << cmd << "printed no JSON:\n" << r.out;
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult IntegrationTest::stats(Agent& agent, const std::string& persona,
                                                  PersonaStats* out) {
    nlohmann::json j;
    if (auto r = cli_json(agent, {"stats", persona}, &j); !r) return r;
    const nlohmann::json* entry = nullptr;
    if (j.is_array()) {
        for (const auto& e : j)
            if (e.is_object() && e.value("persona", "") == persona) entry = &e;
    } else if (j.is_object() && j.value("persona", "") == persona) {
        entry = &j;
    }
    if (!entry)
        return ::testing::AssertionFailure() << "stats -j has no entry for " << persona << ":\n"
                                             << j.dump(2);
    auto dir = [&](const char* name, DirCounters* c) -> bool {
        if (!entry->contains(name) || !(*entry)[name].is_object()) return false;
        const auto& d = (*entry)[name];
        c->allowed_packets = d.value("allowed_packets", uint64_t{0});
        c->allowed_bytes = d.value("allowed_bytes", uint64_t{0});
        c->denied_packets = d.value("denied_packets", uint64_t{0});
        c->denied_bytes = d.value("denied_bytes", uint64_t{0});
        c->audited_packets = d.value("audited_packets", uint64_t{0});
        c->audited_bytes = d.value("audited_bytes", uint64_t{0});
        return d.contains("allowed_packets") && d.contains("denied_packets") &&
               d.contains("audited_packets");
    };
    if (!dir("ingress", &out->ingress) || !dir("egress", &out->egress))
        return ::testing::AssertionFailure() << "stats -j entry lacks counters:\n"
                                             << entry->dump(2);
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult IntegrationTest::wait_stats(
    Agent& agent, const std::string& persona, const std::function<bool(const PersonaStats&)>& pred,
    PersonaStats* out, std::chrono::milliseconds timeout) {
    ::testing::AssertionResult last = ::testing::AssertionSuccess();
    bool held = wait_until(
        [&] {
            last = stats(agent, persona, out);
            return last && pred(*out);
        },
        timeout, 50ms);
    if (!last) return last;
    if (!held)
        return ::testing::AssertionFailure()
               << "counters of " << persona << " never matched: ingress " << out->ingress
               << ", egress " << out->egress;
    return ::testing::AssertionSuccess();
}

nlohmann::json IntegrationTest::migration_snapshot(Agent& agent, const std::string& persona) {
    nlohmann::json personas, bindings, flows;
    EXPECT_TRUE(cli_json(agent, {"persona", "ls"}, &personas));
    EXPECT_TRUE(cli_json(agent, {"bindings", "ls"}, &bindings));
    EXPECT_TRUE(cli_json(agent, {"conntrack", "ls"}, &flows));
    CommandResult h = agent.cli({"persona", "history", persona});
    return {{"personas", personas},
            {"bindings", bindings},
            {"flows", flows["flows"]},
            {"history_exit", h.exit_code}};
}

void IntegrationTest::kill_during_import(Agent& agent,
                                         const std::function<void(const std::string&)>& start,
                                         const std::vector<std::string>& args,
                                         const std::string& point) {
    SCOPED_TRACE("kill -9 at " + point);
    const std::string journal = agent.paths().state_dir + "/import.journal";
    auto count = [](const std::string& text, const std::string& what) {
        size_t n = 0;
        for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
            ++n;
        return n;
    };
    const std::string undone = "was interrupted by a stop of the agent: undoing it";
    const size_t undone_before = count(agent.log(), undone);
    start(point);
    CommandResult r = agent.cli(args);
    EXPECT_NE(r.exit_code, 0) << "the agent answered although it was killed: " << r.describe();
    auto status = agent.wait_exit(10s);
    ASSERT_TRUE(status.has_value()) << "the agent still runs after " << point;
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << *status;
    EXPECT_TRUE(path_exists(journal)) << "no journal left by the killed import";
    start("");
    EXPECT_EQ(count(agent.log(), undone), undone_before + 1) << agent.log();
    EXPECT_FALSE(path_exists(journal)) << "the journal outlived the undo";
}

Agent& IntegrationTest::add_agent(const std::string& cgroup_root) {
    extra_agents_.push_back(std::make_unique<Agent>(cgroup_root));
    return *extra_agents_.back();
}

Agent& IntegrationTest::add_agent(const AgentPaths& paths, Agent::Owns owns) {
    extra_agents_.push_back(std::make_unique<Agent>(paths, owns));
    return *extra_agents_.back();
}

CgroupTree& IntegrationTest::add_cgroup_tree() {
    extra_trees_.push_back(std::make_unique<CgroupTree>());
    return *extra_trees_.back();
}

}  // namespace pbpf::it
