// Agent configuration from TOML (toml++).
#include "agent/config.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <toml++/toml.h>

namespace pbpf::agent {
namespace {

std::string where(const std::string& origin, const toml::source_region& src) {
    return origin + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& origin, Config base) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        return Error{EINVAL, where(origin, e.source()) + ": " + std::string(e.description())};
    }
    Config cfg = std::move(base);
    const toml::node* agent_node = root.get("agent");
    if (agent_node == nullptr) return cfg;
    const toml::table* agent = agent_node->as_table();
    if (agent == nullptr)
        return Error{EINVAL, where(origin, agent_node->source()) + ": [agent] must be a table"};

    struct Key {
        const char* name;
        std::string* dest;
    };
    const Key keys[] = {{"socket", &cfg.socket},
                        {"state_dir", &cfg.state_dir},
                        {"bpffs_root", &cfg.bpffs_root},
                        {"cgroup_root", &cfg.cgroup_root},
                        {"log_level", &cfg.log_level}};
    for (auto&& [k, node] : *agent) {
        const Key* key = nullptr;
        for (const Key& candidate : keys)
            if (k.str() == candidate.name) key = &candidate;
        if (key == nullptr) {
            // Keys of capabilities that land later (host_country, admin_group, ...) are
            // accepted so one config file serves several agent versions.
            spdlog::debug("{}: [agent] key '{}' not used by this agent",
                          where(origin, node.source()), k.str());
            continue;
        }
        const auto* s = node.as_string();
        if (s == nullptr)
            return Error{EINVAL, where(origin, node.source()) + ": [agent] " + key->name +
                                     " must be a string"};
        *key->dest = s->get();
    }
    return cfg;
}

Result<Config> load_config(const std::string& path, bool required) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (!required && errno == ENOENT) return Config{};
        return sys_error("config " + path);
    }
    // A directory opens as an empty stream and would parse as "all defaults": an agent
    // started on the whole cgroup2 tree because of a mistyped --config.
    if (S_ISDIR(st.st_mode)) return Error{EISDIR, "config " + path + " is a directory"};
    if (!S_ISREG(st.st_mode)) return Error{EINVAL, "config " + path + " is not a regular file"};
    std::ifstream in(path);
    if (!in) return sys_error("config " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return sys_error("read config " + path);
    return parse_config(ss.str(), path);
}

}  // namespace pbpf::agent
