// personabpfd: the personabpf host agent. Parses flags and config, takes the instance
// lock, loads or adopts the BPF programs, reconciles the kernel with the store, serves
// the API until SIGTERM/SIGINT (leaving pins, so enforcement continues).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "agent/api_server.h"
#include "agent/auto_binder.h"
#include "agent/binder.h"
#include "agent/cgroup.h"
#include "agent/config.h"
#include "agent/flows.h"
#include "agent/geo.h"
#include "agent/loader.h"
#include "agent/metrics.h"
#include "agent/migration.h"
#include "agent/migration_peer.h"
#include "agent/monitor.h"
#include "agent/persona_manager.h"
#include "agent/qos.h"
#include "agent/rtt.h"
#include "agent/store.h"
#include "agent/topology.h"
#include "agent/xdp_prefilter.h"

using namespace pbpf;
using namespace pbpf::agent;

namespace {

int fail(const std::string& msg) {
    std::fprintf(stderr, "personabpfd: error: %s\n", msg.c_str());
    return 1;
}

// Errors built from a message alone carry a logical errno (EINVAL, ...) that adds nothing
// to the text; system errors get their strerror.
int fail(const Error& e) {
    switch (e.err) {
        case EINVAL:
        case EPROTO:
        case EWOULDBLOCK:
        case EADDRINUSE:
        case EEXIST:
            return fail(e.message);
        default:
            return fail(e.what());
    }
}

bool purge_state(const std::string& state_dir) {
    std::error_code ec;
    for (const char* f : {"state.db", "state.db-wal", "state.db-shm", "agent.lock", "agent.pid",
                          "import.journal", "import.journal.tmp", "import.journal.bad"})
        std::filesystem::remove(std::filesystem::path(state_dir) / f, ec);
    std::filesystem::remove(state_dir, ec);  // only if empty: never delete what is not ours
    if (std::filesystem::exists(state_dir))
        spdlog::warn("state dir {} kept: it holds files that are not the agent's", state_dir);
    return true;
}

int run_uninstall(const Config& cfg, bool purge) {
    struct stat st {};
    if (::stat(cfg.bpffs_root.c_str(), &st) != 0) {
        spdlog::info("nothing pinned at {}", cfg.bpffs_root);
    } else {
        if (auto r = prepare_pin_dir(cfg.bpffs_root); !r) return fail(r.error());
        auto lock = InstanceLock::acquire(cfg.bpffs_root, cfg.state_dir);
        if (!lock) return fail(lock.error());
        if (auto r = uninstall_xdp(cfg.bpffs_root); !r) return fail(r.error());
        if (auto r = uninstall_qos(cfg.bpffs_root, cfg.qos); !r) return fail(r.error());
        if (auto r = uninstall_topology(cfg.bpffs_root, cfg.topology); !r) return fail(r.error());
        if (auto r = uninstall(cfg.bpffs_root); !r) return fail(r.error());
        spdlog::info("uninstalled {}", cfg.bpffs_root);
    }
    if (purge) purge_state(cfg.state_dir);
    return 0;
}

// What the monitor samples: every persona (and the unbound and fail-closed rows) and every
// stored binding. Runs under the API mutex.
std::function<Monitor::Catalog()> monitor_catalog(Store& store) {
    return [&store] {
        Monitor::Catalog c;
        c.personas.push_back({"(unbound)", 0});
        c.personas.push_back({"(fail-closed)", PBPF_PERSONA_FAIL_CLOSED});
        if (auto ps = store.personas())
            for (const auto& p : *ps) c.personas.push_back({p.name, p.id});
        if (auto bs = store.bindings())
            for (const auto& b : *bs)
                c.bindings.push_back({"cgroup", b.cgroup_path, b.persona, {b.cgroup_id, 0}});
        if (auto is = store.if_bindings())
            for (const auto& b : *is)
                c.bindings.push_back({"interface",
                                      b.ifname + (b.netns.empty() ? "" : "@" + b.netns),
                                      b.persona,
                                      {b.netns_cookie, b.ifindex}});
        return c;
    };
}

// Validated by the config parser already.
ListenAddress must_listen(const std::string& text) {
    auto a = parse_listen_address(text);
    return a ? *a : ListenAddress{};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"personabpfd: the personabpf agent (compiles and enforces network personas)"};
    std::string config_path = kDefaultConfigPath;
    std::optional<std::string> socket, state_dir, bpffs_root, cgroup_root, log_level;
    bool do_uninstall = false, purge = false, version = false;
    app.add_option("--config", config_path, "TOML config file")->capture_default_str();
    app.add_option("--socket", socket, "API unix socket [/run/personabpf/agent.sock]");
    app.add_option("--state-dir", state_dir, "state dir holding state.db [/var/lib/personabpf]");
    app.add_option("--bpffs-root", bpffs_root, "pin dir of this instance [/sys/fs/bpf/personabpf]");
    app.add_option(
        "--cgroup-root", cgroup_root,
        "managed cgroup subtree, absolute or relative to the cgroup2 mount [mount root]");
    app.add_option("--log-level", log_level, "trace|debug|info|warn|error|critical|off [info]");
    app.add_flag("--uninstall", do_uninstall,
                 "detach and unpin everything under the pin dir, then exit");
    app.add_flag("--purge-state", purge, "with --uninstall: also delete the state dir's files");
    app.add_flag("--version", version, "print the version and exit");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (version) {
        std::printf("personabpfd %s\n", PERSONABPF_VERSION);
        return 0;
    }
    if (purge && !do_uninstall) return fail("--purge-state only goes with --uninstall");

    auto logger = spdlog::stderr_color_mt("personabpfd");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

    // Config: embedded defaults < file < flags.
    auto loaded = load_config(config_path, app.count("--config") > 0);
    if (!loaded) return fail(loaded.error());
    Config cfg = *loaded;
    if (socket) cfg.socket = *socket;
    if (state_dir) cfg.state_dir = *state_dir;
    if (bpffs_root) cfg.bpffs_root = *bpffs_root;
    if (cgroup_root) cfg.cgroup_root = *cgroup_root;
    if (log_level) cfg.log_level = *log_level;
    auto level = spdlog::level::from_str(cfg.log_level);
    if (level == spdlog::level::off && cfg.log_level != "off")
        return fail("unknown log level '" + cfg.log_level +
                    "' (trace, debug, info, warn, error, critical, off)");
    spdlog::set_level(level);
    route_libbpf_logs_to_spdlog();
    cfg.bpffs_root = std::filesystem::path(cfg.bpffs_root).lexically_normal().string();
    while (cfg.bpffs_root.size() > 1 && cfg.bpffs_root.back() == '/') cfg.bpffs_root.pop_back();

    if (do_uninstall) return run_uninstall(cfg, purge);

    auto mount = find_cgroup2_mount();
    if (!mount) return fail(mount.error());
    auto tree = CgroupTree::open(*mount, cfg.cgroup_root);
    if (!tree) return fail(tree.error());
    const char* safety = std::getenv("PERSONABPF_TEST_SAFETY");
    if (safety && std::string(safety) == "1" && tree->root_is_mount())
        return fail("PERSONABPF_TEST_SAFETY=1: refusing to manage the whole cgroup2 tree (" +
                    *mount + "); pass --cgroup-root with a test subtree");
    auto root_id = cgroup_id_of(tree->root().fs_path);
    if (!root_id) return fail(root_id.error());

    if (auto r = prepare_pin_dir(cfg.bpffs_root); !r) return fail(r.error());
    auto lock = InstanceLock::acquire(cfg.bpffs_root, cfg.state_dir);
    if (!lock) return fail(lock.error());
    if (auto r = check_socket_free(cfg.socket); !r) return fail(r.error());

    auto store = Store::open(cfg.state_dir);
    if (!store) return fail(store.error());
    LoaderOptions lopts;
    lopts.pin_dir = cfg.bpffs_root;
    lopts.cgroup_root = tree->root();
    lopts.cgroup_root_id = *root_id;
    lopts.limits = cfg.limits;
    lopts.events = cfg.events;
    auto meta_path = (*store)->meta("cgroup_root");
    auto meta_id = (*store)->meta("cgroup_root_id");
    if (!meta_path || !meta_id) return fail(!meta_path ? meta_path.error() : meta_id.error());
    if (meta_path->has_value() && meta_id->has_value()) {
        lopts.recorded_root_path = **meta_path;
        try {
            lopts.recorded_root_id = std::stoull(**meta_id);
        } catch (...) {
        }
    }
    auto loader = Loader::start(lopts);
    if (!loader) return fail(loader.error());
    // Host-wide deny list on the uplinks ([xdp]); pinned under <bpffs_root>/xdp/.
    auto xdp = XdpPrefilter::start(cfg.bpffs_root, cfg.xdp);
    if (!xdp) return fail(xdp.error());
    for (auto [k, v] : {std::pair<const char*, std::string>{"cgroup_root", tree->root().rel_path},
                        {"cgroup_root_id", std::to_string(*root_id)},
                        {"bpffs_root", cfg.bpffs_root}}) {
        if (auto r = (*store)->set_meta(k, v); !r) return fail(r.error());
    }

    PersonaManager personas(**store, **loader);
    Binder binder(**store, **loader, *tree);
    IfBinder if_binder(**store, **loader);
    InstanceInfo info;
    info.config = cfg;
    info.cgroup_mount = *mount;
    info.cgroup_root = tree->root();
    info.cgroup_root_id = *root_id;
    info.adopted = (*loader)->adopted();
    // Serves nothing before bind() and run(); built first for its mutex, which the
    // automatic binder's watcher threads take too.
    ApiServer server(**store, **loader, personas, binder, if_binder, info);
    AutoBinder auto_binder(**store, binder, if_binder, *tree, server.mutex());
    if (auto r = personas.reconcile(); !r) return fail(r.error());
    // Geo data for sovereignty ([geo]): the pinned trie keeps enforcing; adopted, or loaded
    // when a persona needs it (now or at the first apply of one).
    GeoManager geo(**loader, cfg.geo, cfg.state_dir);
    auto geo_needed = [&personas]() {
        auto in = personas.qos_inputs();
        if (!in) return false;
        for (const auto& p : *in)
            if (p.settings.flags & PBPF_SETTINGS_F_SOVEREIGNTY) return true;
        return false;
    };
    geo.start(geo_needed());
    // Egress shaping ([qos]): classes follow the stored personas, after every change.
    personas.set_shaping(!cfg.qos.egress_interfaces.empty());
    auto qos = QosManager::start(
        **loader, cfg.qos, [&personas]() { return personas.qos_inputs(); }, server.mutex());
    if (!qos) return fail(qos.error());
    // Topology: marks, policy-routing rules and tables, the next-hop check; derived from
    // the stored personas like QoS.
    personas.set_topology_uplinks(!cfg.topology.egress_interfaces.empty());
    auto topology = TopologyManager::start(
        **loader, cfg.topology, [&personas]() { return personas.qos_inputs(); }, server.mutex());
    if (!topology) return fail(topology.error());
    // RTT histograms exist for the bindings of the personas with a latency target (pbpf_qos
    // flag): made right after each sync and each bind so that sampling starts with the apply
    // or the binding. Status changes become events once the event stream exists (the hook
    // runs on the monitor's thread).
    EventStream* latency_events = nullptr;
    RttMonitor rtt({(*loader)->rtt_fd(), (*loader)->qos_fd(), (*loader)->bindings_fd(),
                    (*loader)->globals_fd()},
                   [&latency_events](const auto& c) {
                       if (latency_events) latency_events->publish_latency(c);
                   });
    personas.set_changed_hook([&qos, &topology, &rtt, &geo, &geo_needed]() -> Result<void> {
        auto r = (*qos)->sync();
        auto t = (*topology)->sync();
        if (auto h = rtt.reconcile(); !h) spdlog::warn("rtt: {}", h.error().what());
        if (geo_needed()) {
            if (auto g = geo.ensure_loaded(); !g && r && t) return g.error();
        }
        if (!r) return r;
        return t;
    });
    if (auto r = rtt.reconcile(); !r) return fail(r.error());
    // Fail-closed roots go in with the stored bindings: no window in which they are open.
    if (auto r = auto_binder.set_fail_closed(cfg.binding.fail_closed); !r) return fail(r.error());
    if (auto r = binder.reconcile(); !r) return fail(r.error());
    if (auto r = if_binder.reconcile(); !r) return fail(r.error());
    // Every program is this build's now (cgroups, interfaces, QoS and topology uplinks):
    // flows the old programs tracked during a map migration join the new maps.
    (*loader)->finish_migration();

    // Signals are taken synchronously by this thread; every other thread blocks them.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    (*xdp)->add_routes(server);
    (*qos)->add_routes(server);
    geo.add_routes(server, personas);
    Migration migration(**store, **loader, personas, binder, if_binder, cfg.geo.host_country,
                        cfg.state_dir);
    // An import this agent was stopped in the middle of is undone before anything is served
    // (under the API mutex: the QoS, topology and binding watchers run already).
    {
        std::lock_guard<std::mutex> lock(server.mutex());
        migration.recover();
    }
    migration.add_routes(server);
    // `migrate send`: the route always (it needs [migration] cert, key and ca); the listener
    // for peers when [migration] listen is set, started below with the API.
    MigrationPeer migration_peer(cfg.migration, migration, server);
    migration_peer.add_routes(server);
    (*topology)->add_routes(server);
    Names names(**store, *tree);
    ConntrackTable conntrack(**loader, names);
    EventStream events(**loader, cfg.events.history);
    if (auto r = events.start(); !r) return fail(r.error());
    latency_events = &events;
    add_flow_routes(server, conntrack, events, names);
    // Bind and unbind events join the flow events (names kept: the workload may be gone
    // when they are read).
    binder.set_event_hook([&](uint8_t verdict, uint8_t trigger, uint64_t cgroup_id,
                              const std::string& path, uint32_t persona_id, int64_t rule_id) {
        names.remember_cgroup(cgroup_id, path);
        events.publish_binding(verdict, trigger, cgroup_id, 0, persona_id, rule_id);
        if (verdict == PBPF_EV_BIND) rtt.bound(cgroup_id);
    });
    if_binder.set_event_hook([&](uint8_t verdict, uint8_t trigger, uint64_t cookie,
                                 uint32_t ifindex, const std::string& name, uint32_t persona_id,
                                 int64_t rule_id) {
        names.remember_interface(cookie, ifindex, name);
        events.publish_binding(verdict, trigger, cookie, ifindex, persona_id, rule_id);
    });
    personas.set_unbound_hook([&](uint64_t workload, uint32_t ifindex, const std::string& name,
                                  uint32_t persona_id, const std::string& persona) {
        names.remember_persona(persona_id, persona);
        if (ifindex != 0)
            names.remember_interface(workload, ifindex, name);
        else
            names.remember_cgroup(workload, name);
        events.publish_binding(PBPF_EV_UNBIND, PBPF_BIND_PERSONA_REMOVED, workload, ifindex,
                               persona_id, 0);
    });
    add_rule_routes(server, auto_binder);
    server.set_auto_binder(&auto_binder);
    // Monitoring: counters and rates for GET /v1/stats and [metrics] listen.
    Monitor monitor(**loader, monitor_catalog(**store), server.mutex());
    server.set_monitor(&monitor);
    monitor.add_provider(qos->get());
    monitor.add_provider(&rtt);
    MetricsServer metrics([&monitor] { return monitor.prometheus(); });
    if (!cfg.metrics.listen.empty()) {
        if (auto r = metrics.start(must_listen(cfg.metrics.listen)); !r) return fail(r.error());
    }
    monitor.start();
    if (auto r = server.bind(cfg.socket); !r) return fail(r.error());
    if (auto r = migration_peer.start(); !r) return fail(r.error());
    // Watcher threads call into names and events: they stop before those go, on every
    // way out of here.
    struct StopWatchers {
        AutoBinder& a;
        ~StopWatchers() { a.stop(); }
    } stop_watchers{auto_binder};
    if (auto r = auto_binder.start(cfg.binding.watch_interfaces); !r) return fail(r.error());
    bool listen_failed = false;
    std::thread serve([&] {
        if (!server.run()) {
            listen_failed = true;
            ::kill(::getpid(), SIGTERM);
        }
    });
    spdlog::info("personabpfd {} ready (pid {}, {} start, cgroup root {} id {}, pins {})",
                 PERSONABPF_VERSION, ::getpid(), info.adopted ? "adopted" : "fresh",
                 tree->root().rel_path, *root_id, cfg.bpffs_root);
    int sig = 0;
    sigwait(&sigs, &sig);
    if (!listen_failed)
        spdlog::info("{}: stopping; pinned programs keep enforcing", strsignal(sig));
    auto_binder.stop();
    (*qos)->stop();
    (*topology)->stop();
    monitor.stop();
    metrics.stop();
    events.stop();          // wakes `events --follow` long polls, so the server can stop
    migration_peer.stop();  // waits for imports from peers, which take the API mutex
    server.stop();
    serve.join();
    if (listen_failed) return fail("API server stopped unexpectedly");
    return 0;
}
