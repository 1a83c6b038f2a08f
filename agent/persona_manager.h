// Persona manager: apply (compile, lower, build fresh policy maps, flip), remove, describe,
// and the start-up reconciliation of pbpf_policies with the store.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/loader.h"
#include "agent/qos.h"
#include "agent/store.h"
#include "maps/map_image.h"
#include "maps/result.h"
#include "pdl-compiler/compiler.h"
#include "pdl-compiler/ir.h"

namespace pbpf::agent {

// A PDL file compiled and lowered: the slow, stateless half of an apply, done without
// holding the agent's mutex.
struct CompiledFile {
    std::string source, filename;
    std::vector<pdl::Source> imports;  // what `source` imports, as the client sent it
    std::vector<pdl::ir::Persona> personas;
    std::vector<PersonaImage> images;  // images[i] = lower(personas[i])
    std::string diagnostics;
    size_t warnings = 0;
    std::vector<pdl::ir::BindRule> binds;  // the file's `bind` blocks, in source order
};

// The sections of `p` that this agent compiles and stores but does not enforce yet
// ("encryption", "ids", "qos ingress rate", ...), in PDL order. `shaping`: the agent has
// egress interfaces, so a qos section's egress rate and priority are enforced.
// `uplinks`: the agent has [topology] egress interfaces, so next-hops are checked and
// cgroup-bound workloads' hop limits clamped.
std::vector<std::string> unenforced_sections(const pdl::ir::Persona& p, bool shaping,
                                             bool uplinks = false);

// Who applies and how: recorded with the versions an apply creates.
struct ApplyOptions {
    int64_t author_uid = 0;
    std::optional<int64_t> owner_uid;  // of personas the apply creates; default: the author
    std::string message;               // stored with each new version
    // Apply only this persona of the file (and only its bind blocks): a rollback.
    std::optional<std::string> only;
    // false: leave the personas' binding rules as they are (the caller may not change
    // rules); the file's bind blocks are then not applied, and the answer says so.
    bool replace_rules = true;
    // The number the new version gets instead of the next one (an import keeps the
    // source's number); with `only`. A stored version of that number is reused when its
    // source and imports are the same, else the apply fails (409).
    std::optional<int64_t> version;
};

class PersonaManager {
  public:
    PersonaManager(Store& store, Loader& loader) : store_(store), loader_(loader) {}

    // POST /v1/personas. Throws ApiError (400 PDL errors, 4xx/5xx map failures); on any
    // failure nothing enforced or stored changed.
    nlohmann::json apply(const std::string& source, const std::string& filename);
    // The two halves of apply(): compile_file() touches no state (throws ApiError 400 on
    // PDL errors); apply(CompiledFile) needs the caller's serialisation.
    // `imports` are the files `source` imports, by resolved name (the agent never reads
    // the file system for a client).
    static CompiledFile compile_file(const std::string& source, const std::string& filename,
                                     std::vector<pdl::Source> imports = {});
    // Every persona of the file whose content changed (or is new) gets a new version;
    // the answer says, per persona, "changed" and "version".
    nlohmann::json apply(const CompiledFile& file, const ApplyOptions& opt = {});
    // GET /v1/personas/NAME/versions, ?version=N, /diff?from=A&to=B.
    nlohmann::json history(const std::string& name);
    nlohmann::json show_version(const std::string& name, int64_t version);
    nlohmann::json diff(const std::string& name, int64_t from, int64_t to);
    // A stored version (404 if absent).
    PersonaVersion version_of(const std::string& name, int64_t version);
    // The version in force (404 if there is no such persona).
    PersonaVersion current_version(const std::string& name);
    // POST /v1/personas/NAME/owner.
    nlohmann::json set_owner(const std::string& name, int64_t uid);
    // DELETE /v1/personas/NAME.
    nlohmann::json remove(const std::string& name, bool force);
    // GET /v1/personas and /v1/personas/NAME.
    nlohmann::json list();
    nlohmann::json show(const std::string& name);
    // GET /v1/stats[?persona=NAME].
    nlohmann::json stats(const std::optional<std::string>& persona);

    // Start-up: every stored persona whose slot is empty (all of them on fresh maps) is
    // re-lowered and flipped in; slots no stored persona owns are cleared.
    Result<void> reconcile();

    // Sets every CPU's counters of `id` to zero (a reused or removed persona id).
    Result<void> zero_counters(uint32_t id);

    // Called for every workload a forced removal unbinds: (cgroup id or netns cookie,
    // ifindex or 0, its name, the removed persona's id and name).
    using UnboundHook =
        std::function<void(uint64_t, uint32_t, const std::string&, uint32_t, const std::string&)>;
    void set_unbound_hook(UnboundHook hook) { on_unbound_ = std::move(hook); }

    // Called after every apply that changed a persona and every removal (QoS follows the
    // stored personas); its error becomes a warning of the answer, the change stands.
    using ChangedHook = std::function<Result<void>()>;
    void set_changed_hook(ChangedHook hook) { on_changed_ = std::move(hook); }
    // Whether the agent shapes egress ([qos] egress_interfaces), for `not_enforced`.
    void set_shaping(bool shaping) { shaping_ = shaping; }
    // Whether the agent has [topology] egress interfaces, for `not_enforced`.
    void set_topology_uplinks(bool uplinks) { uplinks_ = uplinks; }
    // The QoS-relevant part of every stored persona, from the stored images.
    Result<std::vector<PersonaQosInput>> qos_inputs();

  private:
    // Inner map id in pbpf_policies[id], nullopt if the slot is empty.
    Result<std::optional<uint32_t>> slot_map_id(uint32_t id);
    Result<PersonaImage> image_of(const PersonaRecord& rec);
    // Does the policy map in the slot hold exactly the stored image's entries?
    bool slot_matches_store(const PersonaRecord& rec, uint32_t inner_map_id);

    Store& store_;
    Loader& loader_;
    void notify_changed(nlohmann::json* answer);

    UnboundHook on_unbound_;
    ChangedHook on_changed_;
    bool shaping_ = false;
    bool uplinks_ = false;
};

}  // namespace pbpf::agent
