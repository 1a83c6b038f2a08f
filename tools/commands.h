// The CLI's subcommands: each add_* function registers one group on the CLI11 app and
// leaves the work to Context::action, which main() runs after parsing succeeded.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/api_client.h"

namespace pbpf::cli {

struct Context {
    std::string socket;
    bool json = false;
    // Set by the chosen subcommand's callback; returns the exit status.
    std::function<int()> action;

    ApiClient client() const { return ApiClient(socket); }
};

void add_pdl_commands(CLI::App& app, Context& ctx);  // pdl check|fmt|compile
// persona apply|ls|show|history|diff|rollback|chown|rm
void add_persona_commands(CLI::App& app, Context& ctx);
void add_binding_commands(CLI::App& app, Context& ctx);  // bind, unbind, bindings ls
void add_status_commands(CLI::App& app, Context& ctx);   // stats, top, status
void add_monitor_commands(CLI::App& app, Context& ctx);  // stats, top
void add_xdp_commands(CLI::App& app, Context& ctx);      // xdp ls, xdp deny add|rm
void add_qos_commands(CLI::App& app, Context& ctx);      // qos
void add_geo_commands(CLI::App& app, Context& ctx);      // geo info|lookup|reload, migrate check
// migrate export|import, on the `migrate` subcommand add_geo_commands made.
void add_migrate_transfer_commands(CLI::App& migrate, Context& ctx);
void add_flow_commands(CLI::App& app, Context& ctx);   // conntrack ls|flush, events
void add_audit_commands(CLI::App& app, Context& ctx);  // audit

// Shared helpers (commands_common.cpp).
void print_json(const nlohmann::json& j);          // pretty, keys sorted, trailing newline
std::string read_source(const std::string& path);  // "-" reads stdin; throws CliError
// A JSON scalar as display text: strings bare, null as "-", numbers as written.
std::string text_of(const nlohmann::json& j);
// j[key] as display text, or "-" when absent.
std::string field(const nlohmann::json& j, const std::string& key);
// A time the agent sends as Unix seconds, in local time; other shapes as they came.
std::string time_text(const nlohmann::json& t);

}  // namespace pbpf::cli
