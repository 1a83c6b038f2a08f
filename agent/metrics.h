// Prometheus text exposition (format 0.0.4): a writer that keeps the HELP/TYPE lines and
// label escaping right, the [metrics] listen address, and the HTTP endpoint serving
// GET /metrics on TCP or a unix socket.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "maps/result.h"

namespace httplib {
class Server;
}

namespace pbpf::agent {

// [metrics] listen: "HOST:PORT" (IPv4, a name, or "[IPv6]:PORT"), or "unix:/abs/path".
struct ListenAddress {
    bool is_unix = false;
    std::string path;  // unix
    std::string host;  // TCP
    int port = 0;      // TCP, 1..65535
    std::string text() const;
};
// Errors say what is wrong with `text` (the caller adds the key's name and location).
Result<ListenAddress> parse_listen_address(const std::string& text);

// A label value escaped for the text format: backslash, double quote and newline.
std::string escape_label_value(const std::string& v);
// A HELP text escaped: backslash and newline.
std::string escape_help(const std::string& v);

using Labels = std::vector<std::pair<std::string, std::string>>;

// Collects samples by family and renders them with one # HELP and # TYPE per family, in
// the order families were declared. Samples of an undeclared family are dropped (and
// counted), so a typo can never produce an untyped line.
class MetricsWriter {
  public:
    enum class Type { Counter, Gauge, Summary };
    void family(const std::string& name, Type type, const std::string& help);
    void sample(const std::string& family, const Labels& labels, double value);
    // A sample named family + suffix inside the family's block: a summary's "_sum" and
    // "_count" (the quantiles are plain samples with a "quantile" label).
    void sample_suffixed(const std::string& family, const std::string& suffix, const Labels& labels,
                         double value);
    std::string render() const;
    size_t dropped() const { return dropped_; }

  private:
    struct Family {
        std::string name;
        Type type;
        std::string help;
        std::vector<std::string> lines;
    };
    std::vector<Family> families_;
    std::map<std::string, size_t> index_;
    size_t dropped_ = 0;
};

// A number as the text format writes it: integers without exponent or decimals, others
// with enough digits; NaN and infinities as Prometheus spells them.
std::string format_value(double v);

// Serves GET /metrics with what `render` returns (called per scrape, on the server's
// thread). Other paths: 404.
class MetricsServer {
  public:
    explicit MetricsServer(std::function<std::string()> render);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Binds (a port in use, or a live socket at the path, fails with a clear message) and
    // serves on a thread of its own.
    Result<void> start(const ListenAddress& addr);
    void stop();

  private:
    std::function<std::string()> render_;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    std::string unix_path_;
};

}  // namespace pbpf::agent
