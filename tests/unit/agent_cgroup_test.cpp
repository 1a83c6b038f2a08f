// cgroup path logic of personabpfd: cgroup2 mount discovery from mountinfo text, path
// resolution against the mount and the managed subtree, pid -> cgroup. A temp dir stands
// in for the cgroup2 mount (resolution is lexical plus stat); the real /proc is only read.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "agent/cgroup.h"
#include "tests/unit/temp_dir.h"

namespace pbpf::agent {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

using TempDir = pbpf::test::TempDirTest;

// ---- find_cgroup2_mount --------------------------------------------------------------

using AgentCgroupMount = TempDir;

TEST_F(AgentCgroupMount, FindsCgroup2AmongV1Mounts) {
    auto mi = write("mountinfo",
                    "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
                    "26 22 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
                    "28 26 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup "
                    "rw,xattr,name=systemd\n"
                    "32 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:15 - cgroup cgroup "
                    "rw,cpu,cpuacct\n"
                    "27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 "
                    "rw,nsdelegate\n");
    auto m = find_cgroup2_mount(mi);
    ASSERT_TRUE(m.ok()) << m.error().what();
    EXPECT_EQ(*m, "/sys/fs/cgroup/unified");
}

TEST_F(AgentCgroupMount, FirstCgroup2EntryWins) {
    auto mi = write("mountinfo",
                    "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
                    "90 30 0:26 /sub /mnt/again rw - cgroup2 cgroup2 rw\n");
    auto m = find_cgroup2_mount(mi);
    ASSERT_TRUE(m.ok()) << m.error().what();
    EXPECT_EQ(*m, "/sys/fs/cgroup");
}

TEST_F(AgentCgroupMount, NoOptionalFieldsAndSeveralOptionalFields) {
    auto a = write("a", "30 1 0:26 / /cg rw - cgroup2 none rw\n");
    auto b = write("b", "30 1 0:26 / /cg2 rw shared:4 master:1 propagate_from:2 - cgroup2 x rw\n");
    auto ma = find_cgroup2_mount(a);
    auto mb = find_cgroup2_mount(b);
    ASSERT_TRUE(ma.ok()) << ma.error().what();
    ASSERT_TRUE(mb.ok()) << mb.error().what();
    EXPECT_EQ(*ma, "/cg");
    EXPECT_EQ(*mb, "/cg2");
}

TEST_F(AgentCgroupMount, OctalEscapesInMountPointAreDecoded) {
    auto mi =
        write("mountinfo", "30 1 0:26 / /mnt/my\\040cgroup\\134x\\011y rw - cgroup2 cgroup2 rw\n");
    auto m = find_cgroup2_mount(mi);
    ASSERT_TRUE(m.ok()) << m.error().what();
    EXPECT_EQ(*m, "/mnt/my cgroup\\x\ty");
}

TEST_F(AgentCgroupMount, EscapeAtEndOfMountPoint) {
    auto mi = write("mountinfo", "30 1 0:26 / /mnt/cg\\040 rw - cgroup2 cgroup2 rw\n");
    auto m = find_cgroup2_mount(mi);
    ASSERT_TRUE(m.ok()) << m.error().what();
    EXPECT_EQ(*m, "/mnt/cg ");
}

TEST_F(AgentCgroupMount, V1OnlyIsNotFound) {
    auto mi = write("mountinfo",
                    "28 26 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
                    "garbage line without separator\n"
                    "29 26 0:26 / /sys/fs/cgroup2-looking-name rw - tmpfs cgroup2 rw\n");
    auto m = find_cgroup2_mount(mi);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().err, ENOENT);
    EXPECT_TRUE(contains(m.error().message, "no cgroup2 mount in " + mi)) << m.error().message;
}

TEST_F(AgentCgroupMount, UnreadableFileIsAnError) {
    auto m = find_cgroup2_mount(dir_ + "/absent");
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().err, ENOENT);
    EXPECT_TRUE(contains(m.error().message, dir_ + "/absent")) << m.error().message;
}

TEST(AgentCgroupRealMount, SelfMountinfoNamesADirectory) {
    auto m = find_cgroup2_mount();
    if (!m.ok() && m.error().err == ENOENT) GTEST_SKIP() << "no cgroup2 mount on this host";
    ASSERT_TRUE(m.ok()) << m.error().what();
    struct stat st {};
    ASSERT_EQ(::stat(m->c_str(), &st), 0) << *m;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    auto id = cgroup_id_of(*m);
    ASSERT_TRUE(id.ok()) << id.error().what();
    EXPECT_EQ(*id, static_cast<uint64_t>(st.st_ino));
}

// ---- cgroup_id_of --------------------------------------------------------------------

using AgentCgroupId = TempDir;

TEST_F(AgentCgroupId, DirectoryInode) {
    mkdirs("w1");
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/w1").c_str(), &st), 0);
    auto id = cgroup_id_of(dir_ + "/w1");
    ASSERT_TRUE(id.ok()) << id.error().what();
    EXPECT_EQ(*id, static_cast<uint64_t>(st.st_ino));
}

TEST_F(AgentCgroupId, FileAndMissingAreErrors) {
    auto file = write("f", "x");
    auto a = cgroup_id_of(file);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.error().err, ENOTDIR);
    auto b = cgroup_id_of(dir_ + "/missing");
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error().err, ENOENT);
}

// ---- CgroupTree::open ----------------------------------------------------------------

using AgentCgroupOpen = TempDir;

TEST_F(AgentCgroupOpen, EmptyRootIsTheMount) {
    auto t = CgroupTree::open(dir_, "");
    ASSERT_TRUE(t.ok()) << t.error().what();
    EXPECT_TRUE(t->root_is_mount());
    EXPECT_EQ(t->mount(), dir_);
    EXPECT_EQ(t->root().rel_path, "/");
    EXPECT_EQ(t->root().fs_path, dir_);
}

TEST_F(AgentCgroupOpen, RootGivenThreeWays) {
    mkdirs("demo");
    for (const std::string& root : {std::string("demo"), std::string("/demo"), dir_ + "/demo",
                                    std::string("/demo/"), std::string("./x/../demo/.")}) {
        auto t = CgroupTree::open(dir_, root);
        ASSERT_TRUE(t.ok()) << root << ": " << t.error().what();
        EXPECT_FALSE(t->root_is_mount()) << root;
        EXPECT_EQ(t->root().rel_path, "/demo") << root;
        EXPECT_EQ(t->root().fs_path, dir_ + "/demo") << root;
    }
}

TEST_F(AgentCgroupOpen, MountIsNormalised) {
    mkdirs("demo");
    auto t = CgroupTree::open(dir_ + "//./", "demo");
    ASSERT_TRUE(t.ok()) << t.error().what();
    EXPECT_EQ(t->mount(), dir_);
    EXPECT_EQ(t->root().fs_path, dir_ + "/demo");
}

TEST_F(AgentCgroupOpen, MissingRootIsRefused) {
    auto t = CgroupTree::open(dir_, "/not-created");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().err, ENOENT);
    EXPECT_TRUE(contains(t.error().message, dir_ + "/not-created does not exist"))
        << t.error().message;
}

TEST_F(AgentCgroupOpen, RootThatIsAFileIsRefused) {
    write("file", "x");
    auto t = CgroupTree::open(dir_, "file");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().err, ENOENT);
}

TEST_F(AgentCgroupOpen, RootEscapingTheMountIsRefused) {
    for (const std::string& root :
         {std::string("../"), std::string("/a/../../x"), dir_ + "/../x"}) {
        auto t = CgroupTree::open(dir_, root);
        ASSERT_FALSE(t.ok()) << root;
        EXPECT_EQ(t.error().err, EINVAL) << root;
        EXPECT_TRUE(contains(t.error().message, "cgroup root: ")) << t.error().message;
        EXPECT_TRUE(contains(t.error().message, "leaves the cgroup2 mount")) << t.error().message;
    }
}

// ---- CgroupTree::resolve -------------------------------------------------------------

class AgentCgroupResolve : public TempDir {
  protected:
    void SetUp() override {
        TempDir::SetUp();
        mkdirs("demo/w1");
        auto t = CgroupTree::open(dir_, "/demo");
        ASSERT_TRUE(t.ok()) << t.error().what();
        tree_ = *t;
    }
    CgroupTree tree_;
};

TEST_F(AgentCgroupResolve, MountRelativeAbsolutePath) {
    auto r = tree_.resolve("/demo/w1");
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, "/demo/w1");
    EXPECT_EQ(r->fs_path, dir_ + "/demo/w1");
}

TEST_F(AgentCgroupResolve, RelativePathIsRelativeToTheMount) {
    auto r = tree_.resolve("demo/w1");
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, "/demo/w1");
    EXPECT_EQ(r->fs_path, dir_ + "/demo/w1");
}

TEST_F(AgentCgroupResolve, FilesystemPathUnderTheMount) {
    auto r = tree_.resolve(dir_ + "/demo/w1");
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, "/demo/w1");
    EXPECT_EQ(r->fs_path, dir_ + "/demo/w1");
}

TEST_F(AgentCgroupResolve, LexicalNormalisation) {
    for (const std::string& p :
         {std::string("/demo//w1/"), std::string("/demo/./w1/."), std::string("/demo/x/../w1"),
          std::string("//demo///w1//"), std::string("./demo/w1"), dir_ + "/./demo/../demo/w1"}) {
        auto r = tree_.resolve(p);
        ASSERT_TRUE(r.ok()) << p << ": " << r.error().what();
        EXPECT_EQ(r->rel_path, "/demo/w1") << p;
        EXPECT_EQ(r->fs_path, dir_ + "/demo/w1") << p;
    }
}

TEST_F(AgentCgroupResolve, ManagedRootItselfIsInside) {
    auto r = tree_.resolve("/demo/");
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, "/demo");
}

TEST_F(AgentCgroupResolve, NeedNotExist) {
    auto r = tree_.resolve("/demo/later/deeper");
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, "/demo/later/deeper");
    EXPECT_FALSE(fs::exists(r->fs_path));
}

TEST_F(AgentCgroupResolve, OutsideTheManagedSubtreeIsRefused) {
    mkdirs("demo2");
    mkdirs("other");
    for (const std::string& p : {std::string("/"), std::string("/other"), std::string("/demo2"),
                                 std::string("/demox/w1"), std::string("/demo/../other"),
                                 std::string("demo/w1/../../other"), dir_, dir_ + "/demo2"}) {
        auto r = tree_.resolve(p);
        ASSERT_FALSE(r.ok()) << p << " resolved to " << r->rel_path;
        EXPECT_EQ(r.error().err, EINVAL) << p;
        EXPECT_TRUE(contains(r.error().message, "is outside the managed subtree /demo"))
            << r.error().message;
    }
    auto r = tree_.resolve("/demo/../other");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "cgroup /other is outside the managed subtree /demo");
}

TEST_F(AgentCgroupResolve, DotDotEscapingTheMountIsRefused) {
    for (const std::string& p : {std::string(".."), std::string("/.."), std::string("/demo/../.."),
                                 std::string("/demo/../../etc"), dir_ + "/..", dir_ + "/../etc",
                                 dir_ + "/demo/../../../../../../.."}) {
        auto r = tree_.resolve(p);
        ASSERT_FALSE(r.ok()) << p << " resolved to " << r->fs_path;
        EXPECT_EQ(r.error().err, EINVAL) << p;
        EXPECT_TRUE(contains(r.error().message, "leaves the cgroup2 mount " + dir_))
            << r.error().message;
    }
}

TEST_F(AgentCgroupResolve, EmptyPathIsRefused) {
    auto r = tree_.resolve("");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().err, EINVAL);
    EXPECT_TRUE(contains(r.error().message, "empty cgroup path")) << r.error().message;
}

TEST_F(AgentCgroupResolve, ResolveExistingNeedsADirectory) {
    auto ok = tree_.resolve_existing("demo/w1");
    ASSERT_TRUE(ok.ok()) << ok.error().what();
    EXPECT_EQ(ok->rel_path, "/demo/w1");

    auto missing = tree_.resolve_existing("/demo/w2");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().err, ENOENT);
    EXPECT_EQ(missing.error().message, "cgroup /demo/w2 does not exist");

    write("demo/file", "x");
    auto file = tree_.resolve_existing("/demo/file");
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.error().err, ENOENT);

    auto outside = tree_.resolve_existing("/");  // the subtree check comes first
    ASSERT_FALSE(outside.ok());
    EXPECT_EQ(outside.error().err, EINVAL);
}

using AgentCgroupMountRoot = TempDir;

TEST_F(AgentCgroupMountRoot, TreeTakesEverythingInside) {
    mkdirs("a");
    auto t = CgroupTree::open(dir_, "/");
    ASSERT_TRUE(t.ok()) << t.error().what();
    ASSERT_TRUE(t->root_is_mount());
    auto root = t->resolve("/");
    ASSERT_TRUE(root.ok()) << root.error().what();
    EXPECT_EQ(root->rel_path, "/");
    EXPECT_EQ(root->fs_path, dir_);
    auto a = t->resolve("a/b/..");
    ASSERT_TRUE(a.ok()) << a.error().what();
    EXPECT_EQ(a->rel_path, "/a");
    EXPECT_FALSE(t->resolve("/a/../..").ok());
}

TEST(AgentCgroupSlashMount, MountAtFilesystemRoot) {
    // A cgroup2 mount at "/" (as in some containers): no doubled slashes, ".." above "/"
    // refused. /tmp stands in for the managed root; only stat() is used.
    auto t = CgroupTree::open("/", "tmp");
    ASSERT_TRUE(t.ok()) << t.error().what();
    EXPECT_EQ(t->mount(), "/");
    EXPECT_EQ(t->root().rel_path, "/tmp");
    EXPECT_EQ(t->root().fs_path, "/tmp");
    auto r = t->resolve("/tmp//x/./y");
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, "/tmp/x/y");
    EXPECT_EQ(r->fs_path, "/tmp/x/y");
    auto rel = t->resolve("tmp/x");
    ASSERT_TRUE(rel.ok()) << rel.error().what();
    EXPECT_EQ(rel->fs_path, "/tmp/x");
    auto up = t->resolve("/tmp/../..");
    ASSERT_FALSE(up.ok());
    EXPECT_TRUE(contains(up.error().message, "leaves the cgroup2 mount /")) << up.error().message;
    auto out = t->resolve("/etc");
    ASSERT_FALSE(out.ok());
    EXPECT_TRUE(contains(out.error().message, "outside the managed subtree /tmp"))
        << out.error().message;
}

// ---- CgroupTree::of_pid (reads the real /proc/PID/cgroup) ----------------------------

// The "0::" line of /proc/self/cgroup, empty if there is none (pure cgroup v1).
std::string self_cgroup2_path() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    return "";
}

class AgentCgroupPid : public TempDir {
  protected:
    void SetUp() override {
        TempDir::SetUp();
        self_ = self_cgroup2_path();
        if (self_.empty()) GTEST_SKIP() << "no cgroup2 line in /proc/self/cgroup";
    }
    std::string self_;
};

TEST_F(AgentCgroupPid, OwnProcessUnderAFakeMount) {
    // The tree's mount is a temp dir: of_pid() must join the "0::" path onto it.
    CgroupTree t(dir_, CgroupRef{dir_, "/"});
    auto r = t.of_pid(::getpid());
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, self_);
    EXPECT_EQ(r->fs_path, self_ == "/" ? dir_ : dir_ + self_);
}

TEST_F(AgentCgroupPid, OwnProcessUnderTheRealMount) {
    auto m = find_cgroup2_mount();
    if (!m.ok()) GTEST_SKIP() << m.error().what();
    auto t = CgroupTree::open(*m, "");
    ASSERT_TRUE(t.ok()) << t.error().what();
    auto r = t->of_pid(::getpid());
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, self_);
    EXPECT_TRUE(fs::is_directory(r->fs_path)) << r->fs_path;
}

// A child parked in a cgroup of its own under the real cgroup2 mount (root only), so the
// join of a real "0::" path onto the mount is checked even where every process sits in
// the root cgroup. Removed, child first, on every path.
class ParkedChild {
  public:
    ParkedChild() {
        auto mount = find_cgroup2_mount();
        if (!mount.ok() || ::geteuid() != 0) return;
        rel_ = "/pbpf-unit-" + std::to_string(::getpid());
        dir_ = *mount + rel_;
        if (::mkdir(dir_.c_str(), 0755) != 0) {
            dir_.clear();
            return;
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            ::pause();
            ::_exit(0);
        }
        std::ofstream(dir_ + "/cgroup.procs") << pid_ << std::endl;
    }
    ~ParkedChild() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (!dir_.empty()) ::rmdir(dir_.c_str());
    }
    ParkedChild(const ParkedChild&) = delete;
    ParkedChild& operator=(const ParkedChild&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& rel_path() const { return rel_; }

  private:
    pid_t pid_ = -1;
    std::string dir_;
    std::string rel_;
};

TEST_F(AgentCgroupPid, ProcessInANonRootCgroup) {
    ParkedChild child;
    if (child.pid() <= 0) GTEST_SKIP() << "needs root to park a process in a cgroup of its own";
    const pid_t pid = child.pid();
    const std::string& path = child.rel_path();
    CgroupTree t(dir_, CgroupRef{dir_, "/"});
    auto r = t.of_pid(pid);
    ASSERT_TRUE(r.ok()) << r.error().what();
    EXPECT_EQ(r->rel_path, path);
    EXPECT_EQ(r->fs_path, dir_ + path);
    // The same process, with the managed subtree being its own cgroup.
    CgroupTree sub(dir_, CgroupRef{dir_ + path, path});
    auto s = sub.of_pid(pid);
    ASSERT_TRUE(s.ok()) << s.error().what();
    EXPECT_EQ(s->rel_path, path);
}

TEST_F(AgentCgroupPid, OwnProcessOutsideTheManagedSubtree) {
    const std::string root = "/personabpf-unit-test-not-a-cgroup";
    ASSERT_NE(self_.rfind(root, 0), 0u);
    CgroupTree t(dir_, CgroupRef{dir_ + root, root});
    pid_t pid = ::getpid();
    auto r = t.of_pid(pid);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().err, EINVAL);
    EXPECT_EQ(r.error().message, "pid " + std::to_string(pid) + ": cgroup " + self_ +
                                     " is outside the managed subtree " + root);
}

TEST_F(AgentCgroupPid, NonPositivePidIsNoProcess) {
    CgroupTree t(dir_, CgroupRef{dir_, "/"});
    for (pid_t pid : {0, -1, -12345}) {
        auto r = t.of_pid(pid);
        ASSERT_FALSE(r.ok()) << pid;
        EXPECT_EQ(r.error().err, ESRCH);
        EXPECT_EQ(r.error().message, "no process with pid " + std::to_string(pid));
    }
}

TEST_F(AgentCgroupPid, DeadPidIsNoProcess) {
    pid_t pid = 0;
    for (pid_t p = 4190000; p > 4100000; --p)
        if (::kill(p, 0) != 0 && errno == ESRCH) {
            pid = p;
            break;
        }
    ASSERT_NE(pid, 0) << "no free pid found";
    CgroupTree t(dir_, CgroupRef{dir_, "/"});
    auto r = t.of_pid(pid);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().err, ESRCH);
    EXPECT_TRUE(contains(r.error().message, "no process with pid " + std::to_string(pid)))
        << r.error().message;
}

}  // namespace
}  // namespace pbpf::agent
