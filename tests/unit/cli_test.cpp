// The `personabpf` CLI's offline commands (pdl check|fmt|compile), its usage errors and
// its message when the agent is unreachable, run as a real process: exact stdout, stderr
// and exit status. No agent and no root needed; every file lives in a fresh temp dir. The
// agent commands run against FakeAgent: canned answers on a unix socket, requests recorded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct Result {
    int status = -1;  // exit status, or 128 + signal
    std::string out;
    std::string err;
};

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Runs the CLI with `args`, feeding `input` on stdin. The environment is the test's,
// without PERSONABPF_SOCKET (so a developer's setting cannot reach a real agent), plus
// `env` ("NAME=value" entries). A nonzero `file_size_limit` caps the size of files the CLI
// may write (RLIMIT_FSIZE, SIGXFSZ ignored), so a write fails with EFBIG even as root.
Result run(const std::vector<std::string>& args, const std::string& input = "",
           const std::vector<std::string>& env = {}, rlim_t file_size_limit = 0) {
    std::vector<std::string> argv_s = {PERSONABPF_CLI};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);

    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "PERSONABPF_SOCKET=", 18) != 0) env_s.emplace_back(*e);
    env_s.insert(env_s.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe: " << std::strerror(errno);
        return {};
    }
    pid_t pid = fork();
    if (pid < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        return {};
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (file_size_limit != 0) {
            signal(SIGXFSZ, SIG_IGN);
            const rlimit lim{file_size_limit, file_size_limit};
            if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(126);
        }
        execve(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);

    Result r;
    size_t written = 0;
    int in_fd = in[1];
    if (input.empty()) {
        close(in_fd);
        in_fd = -1;
    }
    int open_fds = 2;
    bool out_open = true, err_open = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool timed_out = false;
    signal(SIGPIPE, SIG_IGN);  // the CLI may exit without reading all of stdin
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0},
                         {err_open ? err[0] : -1, POLLIN, 0},
                         {in_fd, POLLOUT, 0}};
        if (poll(fds, 3, static_cast<int>(left)) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        char buf[4096];
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                (i == 0 ? out_open : err_open) = false;
                --open_fds;
            }
        }
        if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in_fd, input.data() + written, input.size() - written);
            if (n > 0) written += static_cast<size_t>(n);
            if (n < 0 || written == input.size()) {
                close(in_fd);
                in_fd = -1;
            }
        }
    }
    if (in_fd >= 0) close(in_fd);
    close(out[0]);
    close(err[0]);
    if (timed_out) kill(pid, SIGKILL);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    EXPECT_FALSE(timed_out) << "personabpf did not finish in 60 s";
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return r;
}

// For failure messages: everything the process said.
std::string describe(const Result& r) {
    return "exit " + std::to_string(r.status) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

const char* kGood = R"pdl(set web_ports = { 80, 443 }

persona web {
  description "web tier"

  security {
    default ingress deny
    allow ingress tcp port $web_ports from any
  }
}

persona batch {
  security {
    mode audit
    deny egress tcp port 25 to any
  }
}
)pdl";

const char* kBad = R"pdl(set web_ports = { 80, 443 }

persona web {
  security {
    allow ingress tcp port $web_port from any
  }
}
)pdl";

const char* kUnformatted =
    "persona   web {security{ default ingress deny\n\n\n  allow ingress tcp "
    "port {443,80} from any }}\n";
const char* kUnformattedCanonical =
    "persona web {\n"
    "  security {\n"
    "    default ingress deny\n"
    "\n"
    "    allow ingress tcp port { 443, 80 } from any\n"
    "  }\n"
    "}\n";

class Cli : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string templ = (fs::temp_directory_path() / "personabpf-cli-XXXXXX").string();
        ASSERT_NE(mkdtemp(templ.data()), nullptr) << std::strerror(errno);
        dir_ = templ;
    }
    void TearDown() override {
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }

    // Writes `text` to `name` in the temp dir; returns its path.
    std::string write(const std::string& name, const std::string& text) {
        fs::path p = dir_ / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }

    fs::path dir_;
};

// ---- pdl check ----

TEST_F(Cli, CheckGoodFile) {
    std::string f = write("good.pdl", kGood);
    Result r = run({"pdl", "check", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, f + ": ok: 2 personas (web, batch)\n");
    EXPECT_EQ(r.err, "");
}

TEST_F(Cli, CheckReportsWarningsButSucceeds) {
    std::string f = write("warn.pdl", "set unused = { 1 }\npersona p {\n}\n");
    Result r = run({"pdl", "check", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, f + ": ok: 1 persona (p), 1 warning\n");
    EXPECT_EQ(r.err, f + ":1:5: warning: set 'unused' is never used\n"
                         "set unused = { 1 }\n"
                         "    ^~~~~~\n");
}

// A file with a lint warning (docs/pdl.md, "Lint warnings") and nothing else wrong.
const char* kLintWarning = R"pdl(persona p {
  security {
    default egress deny
    allow egress tcp port 443-443 to any
  }
}
)pdl";

std::string lint_warning(const std::string& file, const std::string& kind,
                         const std::string& suffix = "") {
    return file + ":4:27: " + kind + ": range 443-443 is a single port; write 443" + suffix +
           "\n"
           "    allow egress tcp port 443-443 to any\n"
           "                          ^~~~~~~\n";
}

TEST_F(Cli, CheckReportsLintWarnings) {
    std::string f = write("lint.pdl", kLintWarning);
    Result r = run({"pdl", "check", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, f + ": ok: 1 persona (p), 1 warning\n");
    EXPECT_EQ(r.err, lint_warning(f, "warning"));
}

TEST_F(Cli, CheckNoLintSilencesWarnings) {
    std::string lint = write("lint.pdl", kLintWarning);
    std::string unused = write("unused.pdl", "set unused = { 1 }\npersona p {\n}\n");
    Result r = run({"pdl", "check", "--no-lint", lint, unused});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, lint + ": ok: 1 persona (p)\n" + unused + ": ok: 1 persona (p)\n");
    EXPECT_EQ(r.err, "");

    // Errors are not lint: they are still reported.
    std::string bad = write("bad.pdl", kBad);
    r = run({"pdl", "check", "--no-lint", bad});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, bad + ": 1 error, 0 warnings\n");
}

TEST_F(Cli, CheckWerrorFailsOnWarnings) {
    std::string lint = write("lint.pdl", kLintWarning);
    std::string good = write("good.pdl", kGood);
    Result r = run({"pdl", "check", "--werror", lint, good});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, lint + ": 1 error, 0 warnings\n" + good + ": ok: 2 personas (web, batch)\n");
    EXPECT_EQ(r.err, lint_warning(lint, "error", " [--werror]"));

    r = run({"pdl", "check", "-j", "--werror", lint});
    EXPECT_EQ(r.status, 1) << describe(r);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j[0]["ok"], false);
    EXPECT_EQ(j[0]["errors"], 1);
    EXPECT_EQ(j[0]["warnings"], 0);
    EXPECT_EQ(j[0]["personas"], nlohmann::json::array());

    // --no-lint wins: there is nothing left to treat as an error.
    r = run({"pdl", "check", "--werror", "--no-lint", lint});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, lint + ": ok: 1 persona (p)\n");
    EXPECT_EQ(r.err, "");
}

TEST_F(Cli, CheckFileWithErrors) {
    std::string f = write("bad.pdl", kBad);
    Result r = run({"pdl", "check", f});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, f + ": 1 error, 0 warnings\n");
    EXPECT_EQ(r.err, f + ":5:28: error: unknown set '$web_port'; did you mean '$web_ports'?\n"
                         "    allow ingress tcp port $web_port from any\n"
                         "                           ^~~~~~~~~\n");
}

TEST_F(Cli, CheckSeveralFilesFailsIfAnyFails) {
    std::string good = write("good.pdl", kGood);
    std::string bad = write("bad.pdl", kBad);
    Result r = run({"pdl", "check", good, bad});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, good + ": ok: 2 personas (web, batch)\n" + bad + ": 1 error, 0 warnings\n");
    EXPECT_NE(r.err.find(bad + ":5:28: error: unknown set '$web_port'"), std::string::npos)
        << r.err;
}

TEST_F(Cli, CheckJson) {
    std::string good = write("good.pdl", kGood);
    std::string bad = write("bad.pdl", kBad);
    Result r = run({"pdl", "check", "-j", good, bad});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, "");
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    ASSERT_TRUE(j.is_array());
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0]["file"], good);
    EXPECT_EQ(j[0]["ok"], true);
    EXPECT_EQ(j[0]["personas"], nlohmann::json({"web", "batch"}));
    EXPECT_EQ(j[1]["file"], bad);
    EXPECT_EQ(j[1]["ok"], false);
    EXPECT_EQ(j[1]["errors"], 1);
    EXPECT_EQ(j[1]["personas"], nlohmann::json::array());
    EXPECT_NE(j[1]["diagnostics"].get<std::string>().find(":5:28: error:"), std::string::npos);
}

TEST_F(Cli, CheckStdin) {
    Result r = run({"pdl", "check", "-"}, kBad);
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "<stdin>: 1 error, 0 warnings\n");
    EXPECT_EQ(r.err.rfind("<stdin>:5:28: error: unknown set '$web_port'", 0), 0u) << r.err;
}

TEST_F(Cli, MissingFileIsAClearError) {
    const std::string f = (dir_ / "nope.pdl").string();
    const std::string msg = "personabpf: error: cannot read " + f + ": No such file or directory\n";
    for (std::vector<std::string> args : {std::vector<std::string>{"pdl", "check", f},
                                          {"pdl", "fmt", f},
                                          {"pdl", "fmt", "--check", f},
                                          {"pdl", "compile", f}}) {
        SCOPED_TRACE(args[1]);
        Result r = run(args);
        EXPECT_EQ(r.status, 1) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(r.err, msg);
    }
}

TEST_F(Cli, CheckGoesOnPastAFileItCannotRead) {
    std::string good = write("good.pdl", kGood);
    std::string bad = write("bad.pdl", kBad);
    const std::string missing = (dir_ / "nope.pdl").string();
    Result r = run({"pdl", "check", good, missing, bad});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, good + ": ok: 2 personas (web, batch)\n" + bad + ": 1 error, 0 warnings\n");
    EXPECT_EQ(r.err.rfind("personabpf: error: cannot read " + missing +
                              ": No such file or directory\n" + bad + ":5:28: error:",
                          0),
              0u)
        << r.err;

    // A missing file alone still fails the run.
    r = run({"pdl", "check", good, missing});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, good + ": ok: 2 personas (web, batch)\n");
}

TEST_F(Cli, CheckJsonReportsAFileItCannotRead) {
    std::string good = write("good.pdl", kGood);
    const std::string missing = (dir_ / "nope.pdl").string();
    Result r = run({"pdl", "check", "-j", missing, good});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, "");
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    ASSERT_TRUE(j.is_array());
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0]["file"], missing);
    EXPECT_EQ(j[0]["ok"], false);
    EXPECT_EQ(j[0]["error"], "cannot read " + missing + ": No such file or directory");
    EXPECT_EQ(j[0]["personas"], nlohmann::json::array());
    EXPECT_EQ(j[1]["file"], good);
    EXPECT_EQ(j[1]["ok"], true);
    EXPECT_FALSE(j[1].contains("error"));
}

TEST_F(Cli, ADirectoryIsNotReadAsAnEmptyFile) {
    const std::string d = (dir_ / "sub.pdl").string();
    fs::create_directory(d);
    for (std::vector<std::string> args :
         {std::vector<std::string>{"pdl", "check", d}, {"pdl", "fmt", d}, {"pdl", "compile", d}}) {
        SCOPED_TRACE(args[1]);
        Result r = run(args);
        EXPECT_EQ(r.status, 1) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(r.err, "personabpf: error: cannot read " + d + ": Is a directory\n");
    }
}

// ---- pdl fmt ----

TEST_F(Cli, FmtPrintsCanonicalText) {
    std::string f = write("messy.pdl", kUnformatted);
    Result r = run({"pdl", "fmt", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, kUnformattedCanonical);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(read_file(f), kUnformatted) << "fmt without -w must not touch the file";
}

TEST_F(Cli, FmtStdin) {
    Result r = run({"pdl", "fmt", "-"}, kUnformatted);
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, kUnformattedCanonical);
}

TEST_F(Cli, FmtCheck) {
    std::string messy = write("messy.pdl", kUnformatted);
    std::string tidy = write("tidy.pdl", kUnformattedCanonical);

    Result r = run({"pdl", "fmt", "--check", tidy});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "");

    r = run({"pdl", "fmt", "--check", tidy, messy});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, messy + "\n");  // only the file that is not canonical
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(read_file(messy), kUnformatted) << "--check must not touch the file";
}

TEST_F(Cli, FmtWriteRewritesInPlace) {
    std::string messy = write("messy.pdl", kUnformatted);
    std::string tidy = write("tidy.pdl", kUnformattedCanonical);

    Result r = run({"pdl", "fmt", "-w", messy, tidy});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "formatted " + messy + "\n");  // the canonical file is left alone
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(read_file(messy), kUnformattedCanonical);

    r = run({"pdl", "fmt", "--check", messy, tidy});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "");

    r = run({"pdl", "fmt", "-w", messy});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "") << "a second -w has nothing to do";

    // No temporary file is left behind.
    size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
    EXPECT_EQ(files, 2u);
}

TEST_F(Cli, FmtNeverRewritesAFileThatDoesNotParse) {
    const std::string text = "persona p {\n  security {\n    allow\n  }\n}\n";
    std::string f = write("broken.pdl", text);
    Result r = run({"pdl", "fmt", "-w", f});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, f +
                         ":3:10: error: expected 'ingress' or 'egress' after 'allow', found "
                         "end of line\n"
                         "    allow\n"
                         "         ^\n"
                         "personabpf: error: " +
                         f + ": not formatted (fix the errors)\n");
    EXPECT_EQ(read_file(f), text);
}

TEST_F(Cli, FmtWriteAndCheckExcludeEachOther) {
    std::string f = write("messy.pdl", kUnformatted);
    for (std::vector<std::string> args :
         {std::vector<std::string>{"pdl", "fmt", "-w", "--check", f},
          {"pdl", "fmt", "--check", "--write", f}}) {
        SCOPED_TRACE(args[2]);
        Result r = run(args);
        EXPECT_EQ(r.status, 2) << describe(r);  // a usage error
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err.find("excludes"), std::string::npos) << r.err;
        EXPECT_EQ(read_file(f), kUnformatted);
    }
}

TEST_F(Cli, FmtGoesOnPastAFileItCannotRead) {
    std::string messy = write("messy.pdl", kUnformatted);
    const std::string missing = (dir_ / "nope.pdl").string();
    const std::string msg =
        "personabpf: error: cannot read " + missing + ": No such file or directory\n";

    Result r = run({"pdl", "fmt", "--check", missing, messy});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, messy + "\n");
    EXPECT_EQ(r.err, msg);

    r = run({"pdl", "fmt", missing, messy});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, kUnformattedCanonical);
    EXPECT_EQ(r.err, msg);

    r = run({"pdl", "fmt", "-w", missing, messy});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "formatted " + messy + "\n");
    EXPECT_EQ(r.err, msg);
    EXPECT_EQ(read_file(messy), kUnformattedCanonical);
}

TEST_F(Cli, FmtWriteFollowsSymlinksAndKeepsTheMode) {
    fs::create_directory(dir_ / "real");
    const fs::path target = dir_ / "real" / "messy.pdl";
    std::ofstream(target, std::ios::binary) << kUnformatted;
    ASSERT_EQ(chmod(target.c_str(), 0751), 0) << std::strerror(errno);
    const fs::path link = dir_ / "link.pdl";
    fs::create_symlink(fs::path("real") / "messy.pdl", link);
    const fs::path link2 = dir_ / "link2.pdl";  // a chain: link2 -> link -> target
    fs::create_symlink("link.pdl", link2);

    Result r = run({"pdl", "fmt", "-w", link2.string()});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "formatted " + link2.string() + "\n");
    EXPECT_EQ(r.err, "");

    EXPECT_TRUE(fs::is_symlink(link2));
    EXPECT_TRUE(fs::is_symlink(link));
    EXPECT_EQ(fs::read_symlink(link), fs::path("real") / "messy.pdl");
    EXPECT_EQ(read_file(target), kUnformattedCanonical);
    struct stat st {};
    ASSERT_EQ(lstat(target.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0751u);

    // No temporary file is left beside the target or the links.
    size_t top = 0, real = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++top;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ / "real")) ++real;
    EXPECT_EQ(top, 3u);
    EXPECT_EQ(real, 1u);
}

TEST_F(Cli, FmtWriteTempNameIsNotFixed) {
    // What the old fixed temp name would be is taken (another run's, say): -w still works
    // and leaves the other file alone.
    std::string messy = write("messy.pdl", kUnformatted);
    fs::create_directory(messy + ".pbpf-fmt.tmp");
    Result r = run({"pdl", "fmt", "-w", messy});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "formatted " + messy + "\n");
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(read_file(messy), kUnformattedCanonical);
    EXPECT_TRUE(fs::is_directory(messy + ".pbpf-fmt.tmp"));
}

TEST_F(Cli, FmtWriteFailureKeepsTheOriginalAndRemovesTheTemp) {
    std::string messy = write("messy.pdl", kUnformatted);
    std::string other = write("other.pdl", kUnformatted);
    // Files may not grow past 16 bytes: writing the temp file fails with EFBIG.
    Result r = run({"pdl", "fmt", "-w", messy, other}, "", {}, 16);
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    // Both files are tried: one failure does not stop the run.
    EXPECT_NE(r.err.find("personabpf: error: cannot rewrite " + messy + ": write "),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("personabpf: error: cannot rewrite " + other + ": write "),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
    EXPECT_EQ(read_file(messy), kUnformatted);
    EXPECT_EQ(read_file(other), kUnformatted);
    size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
    EXPECT_EQ(files, 2u) << "a temporary file was left behind";
}

// ---- pdl compile ----

TEST_F(Cli, CompileJsonIsDeterministicAndMatchesTheGoldenFiles) {
    size_t checked = 0;
    for (const auto& entry : fs::directory_iterator(PERSONABPF_GOLDEN_DIR)) {
        if (entry.path().extension() != ".pdl") continue;
        SCOPED_TRACE(entry.path().string());
        fs::path golden = entry.path();
        golden.replace_extension(".json");
        Result a = run({"pdl", "compile", "-j", entry.path().string()});
        Result b = run({"pdl", "compile", entry.path().string(), "--json"});
        ASSERT_EQ(a.status, 0) << describe(a);
        ASSERT_EQ(b.status, 0) << describe(b);
        EXPECT_EQ(a.err, "");
        EXPECT_FALSE(nlohmann::json::parse(a.out, nullptr, false).is_discarded()) << a.out;
        EXPECT_EQ(a.out, b.out) << "two runs differ";
        EXPECT_EQ(a.out, read_file(golden));
        ++checked;
    }
    EXPECT_GE(checked, 3u);
}

TEST_F(Cli, CompileTable) {
    std::string f = write("good.pdl", kGood);
    Result r = run({"pdl", "compile", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.err, "");
    std::istringstream lines(r.out);
    std::string header, web, batch, extra;
    std::getline(lines, header);
    std::getline(lines, batch);  // the image orders personas by name
    std::getline(lines, web);
    EXPECT_FALSE(std::getline(lines, extra)) << r.out;
    EXPECT_EQ(header.rfind("PERSONA  MODE     INGRESS  EGRESS  RULES", 0), 0u) << r.out;
    EXPECT_EQ(web.rfind("web      enforce  deny     allow  ", 0), 0u) << r.out;
    EXPECT_EQ(batch.rfind("batch    audit    allow    allow  ", 0), 0u) << r.out;
}

// Imports resolve against the importing file's directory, whatever the working
// directory; the table names each persona's other sections, and bind blocks follow it.
TEST_F(Cli, CompileFollowsImportsAndShowsSectionsAndBinds) {
    fs::create_directories(dir_ / "lib");
    fs::create_directories(dir_ / "app");
    write("lib/base.pdl",
          "set dns = { 198.18.0.53 }\n\npersona base {\n  dns {\n    servers $dns\n  }\n}\n");
    std::string f = write("app/web.pdl", R"pdl(import "../lib/base.pdl"

persona web extends base {
  qos {
    priority high
  }
}

bind web {
  cgroup "/system.slice/web.service"
  user alice
}
)pdl");
    Result r = run({"pdl", "compile", f});
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("SECTIONS"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("qos,dns"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("bind web: cgroup /system.slice/web.service, user alice\n"),
              std::string::npos)
        << r.out;
    Result j = run({"pdl", "compile", "-j", f});
    ASSERT_EQ(j.status, 0) << describe(j);
    auto doc = nlohmann::json::parse(j.out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << j.out;
    ASSERT_EQ(doc["personas"].size(), 1u) << j.out;  // base is imported, not output
    EXPECT_EQ(doc["binds"][0]["users"][0], "alice") << j.out;

    fs::remove(dir_ / "lib" / "base.pdl");
    Result missing = run({"pdl", "check", f});
    EXPECT_EQ(missing.status, 1);
    EXPECT_NE(missing.err.find("error: cannot import '../lib/base.pdl'"), std::string::npos)
        << missing.err;
}

TEST_F(Cli, CompileSelectsAPersona) {
    std::string f = write("good.pdl", kGood);
    Result all = run({"pdl", "compile", "-j", f});
    Result one = run({"pdl", "compile", "-j", "--persona", "batch", f});
    ASSERT_EQ(all.status, 0) << describe(all);
    ASSERT_EQ(one.status, 0) << describe(one);
    auto ja = nlohmann::json::parse(all.out, nullptr, false);
    auto jo = nlohmann::json::parse(one.out, nullptr, false);
    ASSERT_FALSE(ja.is_discarded() || jo.is_discarded());
    ASSERT_EQ(ja["personas"].size(), 2u);
    ASSERT_EQ(jo["personas"].size(), 1u);
    EXPECT_EQ(jo["personas"][0]["name"], "batch");
    // A persona's image does not depend on the other personas of its file.
    nlohmann::json batch;
    for (const auto& p : ja["personas"])
        if (p["name"] == "batch") batch = p;
    EXPECT_EQ(jo["personas"][0], batch);

    Result table = run({"pdl", "compile", f, "--persona", "web"});
    EXPECT_EQ(table.status, 0) << describe(table);
    EXPECT_NE(table.out.find("\nweb "), std::string::npos) << table.out;
    EXPECT_EQ(table.out.find("batch"), std::string::npos) << table.out;
}

TEST_F(Cli, CompileUnknownPersonaIsAnError) {
    std::string f = write("good.pdl", kGood);
    Result r = run({"pdl", "compile", "-j", "--persona", "nope", f});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err,
              "personabpf: error: no persona named 'nope' in " + f + " (personas: web, batch)\n");

    std::string empty = write("empty.pdl", "set s = { 1 }\n");
    r = run({"pdl", "compile", "--persona", "web", empty});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.substr(r.err.find("personabpf: error:")),
              "personabpf: error: no persona named 'web' in " + empty + " (it has no personas)\n");
}

TEST_F(Cli, CompileFileWithErrorsPrintsNothing) {
    std::string f = write("bad.pdl", kBad);
    Result r = run({"pdl", "compile", "-j", f});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind(f + ":5:28: error: unknown set '$web_port'", 0), 0u) << r.err;
}

TEST_F(Cli, CompileLintFlags) {
    std::string f = write("lint.pdl", kLintWarning);
    Result r = run({"pdl", "compile", "-j", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.err, lint_warning(f, "warning"));
    EXPECT_FALSE(nlohmann::json::parse(r.out, nullptr, false).is_discarded()) << r.out;
    const std::string image = r.out;

    r = run({"pdl", "compile", "-j", "--no-lint", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out, image) << "lint never changes what a file compiles to";

    // --werror: the file compiles to nothing.
    for (std::vector<std::string> args :
         {std::vector<std::string>{"pdl", "compile", "-j", "--werror", f},
          {"pdl", "compile", "--werror", f}}) {
        SCOPED_TRACE(args[2]);
        r = run(args);
        EXPECT_EQ(r.status, 1) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(r.err, lint_warning(f, "error", " [--werror]"));
    }
}

// ---- usage ----

TEST_F(Cli, UsageErrorsExitTwo) {
    std::string f = write("good.pdl", kGood);
    for (std::vector<std::string> args : {std::vector<std::string>{},
                                          {"frobnicate"},
                                          {"pdl"},
                                          {"pdl", "lint", f},
                                          {"pdl", "check"},
                                          {"pdl", "fmt", "--bogus", f},
                                          {"pdl", "compile"},
                                          {"pdl", "compile", f, "--persona"},
                                          {"bind", "--cgroup", "/x"}}) {
        std::string cmd;
        for (const auto& a : args) cmd += " " + a;
        SCOPED_TRACE("personabpf" + cmd);
        Result r = run(args);
        EXPECT_EQ(r.status, 2) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err, "");
    }
}

TEST_F(Cli, HelpAndVersionSucceed) {
    Result r = run({"--version"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "personabpf 0.1.0\n");
    r = run({"pdl", "--help"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("check"), std::string::npos) << r.out;
}

// ---- agent commands without an agent ----

std::string unreachable(const std::string& socket, const std::string& why) {
    return "personabpf: error: cannot reach the agent at " + socket + ": " + why +
           " (is personabpfd running? --socket/PERSONABPF_SOCKET)\n";
}

TEST_F(Cli, AgentCommandsWithoutAnAgent) {
    std::string f = write("good.pdl", kGood);
    const std::string socket = (dir_ / "agent.sock").string();
    for (std::vector<std::string> args : {std::vector<std::string>{"status"},
                                          {"persona", "ls"},
                                          {"persona", "show", "web"},
                                          {"persona", "rm", "web"},
                                          {"persona", "apply", f},
                                          {"persona", "history", "web"},
                                          {"persona", "diff", "web", "1", "2"},
                                          {"persona", "rollback", "web", "--to", "1"},
                                          {"persona", "chown", "web", "alice"},
                                          {"audit"},
                                          {"bind", "--persona", "web", "--cgroup", "/x"},
                                          {"unbind", "--cgroup", "/x"},
                                          {"bindings", "ls"},
                                          {"stats"}}) {
        std::string cmd;
        for (const auto& a : args) cmd += " " + a;
        SCOPED_TRACE("personabpf" + cmd);
        std::vector<std::string> full = {"--socket", socket};
        full.insert(full.end(), args.begin(), args.end());
        Result r = run(full);
        EXPECT_EQ(r.status, 1) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(r.err, unreachable(socket, "No such file or directory"));
    }
}

TEST_F(Cli, ApplyWerrorRefusesBeforeSending) {
    // The agent has no --werror: the CLI compiles each file itself first and never sends
    // one with warnings. No agent runs here, so reaching it shows a file was sent.
    std::string lint = write("lint.pdl", kLintWarning);
    std::string good = write("good.pdl", kGood);
    const std::string socket = (dir_ / "agent.sock").string();
    Result r = run({"--socket", socket, "persona", "apply", "--werror", lint});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, lint_warning(lint, "error", " [--werror]") + "personabpf: error: " + lint +
                         ": not applied (1 error with --werror)\n");

    r = run({"--socket", socket, "persona", "apply", "--werror", "--no-lint", lint});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, unreachable(socket, "No such file or directory"));

    r = run({"--socket", socket, "persona", "apply", "--werror", good});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, unreachable(socket, "No such file or directory"));

    // A refused file does not stop the others.
    r = run({"--socket", socket, "persona", "apply", "--werror", lint, good});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, lint_warning(lint, "error", " [--werror]") + "personabpf: error: " + lint +
                         ": not applied (1 error with --werror)\n" +
                         unreachable(socket, "No such file or directory"));

    // From stdin, named like the agent would name it.
    r = run({"--socket", socket, "persona", "apply", "--werror", "-"}, kLintWarning);
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, lint_warning("<stdin>", "error", " [--werror]") +
                         "personabpf: error: <stdin>: not applied (1 error with --werror)\n");
}

TEST_F(Cli, AgentSocketFromTheEnvironment) {
    const std::string socket = (dir_ / "env.sock").string();
    Result r = run({"status"}, "", {"PERSONABPF_SOCKET=" + socket});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, unreachable(socket, "No such file or directory"));

    // --socket wins over the environment.
    const std::string flag = (dir_ / "flag.sock").string();
    r = run({"--socket", flag, "status"}, "", {"PERSONABPF_SOCKET=" + socket});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, unreachable(flag, "No such file or directory"));
}

TEST_F(Cli, AgentSocketMustNotBeEmpty) {
    for (std::vector<std::string> args : {std::vector<std::string>{"--socket", "", "status"},
                                          {"persona", "ls", "--socket="},
                                          {"--socket=", "status"}}) {
        SCOPED_TRACE(args[0]);
        Result r = run(args);
        EXPECT_EQ(r.status, 2) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err.find("--socket: must not be empty"), std::string::npos) << r.err;
    }
}

TEST_F(Cli, AgentSocketThatIsNoSocket) {
    const std::string hint = " (--socket/PERSONABPF_SOCKET must name the agent's API socket)\n";
    const std::string d = dir_.string();
    Result r = run({"--socket", d, "status"});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "personabpf: error: " + d + " is not a socket but a directory" + hint);

    const std::string f = write("agent.sock", "");
    r = run({"persona", "ls"}, "", {"PERSONABPF_SOCKET=" + f});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "personabpf: error: " + f + " is not a socket but a regular file" + hint);
}

TEST_F(Cli, AgentSocketNobodyListensOn) {
    // A socket that exists but has no listener: connect() is refused.
    const std::string socket = (dir_ / "dead.sock").string();
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(socket.size(), sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, socket.data(), socket.size());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    Result r = run({"--socket", socket, "persona", "ls"});
    close(fd);
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, unreachable(socket, "Connection refused"));
}

// ---- agent commands against a fake agent ----

struct HttpRequest {
    std::string method;
    std::string target;  // path and query, as sent
    std::string body;
    nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

struct HttpReply {
    int status = 200;
    std::string body;
};

// A one-request-per-connection HTTP/1.1 server on a unix socket, answering from a table of
// "METHOD target" -> reply (404 for anything else) and recording every request.
class FakeAgent {
  public:
    FakeAgent(std::string path, std::map<std::string, HttpReply> routes)
        : path_(std::move(path)), routes_(std::move(routes)) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (fd_ < 0 || path_.size() >= sizeof(addr.sun_path) || pipe2(stop_, O_CLOEXEC) != 0) {
            ADD_FAILURE() << "fake agent: socket/pipe: " << std::strerror(errno);
            return;
        }
        std::memcpy(addr.sun_path, path_.data(), path_.size());
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
            ::listen(fd_, 16) != 0) {
            ADD_FAILURE() << "fake agent: bind/listen " << path_ << ": " << std::strerror(errno);
            return;
        }
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeAgent() {
        if (thread_.joinable()) {
            (void)!::write(stop_[1], "x", 1);
            thread_.join();
        }
        for (int fd : {fd_, stop_[0], stop_[1]})
            if (fd >= 0) ::close(fd);
    }
    FakeAgent(const FakeAgent&) = delete;
    FakeAgent& operator=(const FakeAgent&) = delete;

    std::vector<HttpRequest> requests() const {
        std::lock_guard<std::mutex> lock(mu_);
        return requests_;
    }

  private:
    void serve() {
        for (;;) {
            pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
            if (poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return;
            }
            if (fds[1].revents) return;
            int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (conn < 0) continue;
            timeval tv{5, 0};
            setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            handle(conn);
            ::close(conn);
        }
    }

    void handle(int conn) {
        std::string data;
        char buf[4096];
        size_t head_end;
        while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
            ssize_t n = ::read(conn, buf, sizeof buf);
            if (n <= 0) return;
            data.append(buf, static_cast<size_t>(n));
        }
        HttpRequest req;
        std::istringstream head(data.substr(0, head_end));
        head >> req.method >> req.target;
        size_t length = 0;
        for (std::string line; std::getline(head, line);) {
            for (auto& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (line.rfind("content-length:", 0) == 0) length = std::stoul(line.substr(15));
        }
        req.body = data.substr(head_end + 4);
        while (req.body.size() < length) {
            ssize_t n = ::read(conn, buf, sizeof buf);
            if (n <= 0) break;
            req.body.append(buf, static_cast<size_t>(n));
        }
        HttpReply reply{404, nlohmann::json{{"error", "fake agent: no route for " + req.method +
                                                          " " + req.target}}
                                 .dump()};
        if (auto it = routes_.find(req.method + " " + req.target); it != routes_.end())
            reply = it->second;
        {
            std::lock_guard<std::mutex> lock(mu_);
            requests_.push_back(req);
        }
        std::string out = "HTTP/1.1 " + std::to_string(reply.status) +
                          " Fake\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(reply.body.size()) + "\r\nConnection: close\r\n\r\n" +
                          reply.body;
        for (size_t sent = 0; sent < out.size();) {
            ssize_t n = ::send(conn, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return;
            sent += static_cast<size_t>(n);
        }
    }

    std::string path_;
    std::map<std::string, HttpReply> routes_;
    int fd_ = -1;
    int stop_[2] = {-1, -1};
    std::thread thread_;
    mutable std::mutex mu_;
    std::vector<HttpRequest> requests_;
};

// Agent commands in UTC, so that printed local times are fixed.
class CliAgent : public Cli {
  protected:
    std::string socket() const { return (dir_ / "agent.sock").string(); }
    Result run_cli(std::vector<std::string> args, const std::string& input = "") {
        args.insert(args.begin(), {"--socket", socket()});
        return run(args, input, {"TZ=UTC"});
    }
};

TEST_F(CliAgent, ApplyPrintsVersionsAndSendsOwner) {
    std::string f = write("good.pdl", kGood);
    FakeAgent agent(socket(), {{"POST /v1/personas", {200, R"J({"applied": [
        {"name": "web", "id": 1, "entries": 4, "changed": true, "version": 3},
        {"name": "batch", "id": 2, "entries": 1, "changed": false, "version": 2}]})J"}}});
    Result r = run_cli({"persona", "apply", "-m", "open 443", "--owner", "alice", f});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "applied persona 'web' (version 3)\npersona 'batch' unchanged (version 2)\n");
    EXPECT_EQ(r.err, "");
    r = run_cli({"persona", "apply", f});
    EXPECT_EQ(r.status, 0) << describe(r);

    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].target, "/v1/personas");
    auto body = reqs[0].json();
    EXPECT_EQ(body["owner"], "alice") << reqs[0].body;
    EXPECT_EQ(body["message"], "open 443") << reqs[0].body;
    EXPECT_EQ(body["filename"], f) << reqs[0].body;
    EXPECT_EQ(body["source"], kGood) << reqs[0].body;
    body = reqs[1].json();
    EXPECT_FALSE(body.contains("owner")) << reqs[1].body;
    EXPECT_FALSE(body.contains("message")) << reqs[1].body;
}

TEST_F(CliAgent, ApplyRefusedWithForbidden) {
    std::string f = write("good.pdl", kGood);
    const std::string why =
        "alice (uid 1001) may not apply persona 'web': persona 'web' is owned by bob (uid "
        "1002); only its owner and admins (root) may change it";
    FakeAgent agent(socket(),
                    {{"POST /v1/personas", {403, nlohmann::json{{"error", why}}.dump()}}});
    Result r = run_cli({"persona", "apply", f});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "personabpf: error: " + f + ": " + why + "\n");
}

TEST_F(CliAgent, LsShowsVersionAndOwner) {
    FakeAgent agent(socket(), {{"GET /v1/personas", {200, R"J([
        {"name": "web", "id": 1, "version": 12, "mode": "enforce", "rules": 3, "entries": 7,
         "bindings": 2, "owner_uid": 1001, "owner": "alice (uid 1001)"},
        {"name": "batch", "id": 2, "version": 1, "mode": "audit", "rules": 1, "entries": 1,
         "bindings": 0, "owner_uid": 0}])J"}}});
    Result r = run_cli({"persona", "ls"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "NAME   ID  VERSION  MODE     RULES  ENTRIES  BINDINGS  OWNER\n"
              "web     1       12  enforce      3        7         2  alice (uid 1001)\n"
              "batch   2        1  audit        1        1         0  uid 0\n");
}

const char* kWebV2 = R"J({"name": "web", "version": 2, "filename": "web.pdl",
    "source": "persona web {\n  security {\n    default ingress deny\n  }\n}\n",
    "description": "web tier", "mode": "enforce",
    "defaults": {"ingress": "deny", "egress": "allow"},
    "rules": ["allow ingress tcp port 443 from any", "deny egress udp port 53 to any"],
    "image": {"entries": 2}, "author_uid": 1001, "author": "alice (uid 1001)",
    "created_at": 1764470000, "message": "close dns"})J";

TEST_F(CliAgent, ShowCurrentPrintsVersionAndOwner) {
    FakeAgent agent(socket(), {{"GET /v1/personas/web", {200, R"J({"name": "web", "id": 1,
        "version": 4, "owner_uid": 1001, "owner": "alice (uid 1001)", "description": "web tier",
        "mode": "enforce", "defaults": {"ingress": "deny", "egress": "allow"}, "entries": 2,
        "rules": ["allow ingress tcp port 443 from any"], "bound_cgroups": ["/demo/web"]})J"}}});
    Result r = run_cli({"persona", "show", "web"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "persona:      web (id 1)\n"
              "version:      4\n"
              "owner:        alice (uid 1001)\n"
              "description:  web tier\n"
              "mode:         enforce\n"
              "defaults:     ingress deny, egress allow\n"
              "entries:      2\n"
              "rules:\n"
              "    1  allow ingress tcp port 443 from any\n"
              "bindings:\n"
              "  /demo/web\n");
}

TEST_F(CliAgent, ShowVersion) {
    FakeAgent agent(socket(), {{"GET /v1/personas/web?version=2", {200, kWebV2}}});
    Result r = run_cli({"persona", "show", "web", "--version", "2"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "persona:      web\n"
              "version:      2\n"
              "description:  web tier\n"
              "author:       alice (uid 1001)\n"
              "created:      2025-11-30 02:33:20 UTC\n"
              "message:      close dns\n"
              "mode:         enforce\n"
              "defaults:     ingress deny, egress allow\n"
              "source:       web.pdl\n"
              "rules:\n"
              "    1  allow ingress tcp port 443 from any\n"
              "    2  deny egress udp port 53 to any\n");
    ASSERT_EQ(agent.requests().size(), 1u);

    r = run_cli({"persona", "show", "web", "--version", "2", "-j"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(nlohmann::json::parse(r.out, nullptr, false), nlohmann::json::parse(kWebV2));
}

TEST_F(CliAgent, ShowSource) {
    const std::string source = "persona web {\n  security {\n    default ingress deny\n  }\n}\n";
    FakeAgent agent(
        socket(), {{"GET /v1/personas/web?version=2", {200, kWebV2}},
                   // The current answer carries no source: it comes from its version.
                   {"GET /v1/personas/web", {200, R"J({"name": "web", "id": 1, "version": 2})J"}}});
    Result r = run_cli({"persona", "show", "web", "--version", "2", "--source"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, source);
    r = run_cli({"persona", "show", "--source", "web"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, source);
    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].target, "/v1/personas/web?version=2");
    EXPECT_EQ(reqs[1].target, "/v1/personas/web");
    EXPECT_EQ(reqs[2].target, "/v1/personas/web?version=2");
}

TEST_F(CliAgent, History) {
    FakeAgent agent(socket(), {{"GET /v1/personas/web/versions", {200, R"J([
        {"version": 1, "author_uid": 0, "author": "root (uid 0)", "created_at": 1764470000,
         "message": "first", "filename": "web.pdl", "mode": "enforce", "rules": 3,
         "current": false},
        {"version": 2, "author_uid": 1001, "author": "alice (uid 1001)",
         "created_at": 1764473600, "message": "close dns\nand more", "filename": "web.pdl",
         "mode": "audit", "rules": 12, "current": true},
        {"version": 3, "author_uid": 0, "created_at": 1764473601, "message": "",
         "rules": 3, "current": false}])J"}},
                               {"GET /v1/personas/new/versions", {200, "[]"}}});
    Result r = run_cli({"persona", "history", "web"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "VERSION  CREATED                  AUTHOR            RULES  MESSAGE\n"
              "1        2025-11-30 02:33:20 UTC  root (uid 0)          3  first\n"
              "2*       2025-11-30 03:33:20 UTC  alice (uid 1001)     12  close dns "
              "and more\n"
              "3        2025-11-30 03:33:21 UTC  uid 0                 3  -\n");
    r = run_cli({"persona", "history", "new"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "no versions of persona 'new'\n");
    ASSERT_EQ(agent.requests().size(), 2u);
    EXPECT_EQ(agent.requests()[0].method, "GET");
}

TEST_F(CliAgent, Diff) {
    FakeAgent agent(
        socket(),
        {{"GET /v1/personas/web/diff?from=1&to=2", {200, R"J({"name": "web", "from": 1, "to": 2,
        "changes": ["rule added: allow egress tcp port 443 to 10.0.0.0/8",
                    "mode: enforce -> audit"],
        "source_diff": "--- web v1\n+++ web v2\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n"})J"}},
         {"GET /v1/personas/web/diff?from=2&to=3",
          {200, R"J({"name": "web", "from": 2, "to": 3, "changes": [], "source_diff": ""})J"}},
         {"GET /v1/personas/web/diff?from=3&to=4",
          {200, R"J({"name": "web", "from": 3, "to": 4, "changes": [],
                    "source_diff": "--- web v3\n+++ web v4\n-# old\n+# new"})J"}}});
    Result r = run_cli({"persona", "diff", "web", "1", "2"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "changes:\n"
              "  rule added: allow egress tcp port 443 to 10.0.0.0/8\n"
              "  mode: enforce -> audit\n"
              "\n"
              "--- web v1\n+++ web v2\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n");
    r = run_cli({"persona", "diff", "web", "2", "3"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "no changes\n");
    // Only comments changed: the policy did not.
    r = run_cli({"persona", "diff", "web", "3", "4"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "changes:  none\n\n--- web v3\n+++ web v4\n-# old\n+# new\n");
    EXPECT_EQ(agent.requests().size(), 3u);
}

TEST_F(CliAgent, Rollback) {
    FakeAgent agent(socket(),
                    {{"POST /v1/personas/web/rollback", {200, R"J({"rolled_back_to": 2, "applied": [
        {"name": "web", "id": 1, "entries": 2, "changed": true, "version": 5}]})J"}},
                     {"POST /v1/personas/db/rollback", {200, R"J({"rolled_back_to": 2, "applied": [
        {"name": "db", "id": 3, "entries": 2, "changed": false, "version": 4}]})J"}}});
    Result r = run_cli({"persona", "rollback", "web", "--to", "2", "-m", "undo 443"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "persona 'web' rolled back to version 2 (now version 5)\n");
    r = run_cli({"persona", "rollback", "db", "--to", "2"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "persona 'db' already equals version 2 (version 4, unchanged)\n");

    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].json(), nlohmann::json({{"to", 2}, {"message", "undo 443"}}));
    EXPECT_EQ(reqs[1].json(), nlohmann::json({{"to", 2}}));
}

TEST_F(CliAgent, Chown) {
    FakeAgent agent(
        socket(),
        {{"POST /v1/personas/web/owner",
          {200, R"J({"name": "web", "owner_uid": 1001, "owner": "alice (uid 1001)"})J"}},
         {"POST /v1/personas/db/owner",
          {403, R"J({"error": "alice (uid 1001) may not change the owner of persona 'db'"})J"}}});
    Result r = run_cli({"persona", "chown", "web", "alice"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "persona 'web' is now owned by alice (uid 1001)\n");
    r = run_cli({"persona", "chown", "web", "1001"});
    EXPECT_EQ(r.status, 0) << describe(r);
    r = run_cli({"persona", "chown", "db", "alice"});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err,
              "personabpf: error: alice (uid 1001) may not change the owner of persona "
              "'db'\n");

    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].json(), nlohmann::json({{"owner", "alice"}}));
    EXPECT_EQ(reqs[1].json(), nlohmann::json({{"owner", "1001"}}));
}

const char* kAudit = R"J([
    {"id": 7, "at": "2025-11-30T02:33:20.123Z", "at_ms": 1764470000123, "uid": 1001,
     "user": "alice (uid 1001)", "pid": 4242, "action": "apply", "persona": "web",
     "target": null, "outcome": "ok", "status": 200, "detail": "version 3"},
    {"id": 8, "at": "2025-11-30T03:33:20.000Z", "at_ms": 1764473600000, "uid": 1002,
     "user": "bob (uid 1002)", "pid": 4243, "action": "bind", "persona": "web",
     "target": "/demo/web", "outcome": "refused", "status": 403,
     "detail": "bob (uid 1002) may not bind persona 'web': persona 'web' is owned by alice"}])J";

TEST_F(CliAgent, Audit) {
    FakeAgent agent(socket(), {{"GET /v1/audit?limit=100", {200, kAudit}},
                               {"GET /v1/audit?limit=5&since=2025-11-30T03%3A00%3A00Z&persona=web",
                                {200, "[]"}},
                               {"GET /v1/audit?limit=100&since=2h", {200, kAudit}}});
    Result r = run_cli({"audit"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "TIME                     USER              ACTION  PERSONA  TARGET     OUTCOME  "
              "DETAIL\n"
              "2025-11-30 02:33:20 UTC  alice (uid 1001)  apply   web      -          ok       "
              "version 3\n"
              "2025-11-30 03:33:20 UTC  bob (uid 1002)    bind    web      /demo/web  refused  "
              "bob (uid 1002) may not bind persona 'web': persona 'web' ...\n");

    r = run_cli({"audit", "--since", "2025-11-30T03:00:00Z", "--persona", "web", "-n", "5"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "no audit records\n");

    // -j keeps every field, the detail in full.
    r = run_cli({"audit", "--since", "2h", "-j"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(nlohmann::json::parse(r.out, nullptr, false), nlohmann::json::parse(kAudit));

    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 3u);
    for (const auto& q : reqs) EXPECT_EQ(q.method, "GET");
}

TEST_F(CliAgent, NewCommandsUsageErrors) {
    for (std::vector<std::string> args : {std::vector<std::string>{"persona", "history"},
                                          {"persona", "diff", "web", "1"},
                                          {"persona", "diff", "web", "0", "2"},
                                          {"persona", "diff", "web", "one", "2"},
                                          {"persona", "rollback", "web"},
                                          {"persona", "rollback", "web", "--to", "0"},
                                          {"persona", "rollback", "--to", "2"},
                                          {"persona", "chown", "web"},
                                          {"persona", "show", "web", "--version"},
                                          {"persona", "show", "web", "--version", "0"},
                                          {"audit", "-n", "0"},
                                          {"audit", "--since"}}) {
        std::string cmd;
        for (const auto& a : args) cmd += " " + a;
        SCOPED_TRACE("personabpf" + cmd);
        Result r = run_cli(args);  // no agent: a parsed command would exit 1
        EXPECT_EQ(r.status, 2) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err, "");
    }
}

TEST_F(CliAgent, HelpListsTheNewCommands) {
    Result r = run({"--help"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("\n  audit "), std::string::npos) << r.out;
    r = run({"persona", "--help"});
    EXPECT_EQ(r.status, 0) << describe(r);
    for (const char* cmd : {"history", "diff", "rollback", "chown"})
        EXPECT_NE(r.out.find(std::string("\n  ") + cmd + " "), std::string::npos) << cmd;
    r = run({"persona", "apply", "--help"});
    EXPECT_NE(r.out.find("--owner"), std::string::npos) << r.out;
    r = run({"persona", "show", "--help"});
    EXPECT_NE(r.out.find("--source"), std::string::npos) << r.out;
}

}  // namespace

// ---- stats and top ----

namespace {

constexpr const char* kStatsAnswer = R"J([
  {"persona": "slow", "id": 1,
   "ingress": {"allowed_packets": 1, "allowed_bytes": 60, "denied_packets": 0, "denied_bytes": 0,
               "audited_packets": 0, "audited_bytes": 0, "dropped_by_reason": {},
               "rate": {"bits_per_second": 0, "packets_per_second": 0}},
   "egress": {"allowed_packets": 2, "allowed_bytes": 120, "denied_packets": 3,
              "denied_bytes": 180, "audited_packets": 0, "audited_bytes": 0,
              "dropped_by_reason": {"default": 1, "rule": 2},
              "rate": {"bits_per_second": 1500, "packets_per_second": 2}},
   "bindings": [{"kind": "cgroup", "target": "/app/slow", "counted": true,
     "ingress": {"passed_packets": 1, "passed_bytes": 60, "dropped_packets": 0,
                 "dropped_bytes": 0, "rate": {"bits_per_second": 0, "packets_per_second": 0}},
     "egress": {"passed_packets": 2, "passed_bytes": 120, "dropped_packets": 3,
                "dropped_bytes": 180, "rate": {"bits_per_second": 1500,
                "packets_per_second": 2}}}]},
  {"persona": "fast", "id": 2,
   "ingress": {"allowed_packets": 9, "allowed_bytes": 900, "denied_packets": 0, "denied_bytes": 0,
               "audited_packets": 0, "audited_bytes": 0, "dropped_by_reason": {},
               "rate": {"bits_per_second": 12300000, "packets_per_second": 1000}},
   "egress": {"allowed_packets": 9, "allowed_bytes": 900, "denied_packets": 0, "denied_bytes": 0,
              "audited_packets": 0, "audited_bytes": 0, "dropped_by_reason": {},
              "rate": {"bits_per_second": 0, "packets_per_second": 0}},
   "bindings": []}
])J";

TEST_F(CliAgent, StatsShowsRatesReasonsAndBindings) {
    FakeAgent agent(socket(), {{"GET /v1/stats", {200, kStatsAnswer}}});
    Result r = run_cli({"stats"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("RATE"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("1.5 kbit/s"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("default 1, rule 2"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("BINDING"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("/app/slow"), std::string::npos) << r.out;
    // stats keeps the agent's order: slow before fast.
    EXPECT_LT(r.out.find("slow"), r.out.find("fast")) << r.out;
}

constexpr const char* kLatencyStats = R"J([
  {"persona": "api", "id": 3,
   "ingress": {"allowed_packets": 5, "allowed_bytes": 300, "rate": {"bits_per_second": 0}},
   "egress": {"allowed_packets": 5, "allowed_bytes": 300, "rate": {"bits_per_second": 800}},
   "rtt": {"p50_us": 61.5, "p99_us": 1830.25, "samples": 420, "window_seconds": 30,
           "target_us": 5000.0, "status": "met"},
   "bindings": [
     {"kind": "cgroup", "target": "/app/api-fast", "counted": true,
      "ingress": {"passed_packets": 2, "rate": {"bits_per_second": 0}},
      "egress": {"passed_packets": 2, "rate": {"bits_per_second": 0}},
      "rtt": {"p50_us": 40.0, "p99_us": 95.0, "samples": 400, "window_seconds": 30,
              "target_us": 5000.0, "status": "met"}},
     {"kind": "cgroup", "target": "/app/api-slow", "counted": true,
      "ingress": {"passed_packets": 1, "rate": {"bits_per_second": 0}},
      "egress": {"passed_packets": 1, "rate": {"bits_per_second": 0}},
      "rtt": {"p50_us": 7100.0, "p99_us": 8800.0, "samples": 20, "window_seconds": 30,
              "target_us": 5000.0, "status": "violated"}},
     {"kind": "interface", "target": "tap0", "counted": true,
      "ingress": {"passed_packets": 1, "rate": {"bits_per_second": 0}},
      "egress": {"passed_packets": 1, "rate": {"bits_per_second": 0}}}]},
  {"persona": "batch", "id": 4,
   "ingress": {"allowed_packets": 1, "allowed_bytes": 60, "rate": {"bits_per_second": 0}},
   "egress": {"allowed_packets": 1, "allowed_bytes": 60, "rate": {"bits_per_second": 0}},
   "rtt": {"p50_us": null, "p99_us": null, "samples": 0, "window_seconds": 30,
           "target_us": 2000000.0, "status": "no-data"},
   "bindings": []},
  {"persona": "plain", "id": 5,
   "ingress": {"allowed_packets": 1, "allowed_bytes": 60, "rate": {"bits_per_second": 0}},
   "egress": {"allowed_packets": 1, "allowed_bytes": 60, "rate": {"bits_per_second": 0}},
   "bindings": []}
])J";

TEST_F(CliAgent, StatsAndTopShowRttPercentilesAndLatencyStatus) {
    FakeAgent agent(socket(), {{"GET /v1/stats", {200, kLatencyStats}}});
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"stats"},
          std::vector<std::string>{"top", "--iterations", "1"}}) {
        Result r = run_cli(args);
        EXPECT_EQ(r.status, 0) << describe(r);
        const size_t table = r.out.find("RTT-P99");
        ASSERT_NE(table, std::string::npos) << r.out;
        const std::string lat = r.out.substr(table);
        EXPECT_NE(lat.find("5 ms"), std::string::npos) << lat;     // target
        EXPECT_NE(lat.find("62 us"), std::string::npos) << lat;    // p50, rounded
        EXPECT_NE(lat.find("1.83 ms"), std::string::npos) << lat;  // p99
        EXPECT_NE(lat.find("met"), std::string::npos) << lat;
        EXPECT_NE(lat.find("no-data"), std::string::npos) << lat;
        EXPECT_NE(lat.find("2 s"), std::string::npos) << lat;
        EXPECT_EQ(lat.find("plain"), std::string::npos) << "no target, no latency row:\n" << lat;
        // The persona's row ("*": all its bindings), then a row per binding with figures.
        const size_t all = lat.find("api      *");
        const size_t fast = lat.find("api      /app/api-fast");
        const size_t slow = lat.find("api      /app/api-slow");
        ASSERT_NE(all, std::string::npos) << lat;
        ASSERT_NE(fast, std::string::npos) << lat;
        ASSERT_NE(slow, std::string::npos) << lat;
        EXPECT_LT(all, fast) << lat;
        EXPECT_LT(fast, slow) << lat;
        const std::string slow_row = lat.substr(slow, lat.find('\n', slow) - slow);
        EXPECT_NE(slow_row.find("8.8 ms"), std::string::npos) << slow_row;
        EXPECT_NE(slow_row.find("violated"), std::string::npos) << slow_row;
        const std::string lat_table = lat.substr(0, lat.find("\n\n"));
        EXPECT_EQ(lat_table.find("tap0"), std::string::npos) << "no rtt, no latency row:\n"
                                                             << lat_table;
    }
}

TEST_F(CliAgent, EventsPrintsLatencyChanges) {
    FakeAgent agent(socket(), {{"GET /v1/events?tail=1&limit=20", {200, R"J({"events": [
        {"seq": 7, "type": "latency", "time_ns": 1700000000000000000, "persona": "api",
         "status": "violated", "previous": "met",
         "rtt": {"p50_us": 900.0, "p99_us": 7250.5, "samples": 300, "window_seconds": 30,
                 "target_us": 5000.0, "status": "violated"}}],
        "next": 8, "overwritten": 0, "kernel": {}})J"}}});
    Result r = run_cli({"events"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("api  LATENCY violated (was met; p99 7250.5 us, target 5000.0 us, 300 "
                         "samples)"),
              std::string::npos)
        << r.out;
}

TEST_F(CliAgent, EventsNameTheBindingOfABindingsLatencyChange) {
    FakeAgent agent(socket(), {{"GET /v1/events?tail=1&limit=20", {200, R"J({"events": [
        {"seq": 8, "type": "latency", "scope": "binding", "workload": "/app/api-slow",
         "time_ns": 1700000000000000000, "persona": "api", "status": "violated",
         "previous": "no-data",
         "rtt": {"p50_us": 7100.0, "p99_us": 8800.0, "samples": 20, "window_seconds": 30,
                 "target_us": 5000.0, "status": "violated"}}],
        "next": 9, "overwritten": 0, "kernel": {}})J"}}});
    Result r = run_cli({"events"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("api (/app/api-slow)  LATENCY violated (was no-data; p99 8800.0 us, "
                         "target 5000.0 us, 20 samples)"),
              std::string::npos)
        << r.out;
}

TEST_F(CliAgent, TopPrintsFramesSortedByRate) {
    FakeAgent agent(socket(), {{"GET /v1/stats", {200, kStatsAnswer}}});
    Result r = run_cli({"top", "--iterations", "2", "--interval", "0.1"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.err, "");
    // Two frames, no terminal escapes (stdout is a pipe), fast (12.3 Mbit/s) first.
    size_t first = r.out.find("personabpf top - ");
    ASSERT_NE(first, std::string::npos) << r.out;
    size_t second = r.out.find("personabpf top - ", first + 1);
    EXPECT_NE(second, std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("personabpf top - ", second + 1), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("12.3 Mbit/s"), std::string::npos) << r.out;
    EXPECT_LT(r.out.find("fast"), r.out.find("slow")) << r.out;
    EXPECT_EQ(agent.requests().size(), 2u);
}

// ---- migrate send ----

constexpr const char* kSendAnswer = R"J({"to": "10.0.0.2:7946", "peer": "host-b.example",
  "cgroup": "/demo/web", "persona": "web", "version": 2, "flows": 3, "released": false,
  "target": {"persona": "web", "version": 2, "cgroup": "/demo/web2", "persona_created": true,
             "version_added": true, "replaced": null, "flows": 3}})J";

TEST_F(CliAgent, MigrateSendSendsTheRequestAndPrintsTheMove) {
    FakeAgent agent(socket(), {{"POST /v1/migration/send", {200, kSendAnswer}}});
    Result r = run_cli({"migrate", "send", "--cgroup", "/demo/web", "--to", "10.0.0.2:7946",
                        "--target-cgroup", "/demo/web2", "--peer-name", "host-b.example"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "sent /demo/web (persona web v2, 3 flows) to host-b.example (10.0.0.2:7946): "
              "imported into /demo/web2, persona created there\n");
    EXPECT_EQ(r.err, "");
    r = run_cli(
        {"migrate", "send", "--cgroup", "/demo/web", "--to", "10.0.0.2:7946", "--release", "-j"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::parse(kSendAnswer)) << r.out;

    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].json(), (nlohmann::json{{"cgroup", "/demo/web"},
                                              {"to", "10.0.0.2:7946"},
                                              {"target_cgroup", "/demo/web2"},
                                              {"peer_name", "host-b.example"}}))
        << reqs[0].body;
    // Unset options are left to the agent's defaults; --release is sent only when given.
    EXPECT_EQ(reqs[1].json(),
              (nlohmann::json{{"cgroup", "/demo/web"}, {"to", "10.0.0.2:7946"}, {"release", true}}))
        << reqs[1].body;
}

TEST_F(CliAgent, MigrateSendOfAnInterfaceWorkload) {
    const char* answer = R"J({"to": "10.0.0.2:7946", "peer": "host-b.example",
  "ifname": "vm0", "netns": "", "workload": "interface vm0", "persona": "web", "version": 2,
  "flows": 1, "released": false,
  "target": {"persona": "web", "version": 2, "ifname": "vm7", "netns": "tenant-b",
             "ifindex": 12, "persona_created": false, "version_added": false,
             "replaced": null, "flows": 1}})J";
    FakeAgent agent(socket(), {{"POST /v1/migration/send", {200, answer}}});
    Result r = run_cli({"migrate", "send", "--ifname", "vm0", "--to", "10.0.0.2:7946",
                        "--target-ifname", "vm7", "--target-netns", "tenant-b"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out,
              "sent interface vm0 (persona web v2, 1 flows) to host-b.example (10.0.0.2:7946): "
              "imported into interface vm7 in netns tenant-b\n");
    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].json(), (nlohmann::json{{"ifname", "vm0"},
                                              {"to", "10.0.0.2:7946"},
                                              {"target_ifname", "vm7"},
                                              {"target_netns", "tenant-b"}}))
        << reqs[0].body;
}

TEST_F(CliAgent, MigrateImportWithoutATargetTakesTheBundles) {
    const char* answer = R"J({"persona": "web", "version": 2, "ifname": "vm0", "netns": "",
  "ifindex": 7, "persona_created": true, "version_added": true, "replaced": null, "flows": 4})J";
    FakeAgent agent(socket(), {{"POST /v1/migration/import", {200, answer}}});
    const std::string file = (fs::path(socket()).parent_path() / "vm.bundle").string();
    {
        std::ofstream out(file);
        out << R"({"format": "personabpf-migration-bundle"})";
    }
    Result r = run_cli({"migrate", "import", file});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out, "imported persona web v2 (created here) into interface vm0: 4 flows\n");
    auto reqs = agent.requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].json(),
              (nlohmann::json{{"bundle", {{"format", "personabpf-migration-bundle"}}}}))
        << reqs[0].body;
    r = run_cli({"migrate", "import", file, "--cgroup", "/a", "--ifname", "vm0"});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, "personabpf: error: give one of --cgroup PATH or --ifname IF, not both\n");
}

TEST_F(CliAgent, MigrateSendReleaseOutcomes) {
    nlohmann::json released = nlohmann::json::parse(kSendAnswer);
    released["released"] = true;
    {
        FakeAgent agent(socket(), {{"POST /v1/migration/send", {200, released.dump()}}});
        Result r = run_cli(
            {"migrate", "send", "--cgroup", "/demo/web", "--to", "10.0.0.2:7946", "--release"});
        EXPECT_EQ(r.status, 0) << describe(r);
        EXPECT_NE(r.out.find("\nreleased /demo/web here (unbound)\n"), std::string::npos) << r.out;
    }
    fs::remove(socket());  // the fake agent leaves its socket file
    released["released"] = false;
    released["release_skipped"] = "cgroup /demo/web is no longer bound";
    FakeAgent agent(socket(), {{"POST /v1/migration/send", {200, released.dump()}}});
    Result r =
        run_cli({"migrate", "send", "--cgroup", "/demo/web", "--to", "10.0.0.2:7946", "--release"});
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.err,
              "personabpf: warning: not released here: cgroup /demo/web is no longer bound\n");
}

TEST_F(CliAgent, MigrateSendRefusalExitsOneWithTheTargetsReason) {
    const std::string why =
        "migrate send to 10.0.0.2:7946 failed at import: peer host-b.example refused the import: "
        "migration refused by the sovereignty gate: persona 'web' version 2 may not move to this "
        "host (country DE: ...) (nothing was changed)";
    FakeAgent agent(socket(), {{"POST /v1/migration/send",
                                {403, nlohmann::json{{"error", why}, {"step", "import"}}.dump()}}});
    for (bool json : {false, true}) {
        std::vector<std::string> args = {"migrate",   "send", "--cgroup",
                                         "/demo/web", "--to", "10.0.0.2:7946"};
        if (json) args.push_back("-j");
        Result r = run_cli(args);
        EXPECT_EQ(r.status, 1) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(r.err, "personabpf: error: " + why + "\n");
    }
}

TEST_F(CliAgent, MigrateSendUsageErrors) {
    for (std::vector<std::string> args :
         {std::vector<std::string>{"migrate", "send", "--cgroup", "/a"},
          {"migrate", "send", "--cgroup", "/a", "--to"},
          {"migrate", "send", "--cgroup", "/a", "--to", "h:1", "--target-cgroup"},
          {"migrate", "send", "--cgroup", "/a", "--to", "h:1", "--release=maybe"},
          {"migrate", "send", "--cgroup", "/a", "--to", "h:1", "extra"}}) {
        std::string cmd;
        for (const auto& a : args) cmd += " " + a;
        SCOPED_TRACE("personabpf" + cmd);
        Result r = run_cli(args);  // no agent: a parsed command would exit 1
        EXPECT_EQ(r.status, 2) << describe(r);
        EXPECT_EQ(r.out, "");
        EXPECT_NE(r.err, "");
    }
    // Parsed, then refused by the CLI before it calls the agent (no agent runs here).
    Result r = run_cli({"migrate", "send", "--to", "h:1"});
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err, "personabpf: error: give one of --cgroup PATH or --ifname IF\n");
    r = run({"migrate", "send", "--help"});
    EXPECT_EQ(r.status, 0) << describe(r);
    for (const char* opt : {"--to", "--target-cgroup", "--target-ifname", "--target-netns",
                            "--peer-name", "--release", "--cgroup"})
        EXPECT_NE(r.out.find(opt), std::string::npos) << opt << "\n" << r.out;
}

}  // namespace
