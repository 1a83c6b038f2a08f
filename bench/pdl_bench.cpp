// pdl_bench: wall time of pdl::compile and pdl::lower (all personas) on one PDL file, median
// of several repetitions, and the peak RSS of a fresh process that reads the file and
// compiles and lowers it once. No root, no BPF. docs/benchmarks.md has commands and results.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pdl-compiler/compiler.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double ms(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::ostringstream s;
    s << f.rdbuf();
    out = std::move(s).str();
    return true;
}

// A field of /proc/self/status in KiB ("VmHWM", "VmRSS"), or -1.
long status_kib(const char* field) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const size_t n = std::strlen(field);
    while (std::getline(f, line))
        if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
            return std::strtol(line.c_str() + n + 1, nullptr, 10);
    return -1;
}

std::string loadavg() {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a + " " + b + " " + c;
}

// CPU time of this process: on a loaded machine it stays close to what the wall time would
// be on an idle one (the work is single-threaded), so it is reported next to the wall time.
double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

double mib(long kib) { return double(kib) / 1024.0; }

struct Stats {
    double median = 0, min = 0, max = 0;
};

Stats stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return {median, v.front(), v.back()};
}

// The whole job: compile (lint as `options` says), then lower every persona. Exits on
// compile errors: a benchmark over a file that compiles to nothing measures nothing.
pbpf::MapImage compile_and_lower(const pdl::Source& src, const pdl::CompileOptions& options,
                                 double* compile_ms, double* lower_ms, double* cpu_total_ms,
                                 size_t* warnings) {
    const double cpu0 = cpu_ms();
    const auto t0 = Clock::now();
    pdl::CompileOutput out = pdl::compile(src, options);
    const auto t1 = Clock::now();
    if (!out.ok()) {
        std::fprintf(stderr, "pdl_bench: %s does not compile (%zu errors):\n%.4000s\n",
                     src.filename.c_str(), out.errors, out.diagnostics.c_str());
        std::exit(1);
    }
    pbpf::MapImage image = pdl::lower(out.personas);
    const auto t2 = Clock::now();
    if (cpu_total_ms) *cpu_total_ms = cpu_ms() - cpu0;
    if (compile_ms) *compile_ms = ms(t0, t1);
    if (lower_ms) *lower_ms = ms(t1, t2);
    if (warnings) *warnings = out.warnings;
    return image;  // `out` is freed on return, outside the timed span
}

// --rss-child: a fresh process reads the file, compiles and lowers it once, and prints the
// high-water mark of its RSS after each step and the two times (cold: first touch of
// every page). Nothing allocates after the last step, so its VmHWM is the process's peak.
int rss_child(const std::string& path, bool lint) {
    const long start = status_kib("VmHWM");
    pdl::Source src{path, {}};
    if (!read_file(path, src.text)) return 3;
    const long after_read = status_kib("VmHWM");
    const auto t0 = Clock::now();
    const pdl::CompileOutput out = pdl::compile(src, pdl::CompileOptions{.lint = lint});
    const auto t1 = Clock::now();
    if (!out.ok()) return 4;
    const long after_compile = status_kib("VmHWM");
    const auto t2 = Clock::now();
    const pbpf::MapImage image = pdl::lower(out.personas);
    const auto t3 = Clock::now();
    const long after_lower = status_kib("VmHWM");
    std::printf("%ld %ld %ld %ld %.3f %.3f %zu\n", start, after_read, after_compile, after_lower,
                ms(t0, t1), ms(t2, t3), image.personas.size());
    return 0;
}

struct ChildRun {
    long start = 0, after_read = 0, after_compile = 0, peak = 0;  // VmHWM, KiB
    long maxrss = 0;                                              // ru_maxrss from wait4, KiB
    double compile_ms = 0, lower_ms = 0;
};

bool spawn_rss_child(const std::string& self, const std::string& path, bool lint, ChildRun& r) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    std::vector<std::string> args = {self, lint ? "--rss-child" : "--rss-child-no-lint", path};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    const int err = posix_spawn(&pid, self.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (err != 0) {
        close(fds[0]);
        return false;
    }
    std::string output;
    char buf[256];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) output.append(buf, size_t(n));
    close(fds[0]);
    int status = 0;
    rusage ru{};
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return false;
    r.maxrss = ru.ru_maxrss;
    return std::sscanf(output.c_str(), "%ld %ld %ld %ld %lf %lf", &r.start, &r.after_read,
                       &r.after_compile, &r.peak, &r.compile_ms, &r.lower_ms) == 6;
}

// Runs the RSS child `runs` times with and without lint and prints what it saw.
bool report_rss(const std::string& path, int runs) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return false;
    self[n] = '\0';
    for (bool lint : {true, false}) {
        std::vector<double> peak, maxrss, cold;
        ChildRun last;
        for (int i = 0; i < runs; ++i) {
            if (!spawn_rss_child(self, path, lint, last)) return false;
            peak.push_back(mib(last.peak));
            maxrss.push_back(mib(last.maxrss));
            cold.push_back(last.compile_ms + last.lower_ms);
        }
        const Stats p = stats(peak), m = stats(maxrss), c = stats(cold);
        std::printf(
            "fresh process: read, compile %s lint, lower all; %d runs (median, min, max)\n"
            "  peak RSS (VmHWM)        %7.1f  %7.1f  %7.1f MiB   (ru_maxrss median %.1f MiB)\n"
            "  compile + lower, cold   %7.1f  %7.1f  %7.1f ms\n"
            "  VmHWM of the last run: at start %.1f, file read %.1f, compiled %.1f, lowered %.1f "
            "MiB\n",
            lint ? "with" : "without", runs, p.median, p.min, p.max, m.median, c.median, c.min,
            c.max, mib(last.start), mib(last.after_read), mib(last.after_compile), mib(last.peak));
    }
    return true;
}

int usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s [--repetitions N] [--rss-runs N] FILE.pdl\n"
                 "Times pdl::compile and pdl::lower on FILE (median of N repetitions, default 10, "
                 "after one\nwarm-up) with and without the lint pass, and the peak RSS of a fresh "
                 "process doing both\nonce (N runs, default 3; 0 skips it).\n",
                 argv0);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && (std::strcmp(argv[1], "--rss-child") == 0 ||
                      std::strcmp(argv[1], "--rss-child-no-lint") == 0))
        return rss_child(argv[2], std::strcmp(argv[1], "--rss-child") == 0);

    int reps = 10, rss_runs = 3;
    std::string path;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if ((a == "--repetitions" || a == "--rss-runs") && i + 1 < argc)
            (a == "--repetitions" ? reps : rss_runs) = std::atoi(argv[++i]);
        else if (!a.empty() && a[0] != '-' && path.empty())
            path = a;
        else
            return usage(argv[0]);
    }
    if (path.empty() || reps < 1 || rss_runs < 0) return usage(argv[0]);

    pdl::Source src{path, {}};
    if (!read_file(path, src.text)) {
        std::fprintf(stderr, "pdl_bench: cannot read %s\n", path.c_str());
        return 1;
    }
    std::printf("file: %s, %zu bytes\nload average at start: %s\n\n", path.c_str(), src.text.size(),
                loadavg().c_str());

    // The fresh processes first, while this one is small: posix_spawn shares this process's
    // memory until exec, and Linux counts the peak of the memory exec replaces into the
    // child's ru_maxrss. The child's own VmHWM is not affected.
    if (rss_runs > 0) {
        if (!report_rss(path, rss_runs)) {
            std::fprintf(stderr, "pdl_bench: the fresh process failed (does %s compile?)\n",
                         path.c_str());
            return 1;
        }
        std::printf("\n");
    }

    // Warm-up, and the shape of the result.
    size_t warnings = 0;
    const pbpf::MapImage image = compile_and_lower(src, {}, nullptr, nullptr, nullptr, &warnings);
    size_t rules = 0, entries = 0, classes = 0;
    for (const auto& p : image.personas) {
        rules += p.rule_count;
        entries += p.entries.size();
        classes += p.class_count;
    }
    std::printf(
        "personas %zu, rules %zu, lint warnings %zu, policy entries %zu, address classes %zu\n\n",
        image.personas.size(), rules, warnings, entries, classes);

    for (bool lint : {true, false}) {
        std::vector<double> c, l, t, cpu;
        for (int i = 0; i < reps; ++i) {
            double cm = 0, lm = 0, cpum = 0;
            (void)compile_and_lower(src, pdl::CompileOptions{.lint = lint}, &cm, &lm, &cpum,
                                    nullptr);
            c.push_back(cm);
            l.push_back(lm);
            t.push_back(cm + lm);
            cpu.push_back(cpum);
        }
        std::printf("in process, compile %s lint; %d repetitions (median, min, max)\n",
                    lint ? "with" : "without", reps);
        for (auto [name, v] :
             {std::pair{"compile (pdl::compile)", &c}, std::pair{"lower (pdl::lower, all)", &l},
              std::pair{"total", &t}, std::pair{"total, CPU time", &cpu}}) {
            const Stats s = stats(*v);
            std::printf("  %-23s %7.1f  %7.1f  %7.1f ms\n", name, s.median, s.min, s.max);
        }
    }
    std::printf("\nload average at end: %s\n", loadavg().c_str());
    return 0;
}
