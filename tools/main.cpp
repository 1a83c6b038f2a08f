// personabpf: the command-line client of personabpfd, plus the offline `pdl` tools.
// Usage errors exit 2, every other failure prints "personabpf: error: ..." and exits 1.
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "tools/commands.h"

int main(int argc, char** argv) {
    using namespace pbpf::cli;
    Context ctx;
    const char* env_socket = std::getenv("PERSONABPF_SOCKET");
    ctx.socket = env_socket && *env_socket ? env_socket : "/run/personabpf/agent.sock";

    CLI::App app{"personabpf: give workloads network personas enforced by personabpfd",
                 "personabpf"};
    // Global options may also follow the subcommand: `personabpf pdl compile x.pdl -j`.
    app.fallthrough();
    app.require_subcommand(1);
    app.add_option("--socket", ctx.socket, "The agent's API socket (env PERSONABPF_SOCKET)")
        ->capture_default_str()
        ->check([](const std::string& path) {
            return path.empty() ? std::string("must not be empty") : std::string();
        });
    app.add_flag("-j,--json", ctx.json, "Print machine-readable JSON");
    app.set_version_flag("--version", "personabpf 0.1.0");

    add_pdl_commands(app, ctx);
    add_persona_commands(app, ctx);
    add_binding_commands(app, ctx);
    add_status_commands(app, ctx);
    add_xdp_commands(app, ctx);
    add_qos_commands(app, ctx);
    add_geo_commands(app, ctx);
    add_flow_commands(app, ctx);
    add_audit_commands(app, ctx);

    try {
        // CLI11 takes `--socket ""` for a missing value ("1 required TEXT missing") and
        // `--socket=` as `--socket NEXT-ARG`, which hides the mistake; say it plainly.
        for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) {
            const std::string_view arg(argv[i]);
            if (arg == "--socket=" || (arg == "--socket" && i + 1 < argc && *argv[i + 1] == '\0'))
                throw CLI::ValidationError("--socket", "must not be empty");
        }
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (!ctx.action) return 2;  // unreachable: require_subcommand guarantees an action

    try {
        return ctx.action();
    } catch (const ApiError& e) {
        if (!e.diagnostics().empty()) std::cerr << e.diagnostics();
        std::cerr << "personabpf: error: " << e.what() << '\n';
    } catch (const std::exception& e) {
        std::cerr << "personabpf: error: " << e.what() << '\n';
    }
    return 1;
}
