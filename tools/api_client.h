// ApiClient: the CLI's side of the agent's HTTP+JSON API on its unix socket
// (docs/architecture.md, "API"). Every failure becomes a CliError or ApiError.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace pbpf::cli {

// Any error the CLI reports as "personabpf: error: <what>" with exit status 1.
class CliError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The agent answered with a 4xx/5xx status. `diagnostics` holds rendered PDL
// diagnostics when the agent sent them (apply of a bad file), else it is empty.
class ApiError : public CliError {
  public:
    ApiError(int status, std::string message, std::string diagnostics)
        : CliError(std::move(message)), status_(status), diagnostics_(std::move(diagnostics)) {}
    int status() const { return status_; }
    const std::string& diagnostics() const { return diagnostics_; }

  private:
    int status_;
    std::string diagnostics_;
};

class ApiClient {
  public:
    explicit ApiClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}

    nlohmann::json get(const std::string& path) const;
    nlohmann::json post(const std::string& path, const nlohmann::json& body) const;
    nlohmann::json del(const std::string& path) const;

    const std::string& socket_path() const { return socket_path_; }

  private:
    nlohmann::json request(const std::string& method, const std::string& path,
                           const nlohmann::json* body) const;

    std::string socket_path_;
};

// Percent-encodes a query parameter value (cgroup paths carry '/', maybe spaces).
std::string url_encode(const std::string& value);

}  // namespace pbpf::cli
