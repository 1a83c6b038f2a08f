// ApiError: a request that cannot be served, with its HTTP status and JSON body. Thrown by
// the request-level code (persona manager, binder) and turned into a response only at the
// edge, the API server's handler wrapper.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace pbpf::agent {

class ApiError : public std::runtime_error {
  public:
    ApiError(int status, const std::string& error, nlohmann::json extra = nlohmann::json::object())
        : std::runtime_error(error), status_(status), extra_(std::move(extra)) {}

    int status() const { return status_; }
    // {"error": what(), ...extra}
    nlohmann::json body() const {
        nlohmann::json j = extra_.is_object() ? extra_ : nlohmann::json::object();
        j["error"] = what();
        return j;
    }

  private:
    int status_;
    nlohmann::json extra_;
};

}  // namespace pbpf::agent
