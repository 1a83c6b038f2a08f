// Workload migration: export and import of a workload's persona, binding and flows.
#include "agent/migration.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <httplib.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/api_server.h"
#include "agent/clock.h"
#include "agent/failpoint.h"
#include "agent/geo.h"
#include "agent/geo_db.h"
#include "agent/migration_bundle.h"
#include "agent/monitor.h"
#include "agent/rtt.h"
#include "maps/abi/events.h"
#include "maps/abi/qos.h"
#include "maps/abi/rtt.h"
#include "maps/policy_map.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

std::string describe_interface(const std::string& ifname, const std::string& netns) {
    return "interface " + ifname + (netns.empty() ? "" : " in netns " + netns);
}

MigrationTarget parse_target(const json& body, const char* verb, const Bundle* bundle = nullptr) {
    TargetParse t = migration_target(body, verb, bundle);
    if (!t.target) throw ApiError(400, t.error);
    return *t.target;
}

std::string countries_text(const pdl::ir::Persona& p) {
    std::string out;
    for (const auto& c : p.sovereignty.countries) out += (out.empty() ? "" : ", ") + c;
    return out.empty() ? "none" : out;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
    return out;
}

// The binding's counters as the kernel has them now (the per-CPU sums), drops by reason
// by name; {} when the binding has no counter slot.
json binding_counters(Loader& loader, uint64_t workload, uint32_t ifindex) {
    BindingStats s;
    s.key = {workload, ifindex};
    s.slot = loader.slots().find(s.key);
    if (s.slot == 0) return json::object();
    s.counters = must(read_binding_counters(loader.binding_counters_fd(), s.slot));
    attribute_binding_drops(s, must(read_binding_drops(loader.binding_drops_fd())));
    json out = json::object();
    for (int d = 0; d < PBPF_DIR_COUNT; ++d) {
        const auto& c = s.counters.dir[d];
        json reasons = json::object();
        for (unsigned r = 0; r < PBPF_DROP_REASON_SLOTS; ++r)
            if (s.dropped_by_reason[d][r] != 0)
                reasons[drop_reason_name(r)] = s.dropped_by_reason[d][r];
        out[d == PBPF_DIR_EGRESS ? "egress" : "ingress"] = {{"passed_packets", c.passed_packets},
                                                            {"passed_bytes", c.passed_bytes},
                                                            {"dropped_packets", c.dropped_packets},
                                                            {"dropped_bytes", c.dropped_bytes},
                                                            {"dropped_by_reason", reasons}};
    }
    return out;
}

// The binding's QoS state as the kernel has it now: the persona's latency target and the
// RTT figures of the binding's histogram since it was made (sums over CPUs); {} when the
// persona has no latency target or the binding no histogram (interfaces have none).
json binding_qos(Loader& loader, uint32_t persona_id, uint64_t workload, uint32_t ifindex) {
    pbpf_qos q{};
    if (bpf_map_lookup_elem(loader.qos_fd(), &persona_id, &q) != 0 || !(q.flags & PBPF_QOS_F_RTT))
        return json::object();
    json out = {{"latency_target_us", static_cast<double>(q.latency_target_ns) / 1000.0}};
    const uint32_t slot = loader.slots().find({workload, ifindex});
    if (ifindex != 0 || slot == 0) return out;
    const pbpf_rtt_key key{persona_id, slot};
    std::vector<pbpf_rtt_hist> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
    if (bpf_map_lookup_elem(loader.rtt_fd(), &key, per_cpu.data()) != 0) return out;
    const RttHistogram h = rtt_delta(RttRaw{}, rtt_sum_cpus(per_cpu));
    auto micros = [](std::optional<double> v) { return v ? json(*v) : json(nullptr); };
    out["rtt"] = {{"samples", h.samples},
                  {"sum_us", h.sum_us},
                  {"p50_us", micros(rtt_quantile_us(h, 0.50))},
                  {"p99_us", micros(rtt_quantile_us(h, 0.99))}};
    return out;
}

}  // namespace

json Migration::export_workload(const json& body) {
    const MigrationTarget t = parse_target(body, "export");
    // The flows' and counters' key: (cgroup id, 0) or (the interface's netns cookie, ifindex).
    uint64_t workload = 0;
    uint32_t ifindex = 0;
    std::string persona, what, bound_ifname, bound_netns;
    if (t.kind == "cgroup") {
        const CgroupRef ref = binder_.named_cgroup(json{{"cgroup", t.cgroup}});
        workload = must(cgroup_id_of(ref.fs_path));
        auto binding = must(store_.binding(workload));
        if (!binding)
            throw ApiError(404,
                           "cgroup " + ref.rel_path +
                               " has no binding of its own: nothing to export (bind it first)");
        persona = binding->persona;
        what = ref.rel_path;
    } else {
        auto binding = must(store_.if_binding(t.netns, t.ifname));
        if (!binding) {  // the same interface under another spelling of its netns
            if (auto key = if_binder_.resolve(t.ifname, t.netns))
                for (const auto& other : must(store_.if_bindings()))
                    if (other.netns_cookie == key->netns_cookie && other.ifindex == key->ifindex)
                        binding = other;
        }
        if (!binding)
            throw ApiError(404, describe_interface(t.ifname, t.netns) +
                                    " has no binding: nothing to export (bind it first)");
        persona = binding->persona;
        workload = binding->netns_cookie;
        ifindex = binding->ifindex;
        bound_ifname = binding->ifname;
        bound_netns = binding->netns;
        what = binding->ifname + (binding->netns.empty() ? "" : "@" + binding->netns);
    }
    audit_note(persona, (t.kind == "cgroup" ? "cgroup " : "interface ") + what);
    const PersonaVersion v = personas_.current_version(persona);

    Bundle b;
    b.exported_at = static_cast<int64_t>(std::time(nullptr));
    b.agent_version = PERSONABPF_VERSION;
    if (auto g = loader_.read_globals()) b.map_schema_version = g->schema_version;
    b.host_country = host_country_;
    b.persona = v.persona;
    b.persona_version = v.version;
    b.filename = v.filename;
    b.source = v.source;
    b.imports_json = v.imports_json;
    b.kind = t.kind;
    if (t.kind == "cgroup") {
        b.cgroup = what;
    } else {
        b.ifname = bound_ifname;
        b.netns = bound_netns;
    }
    b.counters = binding_counters(loader_, workload, ifindex);
    if (const auto rec = must(store_.persona(persona)))
        b.qos = binding_qos(loader_, rec->id, workload, ifindex);

    // The workload's flows, as the listing shows them (expired ones left out): a cgroup's
    // own sockets' (flows of sockets in descendant cgroups are keyed by those and not
    // exported), or those the interface's programs keyed by (netns cookie, ifindex).
    // Read in batches (a syscall per thousand entries, not two per entry).
    const int fd = loader_.conntrack_fd();
    const uint64_t now = monotonic_ns();
    __u32 batch = 1024;
    std::vector<pbpf_ct_key> keys(batch);
    std::vector<pbpf_ct_value> values(batch);
    __u64 in = 0, out = 0;  // the kernel's cursor (a bucket index)
    bool first = true;
    for (;;) {
        __u32 n = batch;
        const int rc = bpf_map_lookup_batch(fd, first ? nullptr : &in, &out, keys.data(),
                                            values.data(), &n, nullptr);
        const int err = rc == 0 ? 0 : errno;
        if (rc != 0 && err == ENOSPC && n == 0) {  // a bucket holds more than a batch
            batch *= 2;
            keys.resize(batch);
            values.resize(batch);
            continue;
        }
        if (rc != 0 && err != ENOENT)
            throw ApiError(500, std::string("read pbpf_conntrack: ") + std::strerror(err));
        for (__u32 i = 0; i < n; ++i) {
            const pbpf_ct_key& k = keys[i];
            const pbpf_ct_value& val = values[i];
            if (k.ifindex != ifindex || k.workload != workload) continue;
            if (now > val.last_seen_ns &&
                now - val.last_seen_ns > pbpf_ct_timeout_s(k.proto, val.state) * 1000000000ull)
                continue;
            b.flows.push_back(flow_from_entry(k, val, now));
        }
        if (rc != 0) break;  // ENOENT: that was the last batch
        in = out;
        first = false;
    }
    spdlog::info("migrate export: {} {} (persona '{}' version {}, {} flows)", t.kind, what,
                 b.persona, b.persona_version, b.flows.size());
    audit_note("", "",
               "persona " + b.persona + " v" + std::to_string(b.persona_version) + ", " +
                   std::to_string(b.flows.size()) + " flows");
    return bundle_to_json(b);
}

json Migration::import_workload(const json& body, const std::string& from) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!body.is_object()) throw ApiError(400, "request must be a JSON object");
    if (!body.contains("bundle")) throw ApiError(400, "migrate import needs \"bundle\"");
    // 1. Everything that can refuse, before anything changes: the bundle in full, the
    // persona's source, the gate, the target workload, the repository's versions.
    BundleParse parsed = bundle_from_json(body["bundle"]);
    if (!parsed.bundle) throw ApiError(400, "bad bundle: " + parsed.error);
    const Bundle& b = *parsed.bundle;
    const MigrationTarget t = parse_target(body, "import", &b);
    const bool on_interface = t.kind == "interface";
    const std::string& name = b.persona;
    const int64_t version = b.persona_version;
    const std::string vtext = "'" + name + "' version " + std::to_string(version);
    const std::string where =
        on_interface ? describe_interface(t.ifname, t.netns) : "cgroup " + t.cgroup;
    audit_note(name, where);

    std::vector<pdl::Source> imports;
    for (const auto& imp : json::parse(b.imports_json))
        imports.push_back({imp["filename"].get<std::string>(), imp["source"].get<std::string>()});
    CompiledFile compiled;
    try {
        compiled = PersonaManager::compile_file(b.source, b.filename, std::move(imports));
    } catch (const ApiError& e) {
        throw ApiError(400, "bad bundle: the source of persona " + vtext +
                                " does not compile here: " + e.what());
    }
    const pdl::ir::Persona* persona = nullptr;
    size_t index = 0;
    for (size_t i = 0; i < compiled.personas.size(); ++i)
        if (compiled.personas[i].name == name) {
            persona = &compiled.personas[i];
            index = i;
        }
    if (!persona)
        throw ApiError(
            400, "bad bundle: its source (" + b.filename + ") defines no persona '" + name + "'");

    std::string country = host_country_;
    for (auto& c : country) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const GateAnswer gate = migration_gate(compiled.images[index].settings, country);
    if (!gate.allowed)
        throw ApiError(
            403,
            "migration refused by the sovereignty gate: persona " + vtext +
                " may not move to this host (country " +
                (country.empty() ? std::string("unknown") : country) + ": " + gate.reason +
                "; the persona's " +
                (persona->sovereignty.list == pdl::ir::Action::Deny ? "denied" : "allowed") +
                " countries: " + countries_text(*persona) + ")",
            {{"country", country.empty() ? json() : json(country)},
             {"countries", persona->sovereignty.countries},
             {"reason", gate.reason}});

    // The target workload and its key in the flows: (cgroup id, 0), or (the interface's
    // netns cookie, ifindex) as the programs on it read them.
    CgroupRef ref;
    uint64_t workload = 0;
    uint32_t ifindex = 0;
    if (on_interface) {
        auto key = if_binder_.resolve(t.ifname, t.netns);
        if (!key) {
            const Error& e = key.error();
            throw ApiError(e.err == ENOENT || e.err == ENODEV ? 404 : 400,
                           "cannot import onto " + where + ": " + e.what());
        }
        workload = key->netns_cookie;
        ifindex = key->ifindex;
        // One interface, one binding (as `bind` checks): refused here, before any change.
        for (const auto& other : must(store_.if_bindings()))
            if (other.netns_cookie == workload && other.ifindex == ifindex &&
                (other.netns != t.netns || other.ifname != t.ifname))
                throw ApiError(409, where + " is already bound to '" + other.persona + "' as " +
                                        describe_interface(other.ifname, other.netns) +
                                        "; import onto that name, or unbind it first");
    } else {
        ref = binder_.named_cgroup(json{{"cgroup", t.cgroup}});
        workload = must(cgroup_id_of(ref.fs_path));
    }
    const std::string target_text = on_interface ? where : "cgroup " + ref.rel_path;

    // The persona version in force here must become the source's, without changing what
    // this host's other workloads of the persona enforce.
    const auto current = must(store_.persona(name));
    const auto stored = must(store_.version(name, version));
    if (stored && (stored->source != b.source || stored->imports_json != b.imports_json))
        throw ApiError(409, "persona " + vtext +
                                " is stored here with another source: the repositories "
                                "disagree; import refused");
    bool apply_needed = false;
    if (current) {
        if (current->version != version)
            throw ApiError(
                409, "persona '" + name + "' is at version " + std::to_string(current->version) +
                         " here and the bundle needs version " + std::to_string(version) +
                         "; importing would change what this host's workloads of "
                         "the persona enforce (bring the versions in line first)");
    } else {
        for (const auto& v : must(store_.versions(name)))
            if (v.version > version)
                throw ApiError(409, "persona '" + name + "' (removed here) has version " +
                                        std::to_string(v.version) +
                                        " in this repository, later than the bundle's " +
                                        std::to_string(version) + "; import refused");
        apply_needed = true;
    }
    const auto previous = on_interface ? std::nullopt : must(store_.binding(workload));
    const auto previous_if =
        on_interface ? must(store_.if_binding(t.netns, t.ifname)) : std::nullopt;

    // Where the time goes, for `import_phases_ms` (bench/migration_bench.sh prints it).
    json phases = json::object();
    auto lap = [&phases, last = t0](const char* phase) mutable {
        phases[phase] = ms_since(last);
        last = std::chrono::steady_clock::now();
    };
    lap("check");

    // 2. The journal: what the import is about to change and what was there before, on
    // disk before the first change. A failure undoes the steps done; an agent stopped in
    // the middle undoes them all at its next start (recover()).
    ImportJournal j;
    j.persona = name;
    j.version = version;
    j.persona_created = apply_needed;
    j.version_added = apply_needed && !stored;  // as PersonaManager::apply decides it
    j.kind = t.kind;
    j.from = from;
    j.started_at = static_cast<int64_t>(std::time(nullptr));
    if (on_interface) {
        j.ifname = t.ifname;
        j.netns = t.netns;
        j.netns_cookie = workload;
        j.ifindex = ifindex;
        j.previous_if = previous_if;
        // Bound already to the persona (a retried import): left as it is. A stored
        // binding of a recreated interface (another ifindex) is bound afresh.
        j.rebinds = !(previous_if && previous_if->persona == name &&
                      previous_if->ifindex == ifindex && previous_if->netns_cookie == workload);
    } else {
        j.cgroup = ref.rel_path;
        j.cgroup_id = workload;
        j.previous = previous;
        j.rebinds = !previous || previous->persona != name || previous->cgroup_path != ref.rel_path;
    }
    // Flows: re-keyed to this workload (cgroup id, or netns cookie and ifindex), ages
    // turned into this host's clock; the persona id and policy epoch are set once the
    // persona is in force here. An age beyond this host's uptime starts the flow at boot,
    // at a point within its first second that this import picks at random: undo knows its
    // own entries by created_ns, which must differ from those an earlier import wrote.
    std::vector<pbpf_ct_key> keys(b.flows.size());
    std::vector<pbpf_ct_value> values(b.flows.size());
    j.flows.resize(b.flows.size());
    {
        const uint64_t now = monotonic_ns();
        const uint64_t at_boot = 1 + std::random_device{}() % 1000000000u;
        for (size_t i = 0; i < b.flows.size(); ++i) {
            flow_to_entry(b.flows[i], workload, ifindex, 0, 0, now, &keys[i], &values[i]);
            if (values[i].created_ns == 0) values[i].created_ns = at_boot;
            j.flows[i].key = keys[i];
            j.flows[i].created_ns = values[i].created_ns;
        }
    }
    // One import at a time (the API mutex); a journal here now is one whose removal failed.
    if (std::error_code ec; std::filesystem::exists(journal_path_, ec))
        throw ApiError(500, "an earlier import's journal is still there (" + journal_path_ +
                                "): restart the agent to undo that import, or remove the "
                                "file if it was undone (nothing was changed)");
    if (auto w = write_import_journal(journal_path_, j); !w) {
        (void)remove_import_journal(journal_path_);  // renamed but not durable: not to be kept
        throw ApiError(
            500, "cannot write the import journal: " + w.error().what() + " (nothing was changed)");
    }
    lap("journal");
    failpoint("migrate-import-crash-journal");

    // 3. The changes.
    json answer = {{"persona", name},
                   {"version", version},
                   {"country", country.empty() ? json() : json(country)},
                   {"gate", gate.reason}};
    if (on_interface) {
        answer["ifname"] = t.ifname;
        answer["netns"] = t.netns;
        answer["ifindex"] = ifindex;
        answer["replaced"] = previous_if && previous_if->persona != name
                                 ? json(previous_if->persona)
                                 : json(nullptr);
    } else {
        answer["cgroup"] = ref.rel_path;
        answer["replaced"] =
            previous && previous->persona != name ? json(previous->persona) : json(nullptr);
    }
    answer["persona_created"] = apply_needed;
    answer["version_added"] = j.version_added;
    ImportProgress done;
    // Undoes what was done; the error's ending says whether all of it could be.
    auto roll_back = [&](const std::string& why) -> std::string {
        spdlog::warn("migrate import of persona {} into {} failed: {}; undoing it", vtext,
                     target_text, why);
        const auto failed = undo_import(j, done);
        if (auto r = remove_import_journal(journal_path_); !r)
            spdlog::error("migrate import: {} (imports are refused until it is gone)",
                          r.error().what());
        if (failed.empty()) return " (nothing was changed)";
        return " (undone in part: the undo of " + join(failed, ", ") +
               " failed; see the agent's log)";
    };
    try {
        if (apply_needed) {
            ApplyOptions opt;
            opt.author_uid = current_caller().uid;
            opt.only = name;
            opt.version = version;
            opt.replace_rules = false;  // the source's bind blocks name the source's workloads
            opt.message = "imported" + (from.empty() ? std::string() : " from " + from) +
                          " (bundle exported at " + std::to_string(b.exported_at) + ")";
            personas_.apply(compiled, opt);
            done.persona = true;
        }
        lap("persona");
        if (failpoint_armed("migrate-import-persona")) throw ApiError(500, "failpoint");
        failpoint("migrate-import-crash-persona");

        if (j.rebinds) {
            if (on_interface)
                if_binder_.bind_as(name, t.ifname, t.netns, "api", 0);
            else
                binder_.bind_cgroup(ref, workload, name, "api", 0);
            done.bound = true;
        }
        lap("bind");
        failpoint("migrate-import-crash-binding");

        const auto rec = must(store_.persona(name));
        if (!rec) throw ApiError(500, "persona '" + name + "' vanished during the import");
        const auto globals = must(loader_.read_globals());
        for (auto& v : values) {
            v.persona_id = rec->id;
            v.policy_epoch = globals.policy_epoch;
        }
        done.flows = true;
        write_flows(j, keys, values);
        if (failpoint_armed("migrate-import-flows"))
            throw ApiError(500, "failpoint migrate-import-flows: failing after " +
                                    std::to_string(j.flows.size()) + " flows written");
        failpoint("migrate-import-crash-flows");
        answer["flows"] = b.flows.size();
        lap("flows");
        // The commit: from here on a restart keeps the import. The repository's changes
        // are made durable first (a power cut must not keep the journal's removal and
        // lose them).
        must(store_.sync());
        if (auto r = remove_import_journal(journal_path_); !r)
            throw ApiError(500, "cannot remove the import journal: " + r.error().what());
    } catch (const ApiError& e) {
        const std::string outcome = roll_back(e.what());
        throw ApiError(e.status(), std::string(e.what()) + outcome, e.body());
    } catch (const std::exception& e) {
        const std::string outcome = roll_back(e.what());
        throw ApiError(500, std::string("internal error: ") + e.what() + outcome);
    }
    spdlog::info("migrate import: persona {} into {} ({} flows{})", vtext, target_text,
                 b.flows.size(), apply_needed ? ", persona created" : "");
    audit_note("", "",
               "persona " + name + " v" + std::to_string(version) + ", " +
                   std::to_string(b.flows.size()) + " flows");
    lap("commit");
    answer["import_ms"] = ms_since(t0);
    answer["import_phases_ms"] = std::move(phases);
    return answer;
}

void Migration::write_flows(ImportJournal& j, const std::vector<pbpf_ct_key>& keys,
                            const std::vector<pbpf_ct_value>& values) {
    const int fd = loader_.conntrack_fd();
    // Inserted where no entry is (BPF_NOEXIST: the insert also tells which are there
    // already, without a lookup per flow; batches take no such flag).
    std::vector<size_t> present;
    for (size_t i = 0; i < keys.size(); ++i) {
        if (bpf_map_update_elem(fd, &keys[i], &values[i], BPF_NOEXIST) == 0) continue;
        if (errno != EEXIST)
            throw ApiError(500, std::string("write pbpf_conntrack: ") + std::strerror(errno));
        present.push_back(i);
    }
    if (present.empty()) return;
    // Entries there already (a retried import, the workload's own traffic since the bind):
    // journaled as they are, then overwritten.
    for (size_t i : present) {
        pbpf_ct_value old{};
        if (bpf_map_lookup_elem(fd, &keys[i], &old) == 0) j.flows[i].before = old;
    }
    if (auto w = write_import_journal(journal_path_, j); !w)
        throw ApiError(500, "cannot write the import journal: " + w.error().what());
    for (size_t i : present)
        if (bpf_map_update_elem(fd, &keys[i], &values[i], BPF_ANY) != 0)
            throw ApiError(500, std::string("write pbpf_conntrack: ") + std::strerror(errno));
}

std::vector<std::string> Migration::undo_import(const ImportJournal& j,
                                                const ImportProgress& done) {
    std::vector<std::string> failed;
    auto step = [&](const char* what, const std::function<void()>& fn) {
        try {
            fn();
        } catch (const std::exception& e) {
            spdlog::error("migrate import: undo of {} ({}) failed: {}", what, j.describe(),
                          e.what());
            failed.push_back(what);
        }
    };
    if (done.flows)
        step("the flows", [&] {
            const int fd = loader_.conntrack_fd();
            for (const auto& f : j.flows) {
                pbpf_ct_value now{};
                if (f.before)
                    (void)bpf_map_update_elem(fd, &f.key, &*f.before, BPF_ANY);
                else if (bpf_map_lookup_elem(fd, &f.key, &now) == 0 &&
                         now.created_ns == f.created_ns)
                    (void)bpf_map_delete_elem(fd, &f.key);  // the import's; else not touched
            }
        });
    // The binding is put back only where the one in force is the import's (the persona,
    // bound through the API): a workload the import never reached, or that a reconcile
    // at start dropped (a recreated cgroup or interface, a reboot), is left as it is.
    if (j.rebinds && done.bound)
        step("the binding", [&] {
            if (j.kind == "interface") {
                const auto now = must(store_.if_binding(j.netns, j.ifname));
                if (!now || now->persona != j.persona || now->origin != "api") return;
                if (!j.previous_if) {
                    if_binder_.unbind_record(*now, PBPF_BIND_API);
                    return;
                }
                if (j.previous_if->persona != now->persona)
                    if_binder_.bind_as(j.previous_if->persona, j.ifname, j.netns,
                                       j.previous_if->origin, j.previous_if->rule_id);
                IfBindingRecord restored = *j.previous_if;  // its bound_at, as it was
                restored.ifindex = now->ifindex;            // the interface there now
                restored.netns_cookie = now->netns_cookie;
                must(store_.upsert_if_binding(restored));
                return;
            }
            const auto now = must(store_.binding(j.cgroup_id));
            if (!now || now->persona != j.persona || now->cgroup_path != j.cgroup ||
                now->origin != "api")
                return;
            if (!j.previous) {
                binder_.unbind_record(*now, PBPF_BIND_API);
                return;
            }
            if (j.previous->persona != now->persona) {
                const CgroupRef ref = binder_.named_cgroup(json{{"cgroup", j.cgroup}});
                binder_.bind_cgroup(ref, j.cgroup_id, j.previous->persona, j.previous->origin,
                                    j.previous->rule_id);
            }
            must(store_.upsert_binding(*j.previous));  // its bound_at, as it was
        });
    // The persona only at the version the import made (one applied since is left).
    if (j.persona_created && done.persona)
        step("the persona", [&] {
            const auto now = must(store_.persona(j.persona));
            if (now && now->version != j.version) return;
            if (now) personas_.remove(j.persona, false);
            if (j.version_added && must(store_.version(j.persona, j.version)))
                must(store_.delete_version(j.persona, j.version));
        });
    // The store's part durable before the journal goes (see Store::sync).
    step("the repository's sync", [&] { must(store_.sync()); });
    return failed;
}

std::string Migration::recover() {
    auto journal = read_import_journal(journal_path_);
    if (!journal) {
        const std::string bad = journal_path_ + ".bad";
        std::error_code ec;
        std::filesystem::rename(journal_path_, bad, ec);
        spdlog::error(
            "migrate import: {}; an interrupted import may be left in part: check the "
            "bindings and personas (the journal is kept as {})",
            journal.error().what(), ec ? journal_path_ : bad);
        return "";
    }
    if (!*journal) return "";
    const ImportJournal& j = **journal;
    spdlog::warn(
        "migrate import of {}{} (started at {}) was interrupted by a stop of the agent: "
        "undoing it",
        j.describe(), j.from.empty() ? "" : " from " + j.from, j.started_at);
    if (!j.flows_readable)
        spdlog::warn(
            "migrate import: the journal was written with another map layout: the flows it "
            "wrote are left to expire");
    const auto failed = undo_import(j, ImportProgress{true, true, true});
    if (auto r = remove_import_journal(journal_path_); !r)
        spdlog::error("migrate import: {}", r.error().what());
    if (failed.empty())
        spdlog::info("migrate import: undone: {}", j.describe());
    else
        spdlog::error("migrate import: undone in part: {} (the undo of {} failed, see above)",
                      j.describe(), join(failed, ", "));
    return j.describe();
}

json Migration::release_workload(const json& bundle) {
    const json& bound = bundle.at("binding");
    const std::string persona = bundle.at("persona").at("name").get<std::string>();
    if (bound.value("kind", std::string("cgroup")) == "interface") {
        const std::string ifname = bound.at("ifname").get<std::string>();
        const std::string netns = bound.at("netns").get<std::string>();
        const std::string what = describe_interface(ifname, netns);
        const auto binding = must(store_.if_binding(netns, ifname));
        if (!binding) return {{"released", false}, {"reason", what + " is no longer bound"}};
        if (binding->persona != persona)
            return {{"released", false},
                    {"reason", what + " was bound to persona '" + binding->persona +
                                   "' since the export (of persona '" + persona +
                                   "'): its binding is left as it is"}};
        if_binder_.unbind_record(*binding, PBPF_BIND_API);
        spdlog::info("migrate send: released {} (persona '{}') after the target's import", what,
                     persona);
        return {{"released", true}};
    }
    const std::string path = bound.at("cgroup").get<std::string>();
    CgroupRef ref;
    try {
        ref = binder_.named_cgroup(json{{"cgroup", path}});
    } catch (const ApiError& e) {
        return {{"released", false}, {"reason", std::string("cgroup ") + path + ": " + e.what()}};
    }
    const uint64_t cgroup_id = must(cgroup_id_of(ref.fs_path));
    const auto binding = must(store_.binding(cgroup_id));
    if (!binding)
        return {{"released", false}, {"reason", "cgroup " + path + " is no longer bound"}};
    if (binding->persona != persona)
        return {{"released", false},
                {"reason", "cgroup " + path + " was bound to persona '" + binding->persona +
                               "' since the export (of persona '" + persona +
                               "'): its binding is left as it is"}};
    binder_.unbind_record(*binding, PBPF_BIND_API);
    spdlog::info("migrate send: released cgroup {} (persona '{}') after the target's import", path,
                 persona);
    return {{"released", true}};
}

void Migration::add_routes(ApiServer& server) {
    server.add_route(
        "POST", "/v1/migration/export",
        [this](const httplib::Request& req) {
            json body = parse_body(req);
            return export_workload(body);
        },
        true, "migrate-export");
    server.add_route(
        "POST", "/v1/migration/import",
        [this](const httplib::Request& req) {
            json body = parse_body(req);
            return import_workload(body);
        },
        true, "migrate-import");
}

}  // namespace pbpf::agent
