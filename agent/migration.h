// Workload migration between hosts, the local half (docs/migration.md): export a bound
// workload's persona version, binding and tracked flows as a bundle
// (agent/migration_bundle.h), and import a bundle for a workload of this host: checked in
// full and gated before anything changes, then all or nothing.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "agent/binder.h"
#include "agent/if_binder.h"
#include "agent/import_journal.h"
#include "agent/loader.h"
#include "agent/persona_manager.h"
#include "agent/store.h"

namespace pbpf::agent {

class ApiServer;

class Migration {
  public:
    Migration(Store& store, Loader& loader, PersonaManager& personas, Binder& binder,
              IfBinder& if_binder, std::string host_country, const std::string& state_dir)
        : store_(store),
          loader_(loader),
          personas_(personas),
          binder_(binder),
          if_binder_(if_binder),
          host_country_(std::move(host_country)),
          journal_path_(state_dir + "/import.journal") {}

    // At start, before the API serves: undoes an import that a stop of the agent (kill -9,
    // a crash, a power cut) interrupted, as its journal says (agent/import_journal.h).
    // Returns what was undone ("" when nothing was), for the log and the tests. A journal
    // that cannot be read is set aside as import.journal.bad with an error in the log.
    std::string recover();

    // POST /v1/migration/export {"cgroup": PATH} or {"ifname": IF, "netns"?: NS}: the
    // bundle. Throws ApiError.
    nlohmann::json export_workload(const nlohmann::json& body);
    // POST /v1/migration/import {"bundle": {...}, "cgroup": PATH | "ifname": IF, "netns"?}
    // (no target: the bundle's own). Throws ApiError; on any failure this host is as it was
    // before the call. `from` names where the bundle came from in the created version's
    // message ("peer host-a (10.0.0.1:40112)"); "" = the API.
    nlohmann::json import_workload(const nlohmann::json& body, const std::string& from = "");
    // After a peer confirmed the import of `bundle` (exported here): unbinds the source
    // cgroup or interface, unless its binding changed since the export (then nothing
    // changes and the answer says why). {"released": bool, "reason"?: text}. Under the API
    // mutex.
    nlohmann::json release_workload(const nlohmann::json& bundle);

    // Both routes, admin only, under the API mutex.
    void add_routes(ApiServer& server);

  private:
    // How far an import got: what undo_import() reverts.
    struct ImportProgress {
        bool persona = false;  // the persona applied
        bool bound = false;    // the workload bound
        bool flows = false;    // the writing of entries begun
    };
    // Reverts the steps `done` of the import `j`, in reverse order; each step checks what
    // is there now and reverts only what is still the import's, so reverting a step that
    // never happened changes nothing. A step that fails is logged and named in the result;
    // the others still run.
    std::vector<std::string> undo_import(const ImportJournal& j, const ImportProgress& done);
    // Writes the import's entries (keys[i], values[i] for j.flows[i]); the entries there
    // already get their `before` in `j`, journaled before they are overwritten. Throws
    // ApiError.
    void write_flows(ImportJournal& j, const std::vector<pbpf_ct_key>& keys,
                     const std::vector<pbpf_ct_value>& values);

    Store& store_;
    Loader& loader_;
    PersonaManager& personas_;
    Binder& binder_;
    IfBinder& if_binder_;
    std::string host_country_;
    std::string journal_path_;
};

}  // namespace pbpf::agent
