// The compiler driver: runs lexer, parser and semantic pass over one source, and renders
// rules back to their canonical one-line text.
#include "pdl-compiler/compiler.h"

#include "pdl-compiler/diagnostics.h"
#include "pdl-compiler/lexer.h"
#include "pdl-compiler/lint.h"
#include "pdl-compiler/parser.h"
#include "pdl-compiler/sema.h"
#include "pdl-compiler/values.h"

namespace pdl {

CompileOutput compile(const Source& src, const CompileOptions& options) {
    CompileOutput out;
    Diagnostics diags(src.filename, src.text);
    std::vector<Token> tokens = lex(src.text, diags);
    ast::File file = parse(tokens, diags);
    // Sema also runs after syntax errors: the statements that did parse may hold more
    // mistakes, and reporting them all at once saves the user round trips.
    std::vector<ir::Persona> personas = check(file, diags);
    // Lint only a file that is otherwise right: after an error a set may look unused
    // because the statement using it did not parse.
    if (options.lint && diags.errors() == 0)
        lint(file, personas, diags, LintOptions{options.werror});
    out.errors = diags.errors();
    out.warnings = diags.warnings();
    out.diagnostics = diags.render();
    if (out.errors == 0) out.personas = std::move(personas);
    return out;
}

std::string describe_rule(const ir::Rule& rule) {
    std::string s = rule.action == ir::Action::Deny ? "deny" : "allow";
    s += rule.direction == ir::Direction::Egress ? " egress " : " ingress ";
    switch (rule.proto) {
        case ir::Proto::Tcp:
            s += "tcp";
            break;
        case ir::Proto::Udp:
            s += "udp";
            break;
        case ir::Proto::Icmp:
            s += "icmp";
            break;
        case ir::Proto::Icmpv6:
            s += "icmpv6";
            break;
        case ir::Proto::Any:
            s += "any";
            break;
    }
    if (!rule.ports.empty()) {
        s += " port ";
        if (rule.ports.size() == 1) {
            s += format_port_range(rule.ports[0]);
        } else {
            s += "{ ";
            for (size_t i = 0; i < rule.ports.size(); ++i)
                s += (i ? ", " : "") + format_port_range(rule.ports[i]);
            s += " }";
        }
    }
    s += rule.direction == ir::Direction::Egress ? " to " : " from ";
    if (rule.peers.empty()) {
        s += "any";
    } else if (rule.peers.size() == 1) {
        s += format_cidr(rule.peers[0]);
    } else {
        s += "{ ";
        for (size_t i = 0; i < rule.peers.size(); ++i)
            s += (i ? ", " : "") + format_cidr(rule.peers[i]);
        s += " }";
    }
    return s;
}

}  // namespace pdl
