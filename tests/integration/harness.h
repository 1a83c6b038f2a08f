// Integration-test harness: throwaway network namespaces, veth pairs, cgroup subtrees,
// personabpfd instances and CLI runs, each uniquely named and removed on every path (RAII).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pbpf::it {

using namespace std::chrono_literals;

// "pbpf-it-<pid>-<n>": every object a test creates carries this prefix, so a leftover
// from a crashed run can be traced to its (dead) process and swept.
std::string unique_name();
int next_counter();

// Polls pred every `interval` until it holds or the timeout passes; returns its last value.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 10ms);

std::string read_file(const std::string& path);
bool write_file(const std::string& path, const std::string& content, std::string* err = nullptr);
bool path_exists(const std::string& path);
// rm -rf that never follows symlinks; cgroup directories are removed with rmdir.
void remove_tree(const std::string& path);

// Mount points discovered from /proc/self/mountinfo ("" when absent).
std::string cgroup2_mount();
std::string bpffs_mount();

struct CommandResult {
    int exit_code = -1;  // -1: killed by a signal or timed out
    bool timed_out = false;
    std::string out;
    std::string err;
    std::string describe() const;  // for failure messages
};

// fork+exec argv (no shell), capturing stdout and stderr; killed at the deadline.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = 20s,
                          const std::vector<std::string>& extra_env = {});

// A scratch directory /tmp/pbpf-it-<pid>-<n>, removed with its content.
class ScratchDir {
  public:
    ScratchDir();
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::string& path() const { return path_; }
    // Writes a file into the directory and returns its path.
    std::string write(const std::string& name, const std::string& content) const;

  private:
    std::string path_;
};

// A named network namespace (/run/netns/<name>) with lo up.
class Netns {
  public:
    Netns();
    ~Netns();
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    const std::string& name() const { return name_; }
    std::string path() const { return "/run/netns/" + name_; }
    // Runs a command inside the namespace with nsenter (never `ip netns exec`, which
    // remounts /sys and hides bpffs).
    CommandResult exec(const std::vector<std::string>& argv) const;

  private:
    std::string name_;
    bool ok_ = false;
    std::string error_;
};

// A veth pair: host side in the root netns, peer side in `ns`. Each pair gets its own
// /29 from 198.18.0.0/15 (host .1, peer .2, a second peer address .3) and its own
// fd00:<block>::/64 (host ::1, peer ::2 and ::3), DAD off, both ends up.
class Veth {
  public:
    explicit Veth(const Netns& ns);
    ~Veth();
    Veth(const Veth&) = delete;
    Veth& operator=(const Veth&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    const std::string& host_if() const { return host_if_; }
    const std::string& peer_if() const { return peer_if_; }
    std::string host4, peer4, alt4;  // addresses without prefix length
    std::string unused4;             // on the link, but nobody has it
    std::string net4, net6;          // the link's prefixes in CIDR notation
    std::string host6, peer6, alt6;

  private:
    std::string host_if_, peer_if_;
    bool ok_ = false;
    std::string error_;
};

// A managed cgroup subtree /<mount>/pbpf-it-<pid>-<n> and children created in it.
// Teardown kills whatever still runs inside, then removes directories deepest first.
class CgroupTree {
  public:
    CgroupTree();
    ~CgroupTree();
    CgroupTree(const CgroupTree&) = delete;
    CgroupTree& operator=(const CgroupTree&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    // Absolute filesystem path of the subtree root.
    const std::string& path() const { return path_; }
    // Path relative to the cgroup2 mount ("/pbpf-it-..."), as users give it to the CLI.
    std::string rel() const;
    // Creates (mkdir -p) `sub` under the root; returns its absolute path.
    std::string create(const std::string& sub);
    std::string abs(const std::string& sub) const { return path_ + "/" + sub; }
    std::string rel(const std::string& sub) const { return rel() + "/" + sub; }

  private:
    std::string path_;
    bool ok_ = false;
    std::string error_;
};

// Kills every process in a cgroup subtree and removes its directories, deepest first.
void destroy_cgroup_tree(const std::string& abs_path);

struct HttpResponse {
    int status = 0;  // 0: no parsable response (connection closed or timed out)
    std::string body;
    std::string raw;
};
// Sends raw bytes on a fresh connection to the unix socket and reads until the peer
// closes, a complete response arrived or the deadline passes. Send errors (EPIPE) are
// tolerated. half_close shuts down the sending side after the request, so a server
// waiting for more bytes of an incomplete request sees EOF at once (cpp-httplib then
// closes without an answer, also for complete requests: use it only for broken input).
HttpResponse raw_http(const std::string& socket_path, const std::string& request,
                      std::chrono::milliseconds timeout = 5s, bool half_close = false);
HttpResponse http(const std::string& socket_path, const std::string& method,
                  const std::string& path, const std::string& body = "",
                  std::chrono::milliseconds timeout = 5s);

struct AgentPaths {
    std::string socket;
    std::string state_dir;
    std::string bpffs_root;
    std::string cgroup_root;  // absolute filesystem path
    std::string log_file;
};

std::string agent_binary();
std::string cli_binary();

// One personabpfd instance with its own socket, state dir and pin dir. The destructor
// kills the process, runs `personabpfd --uninstall --purge-state` on the instance and
// removes its directories, whether or not the test passed.
class Agent {
  public:
    // Fresh unique paths: /tmp/pbpf-it-<pid>-<n>/{agent.sock,state,agent.log} and the pin
    // dir <bpffs>/pbpf-it-<pid>-<n>.
    explicit Agent(const std::string& cgroup_root);
    // What the destructor may remove for an agent with explicit paths. A second agent
    // pointed at another one's pin dir or state dir must not tear down the other's objects.
    enum class Owns {
        kInstance,  // pins and state: uninstall --purge-state
        kPins,      // only the pin dir (the state dir is someone else's)
        kNothing,
    };
    Agent(AgentPaths paths, Owns owns);
    ~Agent();
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;

    const AgentPaths& paths() const { return paths_; }
    pid_t pid() const { return pid_; }
    // Further personabpfd arguments for every spawn (e.g. {"--config", FILE}).
    std::vector<std::string> extra_args;
    // The agent binary to spawn; "" = agent_binary() (another build, e.g. personabpfd_next).
    std::string binary;
    // Further environment ("NAME=value") for every spawn.
    std::vector<std::string> extra_env;
    // A netns (path) the agent and its --uninstall run in, through `nsenter --net=`;
    // "" = the test's own.
    std::string netns;

    // Spawns the agent and waits until GET /v1/status answers 200.
    ::testing::AssertionResult start(std::chrono::milliseconds timeout = 20s);
    // Spawns without waiting.
    void spawn();
    bool running();
    // Waits for the process to exit; its wait status, or nullopt at the deadline.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    // Sends sig and reaps the process (SIGKILL after 5 s if it is still there).
    void stop(int sig = SIGTERM);
    CommandResult uninstall(bool purge_state) const;
    bool api_ready() const;
    // Stops the process and uninstalls the instance (purging state) as a test's last step;
    // "" when that worked and no pin is left, else what went wrong.
    std::string teardown();

    // personabpf --socket S [-j] args...
    CommandResult cli(const std::vector<std::string>& args) const;
    CommandResult cli_json(const std::vector<std::string>& args) const;

    std::string log() const { return read_file(paths_.log_file); }
    // Appends a marker line to the log (restarts and kills show up in it).
    void log_note(const std::string& note) const;

  private:
    AgentPaths paths_;
    std::string scratch_;  // removed in the destructor when non-empty
    Owns owns_ = Owns::kInstance;
    pid_t pid_ = -1;
};

std::vector<std::string> agent_env();

// A system user created by the test (useradd), optionally in one more group; removed in
// the destructor.
class TestUser {
  public:
    explicit TestUser(std::string name, const std::string& extra_group = "");
    ~TestUser();
    TestUser(const TestUser&) = delete;
    TestUser& operator=(const TestUser&) = delete;
    bool ok() const { return ok_; }
    const std::string& name() const { return name_; }
    uid_t uid() const { return uid_; }
    gid_t gid() const { return gid_; }

  private:
    std::string name_;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
    bool ok_ = false;
};

// A system group created by the test (groupadd); removed in the destructor.
class TestGroup {
  public:
    explicit TestGroup(std::string name);
    ~TestGroup();
    TestGroup(const TestGroup&) = delete;
    TestGroup& operator=(const TestGroup&) = delete;
    bool ok() const { return ok_; }
    const std::string& name() const { return name_; }

  private:
    std::string name_;
    bool ok_ = false;
};

}  // namespace pbpf::it
