// The migration bundle (agent/migration_bundle.h): a round trip keeps every member of a
// flow, entries are re-keyed and rebased, and every malformed bundle is refused with a
// message naming what is wrong; the target a migration request names.
#include <arpa/inet.h>

#include <cstring>
#include <functional>

#include <gtest/gtest.h>

#include "agent/migration_bundle.h"

namespace pbpf::agent {
namespace {

using nlohmann::json;

constexpr uint64_t kSec = 1000000000ull;

Bundle sample() {
    Bundle b;
    b.exported_at = 1796000000;
    b.agent_version = "0.1.0";
    b.map_schema_version = 7;
    b.host_country = "DE";
    b.persona = "web";
    b.persona_version = 3;
    b.filename = "web.pdl";
    b.source = "persona web {\n  security {\n    default ingress deny\n  }\n}\n";
    b.imports_json = R"([{"filename":"lib.pdl","source":"set x { 10.0.0.0/8 }\n"}])";
    b.kind = "cgroup";
    b.cgroup = "/a/web";
    b.qos = {{"latency_target_us", 5000.0},
             {"rtt", {{"samples", 40}, {"sum_us", 8000}, {"p50_us", 190.5}, {"p99_us", 420.0}}}};
    pbpf_ct_key k{};
    pbpf_ct_value v{};
    k.workload = 4242;
    k.family = PBPF_FAMILY_IPV4;
    k.proto = 6;
    k.local_port = htons(40000);
    k.remote_port = htons(8080);
    const uint8_t local[4] = {198, 18, 0, 1}, remote[4] = {198, 18, 0, 2};
    std::memcpy(k.local, local, 4);
    std::memcpy(k.remote, remote, 4);
    v.created_ns = 100 * kSec;
    v.last_seen_ns = 190 * kSec;
    v.policy_epoch = 9;
    v.packets[PBPF_DIR_INGRESS] = 5;
    v.packets[PBPF_DIR_EGRESS] = 6;
    v.bytes[PBPF_DIR_INGRESS] = 500;
    v.bytes[PBPF_DIR_EGRESS] = 600;
    v.persona_id = 2;
    v.rule_id = 1;
    v.origin = PBPF_DIR_EGRESS;
    v.state = PBPF_CT_ESTABLISHED;
    v.flags = PBPF_CT_F_FIN_LOCAL | PBPF_CT_F_POLICED;
    b.flows.push_back(flow_from_entry(k, v, 200 * kSec));
    return b;
}

// Version 2 flows: the column of `name`, a member of a row, a row as an object.
size_t col(const json& j, const char* name) {
    const json& cols = j["conntrack"]["columns"];
    for (size_t i = 0; i < cols.size(); ++i)
        if (cols[i] == name) return i;
    ADD_FAILURE() << "no column " << name;
    return 0;
}
void set(json& j, size_t row, const char* name, json value) {
    j["conntrack"]["rows"][row][col(j, name)] = std::move(value);
}
json flow_object(const json& j, size_t row) {
    json f = json::object();
    const json& cols = j["conntrack"]["columns"];
    for (size_t i = 0; i < cols.size(); ++i)
        f[cols[i].get<std::string>()] = j["conntrack"]["rows"][row][i];
    return f;
}

std::string error_of(const json& j) {
    BundleParse p = bundle_from_json(j);
    EXPECT_FALSE(p.bundle.has_value()) << j.dump();
    return p.error;
}

TEST(MigrationBundle, RoundTripKeepsEveryMember) {
    const json j = bundle_to_json(sample());
    EXPECT_EQ(j["format"], kBundleFormat);
    EXPECT_EQ(j["version"], kBundleVersion);
    const json f = flow_object(j, 0);
    EXPECT_EQ(f["local"], "198.18.0.1");
    EXPECT_EQ(f["remote_port"], 8080);
    EXPECT_EQ(f["state"], "established");
    EXPECT_EQ(f["origin"], "egress");
    EXPECT_EQ(f["flags"], json({"fin_local", "policed"}));
    EXPECT_EQ(f["egress_packets"], 6u);
    EXPECT_EQ(f["ingress_bytes"], 500u);
    EXPECT_EQ(f["age_ns"], 100 * kSec);
    EXPECT_EQ(f["idle_ns"], 10 * kSec);
    EXPECT_FALSE(f.contains("workload")) << "the source's workload key stays behind";
    EXPECT_EQ(j["qos"]["rtt"]["p99_us"], 420.0);
    EXPECT_TRUE(j["not_included"].contains("qos")) << "the bundle says what it leaves behind";

    BundleParse p = bundle_from_json(j);
    ASSERT_TRUE(p.bundle) << p.error;
    EXPECT_EQ(bundle_to_json(*p.bundle), j);

    // Re-keyed to the target's workload and persona, rebased to its clock.
    pbpf_ct_key k;
    pbpf_ct_value v;
    flow_to_entry(p.bundle->flows[0], 77, 0, 5, 123, 1000 * kSec, &k, &v);
    EXPECT_EQ(k.workload, 77u);
    EXPECT_EQ(k.ifindex, 0u);
    EXPECT_EQ(ntohs(k.local_port), 40000);
    EXPECT_EQ(k.pad0, 0);
    EXPECT_EQ(k.pad1, 0u);
    EXPECT_EQ(v.persona_id, 5u);
    EXPECT_EQ(v.policy_epoch, 123u);
    EXPECT_EQ(v.created_ns, 900 * kSec);
    EXPECT_EQ(v.last_seen_ns, 990 * kSec);
    EXPECT_EQ(v.packets[PBPF_DIR_EGRESS], 6u);
    EXPECT_EQ(v.bytes[PBPF_DIR_INGRESS], 500u);
    EXPECT_EQ(v.state, PBPF_CT_ESTABLISHED);
    EXPECT_EQ(v.flags, PBPF_CT_F_FIN_LOCAL | PBPF_CT_F_POLICED);
    // An age beyond the target's uptime starts at its boot.
    flow_to_entry(p.bundle->flows[0], 77, 0, 5, 123, 50 * kSec, &k, &v);
    EXPECT_EQ(v.created_ns, 0u);
    EXPECT_EQ(v.last_seen_ns, 40 * kSec);
}

// A version 1 bundle (an object per flow, packets and bytes nested) is still read.
TEST(MigrationBundle, ReadsVersion1) {
    json j = bundle_to_json(sample());
    json flows = json::array();
    for (size_t i = 0; i < j["conntrack"]["rows"].size(); ++i) {
        json f = flow_object(j, i);
        json v1 = f;
        for (const char* k : {"ingress_packets", "egress_packets", "ingress_bytes", "egress_bytes"})
            v1.erase(k);
        v1["packets"] = {{"ingress", f["ingress_packets"]}, {"egress", f["egress_packets"]}};
        v1["bytes"] = {{"ingress", f["ingress_bytes"]}, {"egress", f["egress_bytes"]}};
        flows.push_back(v1);
    }
    json v1 = j;
    v1["version"] = 1;
    v1["conntrack"] = flows;
    BundleParse p = bundle_from_json(v1);
    ASSERT_TRUE(p.bundle) << p.error;
    EXPECT_EQ(bundle_to_json(*p.bundle), j) << "the same flows as from version 2";
    v1["conntrack"][0]["packets"].erase("egress");
    EXPECT_NE(error_of(v1).find("conntrack[0].packets.egress is missing"), std::string::npos)
        << error_of(v1);
}

TEST(MigrationBundle, RefusesOtherFormatsAndVersions) {
    json j = bundle_to_json(sample());
    j["format"] = "something-else";
    EXPECT_NE(error_of(j).find("not a migration bundle"), std::string::npos);
    j = bundle_to_json(sample());
    j["version"] = kBundleVersion + 1;
    EXPECT_NE(error_of(j).find("bundle version 3 is not supported"), std::string::npos);
    j["version"] = 0;
    EXPECT_NE(error_of(j).find("bundle version 0 is not supported"), std::string::npos);
    j["version"] = "1";
    EXPECT_NE(error_of(j).find("is not supported"), std::string::npos);
    EXPECT_NE(error_of(json::array()).find("JSON object"), std::string::npos);
}

TEST(MigrationBundle, NamesMissingAndMistypedMembers) {
    struct Case {
        std::function<void(json&)> edit;
        const char* error;
    } cases[] = {
        {[](json& j) { j.erase("persona"); }, "bundle.persona is missing"},
        {[](json& j) { j["persona"].erase("version"); }, "persona.version is missing"},
        {[](json& j) { j["persona"]["version"] = 0; }, "persona.version must be 1 or more"},
        {[](json& j) { j["persona"]["name"] = 5; }, "persona.name must be a string"},
        {[](json& j) { j["binding"]["kind"] = "vm"; }, "binding.kind must be"},
        {[](json& j) { j["binding"].erase("cgroup"); }, "binding.cgroup is missing"},
        {[](json& j) { j.erase("conntrack"); }, "bundle.conntrack is missing"},
        {[](json& j) { set(j, 0, "remote", 5); }, "conntrack.rows[0].remote must be a string"},
        {[](json& j) { j["conntrack"]["rows"][0].erase(0); },
         "conntrack.rows[0] must be an array of 16 values"},
        {[](json& j) { j["conntrack"]["columns"].erase(3); },
         "conntrack.columns: 'remote' is missing"},
        {[](json& j) { j["conntrack"]["columns"][3] = "far"; }, "unknown column 'far'"},
        {[](json& j) { j["conntrack"]["columns"][3] = "local"; }, "'local' appears twice"},
        {[](json& j) { j["conntrack"] = json::array(); }, "conntrack must be an object"},
        {[](json& j) { set(j, 0, "local", "::1"); }, "is not an IPv4 address"},
        {[](json& j) { set(j, 0, "state", "open"); }, "unknown value 'open'"},
        {[](json& j) { set(j, 0, "flags", {"sticky"}); }, "unknown value 'sticky'"},
        {[](json& j) { set(j, 0, "remote_port", 70000); }, "conntrack.rows[0].remote_port must be"},
        {[](json& j) { set(j, 0, "egress_packets", -1); }, "egress_packets must be"},
        {[](json& j) { set(j, 0, "idle_ns", 1000 * kSec); }, "idle_ns is larger"},
        {[](json& j) { j["source"].erase("map_schema_version"); }, "map_schema_version is missing"},
        {[](json& j) { j["counters"] = 5; }, "counters must be an object"},
        {[](json& j) { j["qos"] = "fast"; }, "qos must be an object"},
    };
    for (const auto& c : cases) {
        json j = bundle_to_json(sample());
        c.edit(j);
        EXPECT_NE(error_of(j).find(c.error), std::string::npos)
            << "expected '" << c.error << "', got '" << error_of(j) << "'";
    }
}

TEST(MigrationBundle, DetectsAnEditedSource) {
    json j = bundle_to_json(sample());
    j["persona"]["source"] = "persona web {\n  security {\n    default ingress allow\n  }\n}\n";
    EXPECT_NE(error_of(j).find("persona.sha256 does not match"), std::string::npos);
    j = bundle_to_json(sample());
    j["persona"]["imports"][0]["source"] = "set x { 0.0.0.0/0 }\n";
    EXPECT_NE(error_of(j).find("persona.sha256 does not match"), std::string::npos);
    j = bundle_to_json(sample());
    j["persona"].erase("sha256");
    EXPECT_NE(error_of(j).find("persona.sha256 is missing"), std::string::npos);
}

TEST(MigrationBundle, InterfaceBindingRoundTripAndRekey) {
    Bundle b = sample();
    b.kind = "interface";
    b.cgroup.clear();
    b.ifname = "vm0";
    b.netns = "tenant-a";
    const json j = bundle_to_json(b);
    EXPECT_EQ(j["binding"],
              (json{{"kind", "interface"}, {"ifname", "vm0"}, {"netns", "tenant-a"}}));
    BundleParse p = bundle_from_json(j);
    ASSERT_TRUE(p.bundle) << p.error;
    EXPECT_EQ(p.bundle->kind, "interface");
    EXPECT_EQ(p.bundle->ifname, "vm0");
    EXPECT_EQ(p.bundle->netns, "tenant-a");
    EXPECT_TRUE(p.bundle->cgroup.empty());

    // Re-keyed to the target's interface: its netns cookie as the workload, its ifindex.
    pbpf_ct_key k;
    pbpf_ct_value v;
    flow_to_entry(p.bundle->flows[0], 0xc00c1e, 17, 4, 11, 1000 * kSec, &k, &v);
    EXPECT_EQ(k.workload, 0xc00c1eu);
    EXPECT_EQ(k.ifindex, 17u);
    EXPECT_EQ(ntohs(k.local_port), 40000);
    EXPECT_EQ(v.persona_id, 4u);

    json missing = j;
    missing["binding"].erase("netns");
    EXPECT_NE(error_of(missing).find("binding.netns is missing"), std::string::npos);
}

MigrationTarget target_of(const json& body, const Bundle* bundle = nullptr) {
    TargetParse t = migration_target(body, "import", bundle);
    EXPECT_TRUE(t.target.has_value()) << body.dump() << ": " << t.error;
    return t.target.value_or(MigrationTarget{});
}
std::string target_error(const json& body, const Bundle* bundle = nullptr) {
    TargetParse t = migration_target(body, "import", bundle);
    EXPECT_FALSE(t.target.has_value()) << body.dump();
    return t.error;
}

TEST(MigrationTarget, CgroupOrInterface) {
    MigrationTarget t = target_of({{"cgroup", "/a/web"}});
    EXPECT_EQ(t.kind, "cgroup");
    EXPECT_EQ(t.cgroup, "/a/web");
    t = target_of({{"ifname", "vm0"}, {"netns", "ns1"}});
    EXPECT_EQ(t.kind, "interface");
    EXPECT_EQ(t.ifname, "vm0");
    EXPECT_EQ(t.netns, "ns1");
    t = target_of({{"ifname", "vm0"}});
    EXPECT_EQ(t.netns, "") << "no netns: the agent's own";

    EXPECT_EQ(target_error(json::array()), "request must be a JSON object");
    EXPECT_EQ(target_error(json::object()),
              "migrate import needs \"cgroup\" (a path) or \"ifname\" (and \"netns\")");
    EXPECT_EQ(target_error({{"cgroup", "/a"}, {"ifname", "vm0"}}),
              "migrate import: give \"cgroup\" or \"ifname\", not both");
    EXPECT_EQ(target_error({{"cgroup", "/a"}, {"netns", "ns1"}}),
              "migrate import: \"netns\" goes with \"ifname\" only");
    EXPECT_EQ(target_error({{"ifname", 3}}), "migrate import: \"ifname\" must be a string");
    EXPECT_EQ(target_error({{"ifname", ""}}), "migrate import: \"ifname\" is empty");
}

TEST(MigrationTarget, ImportDefaultsToTheBundlesWorkloadOfItsKind) {
    Bundle cg = sample();
    Bundle in = sample();
    in.kind = "interface";
    in.cgroup.clear();
    in.ifname = "vm0";
    in.netns = "tenant-a";
    // No target: the bundle's own workload.
    MigrationTarget t = target_of(json::object(), &in);
    EXPECT_EQ(t.kind, "interface");
    EXPECT_EQ(t.ifname, "vm0");
    EXPECT_EQ(t.netns, "tenant-a");
    t = target_of(json::object(), &cg);
    EXPECT_EQ(t.kind, "cgroup");
    EXPECT_EQ(t.cgroup, "/a/web");
    // A target given: the bundle's netns is not mixed into it.
    t = target_of({{"ifname", "vm1"}}, &in);
    EXPECT_EQ(t.ifname, "vm1");
    EXPECT_EQ(t.netns, "");
    // The kinds must agree.
    EXPECT_EQ(target_error({{"cgroup", "/b"}}, &in),
              "the bundle is of an interface-bound workload (interface vm0 in netns tenant-a): "
              "import it onto an interface (\"ifname\"), not into a cgroup");
    EXPECT_EQ(target_error({{"ifname", "vm1"}}, &cg),
              "the bundle is of a cgroup-bound workload (cgroup /a/web): import it into a "
              "cgroup (\"cgroup\"), not onto an interface");
}

}  // namespace
}  // namespace pbpf::agent
