// Result<T>: a value or an Error carrying errno and context, the one error style of the
// system and BPF paths (no bare bools that lose why).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace pbpf {

struct Error {
    int err = 0;          // errno-style code, 0 when not a system error
    std::string message;  // what failed and on what, e.g. "create policy trie: ..."

    // "message: strerror(err)" when err != 0.
    std::string what() const {
        if (err == 0) return message;
        return message + ": " + std::strerror(err);
    }
};

// Builds an Error from errno (or an explicit code); negative codes (libbpf) are flipped.
inline Error sys_error(std::string message, int code = errno) {
    return Error{code < 0 ? -code : code, std::move(message)};
}

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T* operator->() { return &value(); }
    T& operator*() { return value(); }
    const Error& error() const { return std::get<1>(v_); }

  private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return error_; }

  private:
    Error error_;
    bool ok_ = true;
};

}  // namespace pbpf
