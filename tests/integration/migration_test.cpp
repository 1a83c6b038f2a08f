// Workload migration between two agents on one kernel, as two hosts (separate pin roots,
// cgroup subtrees and state dirs): `migrate export` on A, `migrate import` on B. B ends up
// with the persona at A's version, the binding and the flow re-keyed to its own cgroup; a
// refusal by the sovereignty gate and a failure in the middle of the import leave B as it
// was, and so does a kill -9 of B in the middle of it (undone at B's next start); a
// retried import changes nothing.
#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

constexpr uint16_t kSinkPort = 7070;

class Migration : public IntegrationTest {
  protected:
    // `persona` with a country list: B at DE is refused, B at CH accepted. Destinations
    // here have no geo data, so `unknown allow` keeps A's traffic flowing.
    std::string pdl(const std::string& description) const {
        return "persona it-mig {\n  description \"" + description +
               "\"\n  security {\n    default ingress deny\n    default egress deny\n"
               "    allow egress tcp port " +
               std::to_string(kSinkPort) + " to " + veth_->peer4 +
               "\n  }\n  qos {\n    latency target 50ms\n  }\n  sovereignty {\n    allow "
               "countries { CH }\n    unknown allow\n  }\n}\n";
    }

    // (Re)starts B with [geo] host_country and, if given, an armed failpoint.
    void start_b(const std::string& country, const std::string& failpoint = "") {
        if (b_->running()) b_->stop();
        const std::string cfg =
            scratch_.write("b-" + country + ".toml", "[geo]\nhost_country = \"" + country + "\"\n");
        b_->extra_args = {"--config", cfg};
        b_->extra_env.clear();
        if (!failpoint.empty()) b_->extra_env.push_back("PERSONABPF_FAILPOINT=" + failpoint);
        ASSERT_TRUE(b_->start());
    }

    // What an import may change on B.
    json snapshot() { return migration_snapshot(*b_, "it-mig"); }
    // The same without the flows' ages, which move with the clock.
    json timeless() {
        json s = snapshot();
        for (auto& f : s["flows"]) {
            f.erase("age_s");
            f.erase("expires_in_s");
        }
        return s;
    }

    CgroupTree* tree_b_ = nullptr;
    Agent* b_ = nullptr;
};

TEST_F(Migration, ExportImportMovesPersonaBindingAndFlows) {
    const auto& v = *veth_;
    // A: version 2 of the persona (so that B, which has none, must not number it 1).
    apply(*agent_, pdl("first"));
    apply(*agent_, pdl("second"));
    bind("it-mig", "w");
    TcpSink sink(from_netns(), kSinkPort);
    ASSERT_TRUE(sink.ok()) << sink.error();
    TcpBulk bulk(in("w"), v.peer4, kSinkPort, 64 * 1024);
    ASSERT_TRUE(bulk.ok()) << bulk.error();

    json ls;
    ASSERT_TRUE(wait_until(
        [&] {
            if (!cli_json(*agent_, {"conntrack", "ls", "--persona", "it-mig"}, &ls)) return false;
            for (const auto& f : ls["flows"])
                if (f["remote_port"] == kSinkPort && f["state"] == "established") return true;
            return false;
        },
        5s))
        << ls.dump(2);

    // Export from A, once the workload's TCP round trips have been sampled (its persona has
    // a latency target): the bundle records them.
    const std::string file = scratch_.path() + "/bundle.json";
    CommandResult r;
    json bundle;
    ASSERT_TRUE(wait_until(
        [&] {
            r = agent_->cli({"migrate", "export", "--cgroup", cg_->rel("w"), "-o", file});
            if (r.exit_code != 0) return true;
            bundle = json::parse(read_file(file));
            return bundle["qos"].value("rtt", json::object()).value("samples", 0) > 0;
        },
        5s))
        << bundle["qos"].dump(2);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bundle["qos"]["latency_target_us"], 50000.0) << bundle["qos"].dump(2);
    EXPECT_GT(bundle["qos"]["rtt"]["p99_us"].get<double>(), 0.0) << bundle["qos"].dump(2);
    EXPECT_EQ(bundle["format"], "personabpf-migration-bundle");
    EXPECT_EQ(bundle["persona"]["name"], "it-mig");
    EXPECT_EQ(bundle["persona"]["version"], 2);
    EXPECT_EQ(bundle["binding"]["cgroup"], cg_->rel("w"));
    // The flows as rows under named columns (bundle version 2).
    const json& ct = bundle["conntrack"];
    auto col = [&](const char* name) {
        const auto& cols = ct["columns"];
        return static_cast<size_t>(std::find(cols.begin(), cols.end(), name) - cols.begin());
    };
    bool exported = false;
    for (const auto& f : ct["rows"])
        exported = exported || (f[col("remote_port")] == kSinkPort && f[col("remote")] == v.peer4 &&
                                f[col("origin")] == "egress" && f[col("state")] == "established");
    ASSERT_TRUE(exported) << ct.dump(2);
    EXPECT_GT(bundle["counters"]["egress"]["passed_packets"].get<uint64_t>(), 0u)
        << "the binding's counters: " << bundle["counters"].dump(2);

    // B: another "host" (its own subtree, pins and state).
    tree_b_ = &add_cgroup_tree();
    ASSERT_TRUE(tree_b_->ok()) << tree_b_->error();
    tree_b_->create("w2");
    b_ = &add_agent(tree_b_->path());
    const std::string target = tree_b_->rel("w2");
    start_b("DE");
    // B's workload is bound already, to another persona: an undone import restores that.
    apply(*b_, persona_pdl("it-other", {"default ingress allow", "default egress allow"}));
    bind(*b_, "it-other", *tree_b_, "w2");
    const json before = snapshot();
    EXPECT_NE(before["history_exit"], 0) << "B has no version of it-mig yet";

    {
        SCOPED_TRACE("the sovereignty gate refuses a host in DE");
        r = b_->cli({"migrate", "import", file, "--cgroup", target});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("sovereignty gate"), std::string::npos) << r.describe();
        EXPECT_NE(r.err.find("country DE"), std::string::npos) << r.describe();
        EXPECT_NE(r.err.find("allowed countries: CH"), std::string::npos) << r.describe();
        EXPECT_EQ(snapshot(), before);
    }
    {
        SCOPED_TRACE("a failure after the first flow is written is undone in full");
        start_b("CH", "migrate-import-flows");
        r = b_->cli({"migrate", "import", file, "--cgroup", target});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.describe();
        EXPECT_EQ(snapshot(), before);
    }
    {
        SCOPED_TRACE("a failure after the persona was applied is undone in full");
        start_b("CH", "migrate-import-persona");
        r = b_->cli({"migrate", "import", file, "--cgroup", target});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_EQ(snapshot(), before);
    }
    // kill -9 at each step of the import: the next start undoes what was done.
    for (const char* point : {"migrate-import-crash-journal", "migrate-import-crash-persona",
                              "migrate-import-crash-binding", "migrate-import-crash-flows"}) {
        kill_during_import(
            *b_, [&](const std::string& fp) { start_b("CH", fp); },
            {"migrate", "import", file, "--cgroup", target}, point);
        EXPECT_EQ(snapshot(), before) << "after kill -9 at " << point << " and a restart";
    }

    start_b("CH");
    json res;
    ASSERT_TRUE(cli_json(*b_, {"migrate", "import", file, "--cgroup", target}, &res));
    EXPECT_EQ(res["version"], 2) << res.dump();
    EXPECT_EQ(res["persona_created"], true) << res.dump();
    EXPECT_EQ(res["replaced"], "it-other") << res.dump();

    auto check_b = [&](const char* when) {
        SCOPED_TRACE(when);
        json personas, bindings, flows, history;
        ASSERT_TRUE(cli_json(*b_, {"persona", "ls"}, &personas));
        json mig;
        for (const auto& p : personas)
            if (p["name"] == "it-mig") mig = p;
        ASSERT_TRUE(mig.is_object()) << personas.dump(2);
        EXPECT_EQ(mig["version"], 2) << "the source's version number";
        ASSERT_TRUE(cli_json(*b_, {"persona", "history", "it-mig"}, &history));
        EXPECT_EQ(history.size(), 1u) << history.dump(2);
        ASSERT_TRUE(cli_json(*b_, {"bindings", "ls"}, &bindings));
        ASSERT_EQ(bindings.size(), 1u) << bindings.dump(2);
        EXPECT_EQ(bindings[0]["cgroup"], target);
        EXPECT_EQ(bindings[0]["persona"], "it-mig");
        ASSERT_TRUE(cli_json(*b_, {"conntrack", "ls"}, &flows));
        EXPECT_EQ(flows["flows"].size(), bundle["conntrack"]["rows"].size()) << flows.dump(2);
        bool moved = false;
        for (const auto& f : flows["flows"]) {
            EXPECT_EQ(f["persona"], "it-mig") << f.dump();
            EXPECT_EQ(f["workload"], target) << "re-keyed to B's cgroup: " << f.dump();
            moved = moved || (f["remote_port"] == kSinkPort && f["remote"] == v.peer4 &&
                              f["state"] == "established" && f["origin"] == "egress");
        }
        EXPECT_TRUE(moved) << flows.dump(2);
    };
    check_b("after the import");
    // A retried import of the same bundle: the same result, no duplicates.
    ASSERT_TRUE(cli_json(*b_, {"migrate", "import", file, "--cgroup", target}, &res));
    EXPECT_EQ(res["persona_created"], false) << res.dump();
    EXPECT_TRUE(res["replaced"].is_null()) << res.dump();
    check_b("after a retried import");
    {
        SCOPED_TRACE("a retry that fails or is killed puts B's flows back as they were");
        // Variants of the bundle: other packet counts (an entry a retry overwrote and did
        // not put back would show them) and ages beyond B's uptime (such flows start at
        // B's boot, and an import must still tell its entries from an earlier import's).
        auto variant = [&](const std::string& name, uint64_t extra_packets) {
            json v = bundle;
            for (auto& row : v["conntrack"]["rows"]) {
                row[col("egress_packets")] =
                    row[col("egress_packets")].get<uint64_t>() + extra_packets;
                row[col("age_ns")] = uint64_t{1} << 60;  // 36 years
            }
            return scratch_.write(name, v.dump());
        };
        ASSERT_TRUE(cli_json(
            *b_, {"migrate", "import", variant("old.json", 1000), "--cgroup", target}, &res));
        const json imported = timeless();
        ASSERT_FALSE(imported["flows"].empty());
        const std::string retry = variant("retry.json", 2000);
        start_b("CH", "migrate-import-flows");
        r = b_->cli({"migrate", "import", retry, "--cgroup", target});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("(nothing was changed)"), std::string::npos) << r.describe();
        EXPECT_EQ(timeless(), imported);
        // Killed once its entries are written (and those there before journaled), and
        // once before it wrote any.
        for (const char* point : {"migrate-import-crash-flows", "migrate-import-crash-binding"}) {
            kill_during_import(
                *b_, [&](const std::string& fp) { start_b("CH", fp); },
                {"migrate", "import", retry, "--cgroup", target}, point);
            EXPECT_EQ(timeless(), imported) << "after kill -9 at " << point << " and a restart";
        }
        check_b("after the retries were undone");
    }
    {
        SCOPED_TRACE("a damaged journal is set aside at start; a journal left blocks imports");
        const json now = timeless();
        const std::string journal = b_->paths().state_dir + "/import.journal";
        b_->stop();
        ASSERT_TRUE(write_file(journal, "personabpf-import-journal 1\ncut short"));
        start_b("CH");
        EXPECT_NE(b_->log().find("(the journal is kept as " + journal + ".bad)"), std::string::npos)
            << b_->log();
        EXPECT_FALSE(path_exists(journal));
        EXPECT_EQ(timeless(), now) << "nothing undone from a journal that cannot be read";
        // A journal whose removal failed: imports wait for the restart that undoes it.
        ASSERT_TRUE(write_file(journal, "personabpf-import-journal 1\ncut short"));
        r = b_->cli({"migrate", "import", file, "--cgroup", target});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("an earlier import's journal is still there"), std::string::npos)
            << r.describe();
        EXPECT_EQ(timeless(), now);
        ::unlink(journal.c_str());
    }

    // A still enforces its own workload: the source is not touched by an export.
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &ls));
    EXPECT_EQ(ls.size(), 1u) << ls.dump(2);
}

TEST_F(Migration, ImportRefusesConflictsAndBadInput) {
    apply(*agent_, pdl("first"));
    bind("it-mig", "w");
    const std::string file = scratch_.path() + "/bundle.json";
    CommandResult r = agent_->cli({"migrate", "export", "--cgroup", cg_->rel("w"), "-o", file});
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    // An unbound cgroup has nothing to export.
    in("unbound");
    r = agent_->cli({"migrate", "export", "--cgroup", cg_->rel("unbound")});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("has no binding of its own"), std::string::npos) << r.describe();

    // Onto itself under another version: A has version 2 in force now, the bundle 1.
    apply(*agent_, pdl("second"));
    in("other");
    r = agent_->cli({"migrate", "import", file, "--cgroup", cg_->rel("other")});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("is at version 2 here and the bundle needs version 1"), std::string::npos)
        << r.describe();

    // A tampered bundle.
    json bundle = json::parse(read_file(file));
    bundle["persona"]["source"] = bundle["persona"]["source"].get<std::string>() + "\n";
    const std::string bad = scratch_.write("bad.json", bundle.dump());
    r = agent_->cli({"migrate", "import", bad, "--cgroup", cg_->rel("other")});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("persona.sha256 does not match"), std::string::npos) << r.describe();
    json bl;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bl));
    EXPECT_EQ(bl.size(), 1u) << bl.dump(2);
}

}  // namespace
}  // namespace pbpf::it
