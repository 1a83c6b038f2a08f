// Automatic binding: binding rules (PDL `bind` blocks, `personabpf rules add`), explicit
// user bindings (`personabpf bind --user`), fail-closed subtrees, and the watchers that
// apply them the moment a cgroup or an interface appears. The precedence is in
// agent/bind_rules.h; an explicit binding (`personabpf bind --cgroup|--pid|--ifname`)
// always wins, and the agent never touches it except to remove it when its workload is
// gone.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/bind_rules.h"
#include "agent/binder.h"
#include "agent/cgroup.h"
#include "agent/if_binder.h"
#include "agent/store.h"
#include "agent/watchers.h"

namespace pbpf::agent {

class AutoBinder {
  public:
    // `mu` is the API mutex: watcher callbacks take it, API handlers hold it already.
    AutoBinder(Store& store, Binder& binder, IfBinder& if_binder, const CgroupTree& tree,
               std::mutex& mu, const UserDb& users = system_user_db())
        : store_(store),
          binder_(binder),
          if_binder_(if_binder),
          tree_(tree),
          mu_(mu),
          users_(users) {}
    ~AutoBinder();

    // [binding] fail_closed: resolves the existing roots and hands them to the binder.
    // Call before Binder::reconcile (so no restart gap opens). Paths outside the managed
    // subtree are an error; missing ones are protected once they appear.
    Result<void> set_fail_closed(const std::vector<std::string>& paths);

    // Starts the watchers, then evaluates every cgroup of the subtree and every interface
    // of the agent's netns. Must not be called with the API mutex held.
    Result<void> start(bool watch_interfaces);
    void stop();

    // Evaluates everything again (rules, personas or explicit bindings changed). Caller
    // holds the API mutex.
    void reevaluate();

    // API handlers (caller holds the API mutex); throw ApiError.
    nlohmann::json list_rules();                          // GET /v1/rules
    nlohmann::json add_rule(const nlohmann::json& body);  // POST /v1/rules
    nlohmann::json remove_rule(const std::string& id);    // DELETE /v1/rules/ID
    // POST /v1/bindings {"user": NAME, "persona"?: P}: with a persona, an explicit user
    // binding (stored, beats rules); without, the user's login slices are evaluated now
    // (the PAM hook). Either way the answer lists the user's bound slices.
    nlohmann::json bind_user(const nlohmann::json& body);
    nlohmann::json unbind_user(const std::string& user);  // DELETE /v1/bindings?user=NAME
    nlohmann::json user_bindings();                       // rows for GET /v1/bindings
    // The persona of the user's explicit binding (named by user name or uid), if any.
    std::optional<std::string> user_binding_persona(const std::string& user);
    nlohmann::json status();

  private:
    void refresh_rules();
    // Binds or unbinds one cgroup by the rules; true when it ends up explicitly bound (by
    // the API or an explicit user binding). `covered`: an ancestor is explicitly bound
    // (looked up when not given).
    bool evaluate_cgroup(const CgroupRef& ref, std::optional<bool> covered = std::nullopt);
    void evaluate_interface(const LinkInfo& link);
    void walk(const CgroupRef& ref, int depth, bool covered);
    bool is_explicit(const BindingRecord& b) const;
    bool explicit_above(const std::string& rel);
    bool trusted_user_slice(const CgroupRef& ref) const;
    // Watcher callbacks only queue; the worker thread binds (see run_worker()).
    void enqueue(bool created, const std::string& rel);
    void run_worker();
    void flush_batch();
    void on_created(const std::string& rel);
    void on_removed(const std::string& rel);
    void on_link_added(const LinkInfo& link);
    void on_link_removed(const LinkInfo& link);
    std::vector<CgroupRef> user_slices(uint32_t uid);
    void update_fail_closed();

    Store& store_;
    Binder& binder_;
    IfBinder& if_binder_;
    const CgroupTree& tree_;
    std::mutex& mu_;
    const UserDb& users_;
    std::vector<BindRule> explicit_;      // origin "bind": explicit user bindings
    std::vector<BindRule> rules_;         // origin "pdl" / "api"
    std::vector<BindRule> cgroup_rules_;  // rules_ of kind Cgroup
    std::vector<std::string> fail_closed_paths_;
    std::mutex q_mu_;
    std::condition_variable q_cv_;
    std::deque<std::pair<bool, std::string>> queue_;  // (created, rel path), in order
    bool q_stop_ = false;
    std::thread worker_;
    std::vector<Binder::BindIntent>* batch_ = nullptr;  // set while the worker runs
    std::set<std::string> batch_explicit_;              // explicitly bound in the current batch
    const std::unordered_map<uint64_t, BindingRecord>* walk_bindings_ = nullptr;
    std::unique_ptr<CgroupWatcher> cgroups_;
    std::unique_ptr<LinkWatcher> links_;
    // Counters for status; errors_ is also counted outside the API mutex.
    std::atomic<uint64_t> bound_by_rule_{0}, unbound_by_rule_{0}, gone_{0}, errors_{0};
};

class ApiServer;
// GET|POST /v1/rules and DELETE /v1/rules/ID, see agent/README.md.
void add_rule_routes(ApiServer& server, AutoBinder& auto_binder);

}  // namespace pbpf::agent
