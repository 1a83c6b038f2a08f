// personabpfd configuration: the [agent] TOML table (parse_config/load_config) and the
// precedence defaults < file < flags. No root, no kernel object.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/config.h"
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
admin_group = 42
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

}  // namespace
}  // namespace pbpf::agent
