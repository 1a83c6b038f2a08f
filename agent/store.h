// The agent's durable state (SQLite state.db in the state dir): personas, bindings and
// instance meta. It is the truth the kernel maps are reconciled to at start.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/bind_rules.h"
#include "maps/result.h"

struct sqlite3;

namespace pbpf::agent {

// 1: first release. 2: personas.imports_json (the files a persona's source imports).
// 3: if_bindings. 4: bind_rules; bindings and if_bindings say who made them (origin).
// 5: persona_versions (every applied version), personas.owner_uid, audit.
inline constexpr int kStoreSchemaVersion = 5;

struct PersonaRecord {
    std::string name;
    uint32_t id = 0;
    std::string filename;
    std::string source;  // the whole file the persona was applied from
    // The files `source` imports, as sent with the apply: JSON [{"filename", "source"}].
    std::string imports_json = "[]";
    std::string description;
    std::string mode;                             // "enforce" | "audit"
    std::string default_ingress, default_egress;  // "allow" | "deny"
    std::string rules_json;                       // JSON array of the rules' canonical text
    std::string image_json;                       // pbpf::to_json(PersonaImage), canonical
    uint32_t entries = 0;
    uint32_t rule_count = 0;
    int64_t created_at = 0;  // unix seconds
    int64_t applied_at = 0;  // last apply that changed the image
    int64_t updated_at = 0;  // last apply of any kind
    int64_t owner_uid = 0;   // set at creation (the creator), changed by admins only
    int64_t version = 0;     // read only: the latest of persona_versions, 0 if none
};

// One applied version of a persona, as it was applied: what `persona show --version`,
// `diff` and `rollback` work from. Versions are numbered 1, 2, ... per persona name and
// outlive the persona (a persona removed and created again continues the numbering).
struct PersonaVersion {
    std::string persona;
    int64_t version = 0;
    std::string filename;
    std::string source;  // the whole file
    std::string imports_json = "[]";
    std::string image_json;
    std::string rules_json;
    std::string description;
    std::string mode;
    std::string default_ingress, default_egress;
    int64_t author_uid = 0;
    int64_t owner_uid = 0;   // the persona's owner when this version was stored
    int64_t created_at = 0;  // unix seconds
    std::string message;     // `apply -m`, or what a rollback restored
};

// One change attempted through the API, whatever its outcome.
struct AuditRecord {
    int64_t id = 0;
    int64_t at_ms = 0;  // unix milliseconds
    int64_t uid = -1;   // the caller (SO_PEERCRED); -1 unknown
    int64_t pid = 0;
    std::string action;   // "apply", "rollback", "persona-rm", "bind", "unbind", ...
    std::string persona;  // the persona concerned, "" if none or several (see target)
    std::string target;   // what else the change names: a cgroup, interface, rule, ...
    std::string outcome;  // "ok", "refused" (403), "failed" (any other error)
    int status = 0;       // the HTTP status answered
    std::string detail;   // the error message, or a summary of what changed
};

// Who made a binding: "api" (`personabpf bind`, explicit, beats every rule) or "rule"
// (a binding rule, `rule_id`, made and removed by the agent as workloads come and go).
struct BindingRecord {
    uint64_t cgroup_id = 0;
    std::string cgroup_path;  // relative to the cgroup2 mount
    std::string persona;
    int64_t bound_at = 0;
    std::string origin = "api";
    int64_t rule_id = 0;
};

// An interface-bound workload: the interface (in the agent's netns, or a named one) that
// faces it, e.g. the host side of a VM's tap or a container's veth.
struct IfBindingRecord {
    std::string netns;  // "" = the agent's own; a name under /run/netns; or an absolute path
    std::string ifname;
    uint32_t ifindex = 0;
    uint64_t netns_cookie = 0;
    std::string persona;
    int64_t bound_at = 0;
    std::string origin = "api";  // as BindingRecord::origin
    int64_t rule_id = 0;
};

class Store {
  public:
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // Opens (creating if needed) <state_dir>/state.db in WAL mode and migrates its schema.
    static Result<std::unique_ptr<Store>> open(const std::string& state_dir);

    // Explicit transaction: rolls back on destruction unless committed.
    class Transaction {
      public:
        explicit Transaction(Store& s) : s_(&s) {}
        Transaction(const Transaction&) = delete;
        Transaction& operator=(const Transaction&) = delete;
        ~Transaction();
        Result<void> commit();
        void rollback();

      private:
        Store* s_;
        bool done_ = false;
    };
    Result<std::unique_ptr<Transaction>> begin();

    Result<std::vector<PersonaRecord>> personas();
    Result<std::optional<PersonaRecord>> persona(const std::string& name);
    // Inserts or updates; owner_uid is written at insert only (see set_owner).
    Result<void> upsert_persona(const PersonaRecord& p);
    Result<void> delete_persona(const std::string& name);
    Result<void> set_owner(const std::string& name, int64_t uid);

    // Stores `v` as the persona's next version (v.version is ignored); returns its number.
    Result<int64_t> add_version(const PersonaVersion& v);
    // Stores `v` under its own number v.version (an imported version keeps the source's
    // number). EEXIST when that version is stored already: the caller compares sources.
    Result<void> insert_version(const PersonaVersion& v);
    // Removes one version (the undo of an import that stored it).
    Result<void> delete_version(const std::string& persona, int64_t n);
    Result<std::vector<PersonaVersion>> versions(const std::string& persona);
    Result<std::optional<PersonaVersion>> version(const std::string& persona, int64_t n);

    // Keeps the newest kAuditKeep records (older ones are trimmed as new ones come).
    static constexpr int64_t kAuditKeep = 100000;
    Result<void> add_audit(const AuditRecord& a);
    // Oldest first, at_ms >= since_ms, of one persona (the persona column) if given; the
    // newest `limit` of them.
    Result<std::vector<AuditRecord>> audit(int64_t since_ms,
                                           const std::optional<std::string>& persona, size_t limit);

    Result<std::vector<BindingRecord>> bindings();
    Result<size_t> binding_count();
    Result<std::vector<BindingRecord>> bindings_of(const std::string& persona);
    Result<std::optional<BindingRecord>> binding(uint64_t cgroup_id);
    Result<std::optional<BindingRecord>> binding_by_path(const std::string& rel_path);
    Result<void> upsert_binding(const BindingRecord& b);
    Result<void> delete_binding(uint64_t cgroup_id);

    Result<std::vector<IfBindingRecord>> if_bindings();
    Result<std::vector<IfBindingRecord>> if_bindings_of(const std::string& persona);
    Result<std::optional<IfBindingRecord>> if_binding(const std::string& netns,
                                                      const std::string& ifname);
    Result<void> upsert_if_binding(const IfBindingRecord& b);
    Result<void> delete_if_binding(const std::string& netns, const std::string& ifname);

    // Binding rules (agent/bind_rules.h), ordered by id.
    Result<std::vector<BindRule>> bind_rules();
    Result<std::optional<BindRule>> bind_rule(int64_t id);
    // The new rule's id; EEXIST when the same (persona, kind, pattern, origin) is stored.
    Result<int64_t> insert_bind_rule(const BindRule& rule);
    Result<void> delete_bind_rule(int64_t id);
    // Makes the rules of (persona, origin) exactly `rules` (their persona and origin are
    // overwritten), keeping the rows (and ids) of rules that stay. True if anything changed.
    Result<bool> replace_bind_rules(const std::string& persona, const std::string& origin,
                                    const std::vector<BindRule>& rules);

    Result<std::optional<std::string>> meta(const std::string& key);
    Result<void> set_meta(const std::string& key, const std::string& value);
    // Makes every committed transaction durable now (a full WAL checkpoint, fsynced):
    // commits are not fsynced one by one (synchronous=NORMAL), which a kill -9 does not
    // mind but a power cut does. For a commit point kept outside the database (the
    // migration import's journal, removed only after this).
    Result<void> sync();

    const std::string& path() const { return path_; }

  private:
    Store() = default;
    Result<void> exec(const char* sql);
    Error db_error(const std::string& what) const;

    sqlite3* db_ = nullptr;
    std::string path_;
};

}  // namespace pbpf::agent
