// `personabpf stats [NAME]` and `personabpf top`: counters, drops by reason and current
// rates per persona and per binding, once or as a live view.
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <sstream>

#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {

// "12.3 Mbit/s": bits per second in SI units, as tc and iperf3 write them.
std::string rate_text(double bits_per_second) {
    static const char* units[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
    if (!std::isfinite(bits_per_second) || bits_per_second <= 0) return "0 bit/s";
    int u = 0;
    double v = bits_per_second;
    while (v >= 1000 && u < 4) v /= 1000, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

namespace {

double number(const nlohmann::json& j, std::initializer_list<const char*> path) {
    const nlohmann::json* cur = &j;
    for (const char* k : path) {
        if (!cur->is_object()) return 0;
        auto it = cur->find(k);
        if (it == cur->end()) return 0;
        cur = &*it;
    }
    return cur->is_number() ? cur->get<double>() : 0;
}

std::string pps_text(double pps) {
    char buf[32];
    std::snprintf(buf, sizeof buf, pps < 10 ? "%.1f" : "%.0f", pps);
    return buf;
}

// "rule 3, default 12" from a direction's dropped_by_reason.
std::string reasons_text(const nlohmann::json& dir) {
    std::string out;
    auto it = dir.is_object() ? dir.find("dropped_by_reason") : dir.end();
    if (it == dir.end() || !it->is_object()) return "-";
    for (const auto& [k, v] : it->items()) {
        if (!out.empty()) out += ", ";
        out += k + " " + text_of(v);
    }
    return out.empty() ? "-" : out;
}

// The direction's QoS limit and how much of it the current rate uses: "50.0 Mbit/s 98%";
// "-" without a limit.
std::string limit_text(const nlohmann::json& dir) {
    auto a = dir.find("allocation");
    if (a == dir.end() || !a->is_object()) return "-";
    double limit = number(*a, {"rate_bps"});
    if (limit <= 0) return "-";
    char pct[16];
    std::snprintf(pct, sizeof pct, " %.0f%%", number(*a, {"used"}) * 100);
    return rate_text(limit) + pct;
}

// "85 us", "1.25 ms", "2 s": a duration given in microseconds; "-" when absent.
std::string micros_text(const nlohmann::json& v) {
    if (!v.is_number()) return "-";
    const double us = v.get<double>();
    char buf[32];
    if (us < 1000)
        std::snprintf(buf, sizeof buf, us < 10 ? "%.1f us" : "%.0f us", us);
    else if (us < 1e6)
        std::snprintf(buf, sizeof buf, "%.3g ms", us / 1e3);
    else
        std::snprintf(buf, sizeof buf, "%.3g s", us / 1e6);
    return buf;
}

double total_rate(const nlohmann::json& row) {
    return number(row, {"ingress", "rate", "bits_per_second"}) +
           number(row, {"egress", "rate", "bits_per_second"});
}

// The personas table, then the bindings table; rows sorted by current rate when `by_rate`.
void print_stats(const nlohmann::json& list, bool by_rate, std::ostream& out) {
    std::vector<nlohmann::json> rows(list.begin(), list.end());
    std::vector<std::pair<std::string, nlohmann::json>> bindings;
    for (const auto& r : rows)
        if (auto it = r.find("bindings"); it != r.end() && it->is_array())
            for (const auto& b : *it) bindings.emplace_back(field(r, "persona"), b);
    if (by_rate) {
        std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
            return total_rate(a) > total_rate(b);
        });
        std::stable_sort(bindings.begin(), bindings.end(), [](const auto& a, const auto& b) {
            return total_rate(a.second) > total_rate(b.second);
        });
    }
    using A = Table::Align;
    Table table({"PERSONA", "DIR", "ALLOWED-PKTS", "ALLOWED-BYTES", "DENIED-PKTS", "DENIED-BYTES",
                 "AUDITED-PKTS", "AUDITED-BYTES", "RATE", "LIMIT", "PKT/S", "DROPS"},
                {A::Left, A::Left, A::Right, A::Right, A::Right, A::Right, A::Right, A::Right,
                 A::Right, A::Right, A::Right, A::Left});
    for (const auto& s : rows) {
        std::string name = field(s, "persona");
        if (name == "-" || name.empty()) name = "(unbound)";
        for (const char* dir : {"ingress", "egress"}) {
            const auto d = s.value(dir, nlohmann::json());
            auto c = [&](const char* key) { return field(d, key); };
            table.add_row({name, dir, c("allowed_packets"), c("allowed_bytes"), c("denied_packets"),
                           c("denied_bytes"), c("audited_packets"), c("audited_bytes"),
                           rate_text(number(d, {"rate", "bits_per_second"})), limit_text(d),
                           pps_text(number(d, {"rate", "packets_per_second"})), reasons_text(d)});
        }
    }
    if (table.empty()) {
        out << "no counters\n";
        return;
    }
    table.print(out);
    // Personas with a latency target: TCP RTT over the agent's window and the status, of
    // the persona as a whole ("*": all its bindings), then of each of its bindings.
    Table lt({"PERSONA", "BINDING", "TARGET", "RTT-P50", "RTT-P99", "SAMPLES", "LATENCY"},
             {A::Left, A::Left, A::Right, A::Right, A::Right, A::Right, A::Left});
    auto latency_row = [&](const std::string& persona, const std::string& binding,
                           const nlohmann::json& rtt) {
        lt.add_row({persona, binding, micros_text(rtt.value("target_us", nlohmann::json())),
                    micros_text(rtt.value("p50_us", nlohmann::json())),
                    micros_text(rtt.value("p99_us", nlohmann::json())), field(rtt, "samples"),
                    field(rtt, "status")});
    };
    for (const auto& s : rows) {
        auto it = s.find("rtt");
        if (it == s.end() || !it->is_object()) continue;
        latency_row(field(s, "persona"), "*", *it);
        for (const auto& [persona, b] : bindings) {
            auto r = b.find("rtt");
            if (persona == field(s, "persona") && r != b.end() && r->is_object())
                latency_row(persona, field(b, "target"), *r);
        }
    }
    if (!lt.empty()) {
        out << '\n';
        lt.print(out);
    }
    if (bindings.empty()) return;
    Table bt({"BINDING", "PERSONA", "DIR", "PASSED-PKTS", "PASSED-BYTES", "DROPPED-PKTS",
              "DROPPED-BYTES", "RATE", "PKT/S", "DROPS"},
             {A::Left, A::Left, A::Left, A::Right, A::Right, A::Right, A::Right, A::Right, A::Right,
              A::Left});
    for (const auto& [persona, b] : bindings) {
        std::string target = field(b, "target");
        if (field(b, "kind") == "interface") target = "if:" + target;
        for (const char* dir : {"ingress", "egress"}) {
            const auto d = b.value(dir, nlohmann::json());
            auto c = [&](const char* key) { return field(d, key); };
            bt.add_row({target, persona, dir, c("passed_packets"), c("passed_bytes"),
                        c("dropped_packets"), c("dropped_bytes"),
                        rate_text(number(d, {"rate", "bits_per_second"})),
                        pps_text(number(d, {"rate", "packets_per_second"})), reasons_text(d)});
        }
    }
    out << '\n';
    bt.print(out);
}

int run_stats(const Context& ctx, const std::string& persona) {
    std::string path = "/v1/stats";
    if (!persona.empty()) path += "?persona=" + url_encode(persona);
    auto list = ctx.client().get(path);
    if (ctx.json) {
        print_json(list);
        return 0;
    }
    print_stats(list, false, std::cout);
    return 0;
}

struct TopOptions {
    double interval = 1.0;
    int iterations = 0;  // 0: until q / Ctrl-C (one frame when stdout is no terminal)
};

volatile sig_atomic_t g_quit = 0;
void on_quit_signal(int) { g_quit = 1; }

// Raw, unechoed stdin while the live view runs; the old settings come back on every way
// out (q, Ctrl-C, SIGTERM, an error).
class RawTerminal {
  public:
    RawTerminal() {
        if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &old_) != 0) return;
        termios raw = old_;
        raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
        std::cout << "\x1b[?25l" << std::flush;  // hide the cursor
    }
    ~RawTerminal() {
        if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &old_);
        std::cout << "\x1b[?25h" << std::flush;
    }
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;
    bool active() const { return active_; }

  private:
    termios old_{};
    bool active_ = false;
};

std::string clock_text() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
    return buf;
}

int run_top(const Context& ctx, const TopOptions& opt) {
    const bool live = ::isatty(STDOUT_FILENO) && opt.iterations == 0;
    const int frames = opt.iterations > 0 ? opt.iterations : (live ? 0 : 1);
    struct sigaction sa {};
    sa.sa_handler = on_quit_signal;
    struct sigaction old_int {
    }, old_term{};
    ::sigaction(SIGINT, &sa, &old_int);
    ::sigaction(SIGTERM, &sa, &old_term);
    std::unique_ptr<RawTerminal> term;
    if (live) term = std::make_unique<RawTerminal>();
    const int wait_ms = static_cast<int>(opt.interval * 1000);
    int status = 0;
    for (int n = 0; !g_quit && (frames == 0 || n < frames); ++n) {
        nlohmann::json list;
        try {
            list = ctx.client().get("/v1/stats");
        } catch (...) {
            term.reset();
            ::sigaction(SIGINT, &old_int, nullptr);
            ::sigaction(SIGTERM, &old_term, nullptr);
            throw;
        }
        std::ostringstream frame;
        if (ctx.json) {
            frame << list.dump() << '\n';
        } else {
            frame << "personabpf top - " << clock_text() << ", every " << opt.interval << "s"
                  << (live ? " (q to quit)" : "") << "\n\n";
            print_stats(list, true, frame);
        }
        if (live)
            std::cout << "\x1b[H\x1b[2J";  // home, clear
        else if (n > 0 && !ctx.json)
            std::cout << '\n';
        std::cout << frame.str() << std::flush;
        if (frames != 0 && n + 1 >= frames) break;
        // Wait for the next frame, or a q on stdin.
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
        while (!g_quit) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            until - std::chrono::steady_clock::now())
                            .count();
            if (left <= 0) break;
            pollfd p{STDIN_FILENO, POLLIN, 0};
            int rc = ::poll(&p, term && term->active() ? 1 : 0, static_cast<int>(left));
            if (rc > 0 && (p.revents & POLLIN)) {
                char c = 0;
                if (::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) g_quit = 1;
            }
        }
    }
    if (live) std::cout << '\n';
    term.reset();
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
    return status;
}

}  // namespace

void add_monitor_commands(CLI::App& app, Context& ctx) {
    auto persona = std::make_shared<std::string>();
    auto* stats = app.add_subcommand(
        "stats", "Counters, drops by reason and current rates per persona and binding");
    stats->add_option("persona", *persona, "Only this persona");
    stats->callback(
        [&ctx, persona] { ctx.action = [&ctx, persona] { return run_stats(ctx, *persona); }; });

    auto opt = std::make_shared<TopOptions>();
    auto* top = app.add_subcommand(
        "top", "Live view of personas and bindings sorted by current rate (q or Ctrl-C quits)");
    top->add_option("--interval", opt->interval, "Seconds between refreshes")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    top->add_option("-n,--iterations", opt->iterations,
                    "Print N frames and exit (default when stdout is no terminal: 1)")
        ->check(CLI::Range(1, 1000000));
    top->callback([&ctx, opt] { ctx.action = [&ctx, opt] { return run_top(ctx, *opt); }; });
}

}  // namespace pbpf::cli
