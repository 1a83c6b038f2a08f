// `personabpf conntrack ls|flush` and `personabpf events`: the kernel's flow table and its
// verdict events, printed like conntrack(8) and `hubble observe`.
#include <signal.h>
#include <time.h>

#include <atomic>
#include <iostream>
#include <memory>

#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {
namespace {

using nlohmann::json;

std::string endpoint(const json& j, const char* addr, const char* port) {
    std::string a = field(j, addr);
    if (a.find(':') != std::string::npos) a = "[" + a + "]";
    if (j.contains(port)) return a + ":" + text_of(j[port]);
    return a;
}

int run_conntrack_ls(const Context& ctx, const std::string& persona, size_t limit) {
    std::string q = "/v1/conntrack?limit=" + std::to_string(limit);
    if (!persona.empty()) q += "&persona=" + url_encode(persona);
    auto answer = ctx.client().get(q);
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    using A = Table::Align;
    Table table({"PROTO", "LOCAL", "REMOTE", "ORIGIN", "STATE", "VERDICT", "PERSONA", "WORKLOAD",
                 "PKTS OUT/IN", "EXPIRES"},
                {A::Left, A::Left, A::Left, A::Left, A::Left, A::Left, A::Left, A::Left, A::Right,
                 A::Right});
    for (const auto& f : answer.value("flows", json::array())) {
        std::string verdict = field(f, "verdict");
        if (f.value("rule", 0) != 0) verdict += " (rule " + text_of(f["rule"]) + ")";
        std::string local = endpoint(f, "local", "local_port");
        if (f.contains("icmp_id")) local += " id " + text_of(f["icmp_id"]);
        table.add_row({field(f, "proto"), local, endpoint(f, "remote", "remote_port"),
                       field(f, "origin"), field(f, "state"), verdict, field(f, "persona"),
                       field(f, "workload"),
                       text_of(f["packets"]["egress"]) + "/" + text_of(f["packets"]["ingress"]),
                       text_of(f["expires_in_s"]) + "s"});
    }
    if (table.empty()) {
        std::cout << "no tracked flows\n";
        return 0;
    }
    table.print(std::cout);
    if (answer.value("truncated", false))
        std::cout << "(" << answer.value("total", 0) << " flows, first " << limit
                  << " shown; --limit N shows more)\n";
    return 0;
}

int run_conntrack_flush(const Context& ctx, const std::string& persona) {
    std::string q = "/v1/conntrack";
    if (!persona.empty()) q += "?persona=" + url_encode(persona);
    auto answer = ctx.client().del(q);
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    std::cout << "flushed " << field(answer, "flushed") << " flows"
              << (persona.empty() ? "" : " of persona " + persona) << '\n';
    return 0;
}

// "Nov 29 21:30:01.123"
std::string clock_text(int64_t ns) {
    time_t secs = static_cast<time_t>(ns / 1000000000);
    tm t{};
    localtime_r(&secs, &t);
    char buf[64];
    strftime(buf, sizeof buf, "%b %e %H:%M:%S", &t);
    char out[80];
    snprintf(out, sizeof out, "%s.%03d", buf, static_cast<int>((ns / 1000000) % 1000));
    return out;
}

void print_event(const json& e) {
    if (const std::string type = e.value("type", "flow"); type == "bind" || type == "unbind") {
        std::string why = field(e, "trigger");
        if (e.contains("rule")) {
            why += " " + field(e, "rule");
            if (std::string text = field(e, "rule_text"); text != "-" && !text.empty())
                why += ": " + text;
        }
        std::cout << clock_text(e.value("time_ns", int64_t{0})) << "  " << field(e, "persona")
                  << " (" << field(e, "workload") << ")  " << (type == "bind" ? "BOUND" : "UNBOUND")
                  << " (" << why << ")\n";
        return;
    }
    if (e.value("type", "flow") == "latency") {
        std::string status = field(e, "status");
        // A binding's change names the workload as bind events do.
        std::cout << clock_text(e.value("time_ns", int64_t{0})) << "  " << field(e, "persona")
                  << (e.contains("workload") ? " (" + field(e, "workload") + ")" : std::string())
                  << "  LATENCY " << status << " (was " << field(e, "previous");
        if (auto it = e.find("rtt"); it != e.end() && it->is_object()) {
            const auto& r = *it;
            std::cout << "; p99 "
                      << (r.contains("p99_us") && r["p99_us"].is_number()
                              ? text_of(r["p99_us"]) + " us"
                              : std::string("-"))
                      << ", target " << text_of(r.value("target_us", nlohmann::json())) << " us, "
                      << field(r, "samples") << " samples";
        }
        std::cout << ")\n";
        return;
    }
    std::string verdict = field(e, "verdict");
    for (auto& c : verdict) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string why = field(e, "reason");
    if (why == "rule") {
        why = "rule " + field(e, "rule");
        if (std::string text = field(e, "rule_text"); text != "-" && !text.empty())
            why += ": " + text;
    } else if (why == "sovereignty") {
        why = "sovereignty: destination country " + field(e, "country");
    }
    std::string what = field(e, "proto");
    if (e.contains("tcp_flags") && !e["tcp_flags"].get<std::string>().empty())
        what += " " + field(e, "tcp_flags");
    if (e.contains("icmp_type"))
        what += " type " + field(e, "icmp_type") + " code " + field(e, "icmp_code");
    std::cout << clock_text(e.value("time_ns", int64_t{0})) << "  " << field(e, "persona") << " ("
              << field(e, "workload") << ")  " << endpoint(e, "src", "src_port") << " -> "
              << endpoint(e, "dst", "dst_port") << "  " << what << "  " << field(e, "direction")
              << "  " << verdict << " (" << why
              << (field(e, "mode") == "audit" ? ", audit mode" : "") << ")\n";
}

std::atomic<bool> g_stop{false};

int run_events(const Context& ctx, const std::string& persona, bool follow, size_t last) {
    std::string filter = persona.empty() ? "" : "&persona=" + url_encode(persona);
    auto first = ctx.client().get(
        "/v1/events?tail=1&limit=" + std::to_string(last == 0 ? 1 : last) + filter);
    if (last == 0) first["events"] = json::array();
    auto emit = [&](const json& batch) {
        for (const auto& e : batch.value("events", json::array())) {
            if (ctx.json) {
                std::cout << e.dump() << '\n';
            } else {
                print_event(e);
            }
        }
        std::cout.flush();
    };
    emit(first);
    uint64_t next = first.value("next", uint64_t{0});
    uint64_t lost = 0;
    json kernel = first.value("kernel", json::object());
    if (follow) {
        struct sigaction sa {};
        sa.sa_handler = [](int) { g_stop = true; };
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        while (!g_stop) {
            auto batch = ctx.client().get(
                "/v1/events?wait_ms=1000&limit=1000&since=" + std::to_string(next) + filter);
            emit(batch);
            next = batch.value("next", next);
            lost += batch.value("overwritten", uint64_t{0});
            kernel = batch.value("kernel", kernel);
        }
    }
    // What did not reach this view, said on stderr so that -j output stays clean.
    uint64_t limited = kernel.value("rate_limited", uint64_t{0});
    uint64_t full = kernel.value("ring_full", uint64_t{0});
    if (limited + full + lost > 0)
        std::cerr << "events not shown: " << limited << " suppressed by the kernel's rate limit, "
                  << full << " lost to a full ring buffer (agent totals)"
                  << (lost ? ", " + std::to_string(lost) + " overwritten in the agent's history"
                           : std::string())
                  << '\n';
    return 0;
}

}  // namespace

void add_flow_commands(CLI::App& app, Context& ctx) {
    struct Options {
        std::string persona;
        size_t limit = 1000;
        bool follow = false;
    };
    auto* ct = app.add_subcommand("conntrack", "Inspect or flush tracked flows");
    ct->require_subcommand(1);
    auto ls_opt = std::make_shared<Options>();
    auto* ls = ct->add_subcommand("ls", "List tracked flows");
    ls->add_option("--persona", ls_opt->persona, "Only flows of this persona");
    ls->add_option("--limit", ls_opt->limit, "Show at most N flows")
        ->check(CLI::Range(size_t{1}, size_t{10000000}))
        ->capture_default_str();
    ls->callback([&ctx, ls_opt] {
        ctx.action = [&ctx, ls_opt] {
            return run_conntrack_ls(ctx, ls_opt->persona, ls_opt->limit);
        };
    });
    auto flush_opt = std::make_shared<Options>();
    auto* flush = ct->add_subcommand(
        "flush", "Forget tracked flows (their next packets are decided by the rules again)");
    flush->add_option("--persona", flush_opt->persona, "Only flows of this persona");
    flush->callback([&ctx, flush_opt] {
        ctx.action = [&ctx, flush_opt] { return run_conntrack_flush(ctx, flush_opt->persona); };
    });

    auto ev_opt = std::make_shared<Options>();
    ev_opt->limit = 20;
    auto* ev = app.add_subcommand("events",
                                  "Show flow verdict events (dropped, audited, new allowed flows)");
    ev->add_option("--persona", ev_opt->persona, "Only events of this persona");
    ev->add_flag("-f,--follow", ev_opt->follow, "Keep printing new events until interrupted");
    ev->add_option("-n,--last", ev_opt->limit, "Start with the last N events")
        ->check(CLI::Range(size_t{0}, size_t{100000}))
        ->capture_default_str();
    ev->callback([&ctx, ev_opt] {
        ctx.action = [&ctx, ev_opt] {
            return run_events(ctx, ev_opt->persona, ev_opt->follow, ev_opt->limit);
        };
    });
}

}  // namespace pbpf::cli
