// The workload watchers on the real kernel: inotify over a throwaway cgroup subtree, and
// rtnetlink link events inside a throwaway network namespace.
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/cgroup.h"
#include "agent/watchers.h"
#include "tests/bpf/cgroup_util.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

using agent::CgroupTree;
using agent::CgroupWatcher;
using agent::LinkInfo;
using agent::LinkWatcher;

// Polls `cond` until it holds or 5 s pass (no fixed sleeps: the watchers run on their own
// threads and the kernel delivers when it does).
bool eventually(const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// What the callbacks saw, in order; read from the test thread while the watcher writes.
class Recorder {
  public:
    void add(std::vector<std::string>& to, std::string what) {
        std::lock_guard<std::mutex> lock(mu_);
        to.push_back(std::move(what));
    }
    void created(std::string p) { add(created_, std::move(p)); }
    void removed(std::string p) { add(removed_, std::move(p)); }
    void overflow() {
        std::lock_guard<std::mutex> lock(mu_);
        ++overflows_;
    }

    std::vector<std::string> created() const { return copy(created_); }
    std::vector<std::string> removed() const { return copy(removed_); }
    int overflows() const {
        std::lock_guard<std::mutex> lock(mu_);
        return overflows_;
    }
    bool has_created(const std::string& p) const { return contains(created_, p); }
    bool has_removed(const std::string& p) const { return contains(removed_, p); }

  private:
    std::vector<std::string> copy(const std::vector<std::string>& v) const {
        std::lock_guard<std::mutex> lock(mu_);
        return v;
    }
    bool contains(const std::vector<std::string>& v, const std::string& p) const {
        std::lock_guard<std::mutex> lock(mu_);
        return std::find(v.begin(), v.end(), p) != v.end();
    }

    mutable std::mutex mu_;
    std::vector<std::string> created_, removed_;
    int overflows_ = 0;
};

size_t first_index(const std::vector<std::string>& v, const std::string& p) {
    return static_cast<size_t>(std::find(v.begin(), v.end(), p) - v.begin());
}

// Removes every cgroup the test made below the test's own top directory, deepest first,
// also when an assertion ended the test early. Declared after the TestCgroupTree so it runs
// first and leaves the top empty for it.
class SubtreeCleanup {
  public:
    explicit SubtreeCleanup(std::string top) : top_(std::move(top)) {}
    SubtreeCleanup(const SubtreeCleanup&) = delete;
    SubtreeCleanup& operator=(const SubtreeCleanup&) = delete;
    ~SubtreeCleanup() {
        namespace fs = std::filesystem;
        std::vector<std::string> dirs;
        std::error_code ec;
        for (fs::recursive_directory_iterator it(top_, ec), end; !ec && it != end; it.increment(ec))
            if (it->is_directory(ec)) dirs.push_back(it->path().string());
        std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
            return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
        });
        for (const auto& d : dirs) ::rmdir(d.c_str());
    }

  private:
    std::string top_;
};

TEST(CgroupWatcher, ReportsMkdirRmdirAndWholeTrees) {
    PBPF_REQUIRE_ROOT();
    // The managed root is the test's own <mount>/pbpf-bpftest-<pid>-<n>; "pre/deep" exists
    // before the watcher starts and must not be reported.
    TestCgroupTree top;
    auto made = top.create({"pre", "deep"});
    if (!made) PBPF_KERNEL_UNAVAILABLE("cgroup tree: " + made.error().what());
    SubtreeCleanup cleanup(top.path(0));
    auto mount = cgroup2_mount();
    ASSERT_TRUE(mount) << mount.error().what();
    auto tree = CgroupTree::open(*mount, top.path(0));
    ASSERT_TRUE(tree) << tree.error().what();
    const std::string fs = tree->root().fs_path;
    const std::string rel = tree->root().rel_path;

    Recorder rec;
    CgroupWatcher::Callbacks cb;
    cb.created = [&](const std::string& p) { rec.created(p); };
    cb.removed = [&](const std::string& p) { rec.removed(p); };
    cb.overflow = [&] { rec.overflow(); };
    auto w = CgroupWatcher::start(*tree, cb);
    ASSERT_TRUE(w) << w.error().what();
    CgroupWatcher& watcher = **w;
    EXPECT_EQ(watcher.watched(), 3u);  // the root, pre, pre/deep

    auto mk = [&](const std::string& sub) {
        const std::string d = fs + "/" + sub;
        ASSERT_EQ(::mkdir(d.c_str(), 0755), 0) << d << ": " << std::strerror(errno);
    };
    auto rm = [&](const std::string& sub) {
        const std::string d = fs + "/" + sub;
        ASSERT_EQ(::rmdir(d.c_str()), 0) << d << ": " << std::strerror(errno);
    };

    mk("a");
    EXPECT_TRUE(eventually([&] { return rec.has_created(rel + "/a"); }));

    // mkdir -p b/c/d, back to back: c and d usually exist before b's watch does, so the
    // watcher must find them by scanning b.
    mk("b");
    mk("b/c");
    mk("b/c/d");
    const std::vector<std::string> chain = {rel + "/b", rel + "/b/c", rel + "/b/c/d"};
    EXPECT_TRUE(eventually([&] {
        return std::all_of(chain.begin(), chain.end(),
                           [&](const std::string& p) { return rec.has_created(p); });
    }));
    {
        const auto seen = rec.created();
        EXPECT_LT(first_index(seen, chain[0]), first_index(seen, chain[1]));
        EXPECT_LT(first_index(seen, chain[1]), first_index(seen, chain[2]));
    }
    EXPECT_TRUE(eventually([&] { return watcher.watched() == 7u; })) << watcher.watched();

    rm("b/c/d");
    EXPECT_TRUE(eventually([&] { return rec.has_removed(rel + "/b/c/d"); }));
    EXPECT_TRUE(eventually([&] { return watcher.watched() == 6u; })) << watcher.watched();

    // A burst: every one reported at least once, every one watched, then all removed.
    constexpr int kBurst = 200;
    for (int i = 0; i < kBurst; ++i) mk("a/n" + std::to_string(i));
    EXPECT_TRUE(eventually([&] {
        for (int i = 0; i < kBurst; ++i)
            if (!rec.has_created(rel + "/a/n" + std::to_string(i))) return false;
        return true;
    }));
    EXPECT_TRUE(eventually([&] { return watcher.watched() == 6u + kBurst; })) << watcher.watched();
    for (int i = 0; i < kBurst; ++i) rm("a/n" + std::to_string(i));
    EXPECT_TRUE(eventually([&] {
        for (int i = 0; i < kBurst; ++i)
            if (!rec.has_removed(rel + "/a/n" + std::to_string(i))) return false;
        return true;
    }));
    EXPECT_TRUE(eventually([&] { return watcher.watched() == 6u; })) << watcher.watched();

    for (const auto& p : rec.created()) {
        EXPECT_NE(p, rel + "/pre") << "a cgroup that existed at start was reported";
        EXPECT_NE(p, rel + "/pre/deep") << "a cgroup that existed at start was reported";
    }
    EXPECT_EQ(rec.overflows(), 0);

    watcher.stop();
    watcher.stop();
}

// Runs `fn` on a thread of its own that first moves into a fresh network namespace. Only
// that thread (and what it forks: std::system() children inherit the forking thread's
// namespaces) sees the namespace; the watcher's sockets are bound to it at socket() time.
// When the thread ends and every socket is closed, the namespace is gone.
void in_fresh_netns(const std::function<void()>& fn, std::string& ns_id, std::string& error) {
    std::thread t([&] {
        if (::unshare(CLONE_NEWNET) != 0) {
            error = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
            return;
        }
        std::error_code ec;
        ns_id = std::filesystem::read_symlink("/proc/thread-self/ns/net", ec).string();
        fn();
    });
    t.join();
}

// Runs an `ip` command (inside the calling thread's netns); its exit status.
int ip(const std::string& args) { return std::system(("ip " + args + " >/dev/null 2>&1").c_str()); }

bool has_link(const std::vector<LinkInfo>& links, const std::string& name) {
    return std::any_of(links.begin(), links.end(),
                       [&](const LinkInfo& l) { return l.ifname == name; });
}

TEST(LinkWatcher, ReportsAddRenameDeleteButNotStateChanges) {
    PBPF_REQUIRE_ROOT();
    if (std::system("ip -V >/dev/null 2>&1") != 0)
        PBPF_KERNEL_UNAVAILABLE("the ip command (iproute2) is missing");

    const std::string pid = std::to_string(::getpid());
    const std::string a = "pbw" + pid + "a", b = "pbw" + pid + "b", r = "pbw" + pid + "r";
    std::string ns_id, error;
    in_fresh_netns(
        [&] {
            auto before = LinkWatcher::list_links();
            ASSERT_TRUE(before) << before.error().what();
            EXPECT_TRUE(has_link(*before, "lo"));
            EXPECT_FALSE(has_link(*before, a));

            std::mutex mu;
            std::vector<std::string> log;  // "+name" / "-name" in callback order
            int overflows = 0;
            LinkWatcher::Callbacks cb;
            cb.added = [&](const LinkInfo& l) {
                std::lock_guard<std::mutex> lock(mu);
                log.push_back("+" + l.ifname);
            };
            cb.removed = [&](const LinkInfo& l) {
                std::lock_guard<std::mutex> lock(mu);
                log.push_back("-" + l.ifname);
            };
            cb.overflow = [&] {
                std::lock_guard<std::mutex> lock(mu);
                ++overflows;
            };
            auto seen = [&] {
                std::lock_guard<std::mutex> lock(mu);
                return log;
            };
            auto saw = [&](const std::string& e) {
                auto l = seen();
                return std::find(l.begin(), l.end(), e) != l.end();
            };

            auto w = LinkWatcher::start(cb);
            ASSERT_TRUE(w) << w.error().what();

            // The namespace (and so these links) vanishes with this thread even when an
            // assertion returns early; no explicit delete is needed for cleanup.
            ASSERT_EQ(ip("link add " + a + " type veth peer name " + b), 0);
            EXPECT_TRUE(eventually([&] { return saw("+" + a) && saw("+" + b); }));
            auto now = LinkWatcher::list_links();
            ASSERT_TRUE(now) << now.error().what();
            EXPECT_TRUE(has_link(*now, "lo"));
            EXPECT_TRUE(has_link(*now, a));
            EXPECT_TRUE(has_link(*now, b));

            ASSERT_EQ(ip("link set " + a + " name " + r), 0);
            EXPECT_TRUE(eventually([&] { return saw("+" + r); }));
            {
                auto l = seen();
                const auto gone = std::find(l.begin(), l.end(), "-" + a);
                const auto came = std::find(l.begin(), l.end(), "+" + r);
                EXPECT_TRUE(gone != l.end()) << "rename did not report the old name removed";
                EXPECT_LT(gone - l.begin(), came - l.begin()) << "old name must go first";
            }

            // State changes report nothing. The delete after them is the barrier: its
            // events arrive after theirs, so once it is seen they were all handled.
            const size_t before_state = seen().size();
            ASSERT_EQ(ip("link set " + r + " up"), 0);
            ASSERT_EQ(ip("link set " + b + " up"), 0);
            ASSERT_EQ(ip("link set " + r + " down"), 0);
            ASSERT_EQ(ip("link del " + r), 0);
            EXPECT_TRUE(eventually([&] { return saw("-" + r) && saw("-" + b); }));
            {
                auto l = seen();
                std::vector<std::string> after(l.begin() + static_cast<long>(before_state),
                                               l.end());
                std::sort(after.begin(), after.end());
                EXPECT_EQ(after, (std::vector<std::string>{"-" + b, "-" + r}))
                    << "state changes must not be reported";
            }
            {
                std::lock_guard<std::mutex> lock(mu);
                EXPECT_EQ(overflows, 0);
            }
            (*w)->stop();
            (*w)->stop();
        },
        ns_id, error);
    if (!error.empty()) PBPF_KERNEL_UNAVAILABLE(error);

    // No task of this process is left in the test's namespace; with the watcher's sockets
    // closed nothing holds it any more.
    ASSERT_FALSE(ns_id.empty());
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
        std::error_code ec2;
        EXPECT_NE(std::filesystem::read_symlink(task.path() / "ns/net", ec2).string(), ns_id);
    }
}

TEST(LinkWatcher, ExistingLinksAreNotReported) {
    PBPF_REQUIRE_ROOT();
    std::string ns_id, error;
    in_fresh_netns(
        [&] {
            const std::string pid = std::to_string(::getpid());
            const std::string pre = "pbw" + pid + "p", peer = "pbw" + pid + "q";
            const std::string late = "pbw" + pid + "l", late_peer = "pbw" + pid + "m";
            ASSERT_EQ(ip("link add " + pre + " type veth peer name " + peer), 0);
            std::mutex mu;
            std::vector<std::string> added;
            LinkWatcher::Callbacks cb;
            cb.added = [&](const LinkInfo& l) {
                std::lock_guard<std::mutex> lock(mu);
                added.push_back(l.ifname);
            };
            auto w = LinkWatcher::start(cb);
            ASSERT_TRUE(w) << w.error().what();
            // Up/down of a link that existed at start: nothing. A later link is the barrier.
            ASSERT_EQ(ip("link set " + pre + " up"), 0);
            ASSERT_EQ(ip("link add " + late + " type veth peer name " + late_peer), 0);
            EXPECT_TRUE(eventually([&] {
                std::lock_guard<std::mutex> lock(mu);
                return added.size() >= 2;
            }));
            std::lock_guard<std::mutex> lock(mu);
            std::sort(added.begin(), added.end());
            EXPECT_EQ(added, (std::vector<std::string>{late, late_peer}));
        },
        ns_id, error);
    if (!error.empty()) PBPF_KERNEL_UNAVAILABLE(error);
}

}  // namespace
}  // namespace pbpf::test
