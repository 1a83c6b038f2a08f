// Parser: the tree it builds for every statement, where comments go, recovery after errors,
// and the exact text of every parse error.
#include <gtest/gtest.h>

#include <tuple>

#include "pdl-compiler/parser.h"

namespace pdl {
namespace {

struct Parsed {
    ast::File file;
    size_t errors;
    std::string diagnostics;
};

Parsed parse_text(const std::string& text) {
    Diagnostics d("t.pdl", text);
    auto toks = lex(text, d);
    ast::File f = parse(toks, d);
    return {std::move(f), d.errors(), d.render()};
}

TEST(Parser, BuildsSetsAndPersonas) {
    auto p = parse_text(
        "set ports = { 80, 443 }\n"
        "persona web {\n"
        "  description \"d\"\n"
        "  security {\n"
        "    mode audit; default egress deny\n"
        "    allow egress tcp port $ports to { 10.0.0.0/8, $dns }\n"
        "  }\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    ASSERT_EQ(p.file.items.size(), 2u);
    const auto& set = std::get<ast::SetDecl>(p.file.items[0].node);
    EXPECT_EQ(set.name.text, "ports");
    ASSERT_EQ(set.items.items.size(), 2u);
    EXPECT_EQ(set.items.items[1].text, "443");

    const auto& persona = std::get<ast::PersonaDecl>(p.file.items[1].node);
    EXPECT_EQ(persona.name.text, "web");
    ASSERT_EQ(persona.block.statements.size(), 2u);
    EXPECT_EQ(std::get<ast::Description>(persona.block.statements[0].node).value, "d");
    const auto& sec = std::get<ast::Section>(persona.block.statements[1].node);
    ASSERT_EQ(sec.block.statements.size(), 3u);
    EXPECT_EQ(std::get<ast::Mode>(sec.block.statements[0].node).value.text, "audit");
    const auto& def = std::get<ast::Default>(sec.block.statements[1].node);
    EXPECT_EQ(def.direction.text, "egress");
    EXPECT_EQ(def.action.text, "deny");
    const auto& rule = std::get<ast::Rule>(sec.block.statements[2].node);
    EXPECT_EQ(rule.action.text, "allow");
    EXPECT_EQ(rule.proto.text, "tcp");
    ASSERT_TRUE(rule.port_keyword.has_value());
    ASSERT_EQ(rule.ports.items.size(), 1u);
    EXPECT_TRUE(rule.ports.items[0].set_ref);
    EXPECT_EQ(rule.peer_keyword.text, "to");
    EXPECT_TRUE(rule.peers.braced);
    ASSERT_EQ(rule.peers.items.size(), 2u);
    EXPECT_EQ(rule.peers.items[0].text, "10.0.0.0/8");
    EXPECT_TRUE(rule.peers.items[1].set_ref);
}

const ast::Block& persona_block(const Parsed& p, size_t item = 0) {
    return std::get<ast::PersonaDecl>(p.file.items.at(item).node).block;
}

// The statements of section `i` of a block.
const std::vector<ast::Statement>& section(const ast::Block& b, size_t i,
                                           const std::string& keyword) {
    const auto& sec = std::get<ast::Section>(b.statements.at(i).node);
    EXPECT_EQ(sec.keyword.text, keyword);
    return sec.block.statements;
}

std::string text_at(const std::string& text, Span span) {
    return text.substr(span.offset, span.length);
}

TEST(Parser, ImportsExtendsAndBind) {
    const std::string text =
        "import \"base.pdl\"  # shared\n"
        "persona web extends base {\n"
        "}\n"
        "bind web {\n"
        "  cgroup \"/system.slice/web-*.service\"\n"
        "  interface \"eth*\"\n"
        "  user www-data; user 1000\n"
        "  group \"web ops\"\n"
        "}\n";
    auto p = parse_text(text);
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    ASSERT_EQ(p.file.items.size(), 3u);
    const auto& imp = std::get<ast::Import>(p.file.items[0].node);
    EXPECT_EQ(imp.path.value, "base.pdl");
    EXPECT_EQ(text_at(text, imp.path.span), "\"base.pdl\"");
    EXPECT_EQ(p.file.items[0].trailing, "# shared");
    EXPECT_EQ(text_at(text, p.file.items[0].keyword), "import");

    const auto& web = std::get<ast::PersonaDecl>(p.file.items[1].node);
    EXPECT_EQ(web.name.text, "web");
    ASSERT_TRUE(web.parent.has_value());
    EXPECT_EQ(web.parent->text, "base");
    EXPECT_EQ(text_at(text, web.parent->span), "base");

    const auto& bind = std::get<ast::BindDecl>(p.file.items[2].node);
    EXPECT_EQ(bind.persona.text, "web");
    ASSERT_EQ(bind.block.statements.size(), 5u);
    const std::vector<std::tuple<std::string, std::string, bool>> want = {
        {"cgroup", "/system.slice/web-*.service", true},
        {"interface", "eth*", true},
        {"user", "www-data", false},
        {"user", "1000", false},
        {"group", "web ops", true},
    };
    for (size_t i = 0; i < want.size(); ++i) {
        const auto& m = std::get<ast::BindMatch>(bind.block.statements[i].node);
        EXPECT_EQ(m.kind.text, std::get<0>(want[i]));
        EXPECT_EQ(m.value.text, std::get<1>(want[i]));
        EXPECT_EQ(m.quoted, std::get<2>(want[i]));
    }
    EXPECT_EQ(text_at(text, std::get<ast::BindMatch>(bind.block.statements[4].node).value.span),
              "\"web ops\"");
}

TEST(Parser, PersonaWithoutParent) {
    auto p = parse_text("persona web {\n}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    EXPECT_FALSE(std::get<ast::PersonaDecl>(p.file.items[0].node).parent.has_value());
}

TEST(Parser, EncryptionAndIds) {
    const std::string text =
        "persona p {\n"
        "  security {\n"
        "    encryption optional\n"
        "    encryption required min-tls 1.3\n"
        "    encryption required except { udp port 53, egress tcp port { 853, 5353 } to $dns,"
        " ingress any from 10.0.0.0/8, icmp }\n"
        "    ids {\n"
        "      syn-flood 2000/s block 60s\n"
        "      port-scan 50/10s\n"
        "    }\n"
        "  }\n"
        "}\n";
    auto p = parse_text(text);
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& sec = section(persona_block(p), 0, "security");
    ASSERT_EQ(sec.size(), 4u);

    const auto& optional = std::get<ast::Encryption>(sec[0].node);
    EXPECT_EQ(optional.setting.text, "optional");
    EXPECT_FALSE(optional.min_tls.has_value());
    EXPECT_FALSE(optional.except_keyword.has_value());
    EXPECT_TRUE(optional.exceptions.items.empty());

    const auto& tls = std::get<ast::Encryption>(sec[1].node);
    EXPECT_EQ(tls.setting.text, "required");
    ASSERT_TRUE(tls.min_tls.has_value());
    EXPECT_EQ(tls.min_tls->text, "1.3");
    EXPECT_FALSE(tls.except_keyword.has_value());

    const auto& ex = std::get<ast::Encryption>(sec[2].node);
    ASSERT_TRUE(ex.except_keyword.has_value());
    EXPECT_EQ(text_at(text, ex.except_keyword->span), "except");
    EXPECT_FALSE(ex.exceptions.multiline);
    EXPECT_EQ(text_at(text, ex.exceptions.span).front(), '{');
    EXPECT_EQ(text_at(text, ex.exceptions.span).back(), '}');
    const auto& items = ex.exceptions.items;
    ASSERT_EQ(items.size(), 4u);
    EXPECT_FALSE(items[0].direction.has_value());
    EXPECT_EQ(items[0].proto.text, "udp");
    ASSERT_TRUE(items[0].port_keyword.has_value());
    ASSERT_EQ(items[0].ports.items.size(), 1u);
    EXPECT_EQ(items[0].ports.items[0].text, "53");
    EXPECT_FALSE(items[0].peer_keyword.has_value());
    EXPECT_TRUE(items[0].peers.items.empty());
    EXPECT_EQ(text_at(text, items[0].span), "udp port 53");

    ASSERT_TRUE(items[1].direction.has_value());
    EXPECT_EQ(items[1].direction->text, "egress");
    EXPECT_TRUE(items[1].ports.braced);
    ASSERT_EQ(items[1].ports.items.size(), 2u);
    EXPECT_EQ(items[1].ports.items[1].text, "5353");
    ASSERT_TRUE(items[1].peer_keyword.has_value());
    EXPECT_EQ(items[1].peer_keyword->text, "to");
    ASSERT_EQ(items[1].peers.items.size(), 1u);
    EXPECT_TRUE(items[1].peers.items[0].set_ref);
    EXPECT_EQ(items[1].peers.items[0].text, "dns");
    EXPECT_EQ(text_at(text, items[1].span), "egress tcp port { 853, 5353 } to $dns");

    EXPECT_EQ(items[2].direction->text, "ingress");
    EXPECT_EQ(items[2].proto.text, "any");
    EXPECT_FALSE(items[2].port_keyword.has_value());
    EXPECT_EQ(items[2].peer_keyword->text, "from");
    EXPECT_EQ(items[2].peers.items[0].text, "10.0.0.0/8");
    EXPECT_EQ(text_at(text, items[3].span), "icmp");

    const auto& ids_sec = std::get<ast::Section>(sec[3].node);
    EXPECT_EQ(ids_sec.keyword.text, "ids");
    ASSERT_EQ(ids_sec.block.statements.size(), 2u);
    const auto& syn = std::get<ast::Threshold>(ids_sec.block.statements[0].node);
    EXPECT_EQ(syn.kind.text, "syn-flood");
    EXPECT_EQ(syn.rate.text, "2000/s");
    ASSERT_TRUE(syn.block.has_value());
    EXPECT_EQ(syn.block->text, "60s");
    const auto& scan = std::get<ast::Threshold>(ids_sec.block.statements[1].node);
    EXPECT_EQ(scan.kind.text, "port-scan");
    EXPECT_EQ(scan.rate.text, "50/10s");
    EXPECT_FALSE(scan.block.has_value());
}

TEST(Parser, ExceptListOverLinesKeepsComments) {
    // Patterns are separated by ',' and/or line breaks; a trailing ',' is fine. Comments
    // and blank lines are kept as in value lists.
    auto p = parse_text(
        "persona p {\n"
        "  security {\n"
        "    encryption required except {  # plaintext allowed\n"
        "\n"
        "      # resolvers\n"
        "      udp port 53,  # dns\n"
        "      tcp port 853\n"
        "\n"
        "\n"
        "      egress tcp port {\n"
        "        80,  # http\n"
        "      } to 10.0.0.0/8, ingress icmp  # ping\n"
        "      # end\n"
        "\n"
        "    }\n"
        "  }\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& sec = section(persona_block(p), 0, "security");
    const auto& list = std::get<ast::Encryption>(sec[0].node).exceptions;
    EXPECT_TRUE(list.multiline);
    EXPECT_EQ(list.open_comment, "# plaintext allowed");
    ASSERT_EQ(list.items.size(), 4u);
    EXPECT_EQ(list.items[0].leading, (ast::Trivia{"# resolvers"}));
    EXPECT_EQ(list.items[0].trailing, "# dns");
    EXPECT_EQ(list.items[1].proto.text, "tcp");
    EXPECT_EQ(list.items[1].leading, ast::Trivia{});
    EXPECT_EQ(list.items[1].trailing, "");
    EXPECT_EQ(list.items[2].leading, (ast::Trivia{""}));
    EXPECT_TRUE(list.items[2].ports.multiline);
    EXPECT_EQ(list.items[2].ports.items[0].trailing, "# http");
    EXPECT_EQ(list.items[2].peers.items[0].text, "10.0.0.0/8");
    EXPECT_EQ(list.items[3].direction->text, "ingress");
    EXPECT_EQ(list.items[3].proto.text, "icmp");
    EXPECT_EQ(list.items[3].trailing, "# ping");
    EXPECT_EQ(list.end_trivia, (ast::Trivia{"# end"}));
}

TEST(Parser, EmptyExceptList) {
    auto p = parse_text("persona p { security { encryption required except {} } }\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& e = std::get<ast::Encryption>(section(persona_block(p), 0, "security")[0].node);
    EXPECT_TRUE(e.except_keyword.has_value());
    EXPECT_TRUE(e.exceptions.items.empty());
    EXPECT_FALSE(e.exceptions.multiline);
}

TEST(Parser, QosStatements) {
    auto p = parse_text(
        "persona p {\n"
        "  qos {\n"
        "    egress rate 200mbit burst 64kb\n"
        "    ingress rate 1gbit\n"
        "    priority critical\n"
        "    latency target 5ms\n"
        "  }\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& qos = section(persona_block(p), 0, "qos");
    ASSERT_EQ(qos.size(), 4u);
    const auto& eg = std::get<ast::Shaping>(qos[0].node);
    EXPECT_EQ(eg.direction.text, "egress");
    EXPECT_EQ(eg.rate.text, "200mbit");
    ASSERT_TRUE(eg.burst.has_value());
    EXPECT_EQ(eg.burst->text, "64kb");
    const auto& in = std::get<ast::Shaping>(qos[1].node);
    EXPECT_EQ(in.direction.text, "ingress");
    EXPECT_EQ(in.rate.text, "1gbit");
    EXPECT_FALSE(in.burst.has_value());
    EXPECT_EQ(std::get<ast::Priority>(qos[2].node).value.text, "critical");
    EXPECT_EQ(std::get<ast::LatencyTarget>(qos[3].node).value.text, "5ms");
}

TEST(Parser, TopologyStatements) {
    auto p = parse_text(
        "persona p {\n"
        "  topology {\n"
        "    route table 100\n"
        "    route via fd00::1\n"
        "    next-hops { 10.0.0.1, $gateways }\n"
        "    next-hops 10.0.0.2\n"
        "    max-hops 8\n"
        "  }\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& topo = section(persona_block(p), 0, "topology");
    ASSERT_EQ(topo.size(), 5u);
    const auto& table = std::get<ast::Route>(topo[0].node);
    EXPECT_EQ(table.kind.text, "table");
    EXPECT_EQ(table.value.text, "100");
    const auto& via = std::get<ast::Route>(topo[1].node);
    EXPECT_EQ(via.kind.text, "via");
    EXPECT_EQ(via.value.text, "fd00::1");
    const auto& hops = std::get<ast::NextHops>(topo[2].node).hops;
    EXPECT_TRUE(hops.braced);
    ASSERT_EQ(hops.items.size(), 2u);
    EXPECT_TRUE(hops.items[1].set_ref);
    EXPECT_FALSE(std::get<ast::NextHops>(topo[3].node).hops.braced);
    EXPECT_EQ(std::get<ast::MaxHops>(topo[4].node).value.text, "8");
}

TEST(Parser, SovereigntyStatements) {
    auto p = parse_text(
        "persona p {\n"
        "  sovereignty {\n"
        "    allow countries { DE, FR, EU }\n"
        "    deny countries RU\n"
        "    unknown deny\n"
        "    exempt { 10.0.0.0/8, $internal }\n"
        "    on-violation log\n"
        "  }\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& sov = section(persona_block(p), 0, "sovereignty");
    ASSERT_EQ(sov.size(), 5u);
    const auto& allow = std::get<ast::Countries>(sov[0].node);
    EXPECT_EQ(allow.action.text, "allow");
    ASSERT_EQ(allow.countries.items.size(), 3u);
    EXPECT_EQ(allow.countries.items[2].text, "EU");
    const auto& deny = std::get<ast::Countries>(sov[1].node);
    EXPECT_EQ(deny.action.text, "deny");
    EXPECT_FALSE(deny.countries.braced);
    EXPECT_EQ(deny.countries.items[0].text, "RU");
    EXPECT_EQ(std::get<ast::Unknown>(sov[2].node).action.text, "deny");
    const auto& exempt = std::get<ast::Exempt>(sov[3].node).cidrs;
    ASSERT_EQ(exempt.items.size(), 2u);
    EXPECT_TRUE(exempt.items[1].set_ref);
    EXPECT_EQ(std::get<ast::OnViolation>(sov[4].node).action.text, "log");
}

TEST(Parser, DnsStatements) {
    const std::string text =
        "persona p {\n"
        "  dns {\n"
        "    servers { 10.0.0.53, fd00::53 }\n"
        "    search \"corp.example\" \"example.com\"\n"
        "    search \"one.example\"\n"
        "  }\n"
        "}\n";
    auto p = parse_text(text);
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& dns = section(persona_block(p), 0, "dns");
    ASSERT_EQ(dns.size(), 3u);
    const auto& servers = std::get<ast::DnsServers>(dns[0].node).servers;
    ASSERT_EQ(servers.items.size(), 2u);
    EXPECT_EQ(servers.items[1].text, "fd00::53");
    const auto& search = std::get<ast::DnsSearch>(dns[1].node);
    ASSERT_EQ(search.domains.size(), 2u);
    EXPECT_EQ(search.domains[0].value, "corp.example");
    EXPECT_EQ(search.domains[1].value, "example.com");
    EXPECT_EQ(text_at(text, search.domains[1].span), "\"example.com\"");
    EXPECT_EQ(std::get<ast::DnsSearch>(dns[2].node).domains.size(), 1u);
}

TEST(Parser, ForwardStatements) {
    const std::string text =
        "persona p {\n"
        "  forward {\n"
        "    egress tcp 127.0.0.1:5432 -> 10.1.2.3:5432\n"
        "    ingress tcp 8443->443\n"
        "    egress udp [fd00::1]:53 -> [fd00::2]:5353\n"
        "  }\n"
        "}\n";
    auto p = parse_text(text);
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& fwd = section(persona_block(p), 0, "forward");
    ASSERT_EQ(fwd.size(), 3u);
    const auto& eg = std::get<ast::Forward>(fwd[0].node);
    EXPECT_EQ(eg.direction.text, "egress");
    EXPECT_EQ(eg.proto.text, "tcp");
    EXPECT_EQ(eg.from.text, "127.0.0.1:5432");
    EXPECT_EQ(text_at(text, eg.arrow), "->");
    EXPECT_EQ(eg.to.text, "10.1.2.3:5432");
    const auto& in = std::get<ast::Forward>(fwd[1].node);
    EXPECT_EQ(in.direction.text, "ingress");
    EXPECT_EQ(in.from.text, "8443");
    EXPECT_EQ(in.to.text, "443");
    const auto& v6 = std::get<ast::Forward>(fwd[2].node);
    EXPECT_EQ(v6.proto.text, "udp");
    EXPECT_EQ(v6.from.text, "[fd00::1]:53");
    EXPECT_EQ(v6.to.text, "[fd00::2]:5353");
}

TEST(Parser, OneLineBlocks) {
    auto p = parse_text("persona p { security { mode audit } }\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& persona = std::get<ast::PersonaDecl>(p.file.items[0].node);
    const auto& sec = std::get<ast::Section>(persona.block.statements[0].node);
    EXPECT_EQ(sec.block.statements.size(), 1u);
}

TEST(Parser, CommentsAndBlankLinesAreAttached) {
    auto p = parse_text(
        "# head\n"
        "\n"
        "# about p\n"
        "persona p {  # open\n"
        "  security {\n"
        "    mode audit  # why\n"
        "\n"
        "\n"
        "    # last\n"
        "  }\n"
        "}  # done\n"
        "# tail\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& item = p.file.items[0];
    EXPECT_EQ(item.leading, (ast::Trivia{"# head", "", "# about p"}));
    EXPECT_EQ(item.trailing, "# done");
    const auto& persona = std::get<ast::PersonaDecl>(item.node);
    EXPECT_EQ(persona.block.open_comment, "# open");
    const auto& sec = std::get<ast::Section>(persona.block.statements[0].node);
    EXPECT_EQ(sec.block.statements[0].trailing, "# why");
    EXPECT_EQ(sec.block.end_trivia, (ast::Trivia{"", "# last"}));
    EXPECT_EQ(p.file.end_trivia, (ast::Trivia{"# tail"}));
}

TEST(Parser, MultilineListsKeepItemComments) {
    auto p = parse_text(
        "set ports = {  # web\n"
        "  80,  # http\n"
        "  # tls\n"
        "  443,\n"
        "  # end\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& list = std::get<ast::SetDecl>(p.file.items[0].node).items;
    EXPECT_TRUE(list.multiline);
    EXPECT_EQ(list.open_comment, "# web");
    ASSERT_EQ(list.items.size(), 2u);
    EXPECT_EQ(list.items[0].trailing, "# http");
    EXPECT_EQ(list.items[1].leading, (ast::Trivia{"# tls"}));
    EXPECT_EQ(list.end_trivia, (ast::Trivia{"# end"}));
}

TEST(Parser, MultilineListsKeepBlankLinesBetweenItems) {
    // Runs of blank lines become one "" entry; none after '{' or before '}'.
    auto p = parse_text(
        "set ports = {  # web\n"
        "\n"
        "  80,\n"
        "\n"
        "\n"
        "  # tls\n"
        "\n"
        "  443,  # https\n"
        "  \t\n"
        "  8443,\n"
        "\n"
        "  # end\n"
        "\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& list = std::get<ast::SetDecl>(p.file.items[0].node).items;
    ASSERT_EQ(list.items.size(), 3u);
    EXPECT_EQ(list.items[0].leading, ast::Trivia{});
    EXPECT_EQ(list.items[1].leading, (ast::Trivia{"", "# tls", ""}));
    EXPECT_EQ(list.items[1].trailing, "# https");
    EXPECT_EQ(list.items[2].leading, (ast::Trivia{""}));
    EXPECT_EQ(list.end_trivia, (ast::Trivia{"", "# end"}));
}

TEST(Parser, BlankLinesInBlocksAreCollapsedAndTrimmed) {
    auto p = parse_text(
        "persona p {\n"
        "\n"
        "  # first\n"
        "\n"
        "\n"
        "  description \"d\"\n"
        " \r\n"
        "  security {\n"
        "\n"
        "    mode audit\n"
        "  }\n"
        "\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& persona = std::get<ast::PersonaDecl>(p.file.items[0].node);
    ASSERT_EQ(persona.block.statements.size(), 2u);
    EXPECT_EQ(persona.block.statements[0].leading, (ast::Trivia{"# first", ""}));
    EXPECT_EQ(persona.block.statements[1].leading, (ast::Trivia{""}));
    EXPECT_EQ(persona.block.end_trivia, ast::Trivia{});
    const auto& sec = std::get<ast::Section>(persona.block.statements[1].node);
    EXPECT_EQ(sec.block.statements[0].leading, ast::Trivia{});
}

TEST(Parser, RecoversAndReportsEveryBadStatement) {
    auto p = parse_text(
        "persona a {\n"
        "  security {\n"
        "    allow sideways tcp to any\n"
        "    mode loud\n"
        "    allow egress tcp to any\n"
        "  }\n"
        "}\n"
        "persona b {\n"
        "  security {\n"
        "    deny egress tcp to { 10.0.0.1 10.0.0.2 }\n"
        "    deny egress tcp port to any\n"
        "  }\n"
        "}\n");
    EXPECT_EQ(p.errors, 4u) << p.diagnostics;
    // Both personas still parse: the bad statements are dropped, the good ones kept.
    ASSERT_EQ(p.file.items.size(), 2u);
    const auto& a = std::get<ast::PersonaDecl>(p.file.items[0].node);
    EXPECT_EQ(std::get<ast::Section>(a.block.statements[0].node).block.statements.size(), 1u);
}

TEST(Parser, MisplacedSectionsArePassedOverWhole) {
    // A section in the wrong block is one error; its braces (however deep) are skipped
    // with it, and the statements around it are kept.
    auto p = parse_text(
        "persona a {\n"
        "  security {\n"
        "    qos {\n"
        "      egress rate 200mbit { nested { deeper } }\n"
        "    }\n"
        "    mode audit\n"
        "  }\n"
        "  dns { servers 10.0.0.53 }\n"
        "}\n");
    EXPECT_EQ(p.errors, 1u) << p.diagnostics;
    const auto& a = std::get<ast::PersonaDecl>(p.file.items[0].node);
    ASSERT_EQ(a.block.statements.size(), 2u);
    const auto& sec = std::get<ast::Section>(a.block.statements[0].node);
    ASSERT_EQ(sec.block.statements.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<ast::Mode>(sec.block.statements[0].node));
    EXPECT_EQ(std::get<ast::Section>(a.block.statements[1].node).keyword.text, "dns");
}

TEST(Parser, DeepNestingDoesNotRecurse) {
    std::string text =
        "persona a {\n  qos " + std::string(200000, '{') + std::string(200000, '}') + "\n}\n";
    auto p = parse_text(text);
    EXPECT_EQ(p.errors, 2u);
    EXPECT_NE(p.diagnostics.find("blocks are nested too deeply (the limit is 64)"),
              std::string::npos);
}

TEST(Parser, DeepNestingIsBoundedInEveryBlockKind) {
    // Braces where a statement, a list item or a pattern is expected, in every kind of
    // block and list: one error for the brace, the nesting bound reported once (without
    // recursion), and parsing goes on after the matching '}'.
    const std::string bomb = std::string(100000, '{') + std::string(100000, '}');
    const std::vector<std::pair<std::string, std::string>> places = {
        {"", ""},
        {"persona p {\n", "}\n"},
        {"persona p {\n  security {\n", "  }\n}\n"},
        {"persona p {\n  security {\n    ids {\n", "    }\n  }\n}\n"},
        {"persona p {\n  security {\n    encryption required except { udp, ", "}\n  }\n}\n"},
        {"persona p {\n  qos {\n", "  }\n}\n"},
        {"persona p {\n  topology {\n    next-hops { 10.0.0.1, ", "}\n  }\n}\n"},
        {"persona p {\n  sovereignty {\n", "  }\n}\n"},
        {"persona p {\n  dns {\n", "  }\n}\n"},
        {"persona p {\n  forward {\n", "  }\n}\n"},
        {"bind p {\n", "}\n"},
        {"set s = { 1, ", "}\n"},
    };
    for (const auto& [before, after] : places) {
        auto p = parse_text(before + bomb + "\n" + after + "bogus\n");
        EXPECT_NE(p.diagnostics.find("blocks are nested too deeply (the limit is 64)"),
                  std::string::npos)
            << before;
        EXPECT_NE(p.diagnostics.find("unknown statement 'bogus'"), std::string::npos) << before;
        EXPECT_EQ(p.errors, 3u) << before << p.diagnostics.substr(0, 2000);
    }
}

TEST(Parser, ErrorCountIsBounded) {
    std::string text;
    for (int i = 0; i < 1000; ++i) text += "bogus\n";
    auto p = parse_text(text);
    EXPECT_EQ(p.errors, Diagnostics::kMaxErrors);
    EXPECT_NE(p.diagnostics.find("(too many errors; stopping here)"), std::string::npos);
}

// ---- parse errors: the exact rendered text, as in diagnostics_test.cpp. Each source
// holds several bad statements, one per line: recovery reports every one of them. ----

std::string diagnostics_of(const std::string& text) { return parse_text(text).diagnostics; }

// Top level: imports need quotes, 'extends' and 'bind' their names, and every
// statement of a block is told where it belongs.
TEST(ParserErrors, TopLevel) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(import base.pdl
import
persona a extend b {
}
persona b extends {
}
persona c extends b c {
}
bind {
}
bind web
bogus
= x
qos {
  priority high
}
ids {
}
mode audit
encryption required
description "d"
cgroup "/x"
)pdl"),
        R"pdl(t.pdl:1:8: error: expected a quoted path after 'import', found 'base.pdl'; write it in quotes: "base.pdl"
import base.pdl
       ^~~~~~~~
t.pdl:2:7: error: expected a quoted path after 'import', found end of line
import
      ^
t.pdl:3:11: error: expected '{' or 'extends' after the persona name, found 'extend'; did you mean 'extends'?
persona a extend b {
          ^~~~~~
t.pdl:5:19: error: expected a persona name after 'extends' (letters, digits, '-' and '_'), found '{'
persona b extends {
                  ^
t.pdl:7:21: error: expected '{' after the parent persona's name, found 'c'
persona c extends b c {
                    ^
t.pdl:9:6: error: expected a persona name after 'bind' (letters, digits, '-' and '_'), found '{'
bind {
     ^
t.pdl:11:9: error: expected '{' after the persona name, found end of line
bind web
        ^
t.pdl:12:1: error: unknown statement 'bogus'; expected 'import', 'set', 'persona' or 'bind'
bogus
^~~~~
t.pdl:13:1: error: expected 'import', 'set', 'persona' or 'bind', found '='
= x
^
t.pdl:14:1: error: 'qos' sections belong inside a persona
qos {
^~~
t.pdl:17:1: error: 'ids' belongs inside a security { } block
ids {
^~~
t.pdl:19:1: error: 'mode' belongs inside a security { } block
mode audit
^~~~
t.pdl:20:1: error: 'encryption' belongs inside a security { } block
encryption required
^~~~~~~~~~
t.pdl:21:1: error: 'description' belongs inside a persona
description "d"
^~~~~~~~~~~
t.pdl:22:1: error: 'cgroup' belongs inside a top-level bind block
cgroup "/x"
^~~~~~
)pdl");
}

// In a persona: unknown statements list the persona's statements; sections need
// '{'; statements of sections, ids and bind blocks say where they belong.
TEST(ParserErrors, Persona) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  topolgy {
  }
  qos high
  ids {
    syn-flood 2000/s
  }
  encryption required
  priority high
  cgroup "/x"
  persona q {
  }
  "text"
}
)pdl"),
        R"pdl(t.pdl:2:3: error: unknown statement 'topolgy' in persona; expected 'description', 'security', 'qos', 'topology', 'sovereignty', 'dns' or 'forward'; did you mean 'topology'?
  topolgy {
  ^~~~~~~
t.pdl:4:7: error: expected '{' after 'qos', found 'high'
  qos high
      ^~~~
t.pdl:5:3: error: 'ids' belongs inside a security { } block
  ids {
  ^~~
t.pdl:8:3: error: 'encryption' belongs inside a security { } block
  encryption required
  ^~~~~~~~~~
t.pdl:9:3: error: 'priority' belongs inside a qos { } block
  priority high
  ^~~~~~~~
t.pdl:10:3: error: 'cgroup' belongs inside a top-level bind block
  cgroup "/x"
  ^~~~~~
t.pdl:11:3: error: 'persona' belongs at top level, outside any block
  persona q {
  ^~~~~~~
t.pdl:13:3: error: expected a statement ('description', 'security', 'qos', 'topology', 'sovereignty', 'dns' or 'forward'), found a string
  "text"
  ^~~~~~
)pdl");
}

// In security: sections and statements of other blocks, and a sovereignty list.
TEST(ParserErrors, Security) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    priority high
    qos {
    }
    allow countries { DE }
    encrypton required
    route table 5
  }
}
)pdl"),
              R"pdl(t.pdl:3:5: error: 'priority' belongs inside a qos { } block
    priority high
    ^~~~~~~~
t.pdl:4:5: error: 'qos' belongs directly in the persona, not in its security block
    qos {
    ^~~
t.pdl:6:5: error: 'allow countries' belongs inside a sovereignty { } block
    allow countries { DE }
    ^~~~~
t.pdl:7:5: error: unknown statement 'encrypton' in security block; expected 'mode', 'default', 'allow', 'deny', 'encryption' or 'ids'; did you mean 'encryption'?
    encrypton required
    ^~~~~~~~~
t.pdl:8:5: error: 'route' belongs inside a topology { } block
    route table 5
    ^~~~~
)pdl");
}

TEST(ParserErrors, Encryption) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    encryption
    encryption requried
    encryption required min-tls
    encryption required min-tsl 1.2
    encryption required min-tls 1.2 1.3
    encryption required except udp port 53
    encryption required except { udp port 53 } min-tls 1.2
  }
}
)pdl"),
        R"pdl(t.pdl:3:15: error: expected 'required' or 'optional' after 'encryption', found end of line
    encryption
              ^
t.pdl:4:16: error: expected 'required' or 'optional' after 'encryption', found 'requried'; did you mean 'required'?
    encryption requried
               ^~~~~~~~
t.pdl:5:32: error: expected a TLS version (such as 1.2) after 'min-tls', found end of line
    encryption required min-tls
                               ^
t.pdl:6:25: error: expected 'min-tls', 'except' or end of statement after 'required', found 'min-tsl'; did you mean 'min-tls'?
    encryption required min-tsl 1.2
                        ^~~~~~~
t.pdl:7:37: error: expected 'except' or end of statement after '1.2', found '1.3'
    encryption required min-tls 1.2 1.3
                                    ^~~
t.pdl:8:32: error: expected '{' after 'except', found 'udp'
    encryption required except udp port 53
                               ^~~
t.pdl:9:48: error: expected end of statement after the except list, found 'min-tls'; write 'min-tls' before 'except'
    encryption required except { udp port 53 } min-tls 1.2
                                               ^~~~~~~
)pdl");
}

// Patterns: what may start one, what may follow each part, separators.
TEST(ParserErrors, ExceptList) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    encryption required except { tpc }
    encryption required except { udp prot 53 }
    encryption required except { udp port 53 tcp port 853 }
    encryption required except { egress tcp to 10.0.0.1 udp }
    encryption required except { egress tpc }
    encryption required except { , udp }
    encryption required except { udp,, tcp }
    encryption required except { $resolvers }
    encryption required except { udp port }
    encryption required except { tcp port { 80 443 }, udp }
  }
}
)pdl"),
        R"pdl(t.pdl:3:34: error: expected 'ingress', 'egress' or a protocol (tcp, udp, icmp, icmpv6 or any) to start a flow pattern, found 'tpc'; did you mean 'tcp'?
    encryption required except { tpc }
                                 ^~~
t.pdl:4:38: error: expected 'port', 'to', 'from', ',' or '}' after 'udp', found 'prot'; did you mean 'port'?
    encryption required except { udp prot 53 }
                                     ^~~~
t.pdl:5:46: error: expected 'to', 'from', ',' or '}' after the ports, found 'tcp'
    encryption required except { udp port 53 tcp port 853 }
                                             ^~~
t.pdl:6:57: error: expected ',' or '}' after the pattern, found 'udp'
    encryption required except { egress tcp to 10.0.0.1 udp }
                                                        ^~~
t.pdl:7:41: error: unknown protocol 'tpc'; expected tcp, udp, icmp, icmpv6 or any; did you mean 'tcp'?
    encryption required except { egress tpc }
                                        ^~~
t.pdl:8:34: error: expected a flow pattern before ','
    encryption required except { , udp }
                                 ^
t.pdl:9:38: error: expected a flow pattern before ','
    encryption required except { udp,, tcp }
                                     ^
t.pdl:10:34: error: expected a flow pattern or '}', found '$resolvers'
    encryption required except { $resolvers }
                                 ^~~~~~~~~~
t.pdl:11:43: error: expected a port, a port range, a $set or '{' after 'port', found '}'
    encryption required except { udp port }
                                          ^
t.pdl:12:48: error: expected ',' or '}' after a list item, found '443'
    encryption required except { tcp port { 80 443 }, udp }
                                               ^~~
)pdl");
}

// A list left open before the next statement: that statement and the block's '}'
// are not swallowed.
TEST(ParserErrors, ExceptListLeftOpen) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    encryption required except {
      udp port 53,
    allow egress tcp to any
  }
  qos {
    priority high
  }
}
)pdl"),
              R"pdl(t.pdl:5:5: error: expected '}' to close the except list, found 'allow'
    allow egress tcp to any
    ^~~~~
t.pdl:3:32: note: the list starts here
    encryption required except {
                               ^
)pdl");
}

TEST(ParserErrors, ExceptListAtEndOfFile) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    encryption required except { udp port 53,
)pdl"),
              R"pdl(t.pdl:4:1: error: expected '}' to close the except list

^
t.pdl:3:32: note: the list starts here
    encryption required except { udp port 53,
                               ^
t.pdl:4:1: error: expected '}' to close the security block

^
t.pdl:2:12: note: the block starts here
  security {
           ^
t.pdl:4:1: error: expected '}' to close persona 'p'

^
t.pdl:1:11: note: the block starts here
persona p {
          ^
)pdl");
}

TEST(ParserErrors, Ids) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    ids {
      syn-flood
      port-scan 50/10s blok 60s
      port-scan 50/10s block
      syn-flod 2000/s
      priority low
      ids {
      }
    }
  }
}
)pdl"),
        R"pdl(t.pdl:4:16: error: expected an event rate (such as 2000/s) after 'syn-flood', found end of line
      syn-flood
               ^
t.pdl:5:24: error: expected 'block' or end of statement after '50/10s', found 'blok'; did you mean 'block'?
      port-scan 50/10s blok 60s
                       ^~~~
t.pdl:6:29: error: expected a duration (such as 60s) after 'block', found end of line
      port-scan 50/10s block
                            ^
t.pdl:7:7: error: unknown statement 'syn-flod' in ids block; expected 'syn-flood' or 'port-scan'; did you mean 'syn-flood'?
      syn-flod 2000/s
      ^~~~~~~~
t.pdl:8:7: error: 'priority' belongs inside a qos { } block
      priority low
      ^~~~~~~~
t.pdl:9:7: error: 'ids' blocks cannot be nested
      ids {
      ^~~
)pdl");
}

TEST(ParserErrors, Qos) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  qos {
    rat 10mbit
    egress
    egress 10mbit
    egress rate
    egress rate 1mbit brust 64kb
    ingress rate 1mbit burst
    priority hihg
    latency 5ms
    latency target
    egress tcp 5432 -> 10.0.0.1:5432
    allow egress tcp to any
  }
}
)pdl"),
        R"pdl(t.pdl:3:5: error: unknown statement 'rat' in qos block; expected 'egress', 'ingress', 'priority' or 'latency'
    rat 10mbit
    ^~~
t.pdl:4:11: error: expected 'rate' after 'egress', found end of line
    egress
          ^
t.pdl:5:12: error: expected 'rate' after 'egress', found '10mbit'
    egress 10mbit
           ^~~~~~
t.pdl:6:16: error: expected a bandwidth (such as 200mbit) after 'egress rate', found end of line
    egress rate
               ^
t.pdl:7:23: error: expected 'burst' or end of statement after '1mbit', found 'brust'; did you mean 'burst'?
    egress rate 1mbit brust 64kb
                      ^~~~~
t.pdl:8:29: error: expected a size (such as 64kb) after 'burst', found end of line
    ingress rate 1mbit burst
                            ^
t.pdl:9:14: error: expected 'low', 'normal', 'high' or 'critical' after 'priority', found 'hihg'; did you mean 'high'?
    priority hihg
             ^~~~
t.pdl:10:13: error: expected 'target' after 'latency', found '5ms'
    latency 5ms
            ^~~
t.pdl:11:19: error: expected a duration (such as 5ms) after 'latency target', found end of line
    latency target
                  ^
t.pdl:12:5: error: 'egress' forwards belong inside a forward { } block
    egress tcp 5432 -> 10.0.0.1:5432
    ^~~~~~
t.pdl:13:5: error: 'allow' belongs inside a security { } block
    allow egress tcp to any
    ^~~~~
)pdl");
}

TEST(ParserErrors, Topology) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  topology {
    route
    route tabel 5
    route table
    route via
    next-hops
    next-hops { 10.0.0.1 10.0.0.2 }
    max-hops
    rout via 10.0.0.1
  }
}
)pdl"),
              R"pdl(t.pdl:3:10: error: expected 'table' or 'via' after 'route', found end of line
    route
         ^
t.pdl:4:11: error: expected 'table' or 'via' after 'route', found 'tabel'; did you mean 'table'?
    route tabel 5
          ^~~~~
t.pdl:5:16: error: expected a routing table (a number, 'main' or 'default') after 'route table', found end of line
    route table
               ^
t.pdl:6:14: error: expected a gateway address after 'route via', found end of line
    route via
             ^
t.pdl:7:14: error: expected an address, a $set or '{' after 'next-hops', found end of line
    next-hops
             ^
t.pdl:8:26: error: expected ',' or '}' after a list item, found '10.0.0.2'
    next-hops { 10.0.0.1 10.0.0.2 }
                         ^~~~~~~~
t.pdl:9:13: error: expected a hop count (1-255) after 'max-hops', found end of line
    max-hops
            ^
t.pdl:10:5: error: unknown statement 'rout' in topology block; expected 'route', 'next-hops' or 'max-hops'; did you mean 'route'?
    rout via 10.0.0.1
    ^~~~
)pdl");
}

TEST(ParserErrors, Sovereignty) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  sovereignty {
    allow egress tcp to any
    allow countrie { DE }
    deny countries
    unknown maybe
    exempt
    on-violation ignore
    on-violaton drop
  }
}
)pdl"),
              R"pdl(t.pdl:3:5: error: 'allow egress' rules belong inside a security { } block
    allow egress tcp to any
    ^~~~~
t.pdl:4:11: error: expected 'countries' after 'allow', found 'countrie'; did you mean 'countries'?
    allow countrie { DE }
          ^~~~~~~~
t.pdl:5:19: error: expected a country code, a country group or '{' after 'deny countries', found end of line
    deny countries
                  ^
t.pdl:6:13: error: expected 'allow' or 'deny' after 'unknown', found 'maybe'
    unknown maybe
            ^~~~~
t.pdl:7:11: error: expected an address, a CIDR, a $set or '{' after 'exempt', found end of line
    exempt
          ^
t.pdl:8:18: error: expected 'drop' or 'log' after 'on-violation', found 'ignore'
    on-violation ignore
                 ^~~~~~
t.pdl:9:5: error: unknown statement 'on-violaton' in sovereignty block; expected 'allow', 'deny', 'unknown', 'exempt' or 'on-violation'; did you mean 'on-violation'?
    on-violaton drop
    ^~~~~~~~~~~
)pdl");
}

TEST(ParserErrors, Dns) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  dns {
    servers
    search
    search corp.example
    search "corp.example" example.com
    server 10.0.0.53
  }
}
)pdl"),
        R"pdl(t.pdl:3:12: error: expected an address, a $set or '{' after 'servers', found end of line
    servers
           ^
t.pdl:4:11: error: expected a quoted domain after 'search', found end of line
    search
          ^
t.pdl:5:12: error: expected a quoted domain after 'search', found 'corp.example'; write it in quotes: "corp.example"
    search corp.example
           ^~~~~~~~~~~~
t.pdl:6:27: error: expected a quoted domain or end of statement, found 'example.com'; write it in quotes: "example.com"
    search "corp.example" example.com
                          ^~~~~~~~~~~
t.pdl:7:5: error: unknown statement 'server' in dns block; expected 'servers' or 'search'; did you mean 'servers'?
    server 10.0.0.53
    ^~~~~~
)pdl");
}

TEST(ParserErrors, Forward) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  forward {
    egress
    egress tcp
    egress tcp 5432
    egress tcp 5432 to 10.0.0.1:5432
    egress tcp 5432 ->
    egress 5432 -> 10.0.0.1:5432
    egress rate 1mbit
    forwrd tcp 1 -> 2
  }
}
)pdl"),
        R"pdl(t.pdl:3:11: error: expected a protocol (tcp or udp) after 'egress', found end of line
    egress
          ^
t.pdl:4:15: error: expected a port or ADDRESS:PORT after 'egress tcp', found end of line
    egress tcp
              ^
t.pdl:5:20: error: expected '->' after '5432', found end of line
    egress tcp 5432
                   ^
t.pdl:6:21: error: expected '->' after '5432', found 'to'
    egress tcp 5432 to 10.0.0.1:5432
                    ^~
t.pdl:7:23: error: expected a port or ADDRESS:PORT after '->', found end of line
    egress tcp 5432 ->
                      ^
t.pdl:8:12: error: expected a protocol (tcp or udp) after 'egress', found '5432'
    egress 5432 -> 10.0.0.1:5432
           ^~~~
t.pdl:9:5: error: 'egress rate' belongs inside a qos { } block
    egress rate 1mbit
    ^~~~~~
t.pdl:10:5: error: unknown statement 'forwrd' in forward block; expected 'egress' or 'ingress'
    forwrd tcp 1 -> 2
    ^~~~~~
)pdl");
}

TEST(ParserErrors, Bind) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(bind web {
  cgroup /system.slice/web
  interface
  user
  group;
  usr alice
  description "d"
  qos {
  }
  allow egress tcp to any
  persona q {
  }
  "alice"
}
)pdl"),
        R"pdl(t.pdl:2:10: error: expected a quoted glob after 'cgroup', found '/system.slice/web'; write it in quotes: "/system.slice/web"
  cgroup /system.slice/web
         ^~~~~~~~~~~~~~~~~
t.pdl:3:12: error: expected a quoted glob after 'interface', found end of line
  interface
           ^
t.pdl:4:7: error: expected a user name or id after 'user', found end of line
  user
      ^
t.pdl:5:8: error: expected a group name or id after 'group', found ';'
  group;
       ^
t.pdl:6:3: error: unknown statement 'usr' in bind block; expected 'cgroup', 'interface', 'user' or 'group'; did you mean 'user'?
  usr alice
  ^~~
t.pdl:7:3: error: 'description' belongs inside a persona, not in a bind block
  description "d"
  ^~~~~~~~~~~
t.pdl:8:3: error: 'qos' sections belong inside a persona, not in a bind block
  qos {
  ^~~
t.pdl:10:3: error: 'allow' belongs inside a security { } block
  allow egress tcp to any
  ^~~~~
t.pdl:11:3: error: 'persona' belongs at top level, outside any block
  persona q {
  ^~~~~~~
t.pdl:13:3: error: expected a statement ('cgroup', 'interface', 'user' or 'group'), found a string
  "alice"
  ^~~~~~~
)pdl");
}

TEST(ParserErrors, BindUnclosed) {
    EXPECT_EQ(diagnostics_of(R"pdl(bind web {
  user alice
)pdl"),
              R"pdl(t.pdl:3:1: error: expected '}' to close the bind block for 'web'

^
t.pdl:1:10: note: the block starts here
bind web {
         ^
)pdl");
}

// A '{' inside a list is skipped to the list's own '}': the next statements parse.
TEST(ParserErrors, NestedLists) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to { 10.0.0.1, { 10.0.0.2 } }
    encryption required except { udp, { tcp } }
    mode loud
  }
}
)pdl"),
        R"pdl(t.pdl:3:37: error: lists cannot be nested; expected an address, a CIDR, a $set or 'any'
    allow egress tcp to { 10.0.0.1, { 10.0.0.2 } }
                                    ^
t.pdl:4:39: error: expected a flow pattern or '}', found '{'
    encryption required except { udp, { tcp } }
                                      ^
t.pdl:5:10: error: expected 'enforce' or 'audit' after 'mode', found 'loud'
    mode loud
         ^~~~
)pdl");
}

// A tree parsed from lex_source() views the source; one parsed from tokens keeps copies
// (so it outlives them, as every test above relies on). Both read the same.
TEST(Parser, TreeFromSourceMatchesTreeFromTokens) {
    const std::string text =
        "# head\n"
        "set web = { 80,  # http\n  443 }\n"
        "persona p {  # open\n"
        "  description \"a \\\"quoted\\\" word\"\n"
        "  security {\n"
        "    allow egress tcp port $web to { 10.0.0.0/8, fd00::/8 }  # why\n"
        "  }\n"
        "}\n";
    Diagnostics d1("t.pdl", text), d2("t.pdl", text);
    ast::File viewed = parse(lex_source(text, d1), d1);
    ast::File copied;
    {
        std::vector<Token> tokens = lex(text, d2);
        copied = parse(tokens, d2);
    }
    ASSERT_EQ(d1.errors() + d2.errors(), 0u) << d1.render() << d2.render();
    auto in_source = [&text](std::string_view v) {
        return v.data() >= text.data() && v.data() + v.size() <= text.data() + text.size();
    };
    for (const ast::File* f : {&viewed, &copied}) {
        bool views = f == &viewed;
        ASSERT_EQ(f->items.size(), 2u);
        EXPECT_EQ(f->items[0].leading, (ast::Trivia{"# head"}));
        const auto& set = std::get<ast::SetDecl>(f->items[0].node);
        EXPECT_EQ(set.name.text, "web");
        EXPECT_EQ(in_source(set.name.text), views);
        EXPECT_EQ(set.items.items[0].trailing, "# http");
        const auto& persona = std::get<ast::PersonaDecl>(f->items[1].node);
        EXPECT_EQ(persona.block.open_comment, "# open");
        const auto& desc = std::get<ast::Description>(persona.block.statements[0].node);
        EXPECT_EQ(desc.value, "a \"quoted\" word");
        EXPECT_FALSE(in_source(desc.value));  // decoded
        const auto& sec = std::get<ast::Section>(persona.block.statements[1].node);
        const auto& rule = std::get<ast::Rule>(sec.block.statements[0].node);
        EXPECT_EQ(rule.ports.items[0].text, "web");
        EXPECT_EQ(rule.peers.items[1].text, "fd00::/8");
        EXPECT_EQ(in_source(rule.peers.items[1].text), views);
        EXPECT_EQ(sec.block.statements[0].trailing, "# why");
    }
}

// Trivia is one pointer, null when empty (nearly always), with value semantics.
TEST(Parser, TriviaHasValueSemantics) {
    static_assert(sizeof(ast::Trivia) == sizeof(void*));
    ast::Trivia none;
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(none.size(), 0u);
    EXPECT_EQ(none.begin(), none.end());
    EXPECT_EQ(none, ast::Trivia{});
    ast::Trivia lines{"# a", ""};
    ast::Trivia copy = lines;
    EXPECT_EQ(copy, lines);
    copy.pop_back();
    EXPECT_NE(copy, lines);
    EXPECT_EQ(copy.back(), "# a");
    EXPECT_EQ(lines.size(), 2u);
    ast::Trivia moved = std::move(copy);
    EXPECT_EQ(moved, ast::Trivia{"# a"});
    moved.clear();
    EXPECT_TRUE(moved.empty());
    moved.push_back("# b");
    EXPECT_EQ(moved.front(), "# b");
}

}  // namespace
}  // namespace pdl
