// Persona manager: apply / remove / show, generation flips of pbpf_policies.
#include "agent/persona_manager.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cctype>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/access.h"
#include "agent/api_error.h"
#include "agent/failpoint.h"
#include "agent/if_binder.h"
#include "agent/persona_diff.h"
#include "maps/abi/limits.h"
#include "maps/policy_map.h"
#include "pdl-compiler/compiler.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

const char* action_name(pdl::ir::Action a) { return a == pdl::ir::Action::Deny ? "deny" : "allow"; }

std::string map_name(const std::string& persona) {
    // BPF object names: at most 15 chars of [A-Za-z0-9_.].
    std::string n = "pp_";
    for (char c : persona) {
        if (n.size() >= 15) break;
        n.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '.' ? c : '_');
    }
    return n;
}

// A complete, not yet enforced policy map holding `image`, of at most `limit` entries.
Result<Fd> build_map(const PersonaImage& image, uint32_t limit) {
    if (auto r = check_policy_fits(image, limit); !r)
        return Error{E2BIG, r.error().message + " ([limits] policy_entries in the agent config)"};
    return build_policy_map(image, limit, map_name(image.name).c_str());
}

int status_for(const Error& e) {
    switch (e.err) {
        case E2BIG:
            return 422;  // the persona needs more entries than one policy map holds
        case ENOSPC:
            return 507;  // Insufficient Storage: the kernel could not take it
        case EINVAL:
            return 400;
        default:
            return 500;
    }
}

json counters_json(const pbpf_dir_counters& c) {
    return {{"allowed_packets", c.allowed_packets}, {"allowed_bytes", c.allowed_bytes},
            {"denied_packets", c.denied_packets},   {"denied_bytes", c.denied_bytes},
            {"audited_packets", c.audited_packets}, {"audited_bytes", c.audited_bytes}};
}

json summary(const PersonaRecord& p, size_t bindings) {
    return {{"name", p.name},
            {"version", p.version},
            {"owner_uid", p.owner_uid},
            {"owner", describe_uid(p.owner_uid)},
            {"id", p.id},
            {"mode", p.mode},
            {"description", p.description},
            {"defaults", {{"ingress", p.default_ingress}, {"egress", p.default_egress}}},
            {"rules", p.rule_count},
            {"entries", p.entries},
            {"bindings", bindings},
            {"filename", p.filename},
            {"applied_at", p.applied_at},
            {"updated_at", p.updated_at}};
}

}  // namespace

Result<std::optional<uint32_t>> PersonaManager::slot_map_id(uint32_t id) {
    __u32 key = id, inner = 0;
    if (bpf_map_lookup_elem(loader_.policies_fd(), &key, &inner) == 0)
        return std::optional<uint32_t>(inner);
    if (errno == ENOENT) return std::optional<uint32_t>();
    return sys_error("read pbpf_policies[" + std::to_string(id) + "]");
}

Result<void> PersonaManager::zero_counters(uint32_t id) {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return sys_error("count possible CPUs", ncpu);
    std::vector<pbpf_counters> zero(static_cast<size_t>(ncpu));
    __u32 key = id;
    if (bpf_map_update_elem(loader_.counters_fd(), &key, zero.data(), BPF_ANY) != 0)
        return sys_error("zero pbpf_counters[" + std::to_string(id) + "]");
    return {};
}

bool PersonaManager::slot_matches_store(const PersonaRecord& rec, uint32_t inner_map_id) {
    Fd inner(bpf_map_get_fd_by_id(inner_map_id));
    if (!inner.valid()) return false;
    auto entries = read_policy(inner.get());
    if (!entries) return false;
    try {
        return persona_image_from_json(json::parse(rec.image_json)).entries == *entries;
    } catch (const std::exception&) {
        return false;
    }
}

Result<PersonaImage> PersonaManager::image_of(const PersonaRecord& rec) {
    // Re-lower from source (the truth); fall back to the stored image if the source no
    // longer compiles with this agent's compiler.
    std::vector<pdl::Source> imports;
    try {
        for (const auto& imp : json::parse(rec.imports_json))
            imports.push_back(
                {imp.at("filename").get<std::string>(), imp.at("source").get<std::string>()});
    } catch (const std::exception&) {
        imports.clear();  // then the source does not compile, and the stored image is used
    }
    pdl::CompileOptions options;
    options.loader = pdl::map_loader(std::move(imports));
    auto out = pdl::compile(pdl::Source{rec.filename, rec.source}, options);
    if (out.ok()) {
        for (const auto& p : out.personas)
            if (p.name == rec.name) return pdl::lower(p);
    }
    spdlog::warn("persona '{}': stored source no longer compiles; using the stored image",
                 rec.name);
    try {
        return persona_image_from_json(json::parse(rec.image_json));
    } catch (const std::exception& e) {
        return Error{EINVAL, "persona '" + rec.name + "': stored image unreadable: " + e.what()};
    }
}

CompiledFile PersonaManager::compile_file(const std::string& source, const std::string& filename,
                                          std::vector<pdl::Source> imports) {
    pdl::CompileOptions options;
    options.loader = pdl::map_loader(imports);
    auto out = pdl::compile(pdl::Source{filename, source}, options);
    if (!out.ok())
        throw ApiError(400, "PDL errors in " + filename, {{"diagnostics", out.diagnostics}});
    if (out.personas.empty())
        throw ApiError(400, "no persona in " + filename, {{"diagnostics", out.diagnostics}});
    // Keep only what the file really imports: that is what a restart recompiles from.
    CompiledFile f;
    f.source = source;
    f.filename = filename;
    f.imports = std::move(out.imports);
    f.personas = std::move(out.personas);
    f.diagnostics = std::move(out.diagnostics);
    f.warnings = out.warnings;
    f.binds = std::move(out.binds);
    for (const auto& p : f.personas) f.images.push_back(pdl::lower(p));
    return f;
}

json PersonaManager::apply(const std::string& source, const std::string& filename) {
    return apply(compile_file(source, filename));
}

json PersonaManager::apply(const CompiledFile& file, const ApplyOptions& opt) {
    const std::string& source = file.source;
    const std::string& filename = file.filename;
    struct Pending {
        PersonaRecord rec;
        bool is_new = false;
        bool changed = false;
        bool new_version = false;
        bool version_added = false;  // a row was added to persona_versions
        Fd map;                      // set when the slot must be flipped
        std::optional<uint32_t> old_inner_id;
        Fd old_inner;  // keeps the previous generation alive until the apply ends
        bool flipped = false;
    };
    std::vector<Pending> pending;
    std::set<std::string> seen;
    int64_t now = static_cast<int64_t>(std::time(nullptr));

    // 0. The file's bind blocks become the binding rules (origin "pdl") of the personas
    // they name, replacing the rules earlier applies stored for those personas and for
    // every persona the file defines (a bind block deleted from the file goes away).
    auto selected = [&](const std::string& name) { return !opt.only || *opt.only == name; };
    if (opt.only) {
        bool found = false;
        for (const auto& p : file.personas) found = found || p.name == *opt.only;
        if (!found) throw ApiError(400, "no persona '" + *opt.only + "' in " + file.filename);
    }
    std::map<std::string, std::vector<BindRule>> pdl_rules;
    for (const auto& p : file.personas)
        if (selected(p.name)) pdl_rules[p.name];
    for (const auto& b : file.binds) {
        if (!selected(b.persona)) continue;
        auto where = [&]() {
            return b.loc.file + ":" + std::to_string(b.loc.line) + ":" + std::to_string(b.loc.col);
        };
        if (!pdl_rules.count(b.persona) && !must(store_.persona(b.persona)))
            throw ApiError(400, where() + ": bind " + b.persona + ": no persona '" + b.persona +
                                    "' in this file or the repository");
        auto add = [&](RuleKind kind, const std::vector<std::string>& patterns) {
            for (const auto& pattern : patterns) {
                BindRule r;
                r.persona = b.persona;
                r.kind = kind;
                r.pattern = pattern;
                r.origin = "pdl";
                r.created_by = "pdl " + filename;
                r.created_at = static_cast<int64_t>(std::time(nullptr));
                if (auto why = validate_rule(r))
                    throw ApiError(400, where() + ": bind " + b.persona + ": " + *why);
                pdl_rules[b.persona].push_back(std::move(r));
            }
        };
        add(RuleKind::Cgroup, b.cgroups);
        add(RuleKind::User, b.users);
        add(RuleKind::Group, b.groups);
        add(RuleKind::Interface, b.interfaces);
    }

    // 1. Build everything that can fail before touching anything enforced.
    for (size_t i = 0; i < file.personas.size(); ++i) {
        const pdl::ir::Persona& p = file.personas[i];
        if (!seen.insert(p.name).second)
            throw ApiError(400, "persona '" + p.name + "' defined twice in " + filename);
        if (!selected(p.name)) continue;
        const PersonaImage& image = file.images[i];
        // The cheap refusal first: no serialising of an image that cannot be enforced.
        if (auto fits = check_policy_fits(image, loader_.limits().policy_entries); !fits)
            throw ApiError(422,
                           fits.error().message + " ([limits] policy_entries in the agent config)");
        std::string image_json = to_json(image).dump();
        auto old = must(store_.persona(p.name));

        Pending pd;
        PersonaRecord& r = pd.rec;
        r.name = p.name;
        r.filename = filename;
        r.source = source;
        json imports = json::array();
        for (const auto& imp : file.imports)
            imports.push_back({{"filename", imp.filename}, {"source", imp.text}});
        r.imports_json = imports.dump();
        r.description = p.description;
        r.mode = p.mode == pdl::ir::Mode::Audit ? "audit" : "enforce";
        r.default_ingress = action_name(p.default_ingress);
        r.default_egress = action_name(p.default_egress);
        json rules = json::array();
        for (const auto& rule : p.rules)
            rules.push_back(rule.text.empty() ? pdl::describe_rule(rule) : rule.text);
        r.rules_json = rules.dump();
        r.image_json = image_json;
        r.entries = static_cast<uint32_t>(image.entries.size());
        r.rule_count = static_cast<uint32_t>(p.rules.size());
        r.updated_at = now;
        pd.is_new = !old.has_value();
        bool image_changed = pd.is_new || old->image_json != image_json;
        pd.changed =
            image_changed || old->description != r.description || old->rules_json != r.rules_json;
        if (old) {
            r.id = old->id;
            r.created_at = old->created_at;
            r.applied_at = pd.changed ? now : old->applied_at;
            r.owner_uid = old->owner_uid;
            r.version = old->version;
        } else {
            r.created_at = now;
            r.applied_at = now;
            r.owner_uid = opt.owner_uid.value_or(opt.author_uid);
        }
        // A version per change of what the persona means; identical content (even from
        // a reformatted file) is no new version.
        pd.new_version = pd.changed || r.version == 0;
        bool slot_empty = old && !must(slot_map_id(old->id)).has_value();
        if (image_changed || slot_empty) {
            auto map = build_map(image, loader_.limits().policy_entries);
            if (!map) {
                const Error& e = map.error();
                if (e.err == E2BIG) throw ApiError(422, e.message);  // names the persona
                throw ApiError(status_for(e), "persona '" + p.name + "': " + e.what());
            }
            pd.map = std::move(*map);
        }
        pending.push_back(std::move(pd));
    }

    failpoint("apply-built");

    // 2. Ids for new personas: the smallest free ones.
    {
        std::set<uint32_t> used;
        for (const auto& rec : must(store_.personas())) used.insert(rec.id);
        uint32_t next = 1;
        for (auto& pd : pending) {
            if (!pd.is_new) continue;
            while (next < PBPF_PERSONA_FAIL_CLOSED && used.count(next)) ++next;
            if (next >= PBPF_PERSONA_FAIL_CLOSED)
                throw ApiError(507, "persona table full (" +
                                        std::to_string(PBPF_PERSONA_FAIL_CLOSED - 1) +
                                        " personas)");
            pd.rec.id = next;
            used.insert(next);
        }
    }

    // 3. Store and flip in one transaction; undo the flips if anything fails.
    bool rules_changed = false;
    auto txn = must(store_.begin());
    auto unflip = [&]() {
        for (auto& pd : pending) {
            if (!pd.flipped) continue;
            __u32 key = pd.rec.id;
            int rc;
            if (pd.old_inner.valid()) {
                int fd = pd.old_inner.get();
                rc = bpf_map_update_elem(loader_.policies_fd(), &key, &fd, BPF_ANY);
            } else {
                rc = bpf_map_delete_elem(loader_.policies_fd(), &key);
            }
            if (rc != 0)
                spdlog::error("apply rollback: restoring pbpf_policies[{}] ('{}') failed: {}",
                              pd.rec.id, pd.rec.name, std::strerror(errno));
            pd.flipped = false;
        }
        // Flows decided while the new maps were in place decide again.
        if (auto e = loader_.bump_policy_epoch(); !e)
            spdlog::error("apply rollback: bump policy epoch: {}", e.error().what());
    };
    try {
        for (auto& pd : pending) {
            must(store_.upsert_persona(pd.rec));
            if (!pd.new_version) continue;
            PersonaVersion v;
            v.persona = pd.rec.name;
            v.filename = pd.rec.filename;
            v.source = pd.rec.source;
            v.imports_json = pd.rec.imports_json;
            v.image_json = pd.rec.image_json;
            v.rules_json = pd.rec.rules_json;
            v.description = pd.rec.description;
            v.mode = pd.rec.mode;
            v.default_ingress = pd.rec.default_ingress;
            v.default_egress = pd.rec.default_egress;
            v.author_uid = opt.author_uid;
            v.owner_uid = pd.rec.owner_uid;
            v.created_at = now;
            v.message = opt.message;
            if (!opt.version) {
                pd.rec.version = must(store_.add_version(v));
                pd.version_added = true;
                continue;
            }
            v.version = *opt.version;
            if (auto had = must(store_.version(v.persona, v.version))) {
                if (had->source != v.source || had->imports_json != v.imports_json)
                    throw ApiError(409, "persona '" + v.persona + "' version " +
                                            std::to_string(v.version) +
                                            " is stored here with another source");
            } else {
                must(store_.insert_version(v));
                pd.version_added = true;
            }
            pd.rec.version = v.version;
        }
        if (opt.replace_rules)
            for (const auto& [persona, rules] : pdl_rules)
                rules_changed =
                    must(store_.replace_bind_rules(persona, "pdl", rules)) || rules_changed;
        failpoint("apply-stored");
        for (auto& pd : pending) {
            if (!pd.map.valid()) continue;
            pd.old_inner_id = must(slot_map_id(pd.rec.id));
            if (pd.old_inner_id) {
                int fd = bpf_map_get_fd_by_id(*pd.old_inner_id);
                if (fd < 0)
                    throw ApiError(500, "open previous policy of '" + pd.rec.name +
                                            "': " + std::strerror(errno));
                pd.old_inner.reset(fd);
            }
            if (pd.is_new) must(zero_counters(pd.rec.id));
            __u32 key = pd.rec.id;
            int fd = pd.map.get();
            if (bpf_map_update_elem(loader_.policies_fd(), &key, &fd, BPF_ANY) != 0)
                throw ApiError(500, "flip pbpf_policies[" + std::to_string(pd.rec.id) + "] to '" +
                                        pd.rec.name + "': " + std::strerror(errno));
            pd.flipped = true;
        }
        // Tracked flows decide again under the new maps (after the flips: a flow decided
        // between flip and bump by the old rules is decided again too).
        bool any_flipped = false;
        for (const auto& pd : pending) any_flipped = any_flipped || pd.flipped;
        if (any_flipped) must(loader_.bump_policy_epoch());
        failpoint("apply-flipped");
        must(txn->commit());
        failpoint("apply-committed");
    } catch (...) {
        unflip();
        txn->rollback();
        throw;
    }

    json applied = json::array();
    for (const auto& pd : pending) {
        spdlog::info("applied persona '{}' (id {}, {} entries, version {}){} by {}", pd.rec.name,
                     pd.rec.id, pd.rec.entries, pd.rec.version, pd.changed ? "" : ", unchanged",
                     describe_uid(opt.author_uid));
        json entry = {{"name", pd.rec.name},
                      {"id", pd.rec.id},
                      {"entries", pd.rec.entries},
                      {"changed", pd.changed},
                      {"created", pd.is_new},
                      {"version", pd.rec.version},
                      {"version_added", pd.version_added}};
        for (const auto& p : file.personas)
            if (p.name == pd.rec.name)
                entry["not_enforced"] = unenforced_sections(p, shaping_, uplinks_);
        applied.push_back(std::move(entry));
    }
    json res = {{"applied", applied}};
    size_t bind_rules = 0;
    for (const auto& [persona, rules] : pdl_rules) bind_rules += rules.size();
    if (!opt.replace_rules) {
        if (bind_rules > 0) res["bind_rules_not_applied"] = bind_rules;
    } else if (bind_rules > 0 || rules_changed) {
        res["bind_rules"] = bind_rules;
    }
    if (file.warnings > 0) res["diagnostics"] = file.diagnostics;
    bool any_changed = false;
    for (const auto& pd : pending) any_changed = any_changed || pd.changed;
    if (any_changed) notify_changed(&res);
    return res;
}

std::vector<std::string> unenforced_sections(const pdl::ir::Persona& p, bool shaping,
                                             bool uplinks) {
    // This release enforces the security rules (mode, defaults, allow/deny), sovereignty,
    // the ingress rate and the latency target (TCP RTT, sampled wherever the sockets are) always,
    // and, where the agent has egress interfaces to shape, the egress rate and priority. Of
    // topology: the route always (policy routing by the persona mark), the hop limit of
    // interface-bound workloads always (at their interface) and of cgroup-bound ones on
    // the [topology] egress interfaces, next hops on those interfaces.
    std::vector<std::string> out;
    for (auto& section : pdl::configured_sections(p)) {
        if (section == "sovereignty") continue;
        if (section == "topology") {
            const auto& t = p.topology;
            if (!t.next_hops.empty() && !uplinks) out.push_back("topology next-hops");
            if (t.max_hops && !uplinks) out.push_back("topology max-hops (cgroup workloads)");
            continue;
        }
        if (section != "qos") {
            out.push_back(std::move(section));
            continue;
        }
        const auto& q = p.qos;
        if (q.egress && !shaping) out.push_back("qos egress rate");
        if (q.priority && !shaping) out.push_back("qos priority");
    }
    return out;
}

Result<std::vector<PersonaQosInput>> PersonaManager::qos_inputs() {
    auto recs = store_.personas();
    if (!recs) return recs.error();
    std::vector<PersonaQosInput> out;
    for (const auto& rec : *recs) {
        PersonaQosInput in;
        in.id = rec.id;
        in.name = rec.name;
        try {
            in.settings = persona_image_from_json(json::parse(rec.image_json)).settings;
        } catch (const std::exception& e) {
            spdlog::error("persona '{}': stored image unreadable ({}); no QoS", rec.name, e.what());
        }
        out.push_back(std::move(in));
    }
    return out;
}

void PersonaManager::notify_changed(json* answer) {
    if (!on_changed_) return;
    if (auto r = on_changed_(); !r) {
        spdlog::error("{}", r.error().what());
        if (answer != nullptr) (*answer)["warnings"].push_back(r.error().message);
    }
}

json PersonaManager::remove(const std::string& name, bool force) {
    auto rec = must(store_.persona(name));
    if (!rec) throw ApiError(404, "no persona '" + name + "'");
    auto binds = must(store_.bindings_of(name));
    auto if_binds = must(store_.if_bindings_of(name));
    const size_t bound = binds.size() + if_binds.size();
    if (bound > 0 && !force) {
        std::vector<std::string> names;
        for (const auto& b : binds) names.push_back(b.cgroup_path);
        for (const auto& b : if_binds)
            names.push_back(b.netns.empty() ? b.ifname : b.ifname + "@" + b.netns);
        std::string list;
        for (size_t i = 0; i < names.size() && i < 3; ++i) list += (i ? ", " : "") + names[i];
        if (names.size() > 3) list += ", ...";
        throw ApiError(409,
                       "persona '" + name + "' is bound to " + std::to_string(bound) +
                           (bound == 1 ? " workload (" : " workloads (") + list +
                           "); unbind them or use --force",
                       {{"bindings", bound}});
    }
    auto txn = must(store_.begin());
    for (const auto& b : binds) must(store_.delete_binding(b.cgroup_id));
    for (const auto& b : if_binds) must(store_.delete_if_binding(b.netns, b.ifname));
    size_t rules_removed = 0;
    for (const auto& r : must(store_.bind_rules())) {
        if (r.persona != name) continue;
        must(store_.delete_bind_rule(r.id));
        ++rules_removed;
    }
    must(store_.delete_persona(name));

    // Kernel: bindings first and the epoch bump (no cached resolution keeps pointing at
    // the id), then the policy slot, then the counters the id will start from next time.
    json unbound = json::array();
    for (const auto& b : binds) {
        __u64 key = b.cgroup_id;
        if (bpf_map_delete_elem(loader_.bindings_fd(), &key) != 0 && errno != ENOENT)
            throw ApiError(500, "unbind " + b.cgroup_path + ": " + std::strerror(errno));
        loader_.slots().release({b.cgroup_id, 0});
        unbound.push_back(b.cgroup_path);
    }
    if (!binds.empty()) must(loader_.bump_epoch());
    for (const auto& b : if_binds) {
        must(release_interface(loader_, b.netns_cookie, b.ifindex));
        unbound.push_back("interface " + b.ifname + (b.netns.empty() ? "" : "@" + b.netns));
    }
    __u32 key = rec->id;
    if (bpf_map_delete_elem(loader_.policies_fd(), &key) != 0 && errno != ENOENT)
        throw ApiError(
            500, "clear pbpf_policies[" + std::to_string(rec->id) + "]: " + std::strerror(errno));
    must(loader_.bump_policy_epoch());
    must(zero_counters(rec->id));
    must(txn->commit());
    spdlog::info("removed persona '{}' (id {}){}", name, rec->id,
                 bound == 0 ? "" : fmt::format(", unbound {} workloads", bound));
    if (on_unbound_) {
        for (const auto& b : binds) on_unbound_(b.cgroup_id, 0, b.cgroup_path, rec->id, name);
        for (const auto& b : if_binds)
            on_unbound_(b.netns_cookie, b.ifindex,
                        b.netns.empty() ? b.ifname : b.ifname + "@" + b.netns, rec->id, name);
    }
    json res = {
        {"removed", name}, {"id", rec->id}, {"unbound", unbound}, {"rules_removed", rules_removed}};
    notify_changed(&res);
    return res;
}

json PersonaManager::list() {
    json arr = json::array();
    std::map<std::string, size_t> counts;
    for (const auto& b : must(store_.bindings())) counts[b.persona]++;
    for (const auto& b : must(store_.if_bindings())) counts[b.persona]++;
    for (const auto& p : must(store_.personas())) arr.push_back(summary(p, counts[p.name]));
    return arr;
}

json PersonaManager::show(const std::string& name) {
    auto rec = must(store_.persona(name));
    if (!rec) throw ApiError(404, "no persona '" + name + "'");
    auto binds = must(store_.bindings_of(name));
    auto if_binds = must(store_.if_bindings_of(name));
    json j = summary(*rec, binds.size() + if_binds.size());
    j["rule_count"] = rec->rule_count;
    j["rules"] = json::parse(rec->rules_json);
    j["source"] = rec->source;
    j["image"] = json::parse(rec->image_json);
    json cg = json::array();
    for (const auto& b : binds) cg.push_back(b.cgroup_path);
    j["bound_cgroups"] = cg;
    json ifs = json::array();
    for (const auto& b : if_binds) ifs.push_back({{"ifname", b.ifname}, {"netns", b.netns}});
    j["bound_interfaces"] = ifs;
    auto slot = must(slot_map_id(rec->id));
    j["enforced"] = slot.has_value();
    return j;
}

PersonaVersion PersonaManager::version_of(const std::string& name, int64_t version) {
    auto v = must(store_.version(name, version));
    if (!v) {
        auto all = must(store_.versions(name));
        if (all.empty()) throw ApiError(404, "no persona '" + name + "' in the repository");
        throw ApiError(404, "persona '" + name + "' has no version " + std::to_string(version) +
                                " (versions 1 to " + std::to_string(all.back().version) + ")");
    }
    return *v;
}

PersonaVersion PersonaManager::current_version(const std::string& name) {
    auto rec = must(store_.persona(name));
    if (!rec) throw ApiError(404, "no persona '" + name + "' in the repository");
    return version_of(name, rec->version);
}

json PersonaManager::history(const std::string& name) {
    auto all = must(store_.versions(name));
    if (all.empty()) throw ApiError(404, "no persona '" + name + "' in the repository");
    auto rec = must(store_.persona(name));
    json arr = json::array();
    for (const auto& v : all) {
        json rules = json::parse(v.rules_json, nullptr, false);
        arr.push_back({{"version", v.version},
                       {"author_uid", v.author_uid},
                       {"author", describe_uid(v.author_uid)},
                       {"created_at", v.created_at},
                       {"message", v.message},
                       {"filename", v.filename},
                       {"mode", v.mode},
                       {"rules", rules.is_array() ? rules.size() : 0},
                       {"current", rec.has_value() && rec->version == v.version}});
    }
    return arr;
}

json PersonaManager::show_version(const std::string& name, int64_t version) {
    PersonaVersion v = version_of(name, version);
    json rules = json::parse(v.rules_json, nullptr, false);
    json image = json::parse(v.image_json, nullptr, false);
    return {{"name", v.persona},
            {"version", v.version},
            {"filename", v.filename},
            {"source", v.source},
            {"description", v.description},
            {"mode", v.mode},
            {"defaults", {{"ingress", v.default_ingress}, {"egress", v.default_egress}}},
            {"rules", rules.is_discarded() ? json::array() : rules},
            {"image", image.is_discarded() ? json() : image},
            {"author_uid", v.author_uid},
            {"author", describe_uid(v.author_uid)},
            {"created_at", v.created_at},
            {"message", v.message}};
}

json PersonaManager::diff(const std::string& name, int64_t from, int64_t to) {
    PersonaVersion a = version_of(name, from), b = version_of(name, to);
    return {
        {"name", name},
        {"from", from},
        {"to", to},
        {"changes", version_changes(a, b)},
        {"source_diff", unified_diff(a.source, b.source,
                                     name + " v" + std::to_string(from) + " (" + a.filename + ")",
                                     name + " v" + std::to_string(to) + " (" + b.filename + ")")}};
}

json PersonaManager::set_owner(const std::string& name, int64_t uid) {
    auto rec = must(store_.persona(name));
    if (!rec) throw ApiError(404, "no persona '" + name + "'");
    must(store_.set_owner(name, uid));
    spdlog::info("persona '{}' is now owned by {}", name, describe_uid(uid));
    return {{"name", name}, {"owner_uid", uid}, {"owner", describe_uid(uid)}};
}

json PersonaManager::stats(const std::optional<std::string>& persona) {
    std::vector<std::pair<std::string, uint32_t>> rows;
    if (persona) {
        auto rec = must(store_.persona(*persona));
        if (!rec) throw ApiError(404, "no persona '" + *persona + "'");
        rows.emplace_back(rec->name, rec->id);
    } else {
        rows.emplace_back("(unbound)", 0);
        // What fail-closed subtrees dropped before their workloads' bindings landed.
        rows.emplace_back("(fail-closed)", PBPF_PERSONA_FAIL_CLOSED);
        for (const auto& p : must(store_.personas())) rows.emplace_back(p.name, p.id);
    }
    json arr = json::array();
    for (const auto& [name, id] : rows) {
        auto c = must(read_counters(loader_.counters_fd(), id));
        arr.push_back({{"persona", name},
                       {"id", id},
                       {"ingress", counters_json(c.dir[PBPF_DIR_INGRESS])},
                       {"egress", counters_json(c.dir[PBPF_DIR_EGRESS])}});
    }
    return arr;
}

Result<void> PersonaManager::reconcile() {
    auto recs = store_.personas();
    if (!recs) return recs.error();
    std::set<uint32_t> ids;
    size_t written = 0;
    for (const auto& rec : *recs) {
        ids.insert(rec.id);
        auto slot = slot_map_id(rec.id);
        if (!slot) return slot.error();
        if (slot->has_value() && !loader_.maps_fresh()) {
            // An agent killed between a flip and its commit leaves the kernel ahead of the
            // store; the store is the truth, so a slot that differs from it is rewritten.
            if (slot_matches_store(rec, **slot)) continue;
            spdlog::warn("persona '{}': enforced policy differs from the stored one; rewriting",
                         rec.name);
        }
        auto image = image_of(rec);
        if (!image) {
            spdlog::error("persona '{}' cannot be restored: {}", rec.name, image.error().what());
            continue;
        }
        if (to_json(*image).dump() != rec.image_json)
            spdlog::warn("persona '{}': this agent lowers it differently than when it was applied",
                         rec.name);
        auto map = build_map(*image, loader_.limits().policy_entries);
        if (!map) {
            spdlog::error("persona '{}' cannot be restored: {}", rec.name, map.error().what());
            continue;
        }
        __u32 key = rec.id;
        int fd = map->get();
        if (bpf_map_update_elem(loader_.policies_fd(), &key, &fd, BPF_ANY) != 0)
            return sys_error("restore pbpf_policies[" + std::to_string(rec.id) + "] ('" + rec.name +
                             "')");
        ++written;
    }
    size_t cleared = 0;
    for (uint32_t id = 1; id < PBPF_MAX_PERSONAS; ++id) {
        if (ids.count(id)) continue;
        auto slot = slot_map_id(id);
        if (!slot) return slot.error();
        if (!slot->has_value()) continue;
        __u32 key = id;
        if (bpf_map_delete_elem(loader_.policies_fd(), &key) != 0 && errno != ENOENT)
            return sys_error("clear stale pbpf_policies[" + std::to_string(id) + "]");
        (void)zero_counters(id);
        ++cleared;
    }
    if (written + cleared > 0) {
        if (auto e = loader_.bump_policy_epoch(); !e) return e.error();
    }
    spdlog::info("reconciled personas: {} stored, {} written, {} stale slots cleared", recs->size(),
                 written, cleared);
    return {};
}

}  // namespace pbpf::agent
