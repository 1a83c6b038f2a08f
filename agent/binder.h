// Binder: cgroup -> persona bindings (pbpf_bindings + binding_epoch) and their
// start-up reconciliation with the store.
#pragma once

#include <optional>
#include <string>

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
    // DELETE /v1/bindings?cgroup=P|pid=N.
    nlohmann::json unbind(const std::optional<std::string>& cgroup,
                          const std::optional<std::string>& pid);
    // GET /v1/bindings.
    nlohmann::json list();

    // Start-up: write every stored binding whose cgroup still exists (drop the others with
    // a warning), remove kernel bindings the store does not have, bump the epoch.
    Result<void> reconcile();

  private:
    CgroupRef cgroup_of_pid(const std::string& pid_text);

    Store& store_;
    Loader& loader_;
    const CgroupTree& tree_;
};

}  // namespace pbpf::agent
