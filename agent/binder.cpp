// Binder: writes pbpf_bindings and bumps the binding epoch.
#include "agent/binder.h"

#include <bpf/bpf.h>

#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "maps/abi/binding.h"
#include "maps/abi/events.h"
#include "maps/abi/limits.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

// 400 for what the caller got wrong (ESRCH dead pid, ENOENT missing cgroup, EINVAL
// outside the subtree), 500 otherwise.
[[noreturn]] void throw_ref_error(const Error& e) {
    bool user = e.err == ESRCH || e.err == ENOENT || e.err == EINVAL || e.err == ENOTDIR;
    throw ApiError(user ? 400 : 500, e.message);
}

// A binding of its own gets (or keeps) a counter slot; the fail-closed persona of a
// subtree's root is counted under that persona only.
Result<void> write_kernel_binding(const Loader& loader, uint64_t cgroup_id, uint32_t persona_id) {
    const int map_fd = loader.bindings_fd();
    __u64 key = cgroup_id;
    pbpf_binding b{};
    b.persona_id = persona_id;
    if (persona_id == PBPF_PERSONA_FAIL_CLOSED)
        loader.slots().release({cgroup_id, 0});
    else
        b.counter_slot = loader.slots().acquire({cgroup_id, 0});
    if (bpf_map_update_elem(map_fd, &key, &b, BPF_ANY) != 0)
        return sys_error("write pbpf_bindings[" + std::to_string(cgroup_id) + "]");
    return {};
}

Result<void> delete_kernel_binding(const Loader& loader, uint64_t cgroup_id) {
    __u64 key = cgroup_id;
    if (bpf_map_delete_elem(loader.bindings_fd(), &key) != 0 && errno != ENOENT)
        return sys_error("delete pbpf_bindings[" + std::to_string(cgroup_id) + "]");
    loader.slots().release({cgroup_id, 0});
    return {};
}

pid_t parse_pid(const std::string& text) {
    try {
        size_t used = 0;
        long v = std::stol(text, &used);
        if (used == text.size() && v > 0 && v <= INT32_MAX) return static_cast<pid_t>(v);
    } catch (...) {
    }
    throw ApiError(400, "bad pid '" + text + "'");
}

json binding_json(const BindingRecord& b) {
    json j = {{"cgroup", b.cgroup_path},
              {"cgroup_id", b.cgroup_id},
              {"persona", b.persona},
              {"bound_at", b.bound_at},
              {"origin", b.origin}};
    if (b.origin == "rule") j["rule"] = b.rule_id;
    return j;
}

}  // namespace

CgroupRef Binder::cgroup_of_pid(const std::string& pid_text) {
    pid_t pid = parse_pid(pid_text);
    auto ref = tree_.of_pid(pid);
    if (!ref) throw_ref_error(ref.error());
    return *ref;
}

CgroupRef Binder::named_cgroup(const json& body) {
    if (body.contains("cgroup")) {
        if (!body["cgroup"].is_string()) throw ApiError(400, "\"cgroup\" must be a path string");
        auto r = tree_.resolve_existing(body["cgroup"].get<std::string>());
        if (!r) throw_ref_error(r.error());
        return *r;
    }
    if (!body.contains("pid")) throw ApiError(400, "binding needs \"cgroup\" or \"pid\"");
    const json& p = body["pid"];
    std::string text;
    if (p.is_number_integer())
        text = std::to_string(p.get<int64_t>());
    else if (p.is_string())
        text = p.get<std::string>();
    else
        throw ApiError(400, "\"pid\" must be a process id");
    return cgroup_of_pid(text);
}

json Binder::bind(const json& body) {
    if (!body.is_object()) throw ApiError(400, "binding must be a JSON object");
    if (!body.contains("persona") || !body["persona"].is_string())
        throw ApiError(400, "binding needs \"persona\" (a persona name)");
    bool has_cg = body.contains("cgroup"), has_pid = body.contains("pid");
    if (has_cg == has_pid)
        throw ApiError(400, "binding needs exactly one of \"cgroup\" or \"pid\"");
    std::string persona = body["persona"].get<std::string>();

    CgroupRef ref = named_cgroup(body);
    auto id = cgroup_id_of(ref.fs_path);
    if (!id) throw_ref_error(id.error());
    auto previous = bind_cgroup(ref, *id, persona, "api", 0);
    json j = binding_json(must(store_.binding(*id)).value());
    j["replaced"] = previous ? json(previous->persona) : json(nullptr);
    return j;
}

std::optional<BindingRecord> Binder::bind_cgroup(const CgroupRef& ref, uint64_t cgroup_id,
                                                 const std::string& persona,
                                                 const std::string& origin, int64_t rule_id) {
    return bind_many({{ref, cgroup_id, persona, origin, rule_id}}).front();
}

std::vector<std::optional<BindingRecord>> Binder::bind_many(const std::vector<BindIntent>& todo) {
    // 1. Everything that can refuse, before anything changes.
    std::map<std::string, uint32_t> persona_ids;
    std::vector<std::optional<BindingRecord>> previous;
    size_t added = 0;
    for (const auto& t : todo) {
        if (!persona_ids.count(t.persona)) {
            auto rec = must(store_.persona(t.persona));
            if (!rec) throw ApiError(404, "no persona '" + t.persona + "'");
            persona_ids[t.persona] = rec->id;
        }
        previous.push_back(must(store_.binding(t.cgroup_id)));
        added += previous.back() ? 0 : 1;
    }
    if (added > 0) {
        const size_t used = must(store_.binding_count()) + fail_closed_.size();
        const uint32_t limit = loader_.limits().bindings;
        if (used + added > limit)
            throw ApiError(507, "binding table full: " + std::to_string(used) + " of " +
                                    std::to_string(limit) +
                                    " cgroup bindings in use ([limits] bindings in the agent "
                                    "config; takes effect when the maps are created anew)");
    }
    // 2. The kernel first (what enforcement needs, as early as possible), one epoch bump,
    // then the store in one transaction; any failure puts the kernel back.
    size_t written = 0;
    auto restore = [&]() {
        for (size_t i = 0; i < written; ++i) {
            const auto& prev = previous[i];
            if (prev) {
                auto old = store_.persona(prev->persona);
                if (old && old->has_value())
                    (void)write_kernel_binding(loader_, todo[i].cgroup_id, (*old)->id);
            } else {
                (void)restore_uncovered(todo[i].cgroup_id);
            }
        }
        (void)loader_.bump_epoch();
    };
    try {
        for (const auto& t : todo) {
            must(write_kernel_binding(loader_, t.cgroup_id, persona_ids[t.persona]));
            ++written;
        }
        must(loader_.bump_epoch());
        const auto now = static_cast<int64_t>(std::time(nullptr));
        auto txn = must(store_.begin());
        for (const auto& t : todo)
            must(store_.upsert_binding(
                {t.cgroup_id, t.ref.rel_path, t.persona, now, t.origin, t.rule_id}));
        must(txn->commit());
    } catch (...) {
        restore();
        throw;
    }
    for (size_t i = 0; i < todo.size(); ++i) {
        const auto& t = todo[i];
        spdlog::info("bound cgroup {} (id {}) to persona '{}' ({}){}", t.ref.rel_path, t.cgroup_id,
                     t.persona, t.origin == "rule" ? "rule " + std::to_string(t.rule_id) : t.origin,
                     previous[i] ? " (was '" + previous[i]->persona + "')" : std::string());
        if (on_event_)
            on_event_(PBPF_EV_BIND, t.origin == "rule" ? PBPF_BIND_RULE : PBPF_BIND_API,
                      t.cgroup_id, t.ref.rel_path, persona_ids[t.persona], t.rule_id);
    }
    return previous;
}

void Binder::unbind_record(const BindingRecord& found, uint8_t trigger) {
    auto txn = must(store_.begin());
    must(store_.delete_binding(found.cgroup_id));
    must(restore_uncovered(found.cgroup_id));
    must(loader_.bump_epoch());
    if (auto c = txn->commit(); !c) {
        auto rec = store_.persona(found.persona);
        if (rec && rec->has_value())
            (void)write_kernel_binding(loader_, found.cgroup_id, (*rec)->id);
        (void)loader_.bump_epoch();
        throw ApiError(500, c.error().what());
    }
    spdlog::info("unbound cgroup {} (id {}) from persona '{}'", found.cgroup_path, found.cgroup_id,
                 found.persona);
    if (on_event_) {
        auto rec = store_.persona(found.persona);
        uint32_t pid = rec && rec->has_value() ? (*rec)->id : 0;
        on_event_(PBPF_EV_UNBIND, trigger, found.cgroup_id, found.cgroup_path, pid, found.rule_id);
    }
}

// A cgroup without a binding of its own: nothing in the kernel, or the fail-closed
// persona when it is the root of a fail-closed subtree.
Result<void> Binder::restore_uncovered(uint64_t cgroup_id) {
    if (fail_closed_.count(cgroup_id))
        return write_kernel_binding(loader_, cgroup_id, PBPF_PERSONA_FAIL_CLOSED);
    return delete_kernel_binding(loader_, cgroup_id);
}

// Idempotent: every root without a binding of its own is checked in the kernel and
// written if it is not closed (an entry something else removed, or a write that failed
// last time, is repaired by the next call).
Result<void> Binder::set_fail_closed(const std::set<uint64_t>& roots) {
    std::set<uint64_t> old = fail_closed_;
    fail_closed_ = roots;
    bool changed = false;
    for (uint64_t id : roots) {
        auto b = store_.binding(id);
        if (!b) return b.error();
        if (b->has_value()) continue;  // its own binding stays in force
        __u64 key = id;
        pbpf_binding cur{};
        if (bpf_map_lookup_elem(loader_.bindings_fd(), &key, &cur) == 0 &&
            cur.persona_id == PBPF_PERSONA_FAIL_CLOSED)
            continue;
        if (auto r = write_kernel_binding(loader_, id, PBPF_PERSONA_FAIL_CLOSED); !r) return r;
        changed = true;
    }
    for (uint64_t id : old) {
        if (roots.count(id)) continue;
        auto b = store_.binding(id);
        if (!b) return b.error();
        if (b->has_value()) continue;
        if (auto r = delete_kernel_binding(loader_, id); !r) return r;
        changed = true;
    }
    if (changed) {
        if (auto e = loader_.bump_epoch(); !e) return e.error();
    }
    return {};
}

std::optional<BindingRecord> Binder::find(const std::optional<std::string>& cgroup,
                                          const std::optional<std::string>& pid,
                                          std::string* what) {
    if (cgroup.has_value() == pid.has_value())
        throw ApiError(400, "unbind needs exactly one of ?cgroup=PATH or ?pid=PID");
    std::optional<BindingRecord> found;
    std::string named;
    if (cgroup) {
        auto ref = tree_.resolve(*cgroup);
        if (!ref) throw_ref_error(ref.error());
        named = "cgroup " + ref->rel_path;
        auto id = cgroup_id_of(ref->fs_path);
        if (id) found = must(store_.binding(*id));
        if (!found) found = must(store_.binding_by_path(ref->rel_path));
    } else {
        CgroupRef ref = cgroup_of_pid(*pid);
        named = "cgroup " + ref.rel_path + " (pid " + *pid + ")";
        auto id = cgroup_id_of(ref.fs_path);
        if (!id) throw_ref_error(id.error());
        found = must(store_.binding(*id));
    }
    if (what) *what = named;
    return found;
}

json Binder::unbind(const std::optional<std::string>& cgroup,
                    const std::optional<std::string>& pid) {
    std::string what;
    std::optional<BindingRecord> found = find(cgroup, pid, &what);
    if (!found) throw ApiError(404, "no binding for " + what);
    if (found->origin == "rule") {
        auto rule = must(store_.bind_rule(found->rule_id));
        if (rule && rule->origin == "bind")
            throw ApiError(409, found->cgroup_path + " is bound to persona '" + found->persona +
                                    "' by the user binding of '" + rule->pattern +
                                    "'; remove it with personabpf unbind --user " + rule->pattern);
        throw ApiError(409, found->cgroup_path + " is bound to persona '" + found->persona +
                                "' by binding rule " + std::to_string(found->rule_id) + "; " +
                                (rule ? removal_hint(*rule) : std::string("remove the rule")) +
                                ", or bind it explicitly");
    }
    unbind_record(*found, PBPF_BIND_API);
    return {{"unbound", binding_json(*found)}};
}

json Binder::list() {
    json arr = json::array();
    for (const auto& b : must(store_.bindings())) arr.push_back(binding_json(b));
    return arr;
}

Result<void> Binder::reconcile() {
    auto binds = store_.bindings();
    if (!binds) return binds.error();
    std::set<uint64_t> keep;
    size_t dropped = 0;
    for (const auto& b : *binds) {
        auto rec = store_.persona(b.persona);
        if (!rec) return rec.error();
        std::string why;
        auto ref = tree_.resolve(b.cgroup_path);
        if (!ref) {
            why = ref.error().message;
        } else if (auto id = cgroup_id_of(ref->fs_path); !id) {
            why = "its cgroup is gone";
        } else if (*id != b.cgroup_id) {
            why = "its cgroup was removed and recreated (id " + std::to_string(b.cgroup_id) +
                  " -> " + std::to_string(*id) + ")";
        } else if (!rec->has_value()) {
            why = "persona '" + b.persona + "' is gone";
        }
        if (!why.empty()) {
            spdlog::warn("dropping binding {} -> '{}': {}", b.cgroup_path, b.persona, why);
            if (auto r = store_.delete_binding(b.cgroup_id); !r) return r;
            ++dropped;
            continue;
        }
        if (auto r = write_kernel_binding(loader_, b.cgroup_id, (*rec)->id); !r) return r;
        keep.insert(b.cgroup_id);
    }
    // Kernel bindings nobody stored (a crash between kernel write and commit, or an
    // earlier agent's state dir): remove them.
    std::vector<uint64_t> stale;
    __u64 key = 0, next = 0;
    __u64* prev = nullptr;
    for (uint64_t id : fail_closed_) {
        if (keep.count(id)) continue;
        if (auto r = write_kernel_binding(loader_, id, PBPF_PERSONA_FAIL_CLOSED); !r) return r;
        keep.insert(id);
    }
    while (bpf_map_get_next_key(loader_.bindings_fd(), prev, &next) == 0) {
        if (!keep.count(next)) stale.push_back(next);
        key = next;
        prev = &key;
    }
    for (uint64_t id : stale)
        if (auto r = delete_kernel_binding(loader_, id); !r) return r;
    auto epoch = loader_.bump_epoch();
    if (!epoch) return epoch.error();
    spdlog::info("reconciled bindings: {} written, {} dropped, {} stale kernel entries removed",
                 keep.size(), dropped, stale.size());
    return {};
}

}  // namespace pbpf::agent
