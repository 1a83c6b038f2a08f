// Atomic persona updates under traffic. Applying a new version of a persona builds a new
// policy trie and flips pbpf_policies[id] to it in one map update, so every packet is
// judged by exactly one version, never by a mix of the two, and by the new one once the
// apply has returned; a failed apply (PDL error, persona too big for its trie) changes
// nothing.
//
// How: one persona in two versions, V1 and V2, whose rules differ both in the address part
// (V2 names the link's /29 where V1 names the two netns addresses) and in the port part.
// UDP destinations in the netns fall into four groups: ALWAYS (allowed by both), NEVER
// (denied by both), V1-only and V2-only. The two versions give the two addresses swapped
// address-class ids, so a packet judged by one version's address table and the other's
// port table (or by a half-written table) gets a verdict neither version gives: a NEVER
// destination passes or an ALWAYS one is dropped. A child in the bound cgroup sends rounds
// of one datagram per destination, each from a fresh socket (a new flow; an ephemeral port
// that comes round again must not bring back a verdict cached under an older version), and
// logs each round's verdicts (a cgroup egress drop fails sendto with EPERM) and times in
// shared memory, while the test applies V1, V2, V1, ... with the CLI, letting 300 rounds
// go by after each apply, with a broken and a too-big apply in the middle (the agent runs
// with a 1,024-entry trie limit, so that a too-big persona is cheap; see kTrieLimit).
//
// Checked: no NEVER datagram passed and no ALWAYS datagram was dropped; the V1-only and
// V2-only groups saw both verdicts; every round between two applies (failed ones included)
// matches the version last applied exactly, and only rounds that overlap an apply may match
// neither version; the failed applies left `persona show` alone; the persona's kernel
// counters agree with the sender.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <sstream>

#include "maps/abi/limits.h"
#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, in the sender child too

enum Group { kAlways, kNever, kV1Only, kV2Only, kGroupCount };
const char* const kGroupNames[kGroupCount] = {"ALWAYS", "NEVER", "V1-only", "V2-only"};

// A destination: the netns address (0 = peer4, 1 = alt4) and a block of 100 UDP ports;
// round r sends to port base + r % 100. Nothing listens there: the verdict is sendto's.
struct Dest {
    Group group;
    int addr;
    uint16_t base;
};
// V1: allow peer 5000-5199, alt 6000-6099.  V2: allow /29 5000-5099, peer 5200-5299.
constexpr Dest kDests[] = {
    {kAlways, 0, 5000},  // peer: V1 by its /32 rule, V2 by the /29 rule
    {kNever, 0, 6000},   // peer: V1 allows 6000s to alt only
    {kNever, 1, 5100},   // alt: V1 allows 5100s to peer only
    {kNever, 1, 5200},   // alt: V2 allows 5200s to peer only
    {kV1Only, 0, 5100},  //
    {kV1Only, 1, 6000},  //
    {kV2Only, 0, 5200},  //
    {kV2Only, 1, 5000},  // alt: V2's /29 rule
};
constexpr size_t kDestCount = sizeof kDests / sizeof kDests[0];
static_assert(kDestCount <= 8, "a round's verdicts are one byte");

bool expected_pass(int version, Group g) {
    return g == kAlways || (g == kV1Only && version == 1) || (g == kV2Only && version == 2);
}
// Bit i set: destination i passes.
uint8_t expected_mask(int version) {
    uint8_t m = 0;
    for (size_t i = 0; i < kDestCount; ++i)
        if (expected_pass(version, kDests[i].group)) m |= static_cast<uint8_t>(1u << i);
    return m;
}
// 1 or 2: the version whose verdicts these are; 0: neither.
int version_of(uint8_t passed) {
    return passed == expected_mask(1) ? 1 : passed == expected_mask(2) ? 2 : 0;
}

std::string dest_name(size_t i) {
    const Dest& d = kDests[i];
    return std::string(kGroupNames[d.group]) + " " + (d.addr ? "alt" : "peer") + ":" +
           std::to_string(d.base) + "-" + std::to_string(d.base + 99);
}
std::string mask_text(uint8_t mask) {  // P: passed, -: EPERM, in kDests order
    std::string s;
    for (size_t i = 0; i < kDestCount; ++i) s += (mask >> i) & 1 ? 'P' : '-';
    return s;
}

uint64_t now_ns() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count());
}

// One round as the sender saw it.
struct Round {
    uint64_t start_ns, end_ns;
    uint8_t passed;  // bit i: destination i passed
    bool error;      // a datagram failed with something other than EPERM
};

// Shared with the sender child (MAP_SHARED), followed by the round log.
struct SenderShared {
    static constexpr uint64_t kMaxRounds = 1 << 20;  // 24 MiB of log, touched as used
    std::atomic<uint64_t> rounds{0};                 // completed rounds (the log's length)
    std::atomic<bool> stop{false};                   // set by the parent
    std::atomic<bool> done{false};                   // set by the child when it stops
    uint64_t passed[kDestCount] = {};
    uint64_t denied[kDestCount] = {};
    uint64_t errors = 0;  // socket or sendto failures other than EPERM
    int first_errno = 0;
    char setup_error[200] = {};

    Round* log() { return reinterpret_cast<Round*>(this + 1); }
    const Round* log() const { return reinterpret_cast<const Round*>(this + 1); }
    static size_t bytes() { return sizeof(SenderShared) + kMaxRounds * sizeof(Round); }
    uint64_t total_passed() const {
        uint64_t n = 0;
        for (uint64_t p : passed) n += p;
        return n;
    }
    uint64_t total_denied() const {
        uint64_t n = 0;
        for (uint64_t d : denied) n += d;
        return n;
    }
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// The sender: a forked child that joins the cgroup of `where` (so its sockets belong to
// it) and sends rounds of one datagram per destination, each from a fresh socket, logging
// each round: `max_rounds` rounds, or (0) until finish(). The destructor kills and reaps the
// child and unmaps the log on every path.
class Sender {
  public:
    Sender(const Where& where, const std::string& peer4, const std::string& alt4,
           uint64_t max_rounds) {
        sockaddr_in addrs[2] = {};
        for (int i = 0; i < 2; ++i) {
            addrs[i].sin_family = AF_INET;
            if (::inet_pton(AF_INET, (i ? alt4 : peer4).c_str(), &addrs[i].sin_addr) != 1) {
                error_ = "bad address " + (i ? alt4 : peer4);
                return;
            }
        }
        void* mem = ::mmap(nullptr, SenderShared::bytes(), PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED) {
            error_ = std::string("mmap: ") + std::strerror(errno);
            return;
        }
        shared_ = new (mem) SenderShared();
        const std::string procs = where.cgroup + "/cgroup.procs";
        pid_ = ::fork();
        if (pid_ < 0) {
            error_ = std::string("fork: ") + std::strerror(errno);
            return;
        }
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            const uint64_t limit = max_rounds == 0 ? SenderShared::kMaxRounds
                                                   : std::min(max_rounds, SenderShared::kMaxRounds);
            if (join_cgroup(procs)) run(limit, max_rounds == 0, addrs);
            shared_->done.store(true);
            ::_exit(0);
        }
    }
    ~Sender() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (shared_) ::munmap(shared_, SenderShared::bytes());
    }
    Sender(const Sender&) = delete;
    Sender& operator=(const Sender&) = delete;

    // "" once the child runs, else why it could not be started.
    const std::string& error() const { return error_; }
    uint64_t rounds() const { return shared_ ? shared_->rounds.load() : 0; }

    // Polls until the child has completed `n` more rounds than now.
    ::testing::AssertionResult await_rounds(uint64_t n, std::chrono::milliseconds timeout = 5s) {
        const uint64_t want = rounds() + n;
        if (wait_until([&] { return rounds() >= want || shared_->done.load(); }, timeout, 1ms) &&
            rounds() >= want)
            return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure()
               << "the sender did not complete " << n << " rounds in " << timeout.count() << " ms ("
               << rounds() << " so far" << (shared_->setup_error[0] ? ": " : "")
               << shared_->setup_error << ")";
    }

    // Stops the child (if it still runs), reaps it and returns what it logged (valid until
    // the Sender goes).
    ::testing::AssertionResult finish(const SenderShared** out) {
        if (pid_ <= 0) return ::testing::AssertionFailure() << "sender not running: " << error_;
        shared_->stop.store(true);
        bool exited = wait_until([&] { return shared_->done.load(); }, 10s, 1ms);
        if (!exited) ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        if (!exited) return ::testing::AssertionFailure() << "the sender did not stop";
        if (shared_->setup_error[0])
            return ::testing::AssertionFailure() << "sender: " << shared_->setup_error;
        *out = shared_;
        return ::testing::AssertionSuccess();
    }

  private:
    bool join_cgroup(const std::string& procs) {
        char pid[32];
        int len = std::snprintf(pid, sizeof pid, "%d", static_cast<int>(::getpid()));
        int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
        bool ok = fd >= 0 && ::write(fd, pid, static_cast<size_t>(len)) == len;
        const int e = errno;
        if (fd >= 0) ::close(fd);
        if (!ok)
            std::snprintf(shared_->setup_error, sizeof shared_->setup_error, "joining %s: %s",
                          procs.c_str(), std::strerror(e));
        return ok;
    }

    void run(uint64_t limit, bool until_stopped, const sockaddr_in (&addrs)[2]) {
        SenderShared& s = *shared_;
        for (uint64_t round = 0; round < limit; ++round) {
            if (until_stopped && s.stop.load(std::memory_order_relaxed)) break;
            Round r{now_ns(), 0, 0, false};
            for (size_t i = 0; i < kDestCount; ++i) {
                sockaddr_in to = addrs[kDests[i].addr];
                to.sin_port = htons(static_cast<uint16_t>(kDests[i].base + round % 100));
                int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                ssize_t n = -1;
                if (fd >= 0)
                    n = ::sendto(fd, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
                const int e = errno;
                if (fd >= 0) ::close(fd);
                if (n >= 0) {
                    ++s.passed[i];
                    r.passed |= static_cast<uint8_t>(1u << i);
                } else if (e == EPERM) {
                    ++s.denied[i];
                } else {
                    r.error = true;
                    ++s.errors;
                    if (!s.first_errno) s.first_errno = e;
                }
            }
            r.end_ns = now_ns();
            s.log()[round] = r;
            s.rounds.store(round + 1);
        }
    }

    pid_t pid_ = -1;
    SenderShared* shared_ = nullptr;
    std::string error_;
};

class AtomicUpdate : public IntegrationTest {
  protected:
    static constexpr const char* kName = "it-atomic";
    // The agent's trie limit in this test ([limits] policy_entries). At the default
    // (PBPF_MAX_POLICY_ENTRIES, 262,144) a persona that does not fit needs ~295,000
    // entries, and its failing apply takes the agent 4 s (RelWithDebInfo) to 8 s (Debug)
    // when idle, over 20 s under this test's traffic: it serialises the whole image to
    // JSON before it checks the size. The check and the error are the same at any limit.
    static constexpr uint32_t kTrieLimit = 1024;

    std::string version(int v) const {
        const auto& n = *veth_;
        std::vector<std::string> rules = {"mode enforce", "default ingress allow",
                                          "default egress deny"};
        if (v == 1) {
            rules.push_back("allow egress udp port 5000-5199 to " + n.peer4);
            rules.push_back("allow egress udp port 6000-6099 to " + n.alt4);
        } else {
            rules.push_back("allow egress udp port 5000-5099 to " + n.net4);
            rules.push_back("allow egress udp port 5200-5299 to " + n.peer4);
        }
        return persona_pdl(kName, rules, "atomic v" + std::to_string(v));
    }

    // The same persona with more policy entries than kTrieLimit: every odd port below
    // 4096 allowed, every even one denied costs ~2,048 entries.
    std::string too_big() const {
        std::string ports;
        for (int p = 1; p < 4096; p += 2) ports += (p > 1 ? ", " : "") + std::to_string(p);
        return "set odd = { " + ports + " }\n" +
               persona_pdl(kName,
                           {"mode enforce", "default ingress allow", "default egress deny",
                            "allow egress udp port $odd to " + veth_->peer4},
                           "atomic too big");
    }

    // One round from a fresh child in the sender's cgroup: every destination's verdict must
    // be `version`'s. Its datagrams are counted in sent_ (for the counter check).
    void expect_verdicts(int version, const std::string& when) {
        Sender s(in("sender"), veth_->peer4, veth_->alt4, 1);
        ASSERT_EQ(s.error(), "");
        const SenderShared* t = nullptr;
        ASSERT_TRUE(s.finish(&t)) << when;
        sent_passed_ += t->total_passed();
        sent_denied_ += t->total_denied();
        ASSERT_EQ(t->rounds.load(), 1u) << when;
        EXPECT_FALSE(t->log()[0].error) << when << ": " << std::strerror(t->first_errno);
        EXPECT_EQ(mask_text(t->log()[0].passed), mask_text(expected_mask(version)))
            << when << ": the verdicts (P = passed, in the order " << dest_list() << ") must be V"
            << version << "'s";
    }

    // persona show -j NAME: description and rule texts.
    void shown(std::string* description, nlohmann::json* rules) {
        nlohmann::json j;
        ASSERT_TRUE(cli_json(*agent_, {"persona", "show", kName}, &j));
        *description = j.value("description", "");
        *rules = j.value("rules", nlohmann::json());
    }

    static std::string dest_list() {
        std::string s;
        for (size_t d = 0; d < kDestCount; ++d) s += (d ? ", " : "") + dest_name(d);
        return s;
    }

    uint64_t sent_passed_ = 0, sent_denied_ = 0;  // by one-round checks, since the baseline
};

TEST_F(AtomicUpdate, FlipsUnderTrafficNeverMixVersionsAndFailedAppliesChangeNothing) {
    static_assert(kTrieLimit < PBPF_MAX_POLICY_ENTRIES);
    agent_->stop(SIGTERM);
    agent_->extra_args = {"--config",
                          scratch_.write("agent.toml", "[limits]\npolicy_entries = " +
                                                           std::to_string(kTrieLimit) + "\n")};
    ASSERT_TRUE(agent_->start()) << "restart with a trie limit of " << kTrieLimit;
    const std::string v[3] = {"", version(1), version(2)};

    // Each version alone gives exactly the verdicts the groups are named for.
    nlohmann::json rules[3];
    std::string desc;
    apply(*agent_, v[2]);
    bind(kName, "sender");
    expect_verdicts(2, "V2 applied");
    shown(&desc, &rules[2]);
    apply(*agent_, v[1]);
    expect_verdicts(1, "V1 applied");
    shown(&desc, &rules[1]);
    ASSERT_FALSE(HasFailure());
    ASSERT_NE(rules[1], rules[2]) << "persona show must tell the versions apart";

    PersonaStats before, s;
    ASSERT_TRUE(stats(*agent_, kName, &before));
    sent_passed_ = sent_denied_ = 0;

    Sender sender(in("sender"), veth_->peer4, veth_->alt4, 0);
    ASSERT_EQ(sender.error(), "");
    ASSERT_TRUE(sender.await_rounds(100, 10s));

    // Flip V2, V1, V2, ... for at least 3 s and 30 flips, letting 300 rounds go by after
    // each; the failing applies come after flip 10. Each successful apply's [start, end]
    // is kept: its flip happens in there.
    constexpr size_t kMinFlips = 30, kBadAt = 10;
    constexpr uint64_t kQuietRounds = 300;
    struct Span {
        uint64_t start_ns, end_ns;
        int version;
    };
    std::vector<Span> flips;
    const uint64_t first_ns = now_ns();
    const auto start = Clock::now();
    int applied = 1;
    bool bad_tried = false;
    while (flips.size() < kMinFlips || Clock::now() - start < 3s) {
        if (Clock::now() - start > 15s) break;
        const int next = 3 - applied;
        const uint64_t t0 = now_ns();
        CommandResult r = try_apply(*agent_, v[next], "atomic.pdl");
        flips.push_back({t0, now_ns(), next});
        ASSERT_EQ(r.exit_code, 0) << "apply V" << next << " (flip " << flips.size()
                                  << "): " << r.describe();
        applied = next;
        ASSERT_TRUE(sender.await_rounds(kQuietRounds));
        if (flips.size() != kBadAt) continue;
        bad_tried = true;
        const std::string cur = "V" + std::to_string(applied);

        // A syntax error: `too` for `to`.
        CommandResult bad = try_apply(
            *agent_,
            persona_pdl(kName,
                        {"default egress deny", "allow egress udp port 7000 too " + veth_->peer4}),
            "syntax.pdl");
        EXPECT_EQ(bad.exit_code, 1) << "a PDL syntax error must fail: " << bad.describe();
        EXPECT_NE(bad.err.find("syntax.pdl:"), std::string::npos)
            << "the error must name the file: " << bad.err;
        EXPECT_NE(bad.err.find("error:"), std::string::npos) << bad.err;
        shown(&desc, &rules[0]);
        EXPECT_EQ(desc, "atomic v" + std::to_string(applied)) << "after the syntax error";
        EXPECT_EQ(rules[0], rules[applied]) << "after the syntax error, " << cur << " must stay";
        expect_verdicts(applied, "after the syntax error");

        // Too many policy entries for one trie.
        const auto big_start = Clock::now();
        bad = try_apply(*agent_, too_big(), "too-big.pdl");
        const auto big_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - big_start);
        EXPECT_EQ(bad.exit_code, 1)
            << "a persona too big for its trie must fail: " << bad.describe();
        EXPECT_NE(bad.err.find(kName), std::string::npos)
            << "the error must name the persona: " << bad.err;
        EXPECT_NE(bad.err.find("limit is " + std::to_string(kTrieLimit)), std::string::npos)
            << "the error must state the limit: " << bad.err;
        shown(&desc, &rules[0]);
        EXPECT_EQ(desc, "atomic v" + std::to_string(applied)) << "after the too-big apply";
        EXPECT_EQ(rules[0], rules[applied]) << "after the too-big apply, " << cur << " must stay";
        expect_verdicts(applied, "after the too-big apply");
        std::cout << "[          ] too-big apply failed in " << big_ms.count()
                  << " ms: " << bad.err.substr(0, bad.err.find('\n')) << "\n";
    }
    const auto flip_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);

    const SenderShared* t = nullptr;
    ASSERT_TRUE(sender.finish(&t));
    const uint64_t n = t->rounds.load();
    ASSERT_LT(n, SenderShared::kMaxRounds) << "the round log overflowed";

    // Every round against the applies: between two applies (`quiet`) it must match the
    // version applied last; one that overlaps an apply may match either or neither.
    uint64_t quiet = 0, during = 0, mixed = 0, wrong = 0, rounds_of[3] = {};
    std::ostringstream wrong_text;
    auto ms = [&](uint64_t ns) {
        std::ostringstream o;
        o.precision(3);
        o << std::fixed << (static_cast<double>(ns) - static_cast<double>(first_ns)) / 1e6 << " ms";
        return o.str();
    };
    size_t k = 0;     // the first apply that had not ended when the round began
    int current = 1;  // the version applied last before it
    for (uint64_t i = 0; i < n; ++i) {
        const Round& r = t->log()[i];
        while (k < flips.size() && flips[k].end_ns <= r.start_ns) current = flips[k++].version;
        const int got = r.error ? 0 : version_of(r.passed);
        ++rounds_of[got];
        if (k < flips.size() && flips[k].start_ns <= r.end_ns) {
            ++during;
            mixed += got == 0;
            continue;
        }
        ++quiet;
        if (got == current) continue;
        if (++wrong <= 10) {
            wrong_text << "\n  round " << i << " (" << ms(r.start_ns) << " to " << ms(r.end_ns)
                       << "): " << mask_text(r.passed) << (r.error ? " with errors" : "")
                       << ", but V" << current << " (" << mask_text(expected_mask(current))
                       << ") was applied ";
            if (k > 0)
                wrong_text << "by the apply that ended at " << ms(flips[k - 1].end_ns);
            else
                wrong_text << "before the traffic started";
            if (k < flips.size()) wrong_text << "; the next began at " << ms(flips[k].start_ns);
        }
    }

    uint64_t passed[kGroupCount] = {}, denied[kGroupCount] = {};
    std::ostringstream summary;
    summary << flips.size() << " flips in " << flip_ms.count() << " ms; " << n << " rounds ("
            << rounds_of[1] << " V1, " << rounds_of[2] << " V2, " << rounds_of[0] << " neither; "
            << quiet << " between applies, " << during << " overlapping one, " << mixed
            << " of which matched neither), " << t->total_passed() << " datagrams passed, "
            << t->total_denied() << " EPERM, " << t->errors << " other errors";
    if (t->first_errno) summary << " (first: " << std::strerror(t->first_errno) << ")";
    for (size_t i = 0; i < kDestCount; ++i) {
        passed[kDests[i].group] += t->passed[i];
        denied[kDests[i].group] += t->denied[i];
        summary << "\n  " << dest_name(i) << ": " << t->passed[i] << " passed, " << t->denied[i]
                << " EPERM";
    }
    std::cout << "[          ] " << summary.str() << "\n";

    EXPECT_GE(flips.size(), 20u) << "too few flips";
    EXPECT_TRUE(bad_tried);
    EXPECT_EQ(t->errors, 0u) << "every datagram must pass or fail with EPERM";
    EXPECT_EQ(passed[kNever], 0u) << "NEVER datagrams passed";
    EXPECT_EQ(denied[kAlways], 0u) << "ALWAYS datagrams were dropped";
    for (Group g : {kV1Only, kV2Only}) {
        EXPECT_GT(passed[g], 0u) << kGroupNames[g] << " never passed";
        EXPECT_GT(denied[g], 0u) << kGroupNames[g] << " never dropped";
    }
    EXPECT_GE(t->total_passed() + t->total_denied(), 5000u);
    EXPECT_GE(quiet, flips.size() * kQuietRounds) << "rounds between applies";
    EXPECT_EQ(wrong, 0u) << wrong << " rounds between applies did not get the verdicts of the "
                         << "version applied last (P = passed, in the order " << dest_list()
                         << "; times from the first flip's start):" << wrong_text.str();

    // The kernel counted exactly what the senders saw (counters outlive version flips).
    const uint64_t want_passed = t->total_passed() + sent_passed_;
    const uint64_t want_denied = t->total_denied() + sent_denied_;
    EXPECT_TRUE(wait_stats(
        *agent_, kName,
        [&](const PersonaStats& st) {
            return st.egress.allowed_packets - before.egress.allowed_packets == want_passed &&
                   st.egress.denied_packets - before.egress.denied_packets == want_denied;
        },
        &s))
        << "since the baseline the workload sent " << want_passed << " datagrams that passed and "
        << want_denied << " that failed with EPERM; baseline egress " << before.egress;
}

}  // namespace
}  // namespace pbpf::it
