// `personabpf geo info|lookup|reload`: the geo dataset sovereignty is enforced with, and
// `personabpf migrate check`: may a persona's workload move to a host of a given country.
#include <iostream>

#include "tools/commands.h"

namespace pbpf::cli {
namespace {

std::string count_text(const nlohmann::json& j, const std::string& key) {
    return j.contains(key) ? text_of(j[key]) : "-";
}

int run_geo_info(const Context& ctx) {
    auto g = ctx.client().get("/v1/geo");
    if (ctx.json) {
        print_json(g);
        return 0;
    }
    std::cout << "database:     " << field(g, "database") << "\n";
    if (!g.value("loaded", false)) {
        std::cout << "in force:     none (every destination counts as of unknown country)\n";
    } else if (g.contains("dataset")) {
        const auto& d = g["dataset"];
        std::cout << "in force:     " << field(d, "path")
                  << (d.value("current", true) ? "" : " (not the configured file)") << "\n"
                  << "format:       " << field(d, "format") << " (" << field(d, "database_type")
                  << ")\n"
                  << "built:        " << field(d, "build_date") << "\n"
                  << "prefixes:     " << count_text(d, "ipv4_prefixes") << " IPv4, "
                  << count_text(d, "ipv6_prefixes") << " IPv6 (" << count_text(d, "skipped")
                  << " records without a country)\n"
                  << "loaded:       " << field(d, "loaded_at_text") << " in "
                  << count_text(d, "load_ms") << " ms, generation " << count_text(d, "generation")
                  << "\n";
        if (g.contains("memory_bytes")) {
            std::cout << "kernel memory: " << text_of(g["memory_bytes"]) << " bytes";
            if (g.contains("memory_bytes_ipv4_table"))
                std::cout << " (IPv4 table " << text_of(g["memory_bytes_ipv4_table"])
                          << ", IPv6 trie " << text_of(g["memory_bytes_ipv6_trie"]) << ")";
            std::cout << "\n";
        }
    }
    std::cout << "host country: " << field(g, "host_country") << "\n";
    if (g.contains("error")) std::cout << "last error:   " << field(g, "error") << "\n";
    return 0;
}

int run_geo_lookup(const Context& ctx, const std::string& ip) {
    auto r = ctx.client().get("/v1/geo/lookup?ip=" + url_encode(ip));
    if (ctx.json) {
        print_json(r);
        return 0;
    }
    if (r["country"].is_null())
        std::cout << ip << ": unknown (" << field(r, "reason") << ")\n";
    else
        std::cout << ip << ": " << field(r, "country") << "\n";
    return 0;
}

int run_geo_reload(const Context& ctx) {
    auto r = ctx.client().post("/v1/geo/reload", nlohmann::json::object());
    if (ctx.json) {
        print_json(r);
        return 0;
    }
    const auto& d = r["dataset"];
    std::cout << "reloaded " << field(d, "path") << ": " << count_text(d, "ipv4_prefixes")
              << " IPv4 and " << count_text(d, "ipv6_prefixes") << " IPv6 prefixes in "
              << count_text(d, "load_ms") << " ms (generation " << count_text(d, "generation")
              << ")\n";
    return 0;
}

int run_migrate_check(const Context& ctx, const std::string& persona, const std::string& country,
                      int64_t version) {
    std::string q = "/v1/migration/gate?persona=" + url_encode(persona);
    if (!country.empty()) q += "&country=" + url_encode(country);
    if (version > 0) q += "&version=" + std::to_string(version);
    auto r = ctx.client().get(q);
    const bool allowed = r.value("allowed", false);
    if (ctx.json) {
        print_json(r);
    } else {
        std::cout << field(r, "persona") << " v" << field(r, "version") << " to a host in "
                  << (r["country"].is_null() ? std::string("an unknown country")
                                             : text_of(r["country"]))
                  << ": " << (allowed ? "allowed" : "refused") << " (" << field(r, "reason")
                  << ")\n";
    }
    return allowed ? 0 : 1;
}

}  // namespace

void add_geo_commands(CLI::App& app, Context& ctx) {
    auto* geo = app.add_subcommand("geo", "The geo dataset sovereignty is enforced with");
    geo->require_subcommand(1);
    auto* info = geo->add_subcommand("info", "Source, build date and prefix counts in force");
    info->callback([&ctx] { ctx.action = [&ctx] { return run_geo_info(ctx); }; });

    auto* lookup = geo->add_subcommand("lookup", "The country the kernel's data gives an address");
    auto ip = std::make_shared<std::string>();
    lookup->add_option("IP", *ip, "IPv4 or IPv6 address")->required();
    lookup->callback([&ctx, ip] { ctx.action = [&ctx, ip] { return run_geo_lookup(ctx, *ip); }; });

    auto* reload = geo->add_subcommand(
        "reload", "Read the configured dataset again and swap it in (no enforcement gap)");
    reload->callback([&ctx] { ctx.action = [&ctx] { return run_geo_reload(ctx); }; });

    auto* migrate = app.add_subcommand("migrate", "Workload migration between hosts");
    migrate->require_subcommand(1);
    auto* check = migrate->add_subcommand(
        "check", "May the persona's workload move to a host of this country? (exit 1: no)");
    auto persona = std::make_shared<std::string>();
    auto country = std::make_shared<std::string>();
    auto version = std::make_shared<int64_t>(0);
    check->add_option("PERSONA", *persona, "Persona name")->required();
    check->add_option("--country", *country,
                      "The target host's country (ISO 3166-1 alpha-2); default: this host's "
                      "[geo] host_country");
    check->add_option("--version", *version, "A stored version instead of the one in force");
    check->callback([&ctx, persona, country, version] {
        ctx.action = [&ctx, persona, country, version] {
            return run_migrate_check(ctx, *persona, *country, *version);
        };
    });
    add_migrate_transfer_commands(*migrate, ctx);
}

}  // namespace pbpf::cli
