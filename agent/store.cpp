// SQLite-backed agent state.
#include "agent/store.h"

#include <sys/stat.h>

#include <sqlite3.h>

#include <algorithm>

namespace pbpf::agent {
namespace {

// One prepared statement; finalised on scope exit.
class Stmt {
  public:
    Stmt(sqlite3* db, const char* sql) : db_(db) {
        rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr);
    }
    ~Stmt() { sqlite3_finalize(st_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    bool ok() const { return rc_ == SQLITE_OK; }
    Stmt& bind(int i, const std::string& v) {
        sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt& bind(int i, int64_t v) {
        sqlite3_bind_int64(st_, i, v);
        return *this;
    }
    // SQLITE_ROW, SQLITE_DONE or an error code.
    int step() { return sqlite3_step(st_); }
    std::string text(int col) const {
        auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
        return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col)))
                 : std::string();
    }
    int64_t i64(int col) const { return sqlite3_column_int64(st_, col); }

  private:
    sqlite3* db_;
    sqlite3_stmt* st_ = nullptr;
    int rc_;
};

constexpr const char* kPersonaCols =
    "name, id, filename, source, description, mode, default_ingress, default_egress, "
    "rules_json, image_json, entries, rule_count, created_at, applied_at, updated_at, "
    "imports_json";

// kPersonaCols plus the read-only columns persona_from reads at 16 and 17.
const std::string kPersonaSelect =
    std::string(kPersonaCols) +
    ", owner_uid, (SELECT COALESCE(MAX(v.version), 0) FROM persona_versions v WHERE v.persona = "
    "personas.name)";

PersonaRecord persona_from(const Stmt& s) {
    PersonaRecord p;
    p.name = s.text(0);
    p.id = static_cast<uint32_t>(s.i64(1));
    p.filename = s.text(2);
    p.source = s.text(3);
    p.description = s.text(4);
    p.mode = s.text(5);
    p.default_ingress = s.text(6);
    p.default_egress = s.text(7);
    p.rules_json = s.text(8);
    p.image_json = s.text(9);
    p.imports_json = s.text(15);
    p.entries = static_cast<uint32_t>(s.i64(10));
    p.rule_count = static_cast<uint32_t>(s.i64(11));
    p.created_at = s.i64(12);
    p.applied_at = s.i64(13);
    p.updated_at = s.i64(14);
    p.owner_uid = s.i64(16);
    p.version = s.i64(17);
    return p;
}

constexpr const char* kVersionCols =
    "persona, version, filename, source, imports_json, image_json, rules_json, description, "
    "mode, default_ingress, default_egress, author_uid, created_at, message, owner_uid";

PersonaVersion version_from(const Stmt& s) {
    PersonaVersion v;
    v.persona = s.text(0);
    v.version = s.i64(1);
    v.filename = s.text(2);
    v.source = s.text(3);
    v.imports_json = s.text(4);
    v.image_json = s.text(5);
    v.rules_json = s.text(6);
    v.description = s.text(7);
    v.mode = s.text(8);
    v.default_ingress = s.text(9);
    v.default_egress = s.text(10);
    v.author_uid = s.i64(11);
    v.created_at = s.i64(12);
    v.message = s.text(13);
    v.owner_uid = s.i64(14);
    return v;
}

constexpr const char* kAuditCols =
    "id, at_ms, uid, pid, action, persona, target, outcome, status, detail";

AuditRecord audit_from(const Stmt& s) {
    AuditRecord a;
    a.id = s.i64(0);
    a.at_ms = s.i64(1);
    a.uid = s.i64(2);
    a.pid = s.i64(3);
    a.action = s.text(4);
    a.persona = s.text(5);
    a.target = s.text(6);
    a.outcome = s.text(7);
    a.status = static_cast<int>(s.i64(8));
    a.detail = s.text(9);
    return a;
}

BindingRecord binding_from(const Stmt& s) {
    BindingRecord b;
    b.cgroup_id = static_cast<uint64_t>(s.i64(0));
    b.cgroup_path = s.text(1);
    b.persona = s.text(2);
    b.bound_at = s.i64(3);
    b.origin = s.text(4);
    b.rule_id = s.i64(5);
    return b;
}

constexpr const char* kRuleCols = "id, persona, kind, pattern, origin, created_by, created_at";

BindRule rule_from(const Stmt& s) {
    BindRule r;
    r.id = s.i64(0);
    r.persona = s.text(1);
    r.kind = rule_kind_from(s.text(2)).value_or(RuleKind::Cgroup);
    r.pattern = s.text(3);
    r.origin = s.text(4);
    r.created_by = s.text(5);
    r.created_at = s.i64(6);
    return r;
}

}  // namespace

Store::~Store() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
}

Error Store::db_error(const std::string& what) const {
    return Error{EIO,
                 what + ": " + (db_ ? sqlite3_errmsg(db_) : "no database") + " (" + path_ + ")"};
}

Result<void> Store::exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
        std::string m = msg ? msg : "unknown error";
        sqlite3_free(msg);
        return Error{EIO, std::string("sqlite: ") + m + " (" + path_ + ")"};
    }
    return {};
}

Result<std::unique_ptr<Store>> Store::open(const std::string& state_dir) {
    std::unique_ptr<Store> s(new Store());
    s->path_ = state_dir + "/state.db";
    if (sqlite3_open_v2(s->path_.c_str(), &s->db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK)
        return s->db_error("open state database");
    ::chmod(s->path_.c_str(), 0600);
    sqlite3_busy_timeout(s->db_, 5000);
    if (auto r = s->exec("PRAGMA foreign_keys=ON;"); !r) return r.error();
    if (auto r = s->exec("BEGIN IMMEDIATE;"); !r) return r.error();
    auto fail = [&](Error e) -> Error {
        (void)s->exec("ROLLBACK;");
        return e;
    };
    if (auto r = s->exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);");
        !r)
        return fail(r.error());
    int64_t version = 0;
    {
        Stmt q(s->db_, "SELECT version FROM schema_version LIMIT 1;");
        if (!q.ok()) return fail(s->db_error("read schema version"));
        if (q.step() == SQLITE_ROW) version = q.i64(0);
    }
    if (version > kStoreSchemaVersion)
        return fail(Error{EPROTO, s->path_ + " has schema version " + std::to_string(version) +
                                      ", newer than this agent's " +
                                      std::to_string(kStoreSchemaVersion)});
    if (version == 0) {
        auto r = s->exec(R"sql(
            CREATE TABLE personas (
                name TEXT PRIMARY KEY,
                id INTEGER UNIQUE NOT NULL,
                filename TEXT NOT NULL,
                source TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                mode TEXT NOT NULL,
                default_ingress TEXT NOT NULL,
                default_egress TEXT NOT NULL,
                rules_json TEXT NOT NULL,
                image_json TEXT NOT NULL,
                entries INTEGER NOT NULL,
                rule_count INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                applied_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL);
            CREATE TABLE bindings (
                cgroup_id INTEGER PRIMARY KEY,
                cgroup_path TEXT NOT NULL,
                persona TEXT NOT NULL REFERENCES personas(name),
                bound_at INTEGER NOT NULL);
            CREATE INDEX bindings_persona ON bindings(persona);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            DELETE FROM schema_version;
            INSERT INTO schema_version(version) VALUES (1);
        )sql");
        if (!r) return fail(r.error());
        version = 1;
    }
    // Forward migrations, one schema version at a time, in the same transaction.
    if (version == 1) {
        auto r = s->exec(R"sql(
            ALTER TABLE personas ADD COLUMN imports_json TEXT NOT NULL DEFAULT '[]';
            UPDATE schema_version SET version = 2;
        )sql");
        if (!r) return fail(r.error());
        version = 2;
    }
    if (version == 2) {
        auto r = s->exec(R"sql(
            CREATE TABLE if_bindings (
                netns TEXT NOT NULL,
                ifname TEXT NOT NULL,
                ifindex INTEGER NOT NULL,
                netns_cookie INTEGER NOT NULL,
                persona TEXT NOT NULL REFERENCES personas(name),
                bound_at INTEGER NOT NULL,
                PRIMARY KEY (netns, ifname));
            CREATE INDEX if_bindings_persona ON if_bindings(persona);
            UPDATE schema_version SET version = 3;
        )sql");
        if (!r) return fail(r.error());
        version = 3;
    }
    if (version == 3) {
        auto r = s->exec(R"sql(
            ALTER TABLE bindings ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
            ALTER TABLE bindings ADD COLUMN rule_id INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE if_bindings ADD COLUMN origin TEXT NOT NULL DEFAULT 'api';
            ALTER TABLE if_bindings ADD COLUMN rule_id INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE bind_rules (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                persona TEXT NOT NULL REFERENCES personas(name),
                kind TEXT NOT NULL,
                pattern TEXT NOT NULL,
                origin TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                UNIQUE (persona, kind, pattern, origin));
            CREATE INDEX bind_rules_persona ON bind_rules(persona);
            UPDATE schema_version SET version = 4;
        )sql");
        if (!r) return fail(r.error());
        version = 4;
    }
    if (version == 4) {
        // Personas applied before versions existed get their current state as version 1.
        auto r = s->exec(R"sql(
            ALTER TABLE personas ADD COLUMN owner_uid INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE persona_versions (
                persona TEXT NOT NULL,
                version INTEGER NOT NULL,
                filename TEXT NOT NULL,
                source TEXT NOT NULL,
                imports_json TEXT NOT NULL,
                image_json TEXT NOT NULL,
                rules_json TEXT NOT NULL,
                description TEXT NOT NULL,
                mode TEXT NOT NULL,
                default_ingress TEXT NOT NULL,
                default_egress TEXT NOT NULL,
                author_uid INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                message TEXT NOT NULL,
                owner_uid INTEGER NOT NULL,
                PRIMARY KEY (persona, version));
            INSERT INTO persona_versions
                SELECT name, 1, filename, source, imports_json, image_json, rules_json,
                       description, mode, default_ingress, default_egress, 0, applied_at,
                       'as found when versions were introduced', 0
                FROM personas;
            CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at_ms INTEGER NOT NULL,
                uid INTEGER NOT NULL,
                pid INTEGER NOT NULL,
                action TEXT NOT NULL,
                persona TEXT NOT NULL,
                target TEXT NOT NULL,
                outcome TEXT NOT NULL,
                status INTEGER NOT NULL,
                detail TEXT NOT NULL);
            CREATE INDEX audit_persona ON audit(persona, at_ms);
            CREATE INDEX audit_at ON audit(at_ms);
            UPDATE schema_version SET version = 5;
        )sql");
        if (!r) return fail(r.error());
        version = 5;
    }
    if (auto r = s->exec("COMMIT;"); !r) return fail(r.error());
    // WAL only once the schema is known to be ours: switching the journal mode rewrites the
    // file header, and a database we refuse must be left exactly as it was.
    for (const char* pragma : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=NORMAL;"}) {
        if (auto r = s->exec(pragma); !r) return r.error();
    }
    return s;
}

Store::Transaction::~Transaction() { rollback(); }

Result<void> Store::Transaction::commit() {
    if (done_) return Error{EINVAL, "transaction already finished"};
    auto r = s_->exec("COMMIT;");
    if (r) done_ = true;
    return r;
}

void Store::Transaction::rollback() {
    if (done_) return;
    done_ = true;
    (void)s_->exec("ROLLBACK;");
}

Result<std::unique_ptr<Store::Transaction>> Store::begin() {
    if (auto r = exec("BEGIN IMMEDIATE;"); !r) return r.error();
    return std::make_unique<Transaction>(*this);
}

Result<std::vector<PersonaRecord>> Store::personas() {
    Stmt q(db_, ("SELECT " + kPersonaSelect + " FROM personas ORDER BY name;").c_str());
    if (!q.ok()) return db_error("list personas");
    std::vector<PersonaRecord> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(persona_from(q));
    if (rc != SQLITE_DONE) return db_error("list personas");
    return out;
}

Result<std::optional<PersonaRecord>> Store::persona(const std::string& name) {
    Stmt q(db_, ("SELECT " + kPersonaSelect + " FROM personas WHERE name = ?1;").c_str());
    if (!q.ok()) return db_error("read persona");
    q.bind(1, name);
    int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional<PersonaRecord>(persona_from(q));
    if (rc != SQLITE_DONE) return db_error("read persona");
    return std::optional<PersonaRecord>();
}

Result<void> Store::upsert_persona(const PersonaRecord& p) {
    Stmt q(db_,
           (std::string("INSERT INTO personas (") + kPersonaCols +
            ", owner_uid) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17) "
            "ON CONFLICT(name) DO UPDATE SET id=excluded.id, filename=excluded.filename, "
            "source=excluded.source, description=excluded.description, mode=excluded.mode, "
            "default_ingress=excluded.default_ingress, default_egress=excluded.default_egress, "
            "rules_json=excluded.rules_json, image_json=excluded.image_json, "
            "entries=excluded.entries, rule_count=excluded.rule_count, "
            "applied_at=excluded.applied_at, updated_at=excluded.updated_at, "
            "imports_json=excluded.imports_json;")
               .c_str());
    if (!q.ok()) return db_error("store persona " + p.name);
    q.bind(1, p.name).bind(2, int64_t{p.id}).bind(3, p.filename).bind(4, p.source);
    q.bind(5, p.description).bind(6, p.mode).bind(7, p.default_ingress).bind(8, p.default_egress);
    q.bind(9, p.rules_json).bind(10, p.image_json).bind(11, int64_t{p.entries});
    q.bind(12, int64_t{p.rule_count}).bind(13, p.created_at).bind(14, p.applied_at);
    q.bind(15, p.updated_at).bind(16, p.imports_json).bind(17, p.owner_uid);
    if (q.step() != SQLITE_DONE) return db_error("store persona " + p.name);
    return {};
}

Result<void> Store::set_owner(const std::string& name, int64_t uid) {
    Stmt q(db_, "UPDATE personas SET owner_uid = ?2 WHERE name = ?1;");
    if (!q.ok()) return db_error("set owner of " + name);
    q.bind(1, name).bind(2, uid);
    if (q.step() != SQLITE_DONE) return db_error("set owner of " + name);
    return {};
}

Result<int64_t> Store::add_version(const PersonaVersion& v) {
    Stmt q(db_, (std::string("INSERT INTO persona_versions (") + kVersionCols +
                 ") VALUES (?1, (SELECT COALESCE(MAX(version), 0) + 1 FROM persona_versions "
                 "WHERE persona = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
                 "RETURNING version;")
                    .c_str());
    if (!q.ok()) return db_error("store a version of " + v.persona);
    q.bind(1, v.persona).bind(2, v.filename).bind(3, v.source).bind(4, v.imports_json);
    q.bind(5, v.image_json).bind(6, v.rules_json).bind(7, v.description).bind(8, v.mode);
    q.bind(9, v.default_ingress).bind(10, v.default_egress).bind(11, v.author_uid);
    q.bind(12, v.created_at).bind(13, v.message).bind(14, v.owner_uid);
    if (q.step() != SQLITE_ROW) return db_error("store a version of " + v.persona);
    return q.i64(0);
}

Result<void> Store::insert_version(const PersonaVersion& v) {
    if (auto old = version(v.persona, v.version); !old) {
        return old.error();
    } else if (old->has_value()) {
        return Error{EEXIST, "persona '" + v.persona + "' version " + std::to_string(v.version) +
                                 " is stored already"};
    }
    Stmt q(db_, (std::string("INSERT INTO persona_versions (") + kVersionCols +
                 ") VALUES (?1, ?15, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14);")
                    .c_str());
    if (!q.ok()) return db_error("store version " + std::to_string(v.version) + " of " + v.persona);
    q.bind(1, v.persona).bind(2, v.filename).bind(3, v.source).bind(4, v.imports_json);
    q.bind(5, v.image_json).bind(6, v.rules_json).bind(7, v.description).bind(8, v.mode);
    q.bind(9, v.default_ingress).bind(10, v.default_egress).bind(11, v.author_uid);
    q.bind(12, v.created_at).bind(13, v.message).bind(14, v.owner_uid).bind(15, v.version);
    if (q.step() != SQLITE_DONE)
        return db_error("store version " + std::to_string(v.version) + " of " + v.persona);
    return {};
}

Result<void> Store::sync() {
    int log = 0, done = 0;
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_FULL, &log, &done) != SQLITE_OK)
        return db_error("checkpoint the write-ahead log");
    return {};
}

Result<void> Store::delete_version(const std::string& persona, int64_t n) {
    Stmt q(db_, "DELETE FROM persona_versions WHERE persona = ?1 AND version = ?2;");
    if (!q.ok()) return db_error("remove version of " + persona);
    q.bind(1, persona).bind(2, n);
    if (q.step() != SQLITE_DONE) return db_error("remove version of " + persona);
    return {};
}

Result<std::vector<PersonaVersion>> Store::versions(const std::string& persona) {
    Stmt q(db_, (std::string("SELECT ") + kVersionCols +
                 " FROM persona_versions WHERE persona = ?1 ORDER BY version;")
                    .c_str());
    if (!q.ok()) return db_error("list versions of " + persona);
    q.bind(1, persona);
    std::vector<PersonaVersion> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(version_from(q));
    if (rc != SQLITE_DONE) return db_error("list versions of " + persona);
    return out;
}

Result<std::optional<PersonaVersion>> Store::version(const std::string& persona, int64_t n) {
    Stmt q(db_, (std::string("SELECT ") + kVersionCols +
                 " FROM persona_versions WHERE persona = ?1 AND version = ?2;")
                    .c_str());
    if (!q.ok()) return db_error("read version of " + persona);
    q.bind(1, persona).bind(2, n);
    int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional<PersonaVersion>(version_from(q));
    if (rc != SQLITE_DONE) return db_error("read version of " + persona);
    return std::optional<PersonaVersion>();
}

Result<void> Store::add_audit(const AuditRecord& a) {
    Stmt q(db_,
           "INSERT INTO audit (at_ms, uid, pid, action, persona, target, outcome, status, "
           "detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9);");
    if (!q.ok()) return db_error("write audit record");
    q.bind(1, a.at_ms).bind(2, a.uid).bind(3, a.pid).bind(4, a.action).bind(5, a.persona);
    q.bind(6, a.target).bind(7, a.outcome).bind(8, int64_t{a.status}).bind(9, a.detail);
    if (q.step() != SQLITE_DONE) return db_error("write audit record");
    // Retention: the newest kAuditKeep records, trimmed every 1,000 inserts.
    const int64_t id = sqlite3_last_insert_rowid(db_);
    if (id % 1000 == 0) {
        Stmt trim(db_, "DELETE FROM audit WHERE id <= ?1;");
        if (!trim.ok()) return db_error("trim audit trail");
        trim.bind(1, id - kAuditKeep);
        if (trim.step() != SQLITE_DONE) return db_error("trim audit trail");
    }
    return {};
}

Result<std::vector<AuditRecord>> Store::audit(int64_t since_ms,
                                              const std::optional<std::string>& persona,
                                              size_t limit) {
    std::string sql = std::string("SELECT ") + kAuditCols + " FROM audit WHERE at_ms >= ?1" +
                      (persona ? " AND persona = ?2" : "") + " ORDER BY id DESC LIMIT ?3;";
    Stmt q(db_, sql.c_str());
    if (!q.ok()) return db_error("read audit trail");
    q.bind(1, since_ms).bind(3, static_cast<int64_t>(limit));
    if (persona) q.bind(2, *persona);
    std::vector<AuditRecord> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(audit_from(q));
    if (rc != SQLITE_DONE) return db_error("read audit trail");
    std::reverse(out.begin(), out.end());
    return out;
}

Result<void> Store::delete_persona(const std::string& name) {
    Stmt q(db_, "DELETE FROM personas WHERE name = ?1;");
    if (!q.ok()) return db_error("delete persona " + name);
    q.bind(1, name);
    if (q.step() != SQLITE_DONE) return db_error("delete persona " + name);
    return {};
}

Result<std::vector<BindingRecord>> Store::bindings() {
    Stmt q(db_,
           "SELECT cgroup_id, cgroup_path, persona, bound_at, origin, rule_id FROM bindings ORDER "
           "BY cgroup_path;");
    if (!q.ok()) return db_error("list bindings");
    std::vector<BindingRecord> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(binding_from(q));
    if (rc != SQLITE_DONE) return db_error("list bindings");
    return out;
}

Result<size_t> Store::binding_count() {
    Stmt q(db_, "SELECT COUNT(*) FROM bindings;");
    if (!q.ok() || q.step() != SQLITE_ROW) return db_error("count bindings");
    return static_cast<size_t>(q.i64(0));
}

Result<std::vector<BindingRecord>> Store::bindings_of(const std::string& persona) {
    Stmt q(db_,
           "SELECT cgroup_id, cgroup_path, persona, bound_at, origin, rule_id FROM bindings WHERE "
           "persona = ?1 "
           "ORDER BY cgroup_path;");
    if (!q.ok()) return db_error("list bindings");
    q.bind(1, persona);
    std::vector<BindingRecord> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(binding_from(q));
    if (rc != SQLITE_DONE) return db_error("list bindings");
    return out;
}

Result<std::optional<BindingRecord>> Store::binding(uint64_t cgroup_id) {
    Stmt q(db_,
           "SELECT cgroup_id, cgroup_path, persona, bound_at, origin, rule_id FROM bindings WHERE "
           "cgroup_id = ?1;");
    if (!q.ok()) return db_error("read binding");
    q.bind(1, static_cast<int64_t>(cgroup_id));
    int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional<BindingRecord>(binding_from(q));
    if (rc != SQLITE_DONE) return db_error("read binding");
    return std::optional<BindingRecord>();
}

Result<std::optional<BindingRecord>> Store::binding_by_path(const std::string& rel_path) {
    Stmt q(db_,
           "SELECT cgroup_id, cgroup_path, persona, bound_at, origin, rule_id FROM bindings WHERE "
           "cgroup_path = ?1;");
    if (!q.ok()) return db_error("read binding");
    q.bind(1, rel_path);
    int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional<BindingRecord>(binding_from(q));
    if (rc != SQLITE_DONE) return db_error("read binding");
    return std::optional<BindingRecord>();
}

Result<void> Store::upsert_binding(const BindingRecord& b) {
    // Two statements, one change: a savepoint (which nests inside a caller's transaction)
    // keeps the old row when the insert fails.
    if (auto r = exec("SAVEPOINT upsert_binding;"); !r) return r.error();
    auto fail = [&](Error e) -> Error {
        (void)exec("ROLLBACK TO upsert_binding; RELEASE upsert_binding;");
        return e;
    };
    // A cgroup path names one binding: a recreated cgroup (new inode) replaces the old row.
    {
        Stmt d(db_, "DELETE FROM bindings WHERE cgroup_path = ?1 AND cgroup_id != ?2;");
        if (!d.ok()) return fail(db_error("store binding"));
        d.bind(1, b.cgroup_path).bind(2, static_cast<int64_t>(b.cgroup_id));
        if (d.step() != SQLITE_DONE) return fail(db_error("store binding"));
    }
    {
        Stmt q(db_,
               "INSERT INTO bindings (cgroup_id, cgroup_path, persona, bound_at, origin, rule_id) "
               "VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT(cgroup_id) DO UPDATE SET "
               "cgroup_path=excluded.cgroup_path, persona=excluded.persona, "
               "bound_at=excluded.bound_at, origin=excluded.origin, rule_id=excluded.rule_id;");
        if (!q.ok()) return fail(db_error("store binding"));
        q.bind(1, static_cast<int64_t>(b.cgroup_id)).bind(2, b.cgroup_path).bind(3, b.persona);
        q.bind(4, b.bound_at).bind(5, b.origin).bind(6, b.rule_id);
        if (q.step() != SQLITE_DONE) return fail(db_error("store binding " + b.cgroup_path));
    }
    return exec("RELEASE upsert_binding;");
}

Result<void> Store::delete_binding(uint64_t cgroup_id) {
    Stmt q(db_, "DELETE FROM bindings WHERE cgroup_id = ?1;");
    if (!q.ok()) return db_error("delete binding");
    q.bind(1, static_cast<int64_t>(cgroup_id));
    if (q.step() != SQLITE_DONE) return db_error("delete binding");
    return {};
}

namespace {
constexpr const char* kIfCols =
    "netns, ifname, ifindex, netns_cookie, persona, bound_at, origin, rule_id";
}

static IfBindingRecord if_binding_from(Stmt& q) {
    IfBindingRecord b;
    b.netns = q.text(0);
    b.ifname = q.text(1);
    b.ifindex = static_cast<uint32_t>(q.i64(2));
    b.netns_cookie = static_cast<uint64_t>(q.i64(3));
    b.persona = q.text(4);
    b.bound_at = q.i64(5);
    b.origin = q.text(6);
    b.rule_id = q.i64(7);
    return b;
}

Result<std::vector<IfBindingRecord>> Store::if_bindings() {
    Stmt q(
        db_,
        (std::string("SELECT ") + kIfCols + " FROM if_bindings ORDER BY netns, ifname;").c_str());
    if (!q.ok()) return db_error("list interface bindings");
    std::vector<IfBindingRecord> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(if_binding_from(q));
    if (rc != SQLITE_DONE) return db_error("list interface bindings");
    return out;
}

Result<std::vector<IfBindingRecord>> Store::if_bindings_of(const std::string& persona) {
    Stmt q(db_, (std::string("SELECT ") + kIfCols +
                 " FROM if_bindings WHERE persona = ?1 ORDER BY netns, ifname;")
                    .c_str());
    if (!q.ok()) return db_error("list interface bindings");
    q.bind(1, persona);
    std::vector<IfBindingRecord> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(if_binding_from(q));
    if (rc != SQLITE_DONE) return db_error("list interface bindings");
    return out;
}

Result<std::optional<IfBindingRecord>> Store::if_binding(const std::string& netns,
                                                         const std::string& ifname) {
    Stmt q(db_, (std::string("SELECT ") + kIfCols +
                 " FROM if_bindings WHERE netns = ?1 AND ifname = ?2;")
                    .c_str());
    if (!q.ok()) return db_error("read interface binding");
    q.bind(1, netns).bind(2, ifname);
    int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional<IfBindingRecord>(if_binding_from(q));
    if (rc != SQLITE_DONE) return db_error("read interface binding");
    return std::optional<IfBindingRecord>();
}

Result<void> Store::upsert_if_binding(const IfBindingRecord& b) {
    Stmt q(db_,
           "INSERT INTO if_bindings (netns, ifname, ifindex, netns_cookie, persona, bound_at, "
           "origin, rule_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(netns, ifname) DO "
           "UPDATE SET ifindex=excluded.ifindex, netns_cookie=excluded.netns_cookie, "
           "persona=excluded.persona, bound_at=excluded.bound_at, origin=excluded.origin, "
           "rule_id=excluded.rule_id;");
    if (!q.ok()) return db_error("store interface binding");
    q.bind(1, b.netns).bind(2, b.ifname).bind(3, static_cast<int64_t>(b.ifindex));
    q.bind(4, static_cast<int64_t>(b.netns_cookie)).bind(5, b.persona).bind(6, b.bound_at);
    q.bind(7, b.origin).bind(8, b.rule_id);
    if (q.step() != SQLITE_DONE) return db_error("store interface binding " + b.ifname);
    return {};
}

Result<void> Store::delete_if_binding(const std::string& netns, const std::string& ifname) {
    Stmt q(db_, "DELETE FROM if_bindings WHERE netns = ?1 AND ifname = ?2;");
    if (!q.ok()) return db_error("delete interface binding");
    q.bind(1, netns).bind(2, ifname);
    if (q.step() != SQLITE_DONE) return db_error("delete interface binding");
    return {};
}

Result<std::vector<BindRule>> Store::bind_rules() {
    Stmt q(db_, (std::string("SELECT ") + kRuleCols + " FROM bind_rules ORDER BY id;").c_str());
    if (!q.ok()) return db_error("list binding rules");
    std::vector<BindRule> out;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(rule_from(q));
    if (rc != SQLITE_DONE) return db_error("list binding rules");
    return out;
}

Result<std::optional<BindRule>> Store::bind_rule(int64_t id) {
    Stmt q(db_, (std::string("SELECT ") + kRuleCols + " FROM bind_rules WHERE id = ?1;").c_str());
    if (!q.ok()) return db_error("read binding rule");
    q.bind(1, id);
    int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional<BindRule>(rule_from(q));
    if (rc != SQLITE_DONE) return db_error("read binding rule");
    return std::optional<BindRule>();
}

Result<int64_t> Store::insert_bind_rule(const BindRule& r) {
    Stmt q(db_,
           "INSERT INTO bind_rules (persona, kind, pattern, origin, created_by, created_at) "
           "VALUES (?1,?2,?3,?4,?5,?6);");
    if (!q.ok()) return db_error("store binding rule");
    q.bind(1, r.persona).bind(2, std::string(to_string(r.kind))).bind(3, r.pattern);
    q.bind(4, r.origin).bind(5, r.created_by).bind(6, r.created_at);
    int rc = q.step();
    if (rc == SQLITE_CONSTRAINT)
        return Error{EEXIST, "the same rule exists already: " + std::string(to_string(r.kind)) +
                                 " \"" + r.pattern + "\" -> " + r.persona};
    if (rc != SQLITE_DONE) return db_error("store binding rule");
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<void> Store::delete_bind_rule(int64_t id) {
    Stmt q(db_, "DELETE FROM bind_rules WHERE id = ?1;");
    if (!q.ok()) return db_error("delete binding rule");
    q.bind(1, id);
    if (q.step() != SQLITE_DONE) return db_error("delete binding rule");
    return {};
}

Result<bool> Store::replace_bind_rules(const std::string& persona, const std::string& origin,
                                       const std::vector<BindRule>& rules) {
    auto existing = bind_rules();
    if (!existing) return existing.error();
    auto same = [](const BindRule& a, const BindRule& b) {
        return a.kind == b.kind && a.pattern == b.pattern;
    };
    bool changed = false;
    for (const auto& old : *existing) {
        if (old.persona != persona || old.origin != origin) continue;
        bool kept = false;
        for (const auto& r : rules) kept = kept || same(old, r);
        if (kept) continue;
        if (auto d = delete_bind_rule(old.id); !d) return d.error();
        changed = true;
    }
    for (const auto& r : rules) {
        bool present = false;
        for (const auto& old : *existing)
            present = present || (old.persona == persona && old.origin == origin && same(old, r));
        if (present) continue;
        BindRule n = r;
        n.persona = persona;
        n.origin = origin;
        auto id = insert_bind_rule(n);
        if (!id && id.error().err != EEXIST) return id.error();  // listed twice: one row
        changed = true;
    }
    return changed;
}

Result<std::optional<std::string>> Store::meta(const std::string& key) {
    Stmt q(db_, "SELECT value FROM meta WHERE key = ?1;");
    if (!q.ok()) return db_error("read meta");
    q.bind(1, key);
    int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional<std::string>(q.text(0));
    if (rc != SQLITE_DONE) return db_error("read meta");
    return std::optional<std::string>();
}

Result<void> Store::set_meta(const std::string& key, const std::string& value) {
    Stmt q(db_,
           "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET "
           "value=excluded.value;");
    if (!q.ok()) return db_error("write meta");
    q.bind(1, key).bind(2, value);
    if (q.step() != SQLITE_DONE) return db_error("write meta " + key);
    return {};
}

}  // namespace pbpf::agent
