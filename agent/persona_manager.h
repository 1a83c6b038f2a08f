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
// ("encryption", "ids", "qos", ...), in PDL order. Empty for a security-only persona.
std::vector<std::string> unenforced_sections(const pdl::ir::Persona& p);

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
    nlohmann::json apply(const CompiledFile& file);
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

  private:
    // Inner map id in pbpf_policies[id], nullopt if the slot is empty.
    Result<std::optional<uint32_t>> slot_map_id(uint32_t id);
    Result<PersonaImage> image_of(const PersonaRecord& rec);
    // Does the policy map in the slot hold exactly the stored image's entries?
    bool slot_matches_store(const PersonaRecord& rec, uint32_t inner_map_id);

    Store& store_;
    Loader& loader_;
    UnboundHook on_unbound_;
};

}  // namespace pbpf::agent
