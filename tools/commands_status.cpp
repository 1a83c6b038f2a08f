// `personabpf status` and `personabpf audit`: what the agent and
// its programs see, and who changed what through the agent's API.
#include <iostream>
#include <memory>

#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {
namespace {

// Flattens nested objects into "a.b: value" lines: the status answer grows with the
// agent's capabilities, and this keeps new fields visible without CLI changes.
void flatten(const nlohmann::json& j, const std::string& prefix,
             std::vector<std::pair<std::string, std::string>>& out) {
    if (j.is_object() && !j.empty()) {
        for (const auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
    } else {
        out.emplace_back(prefix, text_of(j));
    }
}

int run_status(const Context& ctx) {
    auto status = ctx.client().get("/v1/status");
    if (ctx.json) {
        print_json(status);
        return 0;
    }
    std::vector<std::pair<std::string, std::string>> lines;
    flatten(status, "", lines);
    size_t width = 0;
    for (const auto& [k, v] : lines) width = std::max(width, k.size());
    for (const auto& [k, v] : lines)
        std::cout << k << ':' << std::string(width - k.size() + 2, ' ') << v << '\n';
    return 0;
}

// One line of at most `max` bytes, cut at a UTF-8 character boundary and marked "...".
std::string shorten(std::string text, size_t max) {
    for (auto& c : text)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (text.size() <= max) return text;
    size_t cut = max - 3;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return text.substr(0, cut) + "...";
}

struct AuditOptions {
    std::string since;  // as typed: unix seconds, ISO 8601 or an age (90s, 30m, 2h, 7d)
    std::string persona;
    size_t limit = 100;
};

int run_audit(const Context& ctx, const AuditOptions& opt) {
    std::string path = "/v1/audit?limit=" + std::to_string(opt.limit);
    if (!opt.since.empty()) path += "&since=" + url_encode(opt.since);
    if (!opt.persona.empty()) path += "&persona=" + url_encode(opt.persona);
    auto list = ctx.client().get(path);
    if (ctx.json) {
        print_json(list);
        return 0;
    }
    Table table({"TIME", "USER", "ACTION", "PERSONA", "TARGET", "OUTCOME", "DETAIL"});
    for (const auto& a : list) {
        std::string when = field(a, "at");
        if (auto it = a.find("at_ms"); it != a.end() && it->is_number_integer())
            when = time_text(it->get<int64_t>() / 1000);
        std::string user = field(a, "user");
        if (user == "-" && a.contains("uid")) user = "uid " + field(a, "uid");
        table.add_row({when, user, field(a, "action"), field(a, "persona"), field(a, "target"),
                       field(a, "outcome"), shorten(field(a, "detail"), 60)});
    }
    if (table.empty()) {
        std::cout << "no audit records\n";
    } else {
        table.print(std::cout);
    }
    return 0;
}

}  // namespace

void add_audit_commands(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<AuditOptions>();
    auto* audit =
        app.add_subcommand("audit", "The audit trail: who changed what through the agent's API");
    audit->add_option("--since", opt->since,
                      "Only records since T: unix seconds, ISO 8601 (2026-11-30T03:00:00Z) or "
                      "an age (90s, 30m, 2h, 7d)");
    audit->add_option("--persona", opt->persona, "Only records about this persona");
    audit->add_option("-n,--limit", opt->limit, "Show at most N records (the newest)")
        ->check(CLI::Range(size_t{1}, size_t{1000000}))
        ->capture_default_str();
    audit->callback([&ctx, opt] { ctx.action = [&ctx, opt] { return run_audit(ctx, *opt); }; });
}

void add_status_commands(CLI::App& app, Context& ctx) {
    add_monitor_commands(app, ctx);  // stats, top (commands_top.cpp)
    auto* status = app.add_subcommand("status", "The agent's instance, programs and counts");
    status->callback([&ctx] { ctx.action = [&ctx] { return run_status(ctx); }; });
}

}  // namespace pbpf::cli
