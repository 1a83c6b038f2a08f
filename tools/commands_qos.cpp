// `personabpf qos`: the egress interfaces the agent shapes, their state, and each
// persona's HTB class with the kernel's counters (what `tc -s class show` would say).
#include <iostream>

#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {
namespace {

int run_qos(const Context& ctx) {
    auto q = ctx.client().get("/v1/qos");
    if (ctx.json) {
        print_json(q);
        return 0;
    }
    using A = Table::Align;
    const auto& ifs = q.value("interfaces", nlohmann::json::array());
    if (ifs.empty()) {
        std::cout << "no egress interfaces shaped (configure [qos] egress_interfaces)\n";
        return 0;
    }
    for (const auto& i : ifs) {
        std::cout << field(i, "name") << ": " << field(i, "state");
        if (i.contains("error")) std::cout << " (" << field(i, "error") << ")";
        std::cout << ", link rate " << field(i, "link_rate_bps") << " bit/s\n";
        const auto& cls = i.value("classes", nlohmann::json::array());
        if (cls.empty()) continue;
        Table t({"CLASS", "PERSONA", "SENT-BYTES", "SENT-PACKETS", "DROPPED", "OVERLIMITS"},
                {A::Left, A::Left, A::Right, A::Right, A::Right, A::Right});
        for (const auto& c : cls)
            t.add_row({field(c, "class"), field(c, "persona"), field(c, "sent_bytes"),
                       field(c, "sent_packets"), field(c, "dropped"), field(c, "overlimits")});
        t.print(std::cout);
    }
    return 0;
}

}  // namespace

void add_qos_commands(CLI::App& app, Context& ctx) {
    auto* qos = app.add_subcommand("qos", "Egress shaping: interfaces and per-persona classes");
    qos->callback([&ctx] { ctx.action = [&ctx] { return run_qos(ctx); }; });
}

}  // namespace pbpf::cli
