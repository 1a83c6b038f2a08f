// Helpers shared by the subcommands: reading PDL files and rendering agent JSON.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <iostream>
#include <sstream>

#include "tools/commands.h"

namespace pbpf::cli {

void print_json(const nlohmann::json& j) {
    // nlohmann::json keeps object keys sorted, so equal answers print identically.
    std::cout << j.dump(2) << '\n';
}

std::string read_source(const std::string& path) {
    if (path == "-") {
        std::ostringstream text;
        text << std::cin.rdbuf();
        return text.str();
    }
    // POSIX I/O rather than ifstream: the errno is then the real reason, and a directory
    // fails with EISDIR instead of reading as an empty file.
    const auto fail = [&path] {
        return CliError("cannot read " + path + ": " + std::strerror(errno));
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw fail();
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            text.append(buf, static_cast<size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            CliError error = fail();
            ::close(fd);
            throw error;
        }
    }
    ::close(fd);
    return text;
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

std::string time_text(const nlohmann::json& t) {
    if (!t.is_number_integer()) return text_of(t);
    std::time_t secs = t.get<std::time_t>();
    std::tm tm{};
    char buf[64];
    if (!localtime_r(&secs, &tm) || !std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm))
        return text_of(t);
    return buf;
}

}  // namespace pbpf::cli
