// Helpers shared by the subcommands: reading PDL files and rendering agent JSON.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tools/commands.h"

namespace pbpf::cli {

void print_json(const nlohmann::json& j) {
    // nlohmann::json keeps object keys sorted, so equal answers print identically.
    std::cout << j.dump(2) << '\n';
}

std::string read_source(const std::string& path) {
    std::ostringstream text;
    if (path == "-") {
        text << std::cin.rdbuf();
        return text.str();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CliError("cannot read " + path + ": " + std::strerror(errno));
    text << in.rdbuf();
    if (in.bad()) throw CliError("cannot read " + path + ": " + std::strerror(errno));
    return text.str();
}

std::string text_of(const nlohmann::json& j) {
    if (j.is_null()) return "-";
    if (j.is_string()) return j.get<std::string>();
    if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
    if (j.is_array()) {
        std::string out;
        for (const auto& e : j) out += (out.empty() ? "" : ", ") + text_of(e);
        return out.empty() ? "-" : out;
    }
    return j.dump();
}

std::string field(const nlohmann::json& j, const std::string& key) {
    if (!j.is_object()) return "-";
    auto it = j.find(key);
    return it == j.end() ? "-" : text_of(*it);
}

}  // namespace pbpf::cli
