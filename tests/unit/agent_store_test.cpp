// personabpfd's SQLite store (state.db) in a temp state dir: round trips, constraints,
// transactions, reopening, and refusing databases it must not use.
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "agent/store.h"
#include "tests/unit/temp_dir.h"

namespace pbpf::agent {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

PersonaRecord make_persona(const std::string& name, uint32_t id) {
    PersonaRecord p;
    p.name = name;
    p.id = id;
    p.filename = name + ".pdl";
    p.source = "persona " + name + " {}\n";
    p.description = "the " + name + " persona";
    p.mode = "enforce";
    p.default_ingress = "allow";
    p.default_egress = "deny";
    p.rules_json = "[\"allow egress tcp 443\"]";
    p.image_json = "{\"entries\":[]}";
    p.entries = 3;
    p.rule_count = 1;
    p.created_at = 1700000000;
    p.applied_at = 1700000100;
    p.updated_at = 1700000200;
    return p;
}

BindingRecord make_binding(uint64_t cgroup_id, const std::string& path,
                           const std::string& persona) {
    return BindingRecord{cgroup_id, path, persona, 1700001000};
}

void expect_same(const PersonaRecord& a, const PersonaRecord& b) {
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.filename, b.filename);
    EXPECT_EQ(a.source, b.source);
    EXPECT_EQ(a.description, b.description);
    EXPECT_EQ(a.mode, b.mode);
    EXPECT_EQ(a.default_ingress, b.default_ingress);
    EXPECT_EQ(a.default_egress, b.default_egress);
    EXPECT_EQ(a.rules_json, b.rules_json);
    EXPECT_EQ(a.image_json, b.image_json);
    EXPECT_EQ(a.entries, b.entries);
    EXPECT_EQ(a.rule_count, b.rule_count);
    EXPECT_EQ(a.created_at, b.created_at);
    EXPECT_EQ(a.applied_at, b.applied_at);
    EXPECT_EQ(a.updated_at, b.updated_at);
}

void expect_same(const BindingRecord& a, const BindingRecord& b) {
    EXPECT_EQ(a.cgroup_id, b.cgroup_id);
    EXPECT_EQ(a.cgroup_path, b.cgroup_path);
    EXPECT_EQ(a.persona, b.persona);
    EXPECT_EQ(a.bound_at, b.bound_at);
}

class AgentStore : public pbpf::test::TempDirTest {
  protected:
    void SetUp() override {
        TempDirTest::SetUp();
        db_path_ = dir_ + "/state.db";
    }
    void TearDown() override {
        store_.reset();
        TempDirTest::TearDown();
    }
    void open_store() {
        store_.reset();
        auto s = Store::open(dir_);
        ASSERT_TRUE(s.ok()) << s.error().what();
        store_ = std::move(*s);
    }
    // Names of the stored personas, in list order.
    std::string persona_names() {
        auto all = store_->personas();
        EXPECT_TRUE(all.ok()) << all.error().what();
        std::string out;
        if (!all.ok()) return out;
        for (const auto& p : *all) out += (out.empty() ? "" : ",") + p.name;
        return out;
    }
    std::string binding_paths() {
        auto all = store_->bindings();
        EXPECT_TRUE(all.ok()) << all.error().what();
        std::string out;
        if (!all.ok()) return out;
        for (const auto& b : *all) out += (out.empty() ? "" : ",") + b.cgroup_path;
        return out;
    }
    // Runs SQL on state.db through a separate connection; returns the first column of the
    // first row as text ("" if none).
    std::string raw_query(const std::string& sql) {
        sqlite3* db = nullptr;
        EXPECT_EQ(sqlite3_open_v2(db_path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                  nullptr),
                  SQLITE_OK);
        std::string out;
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
            int rc;
            bool first = true;
            while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (first) {
                    auto* t = sqlite3_column_text(st, 0);
                    out = t ? reinterpret_cast<const char*>(t) : "";
                    first = false;
                }
            EXPECT_EQ(rc, SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db);
        } else {
            ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        return out;
    }
    std::string read_file(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    std::string db_path_;
    std::unique_ptr<Store> store_;
};

// ---- open ----------------------------------------------------------------------------

TEST_F(AgentStore, OpenCreatesPrivateWalDatabaseAtCurrentSchema) {
    open_store();
    EXPECT_EQ(store_->path(), db_path_);
    struct stat st {};
    ASSERT_EQ(::stat(db_path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(raw_query("PRAGMA journal_mode;"), "wal");
    EXPECT_EQ(raw_query("SELECT version FROM schema_version;"),
              std::to_string(kStoreSchemaVersion));
    EXPECT_EQ(raw_query("SELECT count(*) FROM schema_version;"), "1");
    EXPECT_EQ(persona_names(), "");
    EXPECT_EQ(binding_paths(), "");
}

TEST_F(AgentStore, MissingStateDirIsAnError) {
    auto s = Store::open(dir_ + "/no/such/dir");
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(contains(s.error().message, dir_ + "/no/such/dir/state.db")) << s.error().message;
}

TEST_F(AgentStore, EmptyFileIsInitialised) {
    std::ofstream(db_path_).close();
    open_store();
    EXPECT_EQ(raw_query("SELECT version FROM schema_version;"),
              std::to_string(kStoreSchemaVersion));
}

TEST_F(AgentStore, NewerSchemaVersionIsRefused) {
    const std::string newer = std::to_string(kStoreSchemaVersion + 1);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           ("CREATE TABLE schema_version (version INTEGER NOT NULL);"
                            "INSERT INTO schema_version(version) VALUES (" +
                            newer +
                            ");"
                            "CREATE TABLE personas_v2 (name TEXT PRIMARY KEY);")
                               .c_str(),
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);

    auto s = Store::open(dir_);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().err, EPROTO);
    EXPECT_EQ(s.error().message, db_path_ + " has schema version " + newer +
                                     ", newer than this agent's " +
                                     std::to_string(kStoreSchemaVersion));
    // Nothing of this version's schema was written into the newer database.
    EXPECT_EQ(raw_query("SELECT version FROM schema_version;"), newer);
    EXPECT_EQ(raw_query("SELECT count(*) FROM sqlite_master WHERE name = 'personas';"), "0");
    EXPECT_EQ(raw_query("SELECT count(*) FROM sqlite_master WHERE name = 'personas_v2';"), "1");
}

// BUG (agent/store.cpp Store::open): "PRAGMA journal_mode=WAL" runs before the schema
// version check, so a newer database that the agent refuses is still switched to WAL mode
// (a persistent header change, plus -wal/-shm files) by the older agent. Enable once the
// version is checked first.
TEST_F(AgentStore, RefusedNewerDatabaseIsNotModified) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           ("PRAGMA journal_mode=DELETE;"
                            "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                            "INSERT INTO schema_version(version) VALUES (" +
                            std::to_string(kStoreSchemaVersion + 1) + ");")
                               .c_str(),
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    const std::string before = read_file(db_path_);
    ASSERT_FALSE(Store::open(dir_).ok());
    EXPECT_TRUE(read_file(db_path_) == before) << "state.db bytes changed";
    EXPECT_EQ(raw_query("PRAGMA journal_mode;"), "delete");
}

// A database of the first release (schema 1, no imports_json) is migrated forward in
// place, its personas kept.
TEST_F(AgentStore, SchemaOneIsMigratedForward) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, R"sql(
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version(version) VALUES (1);
        CREATE TABLE personas (
            name TEXT PRIMARY KEY, id INTEGER UNIQUE NOT NULL, filename TEXT NOT NULL,
            source TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', mode TEXT NOT NULL,
            default_ingress TEXT NOT NULL, default_egress TEXT NOT NULL,
            rules_json TEXT NOT NULL, image_json TEXT NOT NULL, entries INTEGER NOT NULL,
            rule_count INTEGER NOT NULL, created_at INTEGER NOT NULL,
            applied_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
        CREATE TABLE bindings (cgroup_id INTEGER PRIMARY KEY, cgroup_path TEXT NOT NULL,
            persona TEXT NOT NULL REFERENCES personas(name), bound_at INTEGER NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO personas VALUES ('old', 7, 'old.pdl', 'persona old {}', '', 'enforce',
            'allow', 'allow', '[]', '{}', 0, 0, 1, 2, 3);
        INSERT INTO bindings VALUES (5, '/old', 'old', 4);
    )sql",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);

    auto s = Store::open(dir_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    auto p = (*s)->persona("old");
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(p->has_value());
    EXPECT_EQ((*p)->id, 7u);
    EXPECT_EQ((*p)->source, "persona old {}");
    EXPECT_EQ((*p)->imports_json, "[]");
    // Bindings made before automatic binding existed were all explicit.
    auto b = (*s)->binding(5);
    ASSERT_TRUE(b.ok() && b->has_value());
    EXPECT_EQ((*b)->origin, "api");
    EXPECT_EQ((*b)->rule_id, 0);
    auto rules = (*s)->bind_rules();
    ASSERT_TRUE(rules.ok()) << rules.error().what();
    EXPECT_TRUE(rules->empty());
    // A persona applied before versions existed: its state is version 1, owned by root.
    EXPECT_EQ((*p)->version, 1);
    EXPECT_EQ((*p)->owner_uid, 0);
    auto v1 = (*s)->version("old", 1);
    ASSERT_TRUE(v1.ok() && v1->has_value()) << (v1.ok() ? "" : v1.error().what());
    EXPECT_EQ((*v1)->source, "persona old {}");
    EXPECT_EQ((*v1)->created_at, 2);
    s->reset();
    EXPECT_EQ(raw_query("SELECT version FROM schema_version;"),
              std::to_string(kStoreSchemaVersion));
}

TEST_F(AgentStore, GarbageFileIsRefusedAndLeftAlone) {
    std::string garbage;
    for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>((i * 7919 + 13) & 0xff));
    {
        std::ofstream out(db_path_, std::ios::binary);
        out << garbage;
    }
    auto s = Store::open(dir_);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().err, EIO);
    EXPECT_TRUE(contains(s.error().message, "file is not a database")) << s.error().message;
    EXPECT_TRUE(contains(s.error().message, db_path_)) << s.error().message;
    EXPECT_TRUE(read_file(db_path_) == garbage) << "state.db bytes changed";
}

TEST_F(AgentStore, TextFileIsRefused) {
    std::ofstream(db_path_) << "this is not a database, it is a note\n";
    auto s = Store::open(dir_);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(contains(s.error().message, "not a database")) << s.error().message;
}

TEST_F(AgentStore, StateDbThatIsADirectoryIsRefused) {
    fs::create_directory(db_path_);
    auto s = Store::open(dir_);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(contains(s.error().message, db_path_)) << s.error().message;
}

// ---- personas ------------------------------------------------------------------------

TEST_F(AgentStore, PersonaRoundTrip) {
    open_store();
    PersonaRecord p = make_persona("web", 7);
    p.description = "caf\xC3\xA9 \xE2\x86\x92 'quoted' \"double\"";
    p.source = std::string("persona web {\n  # \xF0\x9F\x94\x92\n}\n") + std::string(1 << 20, 'x');
    p.mode = "audit";
    p.entries = 0xffffffffu;
    p.rule_count = 4000000000u;
    p.created_at = -5;
    p.applied_at = INT64_MAX;
    ASSERT_TRUE(store_->upsert_persona(p).ok());
    auto got = store_->persona("web");
    ASSERT_TRUE(got.ok()) << got.error().what();
    ASSERT_TRUE(got->has_value());
    expect_same(**got, p);
}

TEST_F(AgentStore, TextWithEmbeddedNulRoundTrips) {
    open_store();
    PersonaRecord p = make_persona("nul", 1);
    p.source = std::string("before\0after", 12);
    ASSERT_TRUE(store_->upsert_persona(p).ok());
    auto got = store_->persona("nul");
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->source, p.source);
}

TEST_F(AgentStore, MissingPersonaIsNullopt) {
    open_store();
    auto got = store_->persona("nobody");
    ASSERT_TRUE(got.ok()) << got.error().what();
    EXPECT_FALSE(got->has_value());
}

TEST_F(AgentStore, PersonasListedByName) {
    open_store();
    for (auto [name, id] : {std::pair{"zeta", 1u}, {"alpha", 2u}, {"mid", 3u}})
        ASSERT_TRUE(store_->upsert_persona(make_persona(name, id)).ok());
    EXPECT_EQ(persona_names(), "alpha,mid,zeta");
    auto all = store_->personas();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 3u);
    expect_same((*all)[0], make_persona("alpha", 2));
}

TEST_F(AgentStore, UpsertUpdatesEverythingButCreatedAt) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    PersonaRecord v2 = make_persona("web", 1);
    v2.source = "persona web { allow egress tcp 80 }";
    v2.description = "second";
    v2.default_egress = "allow";
    v2.entries = 9;
    v2.created_at = 1800000000;
    v2.applied_at = 1800000001;
    v2.updated_at = 1800000002;
    ASSERT_TRUE(store_->upsert_persona(v2).ok());
    auto got = store_->persona("web");
    ASSERT_TRUE(got.ok() && got->has_value());
    PersonaRecord want = v2;
    want.created_at = make_persona("web", 1).created_at;  // the first apply's
    expect_same(**got, want);
    EXPECT_EQ(persona_names(), "web");
}

TEST_F(AgentStore, PersonaIdIsUniqueWhileInUse) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("a", 5)).ok());
    auto dup = store_->upsert_persona(make_persona("b", 5));
    ASSERT_FALSE(dup.ok());
    EXPECT_TRUE(contains(dup.error().message, "store persona b")) << dup.error().message;
    EXPECT_TRUE(contains(dup.error().message, "UNIQUE")) << dup.error().message;
    EXPECT_EQ(persona_names(), "a");
    // Moving an existing persona onto a taken id is refused the same way.
    ASSERT_TRUE(store_->upsert_persona(make_persona("c", 6)).ok());
    EXPECT_FALSE(store_->upsert_persona(make_persona("c", 5)).ok());
    auto c = store_->persona("c");
    ASSERT_TRUE(c.ok() && c->has_value());
    EXPECT_EQ((*c)->id, 6u);
}

TEST_F(AgentStore, RemovedPersonasIdCanBeReused) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("a", 1)).ok());
    ASSERT_TRUE(store_->upsert_persona(make_persona("b", 2)).ok());
    ASSERT_TRUE(store_->delete_persona("a").ok());
    auto gone = store_->persona("a");
    ASSERT_TRUE(gone.ok());
    EXPECT_FALSE(gone->has_value());
    ASSERT_TRUE(store_->upsert_persona(make_persona("c", 1)).ok());
    auto c = store_->persona("c");
    ASSERT_TRUE(c.ok() && c->has_value());
    EXPECT_EQ((*c)->id, 1u);
    EXPECT_EQ(persona_names(), "b,c");
}

TEST_F(AgentStore, DeletingAnUnknownPersonaIsNoError) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("a", 1)).ok());
    EXPECT_TRUE(store_->delete_persona("zzz").ok());
    EXPECT_EQ(persona_names(), "a");
}

// ---- bindings ------------------------------------------------------------------------

TEST_F(AgentStore, BindingRoundTripAndLookups) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    ASSERT_TRUE(store_->upsert_persona(make_persona("db", 2)).ok());
    BindingRecord w2 = make_binding(202, "/demo/w2", "web");
    BindingRecord w1 = make_binding(101, "/demo/w1", "web");
    BindingRecord d1 = make_binding(303, "/demo/d1", "db");
    for (const auto& b : {w2, w1, d1}) ASSERT_TRUE(store_->upsert_binding(b).ok());

    EXPECT_EQ(binding_paths(), "/demo/d1,/demo/w1,/demo/w2");
    auto by_id = store_->binding(101);
    ASSERT_TRUE(by_id.ok() && by_id->has_value());
    expect_same(**by_id, w1);
    auto by_path = store_->binding_by_path("/demo/w2");
    ASSERT_TRUE(by_path.ok() && by_path->has_value());
    expect_same(**by_path, w2);
    auto of_web = store_->bindings_of("web");
    ASSERT_TRUE(of_web.ok());
    ASSERT_EQ(of_web->size(), 2u);
    EXPECT_EQ((*of_web)[0].cgroup_path, "/demo/w1");
    EXPECT_EQ((*of_web)[1].cgroup_path, "/demo/w2");
    auto of_none = store_->bindings_of("nobody");
    ASSERT_TRUE(of_none.ok());
    EXPECT_TRUE(of_none->empty());

    auto absent = store_->binding(999);
    ASSERT_TRUE(absent.ok());
    EXPECT_FALSE(absent->has_value());
    auto absent_path = store_->binding_by_path("/demo/none");
    ASSERT_TRUE(absent_path.ok());
    EXPECT_FALSE(absent_path->has_value());
}

TEST_F(AgentStore, CgroupIdsAboveInt64MaxRoundTrip) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    const uint64_t big = 0xfffffffffffffff0ull;
    ASSERT_TRUE(store_->upsert_binding(make_binding(big, "/big", "web")).ok());
    auto got = store_->binding(big);
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->cgroup_id, big);
    auto all = store_->bindings();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ((*all)[0].cgroup_id, big);
    ASSERT_TRUE(store_->delete_binding(big).ok());
    EXPECT_EQ(binding_paths(), "");
}

TEST_F(AgentStore, RebindingACgroupReplacesItsPersona) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    ASSERT_TRUE(store_->upsert_persona(make_persona("db", 2)).ok());
    ASSERT_TRUE(store_->upsert_binding(make_binding(101, "/demo/w1", "web")).ok());
    BindingRecord again = make_binding(101, "/demo/w1", "db");
    again.bound_at = 1800000000;
    ASSERT_TRUE(store_->upsert_binding(again).ok());
    auto all = store_->bindings();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 1u);
    expect_same((*all)[0], again);
}

TEST_F(AgentStore, RecreatedCgroupReplacesTheOldRow) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    ASSERT_TRUE(store_->upsert_binding(make_binding(101, "/demo/w1", "web")).ok());
    ASSERT_TRUE(store_->upsert_binding(make_binding(102, "/demo/w1", "web")).ok());
    auto all = store_->bindings();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ((*all)[0].cgroup_id, 102u);
    auto old = store_->binding(101);
    ASSERT_TRUE(old.ok());
    EXPECT_FALSE(old->has_value());
}

TEST_F(AgentStore, BindingToUnknownPersonaIsRefused) {
    open_store();
    auto r = store_->upsert_binding(make_binding(101, "/demo/w1", "ghost"));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error().message, "FOREIGN KEY")) << r.error().message;
    EXPECT_EQ(binding_paths(), "");
}

// BUG (agent/store.cpp Store::upsert_binding): it first deletes any row with the same
// path and another cgroup id, then inserts; the two statements are not atomic. Outside a
// transaction, an insert that fails (here: unknown persona) has already deleted the old
// binding. (The binder calls it inside a transaction after checking the persona, so the
// API is not affected today.) Enable once upsert_binding is all-or-nothing.
TEST_F(AgentStore, FailedUpsertBindingKeepsTheOldRow) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    ASSERT_TRUE(store_->upsert_binding(make_binding(101, "/demo/w1", "web")).ok());
    EXPECT_FALSE(store_->upsert_binding(make_binding(102, "/demo/w1", "ghost")).ok());
    EXPECT_EQ(binding_paths(), "/demo/w1");
    auto old = store_->binding(101);
    ASSERT_TRUE(old.ok());
    EXPECT_TRUE(old->has_value()) << "the failed upsert deleted the existing binding";
}

TEST_F(AgentStore, BoundPersonaCannotBeDeleted) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    ASSERT_TRUE(store_->upsert_binding(make_binding(101, "/demo/w1", "web")).ok());
    auto r = store_->delete_persona("web");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error().message, "delete persona web")) << r.error().message;
    EXPECT_EQ(persona_names(), "web");
    ASSERT_TRUE(store_->delete_binding(101).ok());
    ASSERT_TRUE(store_->delete_persona("web").ok());
    EXPECT_EQ(persona_names(), "");
}

// ---- meta ----------------------------------------------------------------------------

TEST_F(AgentStore, MetaSetGetOverwrite) {
    open_store();
    auto none = store_->meta("cgroup_root");
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(store_->set_meta("cgroup_root", "/demo").ok());
    ASSERT_TRUE(store_->set_meta("cgroup_root_id", "1234").ok());
    ASSERT_TRUE(store_->set_meta("cgroup_root", "/other").ok());
    auto root = store_->meta("cgroup_root");
    ASSERT_TRUE(root.ok() && root->has_value());
    EXPECT_EQ(**root, "/other");
    auto id = store_->meta("cgroup_root_id");
    ASSERT_TRUE(id.ok() && id->has_value());
    EXPECT_EQ(**id, "1234");
    EXPECT_EQ(raw_query("SELECT count(*) FROM meta;"), "2");
}

// ---- transactions --------------------------------------------------------------------

class AgentStoreTxn : public AgentStore {
  protected:
    void SetUp() override {
        AgentStore::SetUp();
        open_store();
        ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
        ASSERT_TRUE(store_->upsert_binding(make_binding(101, "/demo/w1", "web")).ok());
        ASSERT_TRUE(store_->set_meta("k", "before").ok());
    }
    // Changes every table: a new persona + binding, an updated persona, a deleted
    // binding, an overwritten meta value.
    void change_everything() {
        ASSERT_TRUE(store_->upsert_persona(make_persona("db", 2)).ok());
        ASSERT_TRUE(store_->upsert_binding(make_binding(202, "/demo/d1", "db")).ok());
        PersonaRecord web = make_persona("web", 1);
        web.description = "changed";
        ASSERT_TRUE(store_->upsert_persona(web).ok());
        ASSERT_TRUE(store_->delete_binding(101).ok());
        ASSERT_TRUE(store_->set_meta("k", "after").ok());
    }
    void expect_previous_state() {
        EXPECT_EQ(persona_names(), "web");
        EXPECT_EQ(binding_paths(), "/demo/w1");
        auto web = store_->persona("web");
        ASSERT_TRUE(web.ok() && web->has_value());
        expect_same(**web, make_persona("web", 1));
        auto k = store_->meta("k");
        ASSERT_TRUE(k.ok() && k->has_value());
        EXPECT_EQ(**k, "before");
    }
};

TEST_F(AgentStoreTxn, ExplicitRollbackRestoresPreviousState) {
    auto txn = store_->begin();
    ASSERT_TRUE(txn.ok()) << txn.error().what();
    change_everything();
    EXPECT_EQ(persona_names(), "db,web");  // visible inside the transaction
    (*txn)->rollback();
    expect_previous_state();
}

TEST_F(AgentStoreTxn, DestructionWithoutCommitRollsBack) {
    {
        auto txn = store_->begin();
        ASSERT_TRUE(txn.ok()) << txn.error().what();
        change_everything();
    }
    expect_previous_state();
    // ... and the store is usable again afterwards.
    auto next = store_->begin();
    ASSERT_TRUE(next.ok()) << next.error().what();
    ASSERT_TRUE(store_->set_meta("k", "third").ok());
    ASSERT_TRUE((*next)->commit().ok());
    auto k = store_->meta("k");
    ASSERT_TRUE(k.ok() && k->has_value());
    EXPECT_EQ(**k, "third");
}

TEST_F(AgentStoreTxn, CommitKeepsChangesAcrossReopen) {
    {
        auto txn = store_->begin();
        ASSERT_TRUE(txn.ok()) << txn.error().what();
        change_everything();
        ASSERT_TRUE((*txn)->commit().ok());
    }  // destroying a committed transaction must not roll it back
    open_store();
    EXPECT_EQ(persona_names(), "db,web");
    EXPECT_EQ(binding_paths(), "/demo/d1");
    auto web = store_->persona("web");
    ASSERT_TRUE(web.ok() && web->has_value());
    EXPECT_EQ((*web)->description, "changed");
}

TEST_F(AgentStoreTxn, SecondCommitIsAnError) {
    auto txn = store_->begin();
    ASSERT_TRUE(txn.ok()) << txn.error().what();
    ASSERT_TRUE((*txn)->commit().ok());
    auto again = (*txn)->commit();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().err, EINVAL);
}

TEST_F(AgentStoreTxn, NestedBeginIsRefused) {
    auto outer = store_->begin();
    ASSERT_TRUE(outer.ok()) << outer.error().what();
    auto inner = store_->begin();
    ASSERT_FALSE(inner.ok());
    EXPECT_TRUE(contains(inner.error().message, "within a transaction")) << inner.error().message;
    change_everything();
    (*outer)->rollback();
    expect_previous_state();
}

TEST_F(AgentStoreTxn, FailedStatementInsideTransactionThenRollback) {
    auto txn = store_->begin();
    ASSERT_TRUE(txn.ok()) << txn.error().what();
    ASSERT_TRUE(store_->upsert_persona(make_persona("db", 2)).ok());
    EXPECT_FALSE(store_->upsert_persona(make_persona("dup", 2)).ok());  // id taken
    (*txn)->rollback();
    expect_previous_state();
}

// ---- reopening -----------------------------------------------------------------------

TEST_F(AgentStore, ReopenKeepsEverything) {
    open_store();
    PersonaRecord web = make_persona("web", 3);
    ASSERT_TRUE(store_->upsert_persona(web).ok());
    ASSERT_TRUE(store_->upsert_binding(make_binding(101, "/demo/w1", "web")).ok());
    ASSERT_TRUE(store_->set_meta("bpffs_root", "/sys/fs/bpf/x").ok());
    store_.reset();
    // The data survives the connection even if the WAL were not checkpointed.
    open_store();
    open_store();
    auto got = store_->persona("web");
    ASSERT_TRUE(got.ok() && got->has_value());
    expect_same(**got, web);
    auto b = store_->binding(101);
    ASSERT_TRUE(b.ok() && b->has_value());
    expect_same(**b, make_binding(101, "/demo/w1", "web"));
    auto m = store_->meta("bpffs_root");
    ASSERT_TRUE(m.ok() && m->has_value());
    EXPECT_EQ(**m, "/sys/fs/bpf/x");
    EXPECT_EQ(raw_query("SELECT count(*) FROM schema_version;"), "1");
}

// ---- binding rules (schema 4) -------------------------------------------------------------

namespace {
BindRule make_rule(const std::string& persona, RuleKind kind, const std::string& pattern,
                   const std::string& origin) {
    BindRule r;
    r.persona = persona;
    r.kind = kind;
    r.pattern = pattern;
    r.origin = origin;
    r.created_by = "test";
    r.created_at = 42;
    return r;
}
}  // namespace

TEST_F(AgentStore, BindRulesRoundTripAndRefuseDuplicates) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    auto id = store_->insert_bind_rule(make_rule("web", RuleKind::Cgroup, "/a/*", "api"));
    ASSERT_TRUE(id.ok()) << id.error().what();
    auto dup = store_->insert_bind_rule(make_rule("web", RuleKind::Cgroup, "/a/*", "api"));
    ASSERT_FALSE(dup.ok());
    EXPECT_EQ(dup.error().err, EEXIST);
    EXPECT_NE(dup.error().message.find("/a/*"), std::string::npos) << dup.error().message;
    // The same pattern from another origin is another rule.
    ASSERT_TRUE(store_->insert_bind_rule(make_rule("web", RuleKind::Cgroup, "/a/*", "pdl")).ok());
    // A rule must name a stored persona.
    EXPECT_FALSE(store_->insert_bind_rule(make_rule("nope", RuleKind::User, "alice", "api")).ok());

    auto got = store_->bind_rule(*id);
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->persona, "web");
    EXPECT_EQ((*got)->kind, RuleKind::Cgroup);
    EXPECT_EQ((*got)->pattern, "/a/*");
    EXPECT_EQ((*got)->origin, "api");
    EXPECT_EQ((*got)->created_at, 42);
    ASSERT_TRUE(store_->delete_bind_rule(*id).ok());
    got = store_->bind_rule(*id);
    ASSERT_TRUE(got.ok());
    EXPECT_FALSE(got->has_value());
}

TEST_F(AgentStore, ReplaceBindRulesKeepsTheRowsThatStay) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    ASSERT_TRUE(store_->upsert_persona(make_persona("db", 2)).ok());
    ASSERT_TRUE(store_->insert_bind_rule(make_rule("db", RuleKind::User, "bob", "pdl")).ok());
    std::vector<BindRule> v1 = {make_rule("", RuleKind::Cgroup, "/web/*", ""),
                                make_rule("", RuleKind::Interface, "tap-*", "")};
    auto changed = store_->replace_bind_rules("web", "pdl", v1);
    ASSERT_TRUE(changed.ok()) << changed.error().what();
    EXPECT_TRUE(*changed);
    auto all = store_->bind_rules();
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 3u);
    int64_t kept_id = 0;
    for (const auto& r : *all)
        if (r.pattern == "/web/*") kept_id = r.id;
    ASSERT_NE(kept_id, 0);

    // Same set again: nothing changes.
    changed = store_->replace_bind_rules("web", "pdl", v1);
    ASSERT_TRUE(changed.ok());
    EXPECT_FALSE(*changed);
    // One stays (same id), one goes, one comes; the other persona's rule is untouched.
    std::vector<BindRule> v2 = {make_rule("", RuleKind::Cgroup, "/web/*", ""),
                                make_rule("", RuleKind::Group, "webops", "")};
    changed = store_->replace_bind_rules("web", "pdl", v2);
    ASSERT_TRUE(changed.ok());
    EXPECT_TRUE(*changed);
    all = store_->bind_rules();
    ASSERT_TRUE(all.ok());
    std::string summary;
    for (const auto& r : *all)
        summary += r.persona + ":" + std::string(to_string(r.kind)) + ":" + r.pattern + ";";
    EXPECT_EQ(summary, "db:user:bob;web:cgroup:/web/*;web:group:webops;");
    for (const auto& r : *all) {
        if (r.pattern == "/web/*") {
            EXPECT_EQ(r.id, kept_id);
        }
    }
}

TEST_F(AgentStore, BindingsRecordWhoMadeThem) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)).ok());
    BindingRecord b{11, "/w/a", "web", 5, "rule", 3};
    ASSERT_TRUE(store_->upsert_binding(b).ok());
    auto got = store_->binding(11);
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->origin, "rule");
    EXPECT_EQ((*got)->rule_id, 3);
    IfBindingRecord ib{"", "tap0", 4, 99, "web", 5, "rule", 3};
    ASSERT_TRUE(store_->upsert_if_binding(ib).ok());
    auto igot = store_->if_binding("", "tap0");
    ASSERT_TRUE(igot.ok() && igot->has_value());
    EXPECT_EQ((*igot)->origin, "rule");
    EXPECT_EQ((*igot)->rule_id, 3);
}
}  // namespace
}  // namespace pbpf::agent

namespace pbpf::agent {
namespace {

PersonaVersion version_like(const std::string& persona, const std::string& source) {
    PersonaVersion v;
    v.persona = persona;
    v.filename = persona + ".pdl";
    v.source = source;
    v.image_json = "{}";
    v.rules_json = "[]";
    v.mode = "enforce";
    v.default_ingress = v.default_egress = "allow";
    v.author_uid = 1001;
    v.created_at = 100;
    v.message = "m";
    return v;
}

TEST_F(AgentStore, VersionsNumberPerPersonaAndOutliveThePersona) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)));
    auto a = store_->add_version(version_like("web", "one"));
    auto b = store_->add_version(version_like("web", "two"));
    auto c = store_->add_version(version_like("db", "other"));
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_EQ(*a, 1);
    EXPECT_EQ(*b, 2);
    EXPECT_EQ(*c, 1);
    auto all = store_->versions("web");
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[1].source, "two");
    EXPECT_EQ((*all)[1].author_uid, 1001);
    EXPECT_EQ((*all)[1].message, "m");
    auto rec = store_->persona("web");
    ASSERT_TRUE(rec.ok() && rec->has_value());
    EXPECT_EQ((*rec)->version, 2);
    EXPECT_FALSE(store_->version("web", 3)->has_value());
    // Removing the persona keeps its history, and numbering continues.
    ASSERT_TRUE(store_->delete_persona("web"));
    EXPECT_EQ(store_->versions("web")->size(), 2u);
    EXPECT_EQ(*store_->add_version(version_like("web", "three")), 3);
}

TEST_F(AgentStore, ExplicitVersionsKeepTheirNumberAndRefuseATakenOne) {
    open_store();
    ASSERT_TRUE(store_->upsert_persona(make_persona("web", 1)));
    PersonaVersion v = version_like("web", "imported");
    v.version = 4;  // an imported version keeps the source's number
    ASSERT_TRUE(store_->insert_version(v));
    EXPECT_EQ((*store_->persona("web"))->version, 4);
    EXPECT_EQ((*store_->version("web", 4))->source, "imported");
    auto again = store_->insert_version(v);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().err, EEXIST);
    // The next applied version follows it; deleting one leaves the others.
    EXPECT_EQ(*store_->add_version(version_like("web", "next")), 5);
    ASSERT_TRUE(store_->delete_version("web", 4));
    EXPECT_FALSE(store_->version("web", 4)->has_value());
    EXPECT_EQ(store_->versions("web")->size(), 1u);
}

TEST_F(AgentStore, OwnerIsSetAtInsertAndChangedOnlyExplicitly) {
    open_store();
    PersonaRecord p = make_persona("web", 1);
    p.owner_uid = 1001;
    ASSERT_TRUE(store_->upsert_persona(p));
    p.owner_uid = 0;  // an apply does not change the owner
    ASSERT_TRUE(store_->upsert_persona(p));
    EXPECT_EQ((*store_->persona("web"))->owner_uid, 1001);
    ASSERT_TRUE(store_->set_owner("web", 1002));
    EXPECT_EQ((*store_->persona("web"))->owner_uid, 1002);
}

TEST_F(AgentStore, AuditTrailFiltersAndKeepsTheNewest) {
    open_store();
    for (int i = 0; i < 5; ++i) {
        AuditRecord a;
        a.at_ms = 1000 * (i + 1);
        a.uid = 1000 + i;
        a.action = i % 2 ? "bind" : "apply";
        a.persona = i % 2 ? "db" : "web";
        a.outcome = i == 4 ? "refused" : "ok";
        a.status = i == 4 ? 403 : 200;
        a.detail = "d" + std::to_string(i);
        ASSERT_TRUE(store_->add_audit(a));
    }
    auto all = store_->audit(0, std::nullopt, 100);
    ASSERT_TRUE(all.ok()) << all.error().what();
    ASSERT_EQ(all->size(), 5u);
    EXPECT_EQ((*all)[0].detail, "d0");  // oldest first
    EXPECT_EQ((*all)[4].outcome, "refused");
    EXPECT_EQ((*all)[4].status, 403);
    auto web = store_->audit(0, std::string("web"), 100);
    ASSERT_EQ(web->size(), 3u);
    auto recent = store_->audit(3000, std::nullopt, 100);
    ASSERT_EQ(recent->size(), 3u);
    EXPECT_EQ((*recent)[0].uid, 1002);
    auto newest = store_->audit(0, std::nullopt, 2);  // the newest two, oldest first
    ASSERT_EQ(newest->size(), 2u);
    EXPECT_EQ((*newest)[0].detail, "d3");
    EXPECT_EQ((*newest)[1].detail, "d4");
}

}  // namespace
}  // namespace pbpf::agent
