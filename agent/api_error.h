// ApiError: a request that cannot be served, with its HTTP status and JSON body. Thrown by
// the request-level code (persona manager, binder) and turned into a response only at the
// edge, the API server's handler wrapper.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "maps/result.h"

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

// The value of a system/BPF step that must not fail while serving a request; a failure
// becomes a 500 carrying the step's error text.
template <typename T>
T must(Result<T> r) {
    if (!r) throw ApiError(500, r.error().what());
    return std::move(r.value());
}
inline void must(Result<void> r) {
    if (!r) throw ApiError(500, r.error().what());
}

}  // namespace pbpf::agent
