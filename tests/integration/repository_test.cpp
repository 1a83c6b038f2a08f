// The persona repository: every apply a version (history, show --version, diff, rollback,
// identical source a no-op), and access control from the caller's credentials, tested
// with real unprivileged users and an admin group created by the test; the audit trail
// records changes and refusals.
#include "tests/integration/fixture.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/wait.h>

#include <filesystem>

namespace pbpf::it {
namespace {

using nlohmann::json;

class Repository : public IntegrationTest {
  protected:
    // The web persona: version `v` blocks TCP to port B (v1) or to port A (v2).
    std::string web(int v, const std::string& comment = "") {
        return comment +
               persona_pdl("it-web",
                           {"default ingress allow", "default egress allow",
                            "deny egress tcp port " + std::to_string(v == 1 ? kPortB : kPortA) +
                                " to " + veth_->peer4},
                           "web v" + std::to_string(v));
    }
    json history(const std::string& name) {
        json j;
        EXPECT_TRUE(cli_json(*agent_, {"persona", "history", name}, &j));
        return j;
    }
    // The CLI as another user: a copy of the binary every user may run, its identity and
    // groups from the user database (setpriv --init-groups).
    CommandResult cli_as(const std::string& user, const std::vector<std::string>& args) {
        if (cli_copy_.empty()) {
            cli_copy_ = scratch_.path() + "/personabpf";
            std::filesystem::copy_file(cli_binary(), cli_copy_,
                                       std::filesystem::copy_options::overwrite_existing);
            ::chmod(cli_copy_.c_str(), 0755);
        }
        std::vector<std::string> argv = {"setpriv", "--reuid",      user,
                                         "--regid", user_gid(user), "--init-groups",
                                         cli_copy_, "--socket",     agent_->paths().socket};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv);
    }
    static std::string user_gid(const std::string& user) {
        passwd* pw = ::getpwnam(user.c_str());
        return pw ? std::to_string(pw->pw_gid) : "0";
    }
    // One HTTP request to the agent from a process running as `user`.
    HttpResponse http_as(const std::string& user, const std::string& method,
                         const std::string& path, const std::string& body) {
        passwd* pw = ::getpwnam(user.c_str());
        if (pw == nullptr) return {};
        const uid_t uid = pw->pw_uid;
        const gid_t gid = pw->pw_gid;
        int fds[2];
        if (::pipe(fds) != 0) return {};
        pid_t pid = ::fork();
        if (pid == 0) {
            ::close(fds[0]);
            if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
                ::_exit(1);
            HttpResponse h = http(agent_->paths().socket, method, path, body);
            const std::string out = std::to_string(h.status) + "\n" + h.raw;
            (void)!::write(fds[1], out.data(), out.size());
            ::_exit(0);
        }
        ::close(fds[1]);
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
        ::close(fds[0]);
        ::waitpid(pid, nullptr, 0);
        HttpResponse h;
        const size_t nl = out.find('\n');
        if (nl == std::string::npos) return h;
        h.status = std::atoi(out.substr(0, nl).c_str());
        h.raw = out.substr(nl + 1);
        return h;
    }
    json audit(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args = {"audit"};
        args.insert(args.end(), extra.begin(), extra.end());
        json j;
        EXPECT_TRUE(cli_json(*agent_, args, &j));
        return j;
    }
    std::string cli_copy_;
};

TEST_F(Repository, VersionsHistoryDiffAndRollback) {
    const auto& v = *veth_;
    apply(*agent_, web(1), "web.pdl");
    bind("it-web", "web");
    const Where w = in("web");
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortB).blocked());
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).ok());

    // The same persona again, even reformatted with a comment: no new version.
    CommandResult r =
        agent_->cli({"-j", "persona", "apply", scratch_.write("web.pdl", web(1, "# same\n"))});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json answer = json::parse(r.out);
    EXPECT_FALSE(answer["applied"][0]["changed"].get<bool>()) << r.out;
    EXPECT_EQ(answer["applied"][0]["version"], 1) << r.out;

    r = agent_->cli(
        {"persona", "apply", "-m", "close A, open B", scratch_.write("web.pdl", web(2))});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).blocked());
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortB).ok());

    json h = history("it-web");
    ASSERT_EQ(h.size(), 2u) << h.dump(2);
    EXPECT_EQ(h[0]["version"], 1);
    EXPECT_EQ(h[1]["version"], 2);
    EXPECT_EQ(h[1]["message"], "close A, open B");
    EXPECT_EQ(h[1]["author_uid"], 0);
    EXPECT_TRUE(h[1]["current"].get<bool>());
    EXPECT_FALSE(h[0]["current"].get<bool>());

    json shown;
    ASSERT_TRUE(cli_json(*agent_, {"persona", "show", "it-web", "--version", "1"}, &shown));
    EXPECT_EQ(shown["version"], 1);
    EXPECT_NE(shown["source"].get<std::string>().find("web v1"), std::string::npos)
        << shown.dump(2);

    json diff;
    ASSERT_TRUE(cli_json(*agent_, {"persona", "diff", "it-web", "1", "2"}, &diff));
    const std::string changes = diff["changes"].dump();
    EXPECT_NE(changes.find("rule removed: deny egress tcp port 9090"), std::string::npos)
        << changes;
    EXPECT_NE(changes.find("rule added: deny egress tcp port 8080"), std::string::npos) << changes;
    EXPECT_NE(changes.find("description"), std::string::npos) << changes;
    const std::string src = diff["source_diff"].get<std::string>();
    EXPECT_NE(src.find("-    deny egress tcp port 9090"), std::string::npos) << src;
    EXPECT_NE(src.find("+    deny egress tcp port 8080"), std::string::npos) << src;

    // Rollback: version 1's rules again, enforced, recorded as version 3.
    r = agent_->cli({"-j", "persona", "rollback", "it-web", "--to", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    answer = json::parse(r.out);
    EXPECT_EQ(answer["applied"][0]["version"], 3) << r.out;
    EXPECT_EQ(answer["rolled_back_to"], 1) << r.out;
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortB).blocked());
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).ok());
    h = history("it-web");
    ASSERT_EQ(h.size(), 3u) << h.dump(2);
    EXPECT_EQ(h[2]["message"], "rollback to version 1");
    ASSERT_TRUE(cli_json(*agent_, {"persona", "diff", "it-web", "1", "3"}, &diff));
    EXPECT_TRUE(diff["changes"].empty()) << diff.dump(2);
    // Rolling back to what is already enforced changes nothing.
    r = agent_->cli({"-j", "persona", "rollback", "it-web", "--to", "3"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_FALSE(json::parse(r.out)["applied"][0]["changed"].get<bool>()) << r.out;
    EXPECT_EQ(history("it-web").size(), 3u);

    // Unknown versions are clear errors.
    r = agent_->cli({"persona", "rollback", "it-web", "--to", "9"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("has no version 9 (versions 1 to 3)"), std::string::npos) << r.describe();

    // Versions survive an agent restart (they are in the repository, not in memory).
    agent_->stop(SIGKILL);
    ASSERT_TRUE(agent_->start());
    EXPECT_EQ(history("it-web").size(), 3u);

    // The audit trail has every change, oldest first.
    json a = audit({"--persona", "it-web"});
    std::vector<std::string> actions;
    for (const auto& e : a)
        actions.push_back(e["action"].get<std::string>() + ":" + e["outcome"].get<std::string>());
    const std::vector<std::string> want = {"apply:ok",       "bind:ok",     "apply:ok",
                                           "apply:ok",       "rollback:ok", "rollback:ok",
                                           "rollback:failed"};
    EXPECT_EQ(actions, want) << a.dump(2);
    EXPECT_EQ(a.back()["status"], 404) << a.dump(2);
    EXPECT_EQ(a[0]["uid"], 0) << a.dump(2);
}

// kill -9 at each step of an apply (failpoints in PersonaManager::apply): while the agent
// is down the kernel enforces one whole version, never a mix and never nothing; after the
// restart the repository is consistent and the kernel enforces its current version.
TEST_F(Repository, KillNineAtAnyStepOfAnApplyLeavesConsistentState) {
    const auto& v = *veth_;
    apply(*agent_, web(1), "web.pdl");
    bind("it-web", "web");
    const Where w = in("web");
    // A persona the crashed apply would create: it must not exist afterwards unless
    // the apply committed.
    const std::string v2_and_new =
        scratch_.write("web-v2-new.pdl", web(2) + persona_pdl("it-new", {"default egress deny"}));
    int expected_versions = 1;
    for (const std::string point :
         {"apply-built", "apply-stored", "apply-flipped", "apply-committed"}) {
        SCOPED_TRACE(point);
        const bool committed = point == "apply-committed";
        const bool flipped = point == "apply-flipped" || committed;
        agent_->stop(SIGTERM);
        agent_->extra_env = {"PERSONABPF_FAILPOINT=" + point};
        ASSERT_TRUE(agent_->start());
        CommandResult r = agent_->cli({"persona", "apply", v2_and_new});
        EXPECT_NE(r.exit_code, 0) << "the agent answered although it was killed: " << r.describe();
        auto status = agent_->wait_exit(10s);
        ASSERT_TRUE(status.has_value()) << "agent still running after " << point;
        EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << *status;
        // Down: the pinned programs enforce one whole version.
        const bool v2_enforced = flipped;
        EXPECT_EQ(tcp_probe(w, v.peer4, kPortA).blocked(), v2_enforced);
        EXPECT_EQ(tcp_probe(w, v.peer4, kPortB).blocked(), !v2_enforced);

        agent_->extra_env.clear();
        ASSERT_TRUE(agent_->start());
        if (committed) ++expected_versions;
        json h = history("it-web");
        ASSERT_EQ(h.size(), static_cast<size_t>(expected_versions)) << h.dump(2);
        json list;
        ASSERT_TRUE(cli_json(*agent_, {"persona", "ls"}, &list));
        bool has_new = false;
        for (const auto& p : list) has_new = has_new || p["name"] == "it-new";
        EXPECT_EQ(has_new, committed) << list.dump(2);
        // Up again: the kernel enforces what the repository says is current.
        EXPECT_EQ(tcp_probe(w, v.peer4, kPortA).blocked(), committed);
        EXPECT_EQ(tcp_probe(w, v.peer4, kPortB).blocked(), !committed);
    }
    // The repository file itself is intact (SQLite's own check).
    agent_->stop(SIGTERM);
    CommandResult check = run_command(
        {"sqlite3", agent_->paths().state_dir + "/state.db", "PRAGMA integrity_check;"});
    ASSERT_EQ(check.exit_code, 0) << check.describe();
    EXPECT_EQ(check.out, "ok\n") << check.describe();
    ASSERT_TRUE(agent_->start());
}

TEST_F(Repository, AccessControlWithRealUsers) {
    const std::string tag = std::to_string(::getpid());
    TestGroup admins("pbra" + tag);
    ASSERT_TRUE(admins.ok()) << "groupadd failed";
    TestUser owner("pbro" + tag), other("pbrx" + tag), admin("pbrd" + tag, admins.name());
    ASSERT_TRUE(owner.ok() && other.ok() && admin.ok()) << "useradd failed";

    agent_->stop(SIGTERM);
    agent_->extra_args = {"--config", scratch_.write("acl.toml", "[agent]\nadmin_group = \"" +
                                                                     admins.name() + "\"\n")};
    ASSERT_TRUE(agent_->start());
    const auto& v = *veth_;
    const std::string file = scratch_.write("web.pdl", web(1));
    ::chmod(file.c_str(), 0644);
    const std::string file2 = scratch_.write("web2.pdl", web(2));
    ::chmod(file2.c_str(), 0644);

    // Readers: everyone. Writers: not a plain user.
    apply(*agent_, web(1), "web.pdl");
    CommandResult r = cli_as(other.name(), {"persona", "ls"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("it-web"), std::string::npos) << r.describe();
    r = cli_as(other.name(), {"persona", "history", "it-web"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(other.name(), {"persona", "apply", file2});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find(other.name() + " (uid " + std::to_string(other.uid()) +
                         ") may not apply persona 'it-web'"),
              std::string::npos)
        << r.describe();
    r = cli_as(other.name(), {"persona", "rm", "it-web"});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("may not remove persona 'it-web'"), std::string::npos) << r.describe();
    const std::string web_cg = cg_->create("web");
    r = cli_as(other.name(), {"bind", "--persona", "it-web", "--cgroup", cg_->rel("web")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    r = cli_as(other.name(), {"rules", "add", "--persona", "it-web", "--cgroup", cg_->rel("x-*")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("only admins may"), std::string::npos) << r.describe();
    // A plain user cannot create a persona either.
    const std::string mine =
        scratch_.write("mine.pdl", persona_pdl("it-mine", {"default egress allow"}));
    ::chmod(mine.c_str(), 0644);
    r = cli_as(other.name(), {"persona", "apply", mine});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("may not create persona 'it-mine'"), std::string::npos) << r.describe();

    // Owners are set by admins; an owner changes and binds their own persona only.
    r = cli_as(owner.name(), {"persona", "apply", file2});
    EXPECT_EQ(r.exit_code, 1) << "not yet the owner: " << r.describe();
    r = cli_as(other.name(), {"persona", "chown", "it-web", owner.name()});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    r = agent_->cli({"persona", "chown", "it-web", owner.name()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(owner.name(), {"persona", "apply", "-m", "by the owner", file2});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json h = history("it-web");
    ASSERT_EQ(h.size(), 2u) << h.dump(2);
    EXPECT_EQ(h[1]["author_uid"], owner.uid()) << h.dump(2);
    // Binding: only a cgroup delegated to the owner (chowned to them), not any cgroup.
    r = cli_as(owner.name(), {"bind", "--persona", "it-web", "--cgroup", cg_->rel("web")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("is not delegated to them"), std::string::npos) << r.describe();
    ASSERT_EQ(::chown(web_cg.c_str(), owner.uid(), static_cast<gid_t>(-1)), 0);
    r = cli_as(owner.name(), {"bind", "--persona", "it-web", "--cgroup", cg_->rel("web")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(tcp_probe(Where{web_cg, ""}, v.peer4, kPortA).blocked());
    // Another admin-made persona stays out of the owner's reach.
    apply(*agent_, persona_pdl("it-other", {"default egress deny"}), "other.pdl");
    r = cli_as(owner.name(), {"persona", "rm", "it-other"});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("is owned by root (uid 0)"), std::string::npos) << r.describe();
    r = cli_as(owner.name(), {"persona", "rollback", "it-web", "--to", "1"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();

    // What an admin bound stays out of an owner's reach: a binding of their delegated
    // cgroup to someone else's persona (not replaced, not removed), a cgroup not delegated
    // to them that an admin bound to their persona, a forced removal of their persona.
    const std::string adm_cg = cg_->create("adm");
    r = agent_->cli({"bind", "--persona", "it-web", "--cgroup", cg_->rel("adm")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(owner.name(), {"unbind", "--cgroup", cg_->rel("adm")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("is not delegated to them"), std::string::npos) << r.describe();
    const std::string mine_cg = cg_->create("owned2");
    ASSERT_EQ(::chown(mine_cg.c_str(), owner.uid(), static_cast<gid_t>(-1)), 0);
    r = agent_->cli({"bind", "--persona", "it-other", "--cgroup", cg_->rel("owned2")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(owner.name(), {"bind", "--persona", "it-web", "--cgroup", cg_->rel("owned2")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("may not replace the binding"), std::string::npos) << r.describe();
    r = cli_as(owner.name(), {"unbind", "--cgroup", cg_->rel("owned2")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    r = cli_as(owner.name(), {"persona", "rm", "--force", "it-web"});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("with force"), std::string::npos) << r.describe();
    // A user binding made by an admin: the user may not undo it.
    r = agent_->cli({"bind", "--user", other.name(), "--persona", "it-other"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(other.name(), {"unbind", "--user", other.name()});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("may not unbind user"), std::string::npos) << r.describe();
    // A refused request's audit record is capped, however much the request carried.
    const std::string huge(200000, 'p');
    HttpResponse big = http_as(other.name(), "POST", "/v1/bindings",
                               json{{"persona", huge}, {"cgroup", "/x"}}.dump());
    EXPECT_GE(big.status, 400) << big.raw.substr(0, 300);

    // A member of the admin group may do everything.
    const std::string other_file =
        scratch_.write("other2.pdl", persona_pdl("it-other", {"default egress allow"}));
    ::chmod(other_file.c_str(), 0644);
    r = cli_as(admin.name(), {"persona", "apply", other_file});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(admin.name(), {"persona", "chown", "it-other", other.name()});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(admin.name(), {"unbind", "--cgroup", cg_->rel("web")});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    for (const char* sub : {"adm", "owned2"}) {
        r = cli_as(admin.name(), {"unbind", "--cgroup", cg_->rel(sub)});
        EXPECT_EQ(r.exit_code, 0) << r.describe();
    }
    r = cli_as(admin.name(), {"unbind", "--user", other.name()});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    r = cli_as(admin.name(), {"persona", "rm", "it-other"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();

    // The audit trail names who tried what, refusals included.
    json a = audit();
    size_t refused_other = 0, ok_owner = 0, ok_admin = 0;
    for (const auto& e : a) {
        if (e["uid"] == other.uid() && e["outcome"] == "refused" && e["status"] == 403)
            ++refused_other;
        if (e["uid"] == owner.uid() && e["outcome"] == "ok") ++ok_owner;
        if (e["uid"] == admin.uid() && e["outcome"] == "ok") ++ok_admin;
    }
    EXPECT_EQ(refused_other, 7u) << a.dump(2);  // + unbind --user; the huge bind failed
    EXPECT_EQ(ok_owner, 3u) << a.dump(2);       // apply, bind, rollback
    EXPECT_EQ(ok_admin, 7u) << a.dump(2);
    bool huge_recorded = false;
    for (const auto& e : a) {
        EXPECT_LT(e["persona"].get<std::string>().size() + e["detail"].get<std::string>().size(),
                  3000u)
            << e["action"] << " by uid " << e["uid"];
        huge_recorded = huge_recorded || (e["uid"] == other.uid() && e["outcome"] == "failed" &&
                                          e["persona"].get<std::string>().find("(200000 bytes)") !=
                                              std::string::npos);
    }
    EXPECT_TRUE(huge_recorded) << a.dump(2);
    // Filtering by time: nothing is newer than now.
    EXPECT_TRUE(audit({"--since", std::to_string(::time(nullptr) + 60)}).empty());
}

}  // namespace
}  // namespace pbpf::it
