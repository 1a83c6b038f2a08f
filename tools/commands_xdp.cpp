// `personabpf xdp ls | xdp deny add CIDR... | xdp deny rm CIDR...`: the host-wide XDP
// prefilter on the uplinks (interfaces, modes, counters) and its deny list.
#include <iostream>
#include <memory>
#include <vector>

#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {
namespace {

int run_xdp_ls(const Context& ctx) {
    auto x = ctx.client().get("/v1/xdp");
    if (ctx.json) {
        print_json(x);
        return 0;
    }
    using A = Table::Align;
    const auto& ifs = x.value("interfaces", nlohmann::json::array());
    if (ifs.empty()) {
        std::cout << "no XDP interfaces (configure [xdp] interfaces)\n";
    } else {
        Table t({"INTERFACE", "MODE", "PASSED", "DROPPED", "PASSED-BYTES", "DROPPED-BYTES"},
                {A::Left, A::Left, A::Right, A::Right, A::Right, A::Right});
        for (const auto& i : ifs)
            t.add_row({field(i, "name"), field(i, "mode"), field(i, "passed_packets"),
                       field(i, "dropped_packets"), field(i, "passed_bytes"),
                       field(i, "dropped_bytes")});
        t.print(std::cout);
    }
    std::cout << "\ndeny list: " << field(x, "entries") << " of " << field(x, "max_entries")
              << " entries\n";
    const auto& deny = x.value("deny", nlohmann::json::array());
    if (!deny.empty()) {
        Table t({"CIDR", "ORIGIN"});
        for (const auto& d : deny) t.add_row({field(d, "cidr"), field(d, "origin")});
        t.print(std::cout);
    }
    return 0;
}

int run_deny_add(const Context& ctx, const std::vector<std::string>& cidrs) {
    auto answer = ctx.client().post("/v1/xdp/deny", {{"cidrs", cidrs}});
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    for (const auto& c : answer.value("added", nlohmann::json::array()))
        std::cout << "denied " << text_of(c) << '\n';
    for (const auto& c : answer.value("present", nlohmann::json::array()))
        std::cout << "already denied " << text_of(c) << '\n';
    return 0;
}

int run_deny_rm(const Context& ctx, const std::vector<std::string>& cidrs) {
    std::string query;
    for (const auto& c : cidrs) query += (query.empty() ? "?cidr=" : "&cidr=") + url_encode(c);
    auto answer = ctx.client().del("/v1/xdp/deny" + query);
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    for (const auto& c : answer.value("removed", nlohmann::json::array()))
        std::cout << "removed " << text_of(c) << '\n';
    return 0;
}

}  // namespace

void add_xdp_commands(CLI::App& app, Context& ctx) {
    auto* xdp = app.add_subcommand("xdp", "The XDP prefilter on the uplinks");
    xdp->require_subcommand(1);
    auto* ls = xdp->add_subcommand("ls", "Interfaces, modes, counters and the deny list");
    ls->callback([&ctx] { ctx.action = [&ctx] { return run_xdp_ls(ctx); }; });

    auto* deny = xdp->add_subcommand("deny", "Change the deny list (entries of the API)");
    deny->require_subcommand(1);
    auto add_cidrs = std::make_shared<std::vector<std::string>>();
    auto* add = deny->add_subcommand("add", "Drop packets from these source prefixes");
    add->add_option("CIDR", *add_cidrs, "IPv4 or IPv6 prefix, e.g. 198.51.100.0/24")->required();
    add->callback([&ctx, add_cidrs] {
        ctx.action = [&ctx, add_cidrs] { return run_deny_add(ctx, *add_cidrs); };
    });
    auto rm_cidrs = std::make_shared<std::vector<std::string>>();
    auto* rm = deny->add_subcommand("rm", "Remove entries added through the API");
    rm->add_option("CIDR", *rm_cidrs, "prefix as listed by `xdp ls`")->required();
    rm->callback([&ctx, rm_cidrs] {
        ctx.action = [&ctx, rm_cidrs] { return run_deny_rm(ctx, *rm_cidrs); };
    });
}

}  // namespace pbpf::cli
