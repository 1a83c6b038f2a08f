// Interface-bound workloads: a VM behind a tap, or a container seen from the host side of
// its veth. A binding is (netns, interface) -> persona: an entry in pbpf_if_bindings keyed
// by (netns cookie, ifindex) and the tc programs attached to the interface through TCX
// links pinned under <pin dir>/if/, so enforcement outlives the agent and an upgraded
// agent swaps its programs in without a gap. The interface faces the workload: what it
// receives (tc ingress) is the workload's egress, what it sends (tc egress) its ingress.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/loader.h"
#include "agent/store.h"

namespace pbpf::agent {

class IfBinder {
  public:
    IfBinder(Store& store, Loader& loader) : store_(store), loader_(loader) {}

    // POST /v1/bindings {"persona", "ifname", "netns"?}. Throws ApiError.
    nlohmann::json bind(const nlohmann::json& body);
    // DELETE /v1/bindings?ifname=IF[&netns=NS].
    nlohmann::json unbind(const std::string& ifname, const std::string& netns);
    // Rows for GET /v1/bindings.
    nlohmann::json list();

    // bind() for a parsed request or a binding rule (origin "api" | "rule").
    nlohmann::json bind_as(const std::string& persona, const std::string& ifname,
                           const std::string& netns, const std::string& origin, int64_t rule_id);
    // Removes a stored binding (store, map entry, links). `trigger`: enum pbpf_bind_trigger.
    void unbind_record(const IfBindingRecord& b, uint8_t trigger);

    // The interface's key as the programs see it (netns cookie, ifindex), changing nothing;
    // ENOENT/ENODEV when the netns or the interface does not exist, EINVAL when it cannot be
    // bound (loopback, another link type, a bad name). For checks before a change.
    struct Key {
        uint64_t netns_cookie = 0;
        uint32_t ifindex = 0;
    };
    Result<Key> resolve(const std::string& ifname, const std::string& netns) const;

    // Called after every change: (PBPF_EV_BIND|UNBIND, trigger, netns cookie, ifindex,
    // interface name, persona id, binding rule id).
    using EventHook = std::function<void(uint8_t, uint8_t, uint64_t, uint32_t, const std::string&,
                                         uint32_t, int64_t)>;
    void set_event_hook(EventHook hook) { on_event_ = std::move(hook); }

    // Start-up: stored bindings whose interface is gone (or is another one now) are
    // dropped with a warning; the others get their map entry and links (pinned links are
    // swapped to this agent's programs); map entries and links nobody stored are removed.
    Result<void> reconcile();

  private:
    Store& store_;
    Loader& loader_;
    EventHook on_event_;
};

// Detaches and unpins the links of one interface binding and deletes its map entry
// (persona removal uses it too).
Result<void> release_interface(const Loader& loader, uint64_t netns_cookie, uint32_t ifindex);

}  // namespace pbpf::agent
