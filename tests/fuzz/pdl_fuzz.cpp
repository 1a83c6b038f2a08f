// libFuzzer target over the PDL front end (compile, lower, format). Checks, for any input:
//  - no crash, sanitizer report, leak or uncaught exception in compile/lower/format;
//  - every lowered PersonaImage survives pbpf::to_json -> text -> persona_image_from_json
//    unchanged, and lower(all) agrees with lower(each);
//  - format is idempotent: format(format(x)) == format(x);
//  - formatting keeps meaning: the formatted text compiles iff the original does, and then
//    to the same personas (name, description, mode, defaults, rule texts) and map images.
// A violation prints what differed and abort()s, so libFuzzer saves the input.
// PDL_FUZZ_VERBOSE=1 prints diagnostics and the formatted text (for triaging one input).
// Build and run: scripts/fuzz.sh (tests/fuzz/CMakeLists.txt is a standalone clang project).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "maps/map_image.h"
#include "pdl-compiler/compiler.h"

namespace {

[[noreturn]] void violation(const char* what, const std::string& detail = {}) {
    std::fprintf(stderr, "\n*** pdl_fuzz property violated: %s\n", what);
    if (!detail.empty()) std::fprintf(stderr, "%s\n", detail.c_str());
    std::fflush(stderr);
    std::abort();
}

bool same_image(const pbpf::PersonaImage& a, const pbpf::PersonaImage& b) {
    return a.name == b.name && a.audit == b.audit && a.default_ingress == b.default_ingress &&
           a.default_egress == b.default_egress && a.rule_count == b.rule_count &&
           a.class_count == b.class_count && a.entries == b.entries;
}

std::string dump(const pbpf::PersonaImage& p) { return pbpf::to_json(p).dump(2); }

// What a persona means, without source locations (which formatting may move).
std::string meaning(const pdl::ir::Persona& p) {
    std::string s = "persona " + p.name + "\ndescription " + nlohmann::json(p.description).dump() +
                    "\nmode " + std::to_string(static_cast<int>(p.mode)) + "\ndefaults " +
                    std::to_string(static_cast<int>(p.default_ingress)) + " " +
                    std::to_string(static_cast<int>(p.default_egress)) + "\n";
    for (const auto& r : p.rules) {
        s += std::to_string(r.id) + ": " + r.text + " | " + pdl::describe_rule(r) + "\n";
    }
    // Every other section as lowering renders it (settings, exceptions, forwards).
    s += pbpf::to_json(pdl::lower(p)).dump() + "\n";
    return s;
}

// Lowers every persona and checks the JSON round trip of each image.
std::vector<pbpf::PersonaImage> lower_all(const std::vector<pdl::ir::Persona>& personas) {
    std::vector<pbpf::PersonaImage> images;
    images.reserve(personas.size());
    for (const auto& persona : personas) {
        pbpf::PersonaImage img = pdl::lower(persona);
        nlohmann::json j = pbpf::to_json(img);
        std::string text = j.dump();
        pbpf::PersonaImage back;
        try {
            back = pbpf::persona_image_from_json(nlohmann::json::parse(text));
        } catch (const std::exception& e) {
            violation("persona_image_from_json rejected to_json output",
                      std::string(e.what()) + "\n" + j.dump(2));
        }
        if (!same_image(img, back)) {
            violation("PersonaImage JSON round trip changed the image",
                      "before:\n" + dump(img) + "\nafter:\n" + dump(back));
        }
        if (pbpf::to_json(back) != j) violation("to_json(from_json(j)) != j", j.dump(2));
        images.push_back(std::move(img));
    }

    // lower(all) = lower(each), sorted by persona name.
    pbpf::MapImage all = pdl::lower(personas);
    if (all.personas.size() != images.size()) violation("lower(all) lost or added personas");
    for (size_t i = 0; i < all.personas.size(); ++i) {
        if (i > 0 && !(all.personas[i - 1].name < all.personas[i].name))
            violation("lower(all) is not sorted by unique persona name");
        bool found = false;
        for (const auto& img : images) {
            if (img.name == all.personas[i].name) {
                if (!same_image(img, all.personas[i]))
                    violation("lower(all) differs from lower(persona)", dump(img));
                found = true;
            }
        }
        if (!found) violation("lower(all) holds a persona lower(each) does not");
    }
    return images;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const pdl::Source src{"fuzz.pdl", text};

    // Imports never touch the file system here: the only importable file is a small
    // library (seeded inputs import it), anything else is an error.
    pdl::CompileOptions options;
    options.loader =
        pdl::map_loader({{"lib.pdl",
                          "set lib_ports = { 80, 443 }\nset lib_nets = { 10.0.0.0/8, fd00::/8 }\n"
                          "persona lib-base {\n  security {\n    default egress deny\n"
                          "    allow egress tcp port $lib_ports to $lib_nets\n  }\n}\n"}});
    const pdl::CompileOutput compiled = pdl::compile(src, options);
    if (compiled.ok() != (compiled.errors == 0)) violation("CompileOutput::ok() inconsistent");
    if (!compiled.ok() && !compiled.personas.empty())
        violation("a file with errors produced personas");
    if (compiled.errors > 0 && compiled.diagnostics.empty())
        violation("errors reported without diagnostics text");
    static const bool verbose = std::getenv("PDL_FUZZ_VERBOSE") != nullptr;
    if (verbose) {
        std::fprintf(stderr, "compile: %zu errors, %zu warnings, %zu personas\n%s", compiled.errors,
                     compiled.warnings, compiled.personas.size(), compiled.diagnostics.c_str());
    }
    std::vector<pbpf::PersonaImage> images;
    if (compiled.ok()) images = lower_all(compiled.personas);

    const pdl::FormatOutput f1 = pdl::format(src);
    if (!f1.ok) {
        if (!f1.text.empty()) violation("format failed but returned text");
        if (compiled.ok()) violation("format failed on a file that compiles", f1.diagnostics);
        return 0;
    }

    if (verbose) std::fprintf(stderr, "format:\n%s", f1.text.c_str());
    const pdl::Source formatted{"fuzz.pdl", f1.text};
    const pdl::FormatOutput f2 = pdl::format(formatted);
    if (!f2.ok) violation("format of formatted text failed", f2.diagnostics + "\n" + f1.text);
    if (f2.text != f1.text) {
        violation("format is not idempotent",
                  "format(x):\n" + f1.text + "\nformat(format(x)):\n" + f2.text);
    }

    const pdl::CompileOutput recompiled = pdl::compile(formatted, options);
    if (recompiled.ok() != compiled.ok()) {
        violation(compiled.ok() ? "formatted text no longer compiles"
                                : "formatted text compiles but the original did not",
                  "original diagnostics:\n" + compiled.diagnostics + "\nformatted diagnostics:\n" +
                      recompiled.diagnostics + "\nformatted:\n" + f1.text);
    }
    if (!compiled.ok()) return 0;

    if (recompiled.personas.size() != compiled.personas.size())
        violation("formatting changed the number of personas", f1.text);
    for (size_t i = 0; i < compiled.personas.size(); ++i) {
        std::string a = meaning(compiled.personas[i]), b = meaning(recompiled.personas[i]);
        if (a != b) violation("formatting changed a persona", "before:\n" + a + "\nafter:\n" + b);
    }
    const std::vector<pbpf::PersonaImage> images2 = lower_all(recompiled.personas);
    for (size_t i = 0; i < images.size(); ++i) {
        if (!same_image(images[i], images2[i])) {
            violation("formatting changed a lowered image",
                      "before:\n" + dump(images[i]) + "\nafter:\n" + dump(images2[i]));
        }
    }
    return 0;
}
