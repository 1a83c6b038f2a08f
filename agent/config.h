// Agent configuration: embedded defaults, then the TOML file, then command-line flags.
#pragma once

#include <string>
#include <string_view>

#include "maps/result.h"

namespace pbpf::agent {

inline constexpr const char* kDefaultConfigPath = "/etc/personabpf/agent.toml";

struct Config {
    std::string socket = "/run/personabpf/agent.sock";
    std::string state_dir = "/var/lib/personabpf";
    std::string bpffs_root = "/sys/fs/bpf/personabpf";
    std::string cgroup_root;  // empty: the cgroup2 mount root
    std::string log_level = "info";
};

// Parses TOML text into `base` (keys it does not set keep base's values). `origin` names
// the text in errors: "agent.toml:3:1: ...".
Result<Config> parse_config(std::string_view text, const std::string& origin, Config base = {});

// Reads and parses `path`. A missing file is an error when `required` (the user named
// it), and means "defaults" otherwise.
Result<Config> load_config(const std::string& path, bool required);

}  // namespace pbpf::agent
