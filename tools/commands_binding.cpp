// `personabpf bind|unbind|bindings ls`: which workloads (cgroups, interfaces) carry which
// persona.
// cgroup paths go to the agent as given; it resolves them against the cgroup2 mount.
#include <iostream>
#include <memory>

#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {
namespace {

struct Target {
    std::string cgroup;
    int pid = 0;
    std::string ifname;
    std::string netns;
};

// --cgroup PATH | --pid PID | --ifname IF [--netns NS], exactly one; checked in the
// callback because CLI11 2.1 has no "exactly one of these options" constraint.
struct TargetOptions {
    CLI::Option* cgroup;
    CLI::Option* pid;
    CLI::Option* ifname;
    CLI::Option* netns;
    void require_one(const std::string& cmd) const {
        if (cgroup->count() + pid->count() + ifname->count() != 1)
            throw CLI::ValidationError(cmd,
                                       "exactly one of --cgroup, --pid or --ifname is required");
        if (netns->count() > 0 && ifname->count() == 0)
            throw CLI::ValidationError(cmd, "--netns goes with --ifname");
    }
};

TargetOptions add_target_options(CLI::App* cmd, Target& t) {
    auto* cg = cmd->add_option("--cgroup", t.cgroup,
                               "cgroup path (absolute, or relative to the cgroup2 mount)");
    auto* pid =
        cmd->add_option("--pid", t.pid, "The cgroup of this process")->check(CLI::PositiveNumber);
    auto* ifname = cmd->add_option(
        "--ifname", t.ifname,
        "Interface facing the workload (host side of its veth or tap): tc enforcement");
    auto* netns = cmd->add_option("--netns", t.netns,
                                  "Network namespace of --ifname: a name under /run/netns or a "
                                  "path [the agent's]");
    cg->excludes(pid);
    cg->excludes(ifname);
    pid->excludes(ifname);
    return {cg, pid, ifname, netns};
}

std::string describe(const Target& t) {
    if (!t.ifname.empty()) return t.netns.empty() ? t.ifname : t.ifname + " in netns " + t.netns;
    return t.cgroup.empty() ? "pid " + std::to_string(t.pid) : t.cgroup;
}

int run_bind(const Context& ctx, const std::string& persona, const Target& t) {
    nlohmann::json body = {{"persona", persona}};
    if (!t.ifname.empty()) {
        body["ifname"] = t.ifname;
        if (!t.netns.empty()) body["netns"] = t.netns;
    } else if (t.cgroup.empty()) {
        body["pid"] = t.pid;
    } else {
        body["cgroup"] = t.cgroup;
    }
    auto answer = ctx.client().post("/v1/bindings", body);
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    if (!t.ifname.empty()) {
        std::cout << "bound interface " << describe(t) << " (ifindex " << field(answer, "ifindex")
                  << ") to " << persona << '\n';
        return 0;
    }
    std::string where = field(answer, "cgroup");
    if (where == "-") where = describe(t);
    std::cout << "bound " << where;
    if (std::string id = field(answer, "cgroup_id"); id != "-")
        std::cout << " (cgroup id " << id << ")";
    std::cout << " to " << persona << '\n';
    return 0;
}

int run_unbind(const Context& ctx, const Target& t) {
    std::string query = !t.ifname.empty()
                            ? "ifname=" + url_encode(t.ifname) +
                                  (t.netns.empty() ? "" : "&netns=" + url_encode(t.netns))
                        : t.cgroup.empty() ? "pid=" + std::to_string(t.pid)
                                           : "cgroup=" + url_encode(t.cgroup);
    auto answer = ctx.client().del("/v1/bindings?" + query);
    if (ctx.json) {
        print_json(answer.is_null() ? nlohmann::json{{"unbound", describe(t)}} : answer);
        return 0;
    }
    std::string where = t.ifname.empty() ? field(answer["unbound"], "cgroup") : "-";
    std::cout << "unbound " << (where == "-" ? describe(t) : where) << '\n';
    return 0;
}

int run_bindings_ls(const Context& ctx) {
    auto list = ctx.client().get("/v1/bindings");
    if (ctx.json) {
        print_json(list);
        return 0;
    }
    using A = Table::Align;
    Table table({"WORKLOAD", "ID", "PERSONA"}, {A::Left, A::Right, A::Left});
    for (const auto& b : list) {
        if (b.contains("ifname")) {
            std::string ns = field(b, "netns");
            table.add_row(
                {"interface " + field(b, "ifname") + (ns.empty() ? "" : " (netns " + ns + ")"),
                 "ifindex " + field(b, "ifindex"), field(b, "persona")});
        } else {
            table.add_row({field(b, "cgroup"), field(b, "cgroup_id"), field(b, "persona")});
        }
    }
    if (table.empty()) {
        std::cout << "no bindings\n";
    } else {
        table.print(std::cout);
    }
    return 0;
}

}  // namespace

void add_binding_commands(CLI::App& app, Context& ctx) {
    struct BindOptions {
        std::string persona;
        Target target;
    };
    auto bind_opt = std::make_shared<BindOptions>();
    auto* bind = app.add_subcommand("bind", "Bind a persona to a workload");
    bind->add_option("--persona", bind_opt->persona, "Persona name")->required();
    auto bind_target = add_target_options(bind, bind_opt->target);
    bind->callback([&ctx, bind_opt, bind_target] {
        bind_target.require_one("bind");
        ctx.action = [&ctx, bind_opt] {
            return run_bind(ctx, bind_opt->persona, bind_opt->target);
        };
    });

    auto unbind_opt = std::make_shared<Target>();
    auto* unbind = app.add_subcommand("unbind", "Remove a workload's binding");
    auto unbind_target = add_target_options(unbind, *unbind_opt);
    unbind->callback([&ctx, unbind_opt, unbind_target] {
        unbind_target.require_one("unbind");
        ctx.action = [&ctx, unbind_opt] { return run_unbind(ctx, *unbind_opt); };
    });

    auto* bindings = app.add_subcommand("bindings", "Inspect bindings");
    bindings->require_subcommand(1);
    auto* ls = bindings->add_subcommand("ls", "List bindings");
    ls->callback([&ctx] { ctx.action = [&ctx] { return run_bindings_ls(ctx); }; });
}

}  // namespace pbpf::cli
