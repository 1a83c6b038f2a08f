// MapImage JSON: the documented shape, exact round trips, and clear errors on bad input.
#include <gtest/gtest.h>

#include "maps/map_image.h"
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
    EXPECT_EQ(error_of(image_with(R"({"kind":"rule"})")),
              R"(invalid persona image JSON: "kind" must be "addr" or "port" in {"kind":"rule"})");
}

}  // namespace
}  // namespace pbpf
