// MapImage JSON: the documented shape, exact round trips, and clear errors on bad input.
#include <gtest/gtest.h>

#include <cstring>

#include "maps/map_image.h"
#include "tests/unit/ir_fixtures.h"
#include "tests/unit/test_util.h"

namespace pbpf {
namespace {

TEST(MapImageJson, EntryShapes) {
    uint8_t addr[16] = {10, 0, 0, 0};
    EXPECT_EQ(to_json(make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, addr, 8, 3)).dump(),
              R"({"class":3,"dir":"egress","family":"ipv4","kind":"addr","prefix":"10.0.0.0/8"})");
    EXPECT_EQ(
        to_json(make_port_entry(3, PBPF_PROTO_TCP, 8000, 10, PBPF_VERDICT_ALLOW, 2, false)).dump(),
        R"({"audit":false,"class":3,"kind":"port","ports":"8000-8063","proto":"tcp","rule":2,"verdict":"allow"})");
    EXPECT_EQ(
        to_json(make_port_entry(1, PBPF_PROTO_OTHER, 0, 0, PBPF_VERDICT_DENY, 0, true)).dump(),
        R"({"audit":true,"class":1,"kind":"port","ports":"any","proto":"other","rule":0,"verdict":"deny"})");
    EXPECT_EQ(
        to_json(make_port_entry(1, PBPF_PROTO_UDP, 53, 16, PBPF_VERDICT_ALLOW, 1, false))["ports"],
        "53");
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
    EXPECT_EQ(to_json(make_addr_entry(PBPF_DIR_INGRESS, PBPF_FAMILY_IPV6, v6, 32, 9))["prefix"],
              "2001:db8::/32");
}

TEST(MapImageJson, RoundTripsExactly) {
    auto out = pdl::test::compile_text(
        "persona p {\n  security {\n    mode audit\n    default egress deny\n"
        "    allow egress tcp port 1000-2000 to { 10.0.0.0/8, 2001:db8::/32 }\n"
        "    deny ingress udp port 53 from fd00::/8\n  }\n}\n");
    ASSERT_TRUE(out.ok()) << out.diagnostics;
    PersonaImage img = pdl::lower(out.personas[0]);
    nlohmann::json j = to_json(img);
    PersonaImage back = persona_image_from_json(j);
    EXPECT_EQ(to_json(back), j);
    EXPECT_EQ(back.entries, img.entries);
    EXPECT_EQ(back.name, img.name);
    EXPECT_EQ(back.audit, img.audit);
    EXPECT_EQ(back.default_egress, img.default_egress);
    EXPECT_EQ(back.rule_count, img.rule_count);
    EXPECT_EQ(back.class_count, img.class_count);
    // And through text, as the agent stores it.
    EXPECT_EQ(to_json(persona_image_from_json(nlohmann::json::parse(j.dump()))), j);
}

TEST(MapImageJson, CanonicalizeSortsAndDropsDuplicates) {
    PersonaImage img;
    auto a = make_port_entry(2, PBPF_PROTO_TCP, 0, 0, PBPF_VERDICT_ALLOW, 0, false);
    auto b = make_port_entry(1, PBPF_PROTO_TCP, 0, 0, PBPF_VERDICT_ALLOW, 0, false);
    img.entries = {a, b, a};
    img.canonicalize();
    ASSERT_EQ(img.entries.size(), 2u);
    EXPECT_EQ(img.entries[0], b);
    EXPECT_EQ(img.entries[1], a);
}

std::string error_of(const std::string& text) {
    try {
        persona_image_from_json(nlohmann::json::parse(text));
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

const char* kHead =
    R"("audit":false,"class_count":1,"default_egress":"allow","default_ingress":"allow","name":"p","rule_count":0)";

std::string image_with(const std::string& entry) {
    return std::string("{") + kHead + R"(,"entries":[)" + entry + "]}";
}

TEST(MapImageJson, BadInputThrowsClearErrors) {
    EXPECT_EQ(error_of("[]"), "invalid persona image JSON: expected an object, found []");
    EXPECT_EQ(error_of(std::string("{") + kHead + "}"),
              std::string("invalid persona image JSON: missing \"entries\" in {") + kHead + "}");
    EXPECT_EQ(
        error_of(image_with(
            R"({"kind":"addr","dir":"up","family":"ipv4","prefix":"10.0.0.0/8","class":1})")),
        R"(invalid persona image JSON: "dir" must be "ingress" or "egress" in {"class":1,"dir":"up","family":"ipv4","kind":"addr","prefix":"10.0.0.0/8"})");
    EXPECT_EQ(
        error_of(image_with(
            R"({"kind":"addr","dir":"egress","family":"ipv4","prefix":"10.0.0.1/8","class":1})")),
        R"(invalid persona image JSON: "prefix" has host bits set in {"class":1,"dir":"egress","family":"ipv4","kind":"addr","prefix":"10.0.0.1/8"})");
    EXPECT_EQ(
        error_of(image_with(
            R"({"kind":"port","class":1,"proto":"tcp","ports":"10-20","verdict":"allow","rule":0,"audit":false})")),
        R"(invalid persona image JSON: "ports" 10-20 is not an aligned power-of-two block in {"audit":false,"class":1,"kind":"port","ports":"10-20","proto":"tcp","rule":0,"verdict":"allow"})");
    EXPECT_EQ(
        error_of(image_with(
            R"({"kind":"port","class":1,"proto":"tcp","ports":"any","verdict":"maybe","rule":0,"audit":false})")),
        R"(invalid persona image JSON: verdict must be "allow" or "deny", found "maybe" in {"audit":false,"class":1,"kind":"port","ports":"any","proto":"tcp","rule":0,"verdict":"maybe"})");
    EXPECT_EQ(
        error_of(image_with(
            R"({"kind":"port","class":1,"proto":"tcp","ports":"any","verdict":"deny","rule":0,"audit":false,"extra":1})")),
        R"(invalid persona image JSON: unexpected key "extra" in {"audit":false,"class":1,"extra":1,"kind":"port","ports":"any","proto":"tcp","rule":0,"verdict":"deny"})");
    EXPECT_EQ(
        error_of(image_with(
            R"({"kind":"port","class":-1,"proto":"tcp","ports":"any","verdict":"deny","rule":0,"audit":false})")),
        R"(invalid persona image JSON: "class" must be an unsigned 32-bit number in {"audit":false,"class":-1,"kind":"port","ports":"any","proto":"tcp","rule":0,"verdict":"deny"})");
    EXPECT_EQ(
        error_of(image_with(
            R"({"kind":"port","class":1,"proto":"tcp","ports":"any","verdict":"deny","rule":0,"audit":false},{"kind":"port","class":1,"proto":"tcp","ports":"any","verdict":"allow","rule":0,"audit":false})")),
        R"(invalid persona image JSON: duplicate key in entry {"audit":false,"class":1,"kind":"port","ports":"any","proto":"tcp","rule":0,"verdict":"allow"})");
    EXPECT_EQ(
        error_of(image_with(R"({"kind":"rule"})")),
        R"(invalid persona image JSON: "kind" must be "addr", "port", "enc-addr", "enc-port" or "sov-exempt" in {"kind":"rule"})");
}

TEST(MapImageJson, NewEntryKindsRenderLikeTheirLayouts) {
    uint8_t addr[16] = {192, 168, 7};
    EXPECT_EQ(
        to_json(
            make_addr_entry(PBPF_DIR_INGRESS, PBPF_FAMILY_IPV4, addr, 16, 8, PBPF_ENTRY_ENC_ADDR))
            .dump(),
        R"({"class":8,"dir":"ingress","family":"ipv4","kind":"enc-addr","prefix":"192.168.0.0/16"})");
    EXPECT_EQ(
        to_json(make_port_entry(8, PBPF_PROTO_TCP, 22, 16, PBPF_VERDICT_ALLOW, 2, true,
                                PBPF_ENTRY_ENC_PORT))
            .dump(),
        R"({"audit":true,"class":8,"kind":"enc-port","ports":"22","proto":"tcp","rule":2,"verdict":"allow"})");
    uint8_t v6[16] = {0xfd};
    PolicyEntry sov = make_sov_exempt_entry(PBPF_FAMILY_IPV6, v6, 8);
    EXPECT_EQ(to_json(sov).dump(), R"({"family":"ipv6","kind":"sov-exempt","prefix":"fd00::/8"})");
    EXPECT_EQ(sov.key.kind, PBPF_ENTRY_SOV_EXEMPT);
    EXPECT_EQ(sov.key.prefixlen, 32u + 8);
    EXPECT_EQ(sov.value.verdict, PBPF_VERDICT_ALLOW);
    // Each kind parses back to itself.
    PersonaImage img;
    img.name = "p";
    img.entries = {
        make_addr_entry(PBPF_DIR_INGRESS, PBPF_FAMILY_IPV4, addr, 16, 8, PBPF_ENTRY_ENC_ADDR),
        make_port_entry(8, PBPF_PROTO_TCP, 22, 16, PBPF_VERDICT_ALLOW, 2, true,
                        PBPF_ENTRY_ENC_PORT),
        sov};
    img.canonicalize();
    EXPECT_EQ(persona_image_from_json(to_json(img)).entries, img.entries);
}

TEST(MapImageJson, SettingsAndForwardsShape) {
    PersonaImage img = pdl::lower(pdl::test::full_persona());
    nlohmann::json j = to_json(img);
    EXPECT_EQ(
        j["settings"].dump(),
        R"({"dns":{"search":["corp.example","example.org"],"servers":["10.0.0.53","fd00::53"]},)"
        R"("encryption":{"min_tls":"1.3","required":true},)"
        R"("ids":{"port_scan":{"block_ns":300000000000,"count":50,"window_ns":10000000000},)"
        R"("syn_flood":{"block_ns":60000000000,"count":2000,"window_ns":1000000000}},)"
        R"("qos":{"egress":{"burst_bytes":262144,"rate_bps":200000000},)"
        R"("ingress":{"burst_bytes":0,"rate_bps":500000000},"latency_target_ns":5000000,)"
        R"("priority":"high"},)"
        R"("sovereignty":{"countries":["CH","DE","NO"],"list":"allow","on_violation":"log",)"
        R"("unknown":"deny"},)"
        R"("topology":{"max_hops":8,"next_hops":["10.0.0.1","10.0.0.2","2001:db8::1"],)"
        R"("route":{"table":100}}})");
    EXPECT_EQ(j["forwards"].dump(),
              R"([{"dir":"ingress","match":"8443","proto":"tcp","target":"443"},)"
              R"({"dir":"egress","match":"127.0.0.1:5432","proto":"tcp","target":"10.1.2.3:5432"},)"
              R"({"dir":"egress","match":"53","proto":"udp","target":"[fd00::53]:53"}])");

    // Sections render only what is set.
    pdl::ir::Persona p;
    p.name = "p";
    p.qos.latency_target_ns = 1000;
    p.topology.route = pdl::ir::Route{pdl::ir::Route::Kind::Via, 0, pdl::test::cidr("10.0.0.1")};
    p.sovereignty.list = pdl::ir::Action::Deny;
    p.sovereignty.unknown = pdl::ir::Action::Allow;
    p.dns.search = {"x.example"};
    EXPECT_EQ(to_json(pdl::lower(p))["settings"].dump(),
              R"({"dns":{"search":["x.example"]},"qos":{"latency_target_ns":1000},)"
              R"("sovereignty":{"countries":[],"list":"deny","on_violation":"drop",)"
              R"("unknown":"allow"},"topology":{"route":{"via":"10.0.0.1"}}})");
}

TEST(MapImageJson, RoundTripsEveryField) {
    for (auto mode : {pdl::ir::Mode::Enforce, pdl::ir::Mode::Audit}) {
        pdl::ir::Persona persona = pdl::test::full_persona();
        persona.mode = mode;
        PersonaImage img = pdl::lower(persona);
        nlohmann::json j = to_json(img);
        PersonaImage back = persona_image_from_json(j);
        EXPECT_EQ(to_json(back), j);
        EXPECT_EQ(back.entries, img.entries);
        EXPECT_EQ(back.forwards, img.forwards);
        EXPECT_EQ(back.dns_search, img.dns_search);
        EXPECT_EQ(std::memcmp(&back.settings, &img.settings, sizeof img.settings), 0);
        EXPECT_EQ(back.audit, img.audit);
        EXPECT_EQ(back.class_count, img.class_count);
        // And through text, as the agent stores it.
        PersonaImage text = persona_image_from_json(nlohmann::json::parse(j.dump()));
        EXPECT_EQ(std::memcmp(&text.settings, &img.settings, sizeof img.settings), 0);
        EXPECT_EQ(to_json(text), j);
    }
    // The other route, the edges of the country bitmap, IPv6 forwards.
    pdl::ir::Persona p;
    p.name = "q";
    p.topology.route = pdl::ir::Route{pdl::ir::Route::Kind::Via, 0, pdl::test::cidr("fd00::1")};
    p.sovereignty.list = pdl::ir::Action::Deny;
    p.sovereignty.countries = {"AA", "ZZ"};
    p.forwards = {pdl::test::forward(pdl::ir::Direction::Egress, pdl::ir::Proto::Tcp,
                                     pdl::test::cidr("fd00::2"), 80, pdl::test::cidr("fd00::3"),
                                     8080)};
    PersonaImage img = pdl::lower(p);
    nlohmann::json j = to_json(img);
    EXPECT_EQ(j["forwards"][0]["match"], "[fd00::2]:80");
    PersonaImage back = persona_image_from_json(j);
    EXPECT_EQ(std::memcmp(&back.settings, &img.settings, sizeof img.settings), 0);
    EXPECT_EQ(back.forwards, img.forwards);
    EXPECT_EQ(to_json(back), j);
}

std::string with_settings(const std::string& settings) {
    return std::string("{") + kHead + R"(,"entries":[],"settings":)" + settings + "}";
}

std::string with_forwards(const std::string& forwards) {
    return std::string("{") + kHead + R"(,"entries":[],"forwards":)" + forwards + "}";
}

TEST(MapImageJson, BadSettingsAndForwardsThrowClearErrors) {
    const std::string prefix = "invalid persona image JSON: ";
    EXPECT_EQ(error_of(with_settings("{}")),
              prefix + R"("settings" must not be empty (omit it when unset))");
    EXPECT_EQ(error_of(with_settings(R"({"firewall":{}})")),
              prefix + R"(unexpected key "firewall" in {"firewall":{}})");
    EXPECT_EQ(
        error_of(with_settings(R"({"encryption":{"required":false,"min_tls":"1.2"}})")),
        prefix +
            R"("required" must be true (omit "encryption" when it is not) in {"min_tls":"1.2","required":false})");
    EXPECT_EQ(
        error_of(with_settings(R"({"encryption":{"required":true,"min_tls":"1.4"}})")),
        prefix +
            R"("min_tls" must be one of "1.0", "1.1", "1.2", "1.3" in {"min_tls":"1.4","required":true})");
    EXPECT_EQ(
        error_of(with_settings(R"({"qos":{"priority":"urgent"}})")),
        prefix +
            R"("priority" must be one of "low", "normal", "high", "critical" in {"priority":"urgent"})");
    EXPECT_EQ(
        error_of(with_settings(R"({"qos":{"latency_target_ns":0}})")),
        prefix +
            R"("latency_target_ns" must be positive (omit it when unset) in {"latency_target_ns":0})");
    EXPECT_EQ(error_of(with_settings(R"({"ids":{"syn_flood":{"count":1,"window_ns":1}}})")),
              prefix + R"(missing "block_ns" in {"count":1,"window_ns":1})");
    EXPECT_EQ(
        error_of(with_settings(R"({"topology":{"route":{"table":1,"via":"10.0.0.1"}}})")),
        prefix + R"("route" must hold either "table" or "via" in {"table":1,"via":"10.0.0.1"})");
    EXPECT_EQ(
        error_of(with_settings(R"({"topology":{"next_hops":["10.0.0.300"]}})")),
        prefix +
            R"(expected an IPv4 or IPv6 address, found "10.0.0.300" in {"next_hops":["10.0.0.300"]})");
    EXPECT_EQ(
        error_of(
            with_settings(
                R"({"topology":{"next_hops":["1.0.0.1","1.0.0.2","1.0.0.3","1.0.0.4","1.0.0.5","1.0.0.6","1.0.0.7","1.0.0.8","1.0.0.9"]}})"))
            .substr(0, prefix.size() + 51),
        prefix + R"("next_hops" must be an array of 1 to 8 elements in )");
    EXPECT_EQ(error_of(with_settings(R"({"topology":{"max_hops":256}})")),
              prefix + R"("max_hops" must be at most 255 in {"max_hops":256})");
    EXPECT_EQ(
        error_of(with_settings(
            R"({"sovereignty":{"list":"allow","countries":["de"],"unknown":"deny","on_violation":"drop"}})")),
        prefix +
            R"(country must be two letters A-Z, found "de" in {"countries":["de"],"list":"allow","on_violation":"drop","unknown":"deny"})");
    EXPECT_EQ(
        error_of(with_settings(
            R"({"sovereignty":{"list":"allow","countries":["DE","DE"],"unknown":"deny","on_violation":"drop"}})")),
        prefix +
            R"(duplicate country "DE" in {"countries":["DE","DE"],"list":"allow","on_violation":"drop","unknown":"deny"})");
    EXPECT_EQ(
        error_of(with_settings(
            R"({"sovereignty":{"list":"allow","countries":[],"unknown":"maybe","on_violation":"drop"}})")),
        prefix +
            R"("unknown" must be "deny" or "allow" in {"countries":[],"list":"allow","on_violation":"drop","unknown":"maybe"})");
    EXPECT_EQ(error_of(with_settings(R"({"dns":{"servers":[]}})")),
              prefix + R"("servers" must be an array of 1 to 4 elements in {"servers":[]})");

    EXPECT_EQ(error_of(with_forwards("[]")),
              prefix + R"("forwards" must be a non-empty array (omit it when empty))");
    EXPECT_EQ(
        error_of(with_forwards(R"([{"dir":"egress","proto":"sctp","match":"1","target":"2"}])")),
        prefix +
            R"("proto" must be tcp or udp in {"dir":"egress","match":"1","proto":"sctp","target":"2"})");
    EXPECT_EQ(
        error_of(with_forwards(
            R"([{"dir":"egress","proto":"tcp","match":"[fd00::1]53","target":"2"}])")),
        prefix +
            R"(bad endpoint "[fd00::1]53" in {"dir":"egress","match":"[fd00::1]53","proto":"tcp","target":"2"})");
    EXPECT_EQ(
        error_of(with_forwards(R"([{"dir":"egress","proto":"tcp","match":"70000","target":"2"}])")),
        prefix +
            R"(endpoint "70000" must be [ADDRESS:]PORT in {"dir":"egress","match":"70000","proto":"tcp","target":"2"})");
    EXPECT_EQ(
        error_of(with_forwards(
            R"([{"dir":"ingress","proto":"tcp","match":"80","target":"1"},{"dir":"ingress","proto":"tcp","match":"80","target":"2"}])")),
        prefix + R"(duplicate forward {"dir":"ingress","match":"80","proto":"tcp","target":"2"})");
    EXPECT_EQ(
        error_of(with_forwards(R"([{"dir":"ingress","proto":"tcp","match":"80","to":"1"}])")),
        prefix + R"(unexpected key "to" in {"dir":"ingress","match":"80","proto":"tcp","to":"1"})");
}

}  // namespace
}  // namespace pbpf
