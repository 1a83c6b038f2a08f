// HTTP/1.1 over the agent's unix socket with cpp-httplib, and the mapping of transport
// and API failures to the CLI's error messages.
#include "tools/api_client.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <httplib.h>

namespace pbpf::cli {
namespace {

// httplib reports only "Connection" when connect() fails; the errno (no such file,
// refused, permission denied) is what tells the user what to fix, so probe for it.
std::string why_unreachable(const std::string& socket_path) {
    sockaddr_un addr{};
    if (socket_path.size() >= sizeof(addr.sun_path)) return "socket path too long";
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::strerror(errno);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    int err = errno;
    ::close(fd);
    if (rc == 0) return "connection failed";  // the agent came up in between
    return std::strerror(err);
}

// What the path names when it exists but is no socket ("a directory"), else empty. connect()
// says only "Connection refused" then, which sends the user looking for a dead agent.
std::string non_socket_kind(const std::string& socket_path) {
    struct stat st {};
    if (::stat(socket_path.c_str(), &st) != 0 || S_ISSOCK(st.st_mode)) return {};
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISREG(st.st_mode)) return "a regular file";
    if (S_ISFIFO(st.st_mode)) return "a FIFO";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
    return "another kind of file";
}

std::string unreachable_message(const std::string& socket_path, const std::string& why) {
    return "cannot reach the agent at " + socket_path + ": " + why +
           " (is personabpfd running? --socket/PERSONABPF_SOCKET)";
}

}  // namespace

std::string url_encode(const std::string& value) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    return out;
}

nlohmann::json ApiClient::get(const std::string& path) const {
    return request("GET", path, nullptr);
}

nlohmann::json ApiClient::post(const std::string& path, const nlohmann::json& body) const {
    return request("POST", path, &body);
}

nlohmann::json ApiClient::del(const std::string& path) const {
    return request("DELETE", path, nullptr);
}

nlohmann::json ApiClient::request(const std::string& method, const std::string& path,
                                  const nlohmann::json* body) const {
    // With AF_UNIX, httplib takes the socket path as the host; the port is unused.
    httplib::Client client(socket_path_, 80);
    client.set_address_family(AF_UNIX);
    client.set_connection_timeout(3);
    client.set_read_timeout(60);  // an apply waits for RCU grace periods
    client.set_write_timeout(10);
    client.set_keep_alive(false);

    httplib::Result res = method == "GET" ? client.Get(path.c_str())
                          : method == "POST"
                              ? client.Post(path.c_str(), body->dump(), "application/json")
                              : client.Delete(path.c_str());

    if (!res) {
        auto err = res.error();
        if (err == httplib::Error::Connection || err == httplib::Error::ConnectionTimeout) {
            if (std::string kind = non_socket_kind(socket_path_); !kind.empty()) {
                throw CliError(socket_path_ + " is not a socket but " + kind +
                               " (--socket/PERSONABPF_SOCKET must name the agent's API socket)");
            }
            std::string why = err == httplib::Error::ConnectionTimeout
                                  ? "connection timed out"
                                  : why_unreachable(socket_path_);
            throw CliError(unreachable_message(socket_path_, why));
        }
        throw CliError(method + " " + path + ": no answer from the agent at " + socket_path_ +
                       ": " + httplib::to_string(err));
    }

    nlohmann::json answer;
    bool parsed = true;
    if (!res->body.empty()) {
        answer = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
        parsed = !answer.is_discarded();
    }

    if (res->status >= 400) {
        std::string message;
        std::string diagnostics;
        if (parsed && answer.is_object()) {
            if (auto it = answer.find("error"); it != answer.end() && it->is_string())
                message = it->get<std::string>();
            if (auto it = answer.find("diagnostics"); it != answer.end() && it->is_string())
                diagnostics = it->get<std::string>();
        }
        if (message.empty()) {
            message = "agent answered " + std::to_string(res->status);
            if (!res->body.empty() && !parsed) message += ": " + res->body;
        }
        throw ApiError(res->status, message, diagnostics);
    }
    if (!parsed) {
        throw CliError(method + " " + path + ": the agent sent a malformed answer (not JSON)");
    }
    return answer;
}

}  // namespace pbpf::cli
