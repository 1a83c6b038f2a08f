// Binder: cgroup -> persona bindings (pbpf_bindings + binding_epoch) and their
// start-up reconciliation with the store.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/cgroup.h"
#include "agent/loader.h"
#include "agent/store.h"

namespace pbpf::agent {

class Binder {
  public:
    Binder(Store& store, Loader& loader, const CgroupTree& tree)
        : store_(store), loader_(loader), tree_(tree) {}

    // POST /v1/bindings: {"persona": N, "cgroup": P} or {"persona": N, "pid": PID}.
    // Throws ApiError (400 bad request / missing cgroup / dead pid / outside subtree,
    // 404 unknown persona).
    nlohmann::json bind(const nlohmann::json& body);
    const CgroupTree& tree() const { return tree_; }
    // The cgroup of a live process (ApiError 400 for a bad or dead pid).
    CgroupRef cgroup_of_pid(const std::string& pid_text);
    // The existing cgroup a bind request names by "cgroup" (a path) or "pid"; throws
    // ApiError as bind() does.
    CgroupRef named_cgroup(const nlohmann::json& body);
    // The stored binding an unbind request names (?cgroup= or ?pid=), if any; `what`
    // receives a readable name of the target ("cgroup /a/b (pid 42)").
    std::optional<BindingRecord> find(const std::optional<std::string>& cgroup,
                                      const std::optional<std::string>& pid,
                                      std::string* what = nullptr);
    // DELETE /v1/bindings?cgroup=P|pid=N.
    nlohmann::json unbind(const std::optional<std::string>& cgroup,
                          const std::optional<std::string>& pid);
    // GET /v1/bindings.
    nlohmann::json list();

    // Start-up: write every stored binding whose cgroup still exists (drop the others with
    // a warning), write the fail-closed roots (set_fail_closed() first), remove kernel
    // bindings neither has, bump the epoch.
    Result<void> reconcile();

    // Binds one cgroup (API or rule): stores the record, writes the kernel entry, bumps the
    // binding epoch; all or nothing. Returns the binding it replaced. Throws ApiError (404
    // unknown persona, 507 table full, 500).
    std::optional<BindingRecord> bind_cgroup(const CgroupRef& ref, uint64_t cgroup_id,
                                             const std::string& persona, const std::string& origin,
                                             int64_t rule_id);
    // bind_cgroup() for many cgroups at once: all or nothing, the kernel entries written
    // first, one epoch bump, one store transaction. Returns the bindings they replaced.
    struct BindIntent {
        CgroupRef ref;
        uint64_t cgroup_id = 0;
        std::string persona;
        std::string origin;
        int64_t rule_id = 0;
    };
    std::vector<std::optional<BindingRecord>> bind_many(const std::vector<BindIntent>& todo);
    // Removes a stored binding (store and kernel); a fail-closed root falls back to the
    // fail-closed persona. `trigger`: enum pbpf_bind_trigger, for the event.
    void unbind_record(const BindingRecord& b, uint8_t trigger);

    // The roots of the fail-closed subtrees, by cgroup id: each one without a binding of
    // its own gets PBPF_PERSONA_FAIL_CLOSED in the kernel (roots no longer listed lose it).
    Result<void> set_fail_closed(const std::set<uint64_t>& roots);
    const std::set<uint64_t>& fail_closed() const { return fail_closed_; }

    // Called after every change: (PBPF_EV_BIND|UNBIND, trigger, cgroup id, cgroup path,
    // persona id, binding rule id).
    using EventHook =
        std::function<void(uint8_t, uint8_t, uint64_t, const std::string&, uint32_t, int64_t)>;
    void set_event_hook(EventHook hook) { on_event_ = std::move(hook); }

  private:
    Result<void> restore_uncovered(uint64_t cgroup_id);

    Store& store_;
    Loader& loader_;
    const CgroupTree& tree_;
    std::set<uint64_t> fail_closed_;
    EventHook on_event_;
};

}  // namespace pbpf::agent
