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
    std::string user;
};

// --cgroup PATH | --pid PID | --ifname IF [--netns NS], exactly one; checked in the
// callback because CLI11 2.1 has no "exactly one of these options" constraint.
struct TargetOptions {
    CLI::Option* cgroup;
    CLI::Option* pid;
    CLI::Option* ifname;
    CLI::Option* netns;
    CLI::Option* user;
    void require_one(const std::string& cmd) const {
        if (cgroup->count() + pid->count() + ifname->count() + user->count() != 1)
            throw CLI::ValidationError(
                cmd, "exactly one of --cgroup, --pid, --ifname or --user is required");
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
    auto* user = cmd->add_option("--user", t.user,
                                 "A user's login sessions (logind's user-UID.slice): name or uid");
    cg->excludes(pid);
    cg->excludes(ifname);
    pid->excludes(ifname);
    user->excludes(cg);
    user->excludes(pid);
    user->excludes(ifname);
    return {cg, pid, ifname, netns, user};
}

std::string describe(const Target& t) {
    if (!t.user.empty()) return "user " + t.user;
    if (!t.ifname.empty()) return t.netns.empty() ? t.ifname : t.ifname + " in netns " + t.netns;
    return t.cgroup.empty() ? "pid " + std::to_string(t.pid) : t.cgroup;
}

// `bind --user NAME [--persona P]`: an explicit user binding, or (without --persona, as a
// PAM session hook runs it) "apply the rules to this user's sessions now".
int run_bind_user(const Context& ctx, const std::string& persona, const Target& t) {
    nlohmann::json body = {{"user", t.user}};
    if (!persona.empty()) body["persona"] = persona;
    auto answer = ctx.client().post("/v1/bindings", body);
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    if (!persona.empty()) std::cout << "bound user " << t.user << " to " << persona << '\n';
    for (const auto& b : answer.value("bound", nlohmann::json::array()))
        std::cout << "  " << field(b, "cgroup") << " -> " << field(b, "persona") << '\n';
    if (persona.empty() && answer.value("bound", nlohmann::json::array()).empty())
        std::cout << "no session of user " << t.user << " is bound\n";
    return 0;
}

int run_bind(const Context& ctx, const std::string& persona, const Target& t) {
    if (!t.user.empty()) return run_bind_user(ctx, persona, t);
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
    std::string query = !t.user.empty() ? "user=" + url_encode(t.user)
                        : !t.ifname.empty()
                            ? "ifname=" + url_encode(t.ifname) +
                                  (t.netns.empty() ? "" : "&netns=" + url_encode(t.netns))
                        : t.cgroup.empty() ? "pid=" + std::to_string(t.pid)
                                           : "cgroup=" + url_encode(t.cgroup);
    auto answer = ctx.client().del("/v1/bindings?" + query);
    if (ctx.json) {
        print_json(answer.is_null() ? nlohmann::json{{"unbound", describe(t)}} : answer);
        return 0;
    }
    std::string where =
        t.ifname.empty() && t.user.empty() ? field(answer["unbound"], "cgroup") : "-";
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
    Table table({"WORKLOAD", "ID", "PERSONA", "BY"}, {A::Left, A::Right, A::Left, A::Left});
    for (const auto& b : list) {
        std::string by = b.value("origin", "api") == "rule" ? "rule " + field(b, "rule") : "api";
        if (b.contains("user")) {
            table.add_row({"user " + field(b, "user"), "-", field(b, "persona"), by});
        } else if (b.contains("ifname")) {
            std::string ns = field(b, "netns");
            table.add_row(
                {"interface " + field(b, "ifname") + (ns.empty() ? "" : " (netns " + ns + ")"),
                 "ifindex " + field(b, "ifindex"), field(b, "persona"), by});
        } else {
            table.add_row({field(b, "cgroup"), field(b, "cgroup_id"), field(b, "persona"), by});
        }
    }
    if (table.empty()) {
        std::cout << "no bindings\n";
    } else {
        table.print(std::cout);
    }
    return 0;
}

int run_rules_ls(const Context& ctx) {
    auto list = ctx.client().get("/v1/rules");
    if (ctx.json) {
        print_json(list);
        return 0;
    }
    using A = Table::Align;
    Table table({"ID", "KIND", "PATTERN", "PERSONA", "FROM", "BOUND"},
                {A::Right, A::Left, A::Left, A::Left, A::Left, A::Right});
    for (const auto& r : list)
        table.add_row({field(r, "id"), field(r, "kind"), field(r, "pattern"), field(r, "persona"),
                       field(r, "origin") == "pdl" ? field(r, "created_by") : "api",
                       field(r, "bindings")});
    if (table.empty()) {
        std::cout << "no binding rules\n";
    } else {
        table.print(std::cout);
    }
    return 0;
}

struct RuleOptions {
    std::string persona, cgroup, user, group, ifname;
};

int run_rules_add(const Context& ctx, const RuleOptions& o) {
    std::string kind = !o.cgroup.empty()  ? "cgroup"
                       : !o.user.empty()  ? "user"
                       : !o.group.empty() ? "group"
                                          : "interface";
    std::string pattern = !o.cgroup.empty()  ? o.cgroup
                          : !o.user.empty()  ? o.user
                          : !o.group.empty() ? o.group
                                             : o.ifname;
    auto answer = ctx.client().post("/v1/rules",
                                    {{"persona", o.persona}, {"kind", kind}, {"pattern", pattern}});
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    std::cout << "rule " << field(answer, "id") << ": " << kind << " \"" << pattern << "\" -> "
              << o.persona << " (" << field(answer, "bindings") << " bound now)\n";
    return 0;
}

int run_rules_rm(const Context& ctx, const std::string& id) {
    auto answer = ctx.client().del("/v1/rules/" + url_encode(id));
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    std::cout << "removed rule " << id << '\n';
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
    auto* bind_persona = bind->add_option(
        "--persona", bind_opt->persona,
        "Persona name (required except with --user, where leaving it out applies the binding "
        "rules to the user's sessions now: the PAM hook)");
    auto bind_target = add_target_options(bind, bind_opt->target);
    bind->callback([&ctx, bind_opt, bind_target, bind_persona] {
        bind_target.require_one("bind");
        if (bind_persona->count() == 0 && bind_target.user->count() == 0)
            throw CLI::ValidationError("bind", "--persona is required (except with --user)");
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

    auto* rules =
        app.add_subcommand("rules", "Binding rules: which persona a workload gets when it appears");
    rules->require_subcommand(1);
    auto* rls = rules->add_subcommand("ls", "List binding rules (from bind blocks and the API)");
    rls->callback([&ctx] { ctx.action = [&ctx] { return run_rules_ls(ctx); }; });
    auto ro = std::make_shared<RuleOptions>();
    auto* radd = rules->add_subcommand("add", "Add a binding rule");
    radd->add_option("--persona", ro->persona, "Persona name")->required();
    auto* rcg = radd->add_option("--cgroup", ro->cgroup,
                                 "cgroup path glob, e.g. '/machine.slice/libpod-*.scope' "
                                 "('*' stays within one path component)");
    auto* ruser = radd->add_option("--user", ro->user, "User name or uid (their login sessions)");
    auto* rgroup = radd->add_option("--group", ro->group, "Group name or gid (members' sessions)");
    auto* rif = radd->add_option("--ifname", ro->ifname,
                                 "Interface name glob in the agent's netns, e.g. 'tap-web*'");
    radd->callback([&ctx, ro, rcg, ruser, rgroup, rif] {
        if (rcg->count() + ruser->count() + rgroup->count() + rif->count() != 1)
            throw CLI::ValidationError(
                "rules add", "exactly one of --cgroup, --user, --group or --ifname is required");
        ctx.action = [&ctx, ro] { return run_rules_add(ctx, *ro); };
    });
    auto rid = std::make_shared<std::string>();
    auto* rrm = rules->add_subcommand("rm",
                                      "Remove a binding rule (API-made; bind blocks are "
                                      "removed by editing their file)");
    rrm->add_option("ID", *rid, "Rule id (rules ls)")->required();
    rrm->callback([&ctx, rid] { ctx.action = [&ctx, rid] { return run_rules_rm(ctx, *rid); }; });
}

}  // namespace pbpf::cli
