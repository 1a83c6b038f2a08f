// `personabpf migrate export|import|send`: a workload's persona, binding and flows as a
// bundle file, that bundle taken in for a workload of this host, and the two at once from
// this host's agent to another's (docs/migration.md).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iomanip>
#include <iostream>

#include "tools/commands.h"

namespace pbpf::cli {
namespace {

struct Target {
    std::string cgroup, ifname, netns;
};

// `optional`: no target is fine (an import's default: the bundle's own workload).
nlohmann::json target_body(const Target& t, bool optional = false) {
    if (!t.cgroup.empty() && !t.ifname.empty())
        throw CliError("give one of --cgroup PATH or --ifname IF, not both");
    if (!optional && t.cgroup.empty() && t.ifname.empty())
        throw CliError("give one of --cgroup PATH or --ifname IF");
    if (!t.netns.empty() && t.ifname.empty()) throw CliError("--netns goes with --ifname only");
    nlohmann::json body = nlohmann::json::object();
    if (!t.cgroup.empty()) body["cgroup"] = t.cgroup;
    if (!t.ifname.empty()) body["ifname"] = t.ifname;
    if (!t.netns.empty()) body["netns"] = t.netns;
    return body;
}

// A bundle's binding or an answer's workload: the cgroup path, or "interface IF [in netns NS]".
std::string workload_text(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("ifname")) return field(j, "cgroup");
    const std::string netns = j.contains("netns") ? text_of(j["netns"]) : std::string();
    return "interface " + field(j, "ifname") + (netns.empty() ? "" : " in netns " + netns);
}

// Whole or not at all: written to FILE.tmp (mode 0600: flows name the workload's peers)
// and renamed over FILE.
void write_file(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw CliError("cannot write " + tmp + ": " + std::strerror(errno));
    size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string why = std::strerror(errno);
            ::close(fd);
            ::unlink(tmp.c_str());
            throw CliError("cannot write " + tmp + ": " + why);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        ::unlink(tmp.c_str());
        throw CliError("cannot write " + path + ": " + why);
    }
}

int run_export(const Context& ctx, const Target& t, const std::string& out) {
    auto bundle = ctx.client().post("/v1/migration/export", target_body(t));
    const std::string text = bundle.dump(2) + "\n";
    if (out.empty() || out == "-") {
        std::cout << text;
        return 0;
    }
    write_file(out, text);
    // Version 2: {"columns", "rows"}; version 1: an array of flows.
    const auto& ct = bundle["conntrack"];
    const size_t flows = ct.is_object() && ct.contains("rows") ? ct["rows"].size() : ct.size();
    if (ctx.json) {
        print_json({{"file", out},
                    {"persona", bundle["persona"]["name"]},
                    {"version", bundle["persona"]["version"]},
                    {"flows", flows}});
    } else {
        std::cout << "exported " << workload_text(bundle["binding"]) << " (persona "
                  << text_of(bundle["persona"]["name"]) << " v"
                  << text_of(bundle["persona"]["version"]) << ", " << flows << " flows) to " << out
                  << "\n";
    }
    return 0;
}

int run_import(const Context& ctx, const std::string& file, const Target& t) {
    nlohmann::json body = target_body(t, true);
    try {
        body["bundle"] = nlohmann::json::parse(read_source(file));
    } catch (const nlohmann::json::parse_error& e) {
        throw CliError(file + " is not JSON: " + e.what());
    }
    auto r = ctx.client().post("/v1/migration/import", body);
    if (ctx.json) {
        print_json(r);
        return 0;
    }
    std::cout << "imported persona " << field(r, "persona") << " v" << field(r, "version")
              << (r.value("persona_created", false) ? " (created here)" : "") << " into "
              << workload_text(r) << ": " << field(r, "flows") << " flows";
    if (!r["replaced"].is_null()) std::cout << ", replacing persona " << field(r, "replaced");
    std::cout << "\n";
    return 0;
}

struct SendOptions {
    std::string to, target_cgroup, target_ifname, target_netns, peer_name;
    bool release = false;
};

int run_send(const Context& ctx, const Target& t, const SendOptions& o) {
    nlohmann::json body = target_body(t);
    body["to"] = o.to;
    if (!o.target_cgroup.empty()) body["target_cgroup"] = o.target_cgroup;
    if (!o.target_ifname.empty()) body["target_ifname"] = o.target_ifname;
    if (!o.target_netns.empty()) body["target_netns"] = o.target_netns;
    if (!o.peer_name.empty()) body["peer_name"] = o.peer_name;
    if (o.release) body["release"] = true;
    auto r = ctx.client().post("/v1/migration/send", body);
    if (ctx.json) {
        print_json(r);
        return 0;
    }
    const nlohmann::json target =
        r.contains("target") && r["target"].is_object() ? r["target"] : nlohmann::json::object();
    std::cout << "sent " << workload_text(r) << " (persona " << field(r, "persona") << " v"
              << field(r, "version") << ", " << field(r, "flows") << " flows) to "
              << field(r, "peer") << " (" << field(r, "to") << "): imported into "
              << workload_text(target)
              << (target.value("persona_created", false) ? ", persona created there" : "");
    if (target.contains("replaced") && !target["replaced"].is_null())
        std::cout << ", replacing persona " << field(target, "replaced");
    std::cout << "\n";
    if (r.contains("ms") && r["ms"].is_object()) {
        const auto& ms = r["ms"];
        std::cout << std::fixed << std::setprecision(1) << "took " << ms.value("total", 0.0)
                  << " ms: export " << ms.value("export", 0.0) << ", connect "
                  << ms.value("connect", 0.0) << ", exchange " << ms.value("exchange", 0.0)
                  << " (import there " << target.value("import_ms", 0.0) << "), "
                  << field(r, "bytes") << " bytes\n";
    }
    if (r.value("released", false))
        std::cout << "released " << workload_text(r) << " here (unbound)\n";
    else if (r.contains("release_skipped"))
        std::cerr << "personabpf: warning: not released here: " << field(r, "release_skipped")
                  << "\n";
    return 0;
}

void add_target_options(CLI::App* cmd, Target& t) {
    cmd->add_option("--cgroup", t.cgroup, "The workload's cgroup (absolute or relative path)");
    cmd->add_option("--ifname", t.ifname, "The interface facing the workload");
    cmd->add_option("--netns", t.netns, "The interface's network namespace (with --ifname)");
}

}  // namespace

void add_migrate_transfer_commands(CLI::App& migrate, Context& ctx) {
    auto* exp = migrate.add_subcommand(
        "export", "Write a workload's persona, binding and tracked flows as a bundle");
    auto t_exp = std::make_shared<Target>();
    auto out = std::make_shared<std::string>();
    add_target_options(exp, *t_exp);
    exp->add_option("-o,--output", *out, "Bundle file (default: standard output)");
    exp->callback([&ctx, t_exp, out] {
        ctx.action = [&ctx, t_exp, out] { return run_export(ctx, *t_exp, *out); };
    });

    auto* imp = migrate.add_subcommand(
        "import", "Take in a bundle for a workload of this host (all or nothing)");
    auto t_imp = std::make_shared<Target>();
    auto file = std::make_shared<std::string>();
    imp->add_option("FILE", *file, "Bundle file from `migrate export` (- for stdin)")->required();
    add_target_options(imp, *t_imp);
    imp->callback([&ctx, t_imp, file] {
        ctx.action = [&ctx, t_imp, file] { return run_import(ctx, *file, *t_imp); };
    });

    auto* send = migrate.add_subcommand(
        "send", "Move a workload to another host's agent over TLS (export + import there)");
    auto t_send = std::make_shared<Target>();
    auto opts = std::make_shared<SendOptions>();
    add_target_options(send, *t_send);
    send->add_option("--to", opts->to, "The target agent's [migration] listen address, HOST:PORT")
        ->required();
    send->add_option("--target-cgroup", opts->target_cgroup,
                     "The workload's cgroup on the target (default: the same path as here)");
    send->add_option("--target-ifname", opts->target_ifname,
                     "The workload's interface on the target (default: the same name as here)");
    send->add_option("--target-netns", opts->target_netns,
                     "The target interface's network namespace (default: the target agent's "
                     "own with --target-ifname, else the same as here)");
    send->add_option("--peer-name", opts->peer_name,
                     "The name the target's certificate must carry (default: HOST when it is a "
                     "name, none for an address)");
    send->add_flag("--release", opts->release,
                   "Unbind the workload here once the target confirmed the import");
    send->callback([&ctx, t_send, opts] {
        ctx.action = [&ctx, t_send, opts] { return run_send(ctx, *t_send, *opts); };
    });
}

}  // namespace pbpf::cli
